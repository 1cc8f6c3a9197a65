"""How good are a method's labels, without gold: an estimate of their accuracy from the method's own probabilities.

Why: a run without gold (daily_dilemmas, a user's data) still needs a number to trust or distrust its labels, and a
run with gold needs to know whether that number would have been right.

**Estimator.** A method's probabilities p_i (averaged over its seeds, as exported; an unlabelled item is 0.5) give
hard labels l_i = [p_i >= 0.5]. After calibration c_i = P(y_i = 1), the expected accuracy of those labels is
mean_i P(y_i = l_i), with P(y_i = l_i) = c_i where l_i = 1 and 1 - c_i where l_i = 0: the mean of max(c_i, 1 - c_i)
whenever calibration keeps the 0.5 threshold. Each method is estimated from its own probabilities, never from another
method's.

**Calibration without gold** (Platt scaling on held-out oracle answers). c_i = sigmoid(a * logit(p_i) + b), with a
and b fitted by maximum likelihood on oracle answers the method's labels were *not* computed from
(:func:`elicit.evaluate.answers.heldout_sources`: the few-shot rounds for the zero-shot methods and the baselines with
their own calls; the own calls of random_fewshot, else bootstrap_fewshot, else an ICM for everything fitted on the
shared rounds, ``selected`` included). Answers the labels were fitted to would reward any label that follows their
noise. Each item's held-out answers are reduced to their mean score m_i (log-odds of label 1,
:func:`~elicit.evaluate.answers.item_means`), and the unknown label is latent:

    m_i ~ c_i N(mu_1, sd^2) + (1 - c_i) N(mu_0, sd^2),    mu_1 >= mu_0,

fitted by EM over (a, b, mu_0, mu_1, sd). If the answers depend on an item only through its true label, the
likelihood is highest when c_i is the true P(y_i = 1 | p_i): an overconfident method (wrong labels at p near 0 or 1,
whose answers sit in the other component) is shrunk, an underconfident one sharpened. Item means rather than single
answers because an item's answers share its persistent noise: counted as independent they would overstate the
evidence, while the spread of item means around their label's centre includes that noise. ``mu_1 >= mu_0`` is the
meaning of a score (higher = label 1 more likely). A weak pull towards the method's own calibration (a = 1, b = 0,
:data:`RIDGE`, about one item's worth) keeps the fit finite when the answers separate the labels perfectly and leaves
the method's own confidence where the answers say nothing.

**Interval** (95 % by default, the evaluate section's ``ci``). What it covers: (1) item outcomes: even exactly
calibrated c_i leave the accuracy of these n items random (Poisson-binomial, variance sum c_i(1 - c_i) / n^2);
(2) calibration: a, b, mu, sd are refitted on bootstrap resamples of the items with held-out answers. The interval is
the percentile interval of the accuracy simulated over both (each refit's c_i, then y_i ~ Bernoulli), widened to
contain the estimate: the accuracy of these labels on these items. What it does not cover: its assumptions. **It
assumes the model's calibrated beliefs are right**: that the held-out answers point to the true label. Where the model
believes something wrong consistently (the same misconception in every prompt; the simulator ``sim_belief``, whose
in-context gain follows the model's beliefs), the held-out answers agree with labels that share the misconception,
and the estimate is too high, for exactly the methods that follow the model. It also assumes the two-Gaussian model of
item means and the Platt form. Measured on one draw of ``suite_ethics__sim_latent`` (500 items, a simulated model
whose own belief is 92.4 % right): every method's estimate was above its gold accuracy, by 2 to 15 points (selected:
93 % [90, 95] against 89.7 %; zero-shot 87 % against 72 %, its errors shared by the few-shot answers). Read it as an
upper bound where the model may be wrong, and check it against gold on a sample when you can. It is not a lower
bound either: where the model mostly copies the labels it is shown (the in-family ``sim_strong``), its held-out
answers are noisier than labels fitted to many answers, and over 10 draws at n = 500 the estimate of ``selected``
read 5.9 points too low (docs/results.md).

**Uncalibrated.** A method without usable held-out answers (a run with no few-shot round and no own-call baseline,
or every such answer missing) gets its own confidence, mean max(p_i, 1 - p_i), marked uncalibrated (``est_source`` 0):
too high for overconfident labels, too low for underconfident ones; its interval covers the item outcomes only.

**Metrics rows** (``metrics.parquet``, seed -1, ``ci_low = ci_high = value`` except the estimate):
``est_accuracy`` (value, interval), ``est_source`` (0 uncalibrated, k = 1 + the index of the answer source in
:data:`~elicit.evaluate.answers.HELDOUT_SOURCES`), ``est_heldout_items`` (items whose held-out answers calibrated it).
They need no gold, so a gold-less run's table holds only these.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from elicit.evaluate.answers import HELDOUT_SOURCES, heldout_sources, item_means
from elicit.evaluate.metrics import COLUMNS, MEAN_SEED, Labels, _interval, _row, seed_mean_p

ESTIMATE = "est_accuracy"
SOURCE = "est_source"
HELDOUT_ITEMS = "est_heldout_items"
ESTIMATE_METRICS: tuple[str, ...] = (ESTIMATE, SOURCE, HELDOUT_ITEMS)
UNCALIBRATED = "uncalibrated"
ASSUMPTION = "it assumes the model's calibrated beliefs are right"

RIDGE = 1.0
"""Pull of (a, b) towards (1, 0), in units of the log-likelihood's curvature (about one confident item)."""
MAX_CAL_BOOT = 100
"""Bootstrap refits of the calibration at most (the evaluate section's ``n_boot`` when smaller)."""
OUTCOME_DRAWS = 2000
"""Simulated accuracies behind the interval, spread over the calibration refits."""
_P_EPS = 1e-6
_MAX_ITER = 500
_TOL = 1e-7
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """The gold-free accuracy estimate of one label set."""

    value: float
    low: float
    high: float
    source: str
    """the held-out answers it was calibrated on (a name of HELDOUT_SOURCES), or UNCALIBRATED."""
    heldout_items: int
    slope: float
    """a of the Platt calibration (1 = the method's own confidence)."""
    shift: float
    """b of the Platt calibration (log-odds)."""

    @property
    def calibrated(self) -> bool:
        return self.source != UNCALIBRATED


