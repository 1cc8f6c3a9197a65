"""Prediction-powered inference (PPI): the accuracy of a method's labels and the class balance, from k gold labels
(a run's ``gold_budget``, :mod:`elicit.gold_budget`) and the method's calibrated predictions on every other item.

Why: the gold-free estimate (:mod:`elicit.evaluate.goldfree`) is a model-based guess with no guarantee; k gold
labels alone give a valid but wide interval (binomial, ±20 points at k = 25). PPI (Angelopoulos et al., Science
2023) keeps the classical guarantee and narrows the interval by as much as the predictions track the truth.

**Estimator** (the mean of a 0/1 outcome Y over the items outside the budget, with a prediction f of it on every
item):

    theta = lam * mean_U(f) + mean_B(Y - lam * f)

U: the items outside the budget (N of them), B: the budget (k items, a random sample:
:func:`elicit.gold_budget.choose`). For any fixed ``lam`` it is unbiased (the second term corrects the first's bias
on a random sample). **The target is the accuracy of the items outside the budget** (what evaluate scores and what a
user gets: the budget's own labels are known), a fixed set, not a population mean: the error is
``mean_B(r) - mean_U(r)`` with ``r = Y - lam f``, and with the budget a random split of the run's items its variance
is ``Var(r) (1 / k + 1 / N)`` (PPI++'s population formula, ``lam^2 Var(f) / N + Var(r) / k``, is too small for this
target: measured coverage 0.88 at k = 100 of 256). ``lam = Cov(Y, f) / Var(f)`` minimises it (the PPI++ tuning of
Angelopoulos, Duchi and Zrnic 2023 with this target's variance), clipped to [0, 1]: lam = 0 is the classical mean of
the k labels, so a useless prediction costs nothing but the tuning. The interval is ``theta ± t sqrt(variance)``
with the t quantile at k - 1 degrees of freedom, clipped to [0, 1]; at k = 25 it is approximate, as any interval on a
proportion from 25 labels is.

**Guard.** When the budget's outcomes are all equal (all 25 labels right), the sample variance of Y is 0 and the
interval would have width 0. The Y part of the variance is floored at ``(1 - lam)^2 q (1 - q)`` with
``q = (sum Y + 1) / (k + 2)`` (one pseudo-count each way, as Agresti-Coull's interval does).

**Predictions.** Accuracy: Y = [label = gold], f = the calibrated probability that the label is right (the gold-free
estimate's Platt map of the method's own p_true). Class balance: Y = gold, f = the calibrated P(y = 1) of the
``selected`` labels.

**Metrics rows** (seed -1): ``ppi_accuracy`` per calibrated method (value, interval), ``ppi_balance`` for
``selected``, ``gold_budget_items`` (k) for ``selected``, and ``budget_accuracy``: the classical interval from the
k labels alone, per method, so the report can show what the predictions added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from elicit.evaluate.goldfree import _P_EPS, Estimate
from elicit.evaluate.metrics import COLUMNS, EXPORTED, MEAN_SEED, Labels, _row, seed_mean_p
from elicit.gold_budget import is_right

PPI_ACCURACY = "ppi_accuracy"
PPI_BALANCE = "ppi_balance"
BUDGET_ITEMS = "gold_budget_items"
BUDGET_ACCURACY = "budget_accuracy"
PPI_METRICS: tuple[str, ...] = (PPI_ACCURACY, PPI_BALANCE, BUDGET_ITEMS, BUDGET_ACCURACY)


@dataclass(frozen=True)
class PPIEstimate:
    value: float
    low: float
    high: float
    lam: float
    """the power-tuning weight (0: the k labels alone)."""
    labelled: int
    unlabelled: int


def _z(ci: float) -> float:
    return NormalDist().inv_cdf(0.5 + ci / 2.0)


def ppi_mean(f_unlabelled: np.ndarray, f_labelled: np.ndarray, y: np.ndarray, ci: float = 0.95) -> PPIEstimate:
    """The PPI++ estimate of E[Y] with its interval (module docstring). Never NaN: no labels give [0, 1]."""
    fu = np.asarray(f_unlabelled, dtype=float)
    fl = np.asarray(f_labelled, dtype=float)
    y = np.asarray(y, dtype=float)
    k, n = int(y.size), int(fu.size)
    if k == 0:
        return PPIEstimate(float(fu.mean()) if n else 0.5, 0.0, 1.0, 1.0, 0, n)
    if k != fl.size:
        raise ValueError(f"{fl.size} predictions for {k} budget labels; align them")
    lam = 0.0
    if n > 0 and k >= 2:
        var_f = float(np.var(np.concatenate([fu, fl]), ddof=1))
        cov = float(np.cov(y, fl, ddof=1)[0, 1]) if np.var(fl) > 0 and np.var(y) > 0 else 0.0
        if var_f > 0:
            lam = float(np.clip(cov / var_f, 0.0, 1.0))
    value = (lam * float(fu.mean()) if n else 0.0) + float(np.mean(y - lam * fl))
    q = (float(y.sum()) + 1.0) / (k + 2.0)
    var_r = float(np.var(y - lam * fl, ddof=1)) if k >= 2 else 0.0
    var_r = max(var_r, (1.0 - lam) ** 2 * q * (1.0 - q))
    quantile = float(stats.t.ppf(0.5 + ci / 2.0, k - 1)) if k >= 2 else _z(ci)
    half = quantile * math.sqrt(var_r * (1.0 / k + (1.0 / n if n else 0.0)))
    value = float(np.clip(value, 0.0, 1.0))
    return PPIEstimate(value, max(0.0, value - half), min(1.0, value + half), lam, k, n)


def calibrated(p: np.ndarray, est: Estimate) -> np.ndarray:
    """The gold-free estimate's calibrated P(y = 1): sigmoid(a logit(p) + b); an unlabelled item (NaN) is 0.5."""
    p = np.clip(np.where(np.isfinite(p), p, 0.5), _P_EPS, 1.0 - _P_EPS)
    z = np.log(p) - np.log1p(-p)
    return 1.0 / (1.0 + np.exp(-(est.slope * z + est.shift)))


