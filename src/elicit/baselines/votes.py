"""Baselines computed from stored predictions: no oracle calls, no gold.

zero_shot            sigmoid of the framing-averaged zero-shot score (the prior).
zero_shot_calibrated the same score, threshold moved to the class balance estimated without gold.
few_shot_mean        sigmoid of the mean few-shot / flip score per target (naive use of few-shot evidence).
majority_vote        prompt variants as crowd workers, aggregated by vote fraction (crowd-kit MajorityVote).
dawid_skene          the same workers, aggregated by Dawid-Skene's confusion-matrix EM (crowd-kit).

Every function returns a labels frame: ``item_id`` (every item 0..N-1) and ``p_true`` in [0, 1], never NaN;
an item without evidence gets 0.5 (or, where documented, its zero-shot prior).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from elicit.plan import FEW_SHOT_KINDS
from elicit.priors import sigmoid

NO_EVIDENCE = 0.5
MIN_BALANCE = 0.02
"""Class-balance estimates are clipped to [MIN_BALANCE, 1 - MIN_BALANCE]: never all one label."""


def as_float(values: pd.Series) -> np.ndarray:
    """A nullable numeric column as float64 with NaN for null (pandas NA / None both)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def labels_frame(n_items: int, p_true: np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """A labels frame for items 0..n_items-1; NaN (or a missing item) becomes 0.5, values clipped to [0, 1].

    ``p_true`` is either an array of length n_items or a Series indexed by item_id (possibly partial).
    """
    if isinstance(p_true, pd.Series):
        p = p_true.reindex(range(n_items)).to_numpy(dtype=float, na_value=np.nan)
    elif p_true is None:
        p = np.full(n_items, np.nan)
    else:
        p = np.asarray(p_true, dtype=float)
        if p.shape != (n_items,):
            raise ValueError(f"p_true has shape {p.shape}, expected ({n_items},): one value per item")
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), NO_EVIDENCE)
    return pd.DataFrame({"item_id": np.arange(n_items, dtype=np.int64), "p_true": p.astype(np.float64)})


def _n_items_of(ids: pd.Series, n_items: int | None) -> int:
    if n_items is not None:
        return int(n_items)
    return int(ids.max()) + 1 if len(ids) else 0


def prior_scores(priors: pd.DataFrame, n_items: int | None = None) -> np.ndarray:
    """The framing-averaged zero-shot score per item 0..N-1 (NaN where missing)."""
    n = _n_items_of(priors["item_id"], n_items)
    s = pd.Series(as_float(priors["score"]), index=priors["item_id"].astype(int).to_numpy())
    return s.reindex(range(n)).to_numpy(dtype=float, na_value=np.nan)


# ----------------------------------------------------------------------------------------------------
# Zero-shot


def zero_shot(priors: pd.DataFrame, n_items: int | None = None) -> pd.DataFrame:
    """p_true = sigmoid(prior score); evaluated by thresholding at 0.5 (score 0). Missing score -> 0.5."""
    s = prior_scores(priors, n_items)
    return labels_frame(len(s), sigmoid(s))


def estimate_class_balance(scores: np.ndarray) -> float:
    """Fraction of label-1 items, estimated from zero-shot scores alone (never gold).

    Rule: a two-component 1-D Gaussian mixture with one shared variance (sklearn, tied covariance, fixed seed)
    is fit to the finite scores; the estimate is the weight of the component with the higher mean. Why a
    mixture and not the mean of sigmoid(score): a constant offset in the model's scores (it calls most things
    wrong, or most things right) moves that mean by the same amount it moves the threshold, while the mixture
    follows the two clusters. Why a shared variance: with free variances a unimodal score distribution is
    split into a narrow and a wide component of very unequal weight; with a shared one it splits near the
    middle (estimate ~0.5), the harmless default. Fewer than 8 finite scores, or no spread, fall back to the
    mean of sigmoid(score) (0.5 if none). The estimate is clipped to [0.02, 0.98].
    """
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return NO_EVIDENCE
    if len(s) < 8 or float(np.std(s)) < 1e-9:
        return float(np.clip(sigmoid(s).mean(), MIN_BALANCE, 1 - MIN_BALANCE))
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(n_components=2, covariance_type="tied", n_init=3, random_state=0)
    gm.fit(s[:, None])
    hi = int(np.argmax(gm.means_[:, 0]))
    return float(np.clip(gm.weights_[hi], MIN_BALANCE, 1 - MIN_BALANCE))


def calibrated_threshold(scores: np.ndarray) -> tuple[float, float]:
    """(threshold, class balance): the score quantile above which the estimated fraction of items lies."""
    s = np.asarray(scores, dtype=float)
    finite = s[np.isfinite(s)]
    balance = estimate_class_balance(finite)
    if len(finite) == 0:
        return 0.0, balance
    return float(np.quantile(finite, 1.0 - balance)), balance