def source_code(source: str) -> int:
    """``est_source``'s number: 0 for uncalibrated, 1 + the index in HELDOUT_SOURCES."""
    return HELDOUT_SOURCES.index(source) + 1 if source in HELDOUT_SOURCES else 0


def source_name(code: float | None) -> str:
    """The inverse of :func:`source_code` (anything unknown reads uncalibrated)."""
    if code is None or not math.isfinite(code):
        return UNCALIBRATED
    k = int(round(code))
    return HELDOUT_SOURCES[k - 1] if 1 <= k <= len(HELDOUT_SOURCES) else UNCALIBRATED


# ---------------------------------------- the calibration fit (vectorised over rows of item weights)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


@dataclass(frozen=True)
class _Fit:
    a: np.ndarray
    b: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray
    sd: np.ndarray


def _normals(
    r: np.ndarray, m: np.ndarray, w: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M-step of the two Gaussians: weighted means (kept where a component has no mass) and the pooled sd."""
    w1, w0 = w * r, w * (1.0 - r)
    n1, n0 = w1.sum(1), w0.sum(1)
    mu1 = np.where(n1 > 1e-12, (w1 @ m) / np.maximum(n1, 1e-12), mu1)
    mu0 = np.where(n0 > 1e-12, (w0 @ m) / np.maximum(n0, 1e-12), mu0)
    var = (w1 * (m - mu1[:, None]) ** 2 + w0 * (m - mu0[:, None]) ** 2).sum(1) / np.maximum(n1 + n0, 1e-12)
    return mu0, mu1, np.sqrt(np.maximum(var, floor**2))


def _platt_step(
    a: np.ndarray, b: np.ndarray, r: np.ndarray, z: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One damped Newton step of the ridge-penalised logistic fit of the responsibilities r on z (concave)."""
    c = _sigmoid(a[:, None] * z + b[:, None])
    res = w * (r - c)
    s = w * c * (1.0 - c)
    ga = res @ z - RIDGE * (a - 1.0)
    gb = res.sum(1) - RIDGE * b
    haa, hab, hbb = s @ (z * z) + RIDGE, s @ z, s.sum(1) + RIDGE
    det = haa * hbb - hab**2  # >= RIDGE^2 > 0
    da = (hbb * ga - hab * gb) / det
    db = (haa * gb - hab * ga) / det
    damp = 1.0 / np.maximum(1.0, np.maximum(np.abs(da), np.abs(db)))
    return a + damp * da, b + damp * db


def _em_step(theta: np.ndarray, z: np.ndarray, m: np.ndarray, w: np.ndarray, floor: float) -> np.ndarray:
    """One EM update of the rows of theta = (a, b, mu_0, mu_1, sd): E-step, then the Gaussians' M-step and one Newton
    step of the Platt part."""
    a, b, mu0, mu1, sd = (theta[:, j] for j in range(5))
    sd = np.maximum(sd, floor)
    eta = a[:, None] * z + b[:, None]
    l1 = _log_sigmoid(eta) - 0.5 * ((m - mu1[:, None]) / sd[:, None]) ** 2
    l0 = _log_sigmoid(-eta) - 0.5 * ((m - mu0[:, None]) / sd[:, None]) ** 2
    r = _sigmoid(l1 - l0)
    new_mu0, new_mu1, new_sd = _normals(r, m, w, mu0, mu1, floor)
    new_a, new_b = _platt_step(a, b, r, z, w)
    return np.column_stack([new_a, new_b, new_mu0, new_mu1, new_sd])


def _fit(z: np.ndarray, m: np.ndarray, w: np.ndarray, start: _Fit | None = None) -> _Fit:
    """EM of the latent-label model (module docstring) for each row of item weights ``w`` (R, k), accelerated by
    SQUAREM (Varadhan & Roland 2008: a squared extrapolation of two EM steps, then one EM step to stabilise); rows
    stop once their parameters move less than the tolerance."""
    rows = w.shape[0]
    floor = max(1e-3, 0.01 * float(np.std(m)))
    if start is None:
        mean = (w @ m) / np.maximum(w.sum(1), 1e-12)
        mu0, mu1, sd = _normals(np.broadcast_to(_sigmoid(z), w.shape), m, w, mean, mean, floor)
        theta = np.column_stack([np.ones(rows), np.zeros(rows), mu0, mu1, sd])
    else:
        first = np.array([start.a[0], start.b[0], start.mu0[0], start.mu1[0], start.sd[0]])
        theta = np.tile(first, (rows, 1))
    active = np.ones(rows, dtype=bool)
    for _ in range(_MAX_ITER):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        t0, wa = theta[idx], w[idx]
        t1 = _em_step(t0, z, m, wa, floor)
        t2 = _em_step(t1, z, m, wa, floor)
        r, v = t1 - t0, t2 - 2 * t1 + t0
        rn, vn = np.sqrt((r * r).sum(1)), np.sqrt((v * v).sum(1))
        alpha = np.where(vn > 1e-12, -rn / np.maximum(vn, 1e-12), -1.0)
        alpha = np.clip(alpha, -50.0, -1.0)[:, None]
        jump = t0 - 2 * alpha * r + alpha**2 * v
        jump[:, 4] = np.maximum(jump[:, 4], floor)
        t3 = _em_step(jump, z, m, wa, floor)
        bad = ~np.isfinite(t3).all(1)
        t3[bad] = t2[bad]
        theta[idx] = t3
        active[idx] = np.abs(t3 - t0).max(1) >= _TOL
    a, b, mu0, mu1, sd = (theta[:, j] for j in range(5))
    swap = mu1 < mu0  # the component with the higher scores is label 1: flip the labelling, not the data
    return _Fit(np.where(swap, -a, a), np.where(swap, -b, b), np.where(swap, mu1, mu0), np.where(swap, mu0, mu1), sd)


def _simulate(acc_prob: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Realised accuracies: for each row of per-item P(label right), ``draws`` Bernoulli outcome vectors."""
    n = acc_prob.shape[1]
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out = []
    for row in acc_prob:
        left = draws
        while left > 0:
            k = min(per_chunk, left)
            out.append((rng.random((k, n)) < row).mean(1))
            left -= k
    return np.concatenate(out) if out else np.empty(0)


def estimate_accuracy(
    p: np.ndarray,
    heldout: np.ndarray | None = None,
    *,
    seed: int = 0,
    n_boot: int = MAX_CAL_BOOT,
    ci: float = 0.95,
    source: str | None = None,
) -> Estimate:
    """Estimated accuracy of the hard labels ``p >= 0.5`` with its interval (module docstring).

    ``heldout``: per item the mean held-out oracle score (NaN where none), aligned with ``p``; None or all-NaN gives
    the uncalibrated estimate. ``source`` names where those answers come from. Never NaN: a non-finite p counts 0.5,
    no items give 0.5 in [0, 1].
    """
    p = np.asarray(p, dtype=float).ravel()
    p = np.clip(np.where(np.isfinite(p), p, 0.5), 0.0, 1.0)
    n = p.size
    if n == 0:
        return Estimate(0.5, 0.0, 1.0, UNCALIBRATED, 0, 1.0, 0.0)
    z = np.log(np.clip(p, _P_EPS, 1 - _P_EPS)) - np.log1p(-np.clip(p, _P_EPS, 1 - _P_EPS))
    label = p >= 0.5
    m = np.full(n, np.nan) if heldout is None else np.asarray(heldout, dtype=float).ravel()
    if m.size != n:
        raise ValueError(f"heldout has {m.size} entries for {n} items; align it with p")
    fit = np.isfinite(m)
    k = int(fit.sum())
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2718]))
    if k == 0:
        a, b = np.ones(1), np.zeros(1)
        boot_a, boot_b = a, b
    else:
        zf, mf = z[fit], m[fit]
        point = _fit(zf, mf, np.ones((1, k)))
        a, b = point.a, point.b
        boot_a, boot_b = a, b
        reps = min(int(n_boot), MAX_CAL_BOOT)
        if reps > 0 and k >= 2:
            w = rng.multinomial(k, np.full(k, 1.0 / k), size=reps).astype(np.float64)
            boots = _fit(zf, mf, w, start=point)
            boot_a, boot_b = boots.a, boots.b

    def right(a_: np.ndarray, b_: np.ndarray) -> np.ndarray:
        c = _sigmoid(a_[:, None] * z + b_[:, None])
        return np.where(label, c, 1.0 - c)

    value = float(right(a, b)[0].mean())
    draws = max(1, math.ceil(OUTCOME_DRAWS / boot_a.size))
    samples = _simulate(right(boot_a, boot_b), draws, rng)
    lo, hi = _interval(value, samples, ci)
    used = source if (k > 0 and source is not None) else (UNCALIBRATED if k == 0 else "held-out answers")
    return Estimate(value, float(max(lo, 0.0)), float(min(hi, 1.0)), used, k, float(a[0]), float(b[0]))


# ---------------------------------------- every method of a run


def _method_seed(seed: int, method: str) -> int:
    """A seed per method that does not move when methods are added or removed."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(method.encode())]).generate_state(1)[0])


def estimate_all(
    labels: Labels,
    answers: Mapping[str, pd.DataFrame],
    item_ids: np.ndarray,
    *,
    seed: int,
    n_boot: int = MAX_CAL_BOOT,
    ci: float = 0.95,
    notes: list[str] | None = None,
) -> dict[str, Estimate]:
    """:func:`estimate_accuracy` for every method with labels, each calibrated on the first of its
    :func:`~elicit.evaluate.answers.heldout_sources` that has answers in ``answers`` (source name -> calls frame);
    never reads gold. A method left uncalibrated gets a note."""
    notes = notes if notes is not None else []
    ids = np.sort(np.asarray(item_ids, dtype=np.int64))
    size = int(ids.max()) + 1 if ids.size else 0
    means: dict[str, np.ndarray] = {}
    for name, frame in answers.items():
        if name in HELDOUT_SOURCES and frame is not None and len(frame):
            per_item = item_means(frame, size)[ids]
            if np.isfinite(per_item).any():
                means[name] = per_item
    out: dict[str, Estimate] = {}
    for method in sorted(labels):
        if not labels[method]:
            continue
        p = seed_mean_p(labels[method], ids)
        source = next((s for s in heldout_sources(method) if s in means), None)
        est = estimate_accuracy(
            p,
            means.get(source) if source is not None else None,
            seed=_method_seed(seed, method),
            n_boot=n_boot,
            ci=ci,
            source=source,
        )
        if not est.calibrated:
            notes.append(
                f"{method}: no held-out oracle answers that its labels were not computed from, so its gold-free "
                "accuracy estimate is its own uncalibrated confidence (too high if it is overconfident)"
            )
        out[method] = est
    return out


def estimate_rows(estimates: Mapping[str, Estimate]) -> pd.DataFrame:
    """The estimates as metrics rows (module docstring), sorted by method."""
    rows: list[dict[str, Any]] = []
    for method in sorted(estimates):
        e = estimates[method]
        code, k = float(source_code(e.source)), float(e.heldout_items)
        rows.append(_row(method, MEAN_SEED, ESTIMATE, e.value, e.low, e.high))
        rows.append(_row(method, MEAN_SEED, SOURCE, code, code, code))
        rows.append(_row(method, MEAN_SEED, HELDOUT_ITEMS, k, k, k))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"seed": "int64", "value": "float64", "ci_low": "float64", "ci_high": "float64"})


def with_estimates(metrics: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with the estimate rows added (each method's after its other seed -1 rows)."""
    if estimates.empty:
        return metrics
    if metrics.empty:
        return estimates.reset_index(drop=True)
    df = pd.concat([metrics, estimates], ignore_index=True)
    return df.sort_values(["method", "seed"], kind="stable").reset_index(drop=True)