def right_probability(p: np.ndarray, est: Estimate) -> np.ndarray:
    """Calibrated P(the hard label [p >= 0.5] is right), per item."""
    c = calibrated(p, est)
    label = np.where(np.isfinite(p), p, 0.5) >= 0.5
    return np.where(label, c, 1.0 - c)


def ppi_rows(
    labels: Labels,
    estimates: Mapping[str, Estimate],
    budget_ids: np.ndarray,
    budget_gold: np.ndarray,
    eval_ids: np.ndarray,
    ci: float = 0.95,
) -> pd.DataFrame:
    """The PPI metrics rows of a run with a gold budget (module docstring); empty without one."""
    rows: list[dict[str, Any]] = []
    k = int(np.asarray(budget_ids).size)
    if k == 0:
        return pd.DataFrame(rows, columns=COLUMNS)
    gold = np.asarray(budget_gold, dtype=np.int64)
    z = _z(ci)
    for method in sorted(estimates):
        est = estimates[method]
        if method not in labels or not labels[method]:
            continue
        p_b = seed_mean_p(labels[method], budget_ids)
        right = is_right(p_b, gold)
        n_t = k + z * z  # the classical interval of the k labels alone: Agresti-Coull
        q = (right.sum() + z * z / 2.0) / n_t
        half = z * math.sqrt(q * (1 - q) / n_t)
        rows.append(
            _row(method, MEAN_SEED, BUDGET_ACCURACY, float(right.mean()), max(0.0, q - half), min(1.0, q + half))
        )
        if not est.calibrated:
            continue
        p_u = seed_mean_p(labels[method], eval_ids)
        acc = ppi_mean(right_probability(p_u, est), right_probability(p_b, est), right, ci)
        rows.append(_row(method, MEAN_SEED, PPI_ACCURACY, acc.value, acc.low, acc.high))
        if method == EXPORTED:
            bal = ppi_mean(calibrated(p_u, est), calibrated(p_b, est), gold.astype(float), ci)
            rows.append(_row(method, MEAN_SEED, PPI_BALANCE, bal.value, bal.low, bal.high))
    rows.append(_row(EXPORTED, MEAN_SEED, BUDGET_ITEMS, float(k), float(k), float(k)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"seed": "int64", "value": "float64", "ci_low": "float64", "ci_high": "float64"})