def zero_shot_calibrated(priors: pd.DataFrame, n_items: int | None = None) -> pd.DataFrame:
    """p_true = sigmoid(score - t): t = the (1 - balance) score quantile, balance estimated without gold.

    Why: zero-shot log-odds carry an offset (the model's overall lean towards one answer); moving the
    threshold to the estimated class balance removes it without any label. See `estimate_class_balance` for
    the rule.
    """
    s = prior_scores(priors, n_items)
    t, _ = calibrated_threshold(s)
    return labels_frame(len(s), sigmoid(s - t))


# ----------------------------------------------------------------------------------------------------
# Few-shot evidence


def few_shot_mean(
    predictions: pd.DataFrame,
    priors: pd.DataFrame | None = None,
    n_items: int | None = None,
) -> pd.DataFrame:
    """p_true = sigmoid(mean of every non-missing few-shot and flip score of the target), all rounds.

    Why: the obvious way to use few-shot answers, ignoring what context they were shown. Items with no
    few-shot evidence take their zero-shot prior when ``priors`` is given, else 0.5.
    """
    n = _n_items_of(predictions["target_id"], n_items)
    if priors is not None and n_items is None:
        n = max(n, _n_items_of(priors["item_id"], None))
    fs = predictions[predictions["kind"].isin(FEW_SHOT_KINDS)]
    scores = pd.Series(as_float(fs["score"]), index=fs["target_id"].astype(int).to_numpy())
    mean = scores.dropna().groupby(level=0).mean().reindex(range(n)).to_numpy(dtype=float, na_value=np.nan)
    p = sigmoid(mean)
    if priors is not None:
        p = np.where(np.isfinite(p), p, sigmoid(prior_scores(priors, n)))
    return labels_frame(n, p)


# ----------------------------------------------------------------------------------------------------
# Prompt variants as crowd workers


def worker_votes(predictions: pd.DataFrame) -> pd.DataFrame:
    """Hard votes for crowd-kit: one row per (task, worker) with ``label`` = 1 if score > 0.

    A worker is one prompt variant: framing x template x kind x round (e.g. ``pos|t0|zero_shot|r0``), so the
    acquiescence of one framing is one worker's bias, which Dawid-Skene can learn and majority voting cannot.
    Missing scores are dropped; a worker that answered the same target several times (different contexts)
    votes once, by the sign of its mean score.
    """
    p = predictions.loc[:, ["target_id", "framing", "template_id", "kind", "round"]].copy()
    p["score"] = as_float(predictions["score"])
    p = p[np.isfinite(p["score"].to_numpy())]
    if p.empty:
        return pd.DataFrame(
            {
                "task": pd.Series([], dtype=np.int64),
                "worker": pd.Series([], dtype=object),
                "label": pd.Series([], dtype=np.int64),
            }
        )
    worker = (
        p["framing"].astype(str)
        + "|"
        + p["template_id"].astype(str)
        + "|"
        + p["kind"].astype(str)
        + "|r"
        + p["round"].astype(int).astype(str)
    )
    votes = (
        pd.DataFrame(
            {
                "task": p["target_id"].astype(np.int64).to_numpy(),
                "worker": worker.to_numpy(dtype=object),
                "score": p["score"].to_numpy(),
            }
        )
        .groupby(["task", "worker"], sort=True)["score"]
        .mean()
        .reset_index()
    )
    votes["label"] = (votes["score"] > 0).astype(np.int64)
    return votes.loc[:, ["task", "worker", "label"]]


def _p_true_from_proba(proba: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """crowd-kit's per-task class probabilities -> labels frame (tasks without votes get 0.5)."""
    proba = proba.reindex(columns=[0, 1], fill_value=0.0)
    total = proba.sum(axis=1).replace(0.0, np.nan)
    p1 = (proba[1] / total).astype(float)
    p1.index = p1.index.astype(int)
    return labels_frame(n_items, p1)


def _crowdkit_proba(aggregator: Any, votes: pd.DataFrame) -> pd.DataFrame:
    """fit_predict_proba, silencing crowd-kit's own pandas deprecation warnings (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"crowdkit(\..*)?")
        return aggregator.fit_predict_proba(votes)


def majority_vote(predictions: pd.DataFrame, n_items: int | None = None) -> pd.DataFrame:
    """p_true = fraction of workers (prompt variants) voting label 1 (crowd-kit MajorityVote)."""
    from crowdkit.aggregation import MajorityVote

    n = _n_items_of(predictions["target_id"], n_items)
    votes = worker_votes(predictions)
    if votes.empty:
        return labels_frame(n)
    return _p_true_from_proba(_crowdkit_proba(MajorityVote(), votes), n)


def dawid_skene(predictions: pd.DataFrame, n_items: int | None = None, n_iter: int = 100) -> pd.DataFrame:
    """p_true = Dawid-Skene posterior of label 1, one confusion matrix per worker (crowd-kit DawidSkene).

    Why: a framing's acquiescence is a worker with a lopsided confusion matrix; DS estimates and discounts it,
    majority voting counts it. Deterministic (initialised from majority vote).
    """
    from crowdkit.aggregation import DawidSkene

    n = _n_items_of(predictions["target_id"], n_items)
    votes = worker_votes(predictions)
    if votes.empty:
        return labels_frame(n)
    return _p_true_from_proba(_crowdkit_proba(DawidSkene(n_iter=n_iter), votes), n)
