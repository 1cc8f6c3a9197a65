"""Score label sets against gold: the metrics table, its bootstrap CIs, and reading it (rows, comparisons).

Why this module exists: the project claims "these labels beat just asking the model", so every number
here must be honest about noise. All comparisons are *paired*: one set of bootstrap resamples of the gold
items is drawn per run and shared by every method and seed, so a difference between two methods is computed
on the same resampled items.

The metrics table (``metrics.parquet``) has exactly the columns
``method, seed, metric, value, ci_low, ci_high``:

* per seed (``seed >= 0``): ``accuracy`` (``p_true >= 0.5``), ``balanced_accuracy`` (mean recall over the
  classes; within a bootstrap resample over the classes present), ``auroc``, ``ece`` (equal-mass bins),
  ``log_loss`` (p clipped to [1e-6, 1 - 1e-6]), each with a percentile bootstrap CI (widened if needed so it
  contains the point). ``balanced_accuracy`` and ``auroc`` (:data:`TWO_CLASS_METRICS`) are written only when
  both classes occur in gold: with one class they are undefined, so they are absent, never NaN, and
  :func:`undefined_metrics` names the reason (the report prints "n/a (one class)", metrics.json a null);
* ``seed == -1`` ("mean over seeds"): for the five metrics above, ``value`` = mean over seeds and
  ``ci_low``/``ci_high`` = mean -/+ std over seeds (sample std, 0 for a single seed) -- the spread across
  restarts, not a confidence interval;
* comparison metrics with a real paired bootstrap CI, per seed and at ``seed == -1`` (where the method's
  accuracy is first averaged over its seeds inside each resample): ``accuracy_seed_mean`` (only at ``-1``),
  ``delta_accuracy_vs_<ref>`` for ``ref`` in :data:`REFERENCES` (``method - ref``, ref averaged over its
  seeds), and ``pgr`` = (method - zero_shot) / (golden_fewshot - zero_shot), written only when golden few-shot
  beats zero-shot (the bootstrap CI of the denominator above 0);
* ``ece_export`` (``selected`` only, ``seed == -1``): the expected calibration error of the *exported* p_true (the
  mean over seeds, :mod:`elicit.export`) against gold, in :data:`EXPORT_ECE_BINS` equal-width bins of p (the reading
  of "when the labels say 0.8, are 80 % right?"), with a bootstrap CI on the shared resamples;
* per method at ``seed == -1``, the evaluation set's size: ``n_gold`` (gold items) and ``n_gold_positive``
  (gold items labelled 1), with ``ci_low = ci_high = value``; the verdict needs them to tell a tiny sample
  (:func:`elicit.verdicts.too_few_items`) and a one-class gold set apart.

An item a method did not label counts as ``p_true = 0.5`` (a coin flip, labelled 1 by the threshold), so a
coverage gap costs the method instead of silently shrinking its test set; this is reported in ``notes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.params_types import SECTION, Float, Int, build, typed

Labels = Mapping[str, Mapping[int, pd.DataFrame]]
"""method -> seed -> DataFrame(item_id, p_true)."""

REFERENCES: tuple[str, ...] = ("zero_shot", "few_shot_mean", "golden_fewshot")
"""Every method gets a paired accuracy difference against each of these (when present)."""
COLUMNS: list[str] = ["method", "seed", "metric", "value", "ci_low", "ci_high"]
MEAN_SEED = -1
BASE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auroc", "ece", "log_loss")
TWO_CLASS_METRICS: tuple[str, ...] = ("balanced_accuracy", "auroc")
"""Undefined when gold has a single class: not written then (see :func:`undefined_metrics`)."""
COUNT_METRICS: tuple[str, ...] = ("n_gold", "n_gold_positive")
"""Size of the evaluation set, one row per method at seed -1 (value = ci_low = ci_high)."""
ONE_CLASS = "one class"
EXPORTED = "selected"
"""The label set the export stage writes."""
EXPORT_ECE = "ece_export"
EXPORT_ECE_BINS = 10
"""Equal-width bins of the exported p_true's ECE ([0, 0.1), ..., [0.9, 1])."""
_EPS = 1e-6
_CHUNK_CELLS = 4_000_000  # bootstrap rows x items processed at once: bounds memory at a few hundred MB


@typed("evaluate")
@pydantic_dataclass(frozen=True, config=SECTION)
class EvaluateConfig:
    """The ``evaluate:`` section of params.yaml."""

    n_boot: Int = Field(
        default=1000,
        ge=0,
        description="bootstrap resamples of the gold items, shared by all methods (paired comparisons)",
    )
    ece_bins: Int = Field(default=10, ge=1, description="equal-mass bins for the expected calibration error")
    ci: Float = Field(default=0.95, gt=0, lt=1, description="coverage of the percentile bootstrap intervals")

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> EvaluateConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if section is None else section, "evaluate")


# ---------------------------------------- helpers


def gold_items(items: pd.DataFrame) -> pd.DataFrame:
    """Items that have a gold label, sorted by item_id (the evaluation set)."""
    if "gold" not in items.columns:
        return items.iloc[0:0]
    mask = items["gold"].notna().to_numpy(dtype=bool)
    return items.loc[mask].sort_values("item_id", kind="stable")


def _p_vector(df: pd.DataFrame, item_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """p_true aligned to item_ids; unlabeled or NaN items become 0.5. Returns (p, number filled)."""
    series = pd.Series(
        pd.to_numeric(df["p_true"], errors="coerce").to_numpy(dtype=float), index=df["item_id"].to_numpy()
    )
    series = series[~series.index.duplicated(keep="first")]
    p = series.reindex(item_ids).to_numpy(dtype=float, copy=True)
    missing = ~np.isfinite(p)
    p[missing] = 0.5
    return np.clip(p, 0.0, 1.0), int(missing.sum())


def seed_mean_p(per_seed: Mapping[int, pd.DataFrame], item_ids: np.ndarray) -> np.ndarray:
    """Mean p_true over seeds on item_ids (NaN where no seed labelled the item)."""
    stack = []
    for seed in sorted(per_seed):
        df = per_seed[seed]
        s = pd.Series(pd.to_numeric(df["p_true"], errors="coerce").to_numpy(dtype=float), index=df["item_id"])
        stack.append(s[~s.index.duplicated(keep="first")].reindex(item_ids).to_numpy(dtype=float))
    if not stack:
        return np.full(len(item_ids), np.nan)
    arr = np.vstack(stack)
    valid = np.isfinite(arr)
    counts = valid.sum(0)
    sums = np.where(valid, arr, 0.0).sum(0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _batch_metrics(p: np.ndarray, y: np.ndarray, w: np.ndarray, ece_bins: int, auroc: bool) -> dict[str, np.ndarray]:
    """All metrics for m weightings of the same items at once.

    ``w`` is an (m, n) matrix of item multiplicities: a row of ones is the plain data set, a row of
    multinomial counts is one bootstrap resample. Everything is matrix algebra over items (no Python loop
    over items or resamples), which is what makes 1000 paired resamples for 20 methods cheap.
    """
    m, n = w.shape
    total = w.sum(1)
    pos = (y == 1).astype(float)
    neg = 1.0 - pos
    correct = ((p >= 0.5) == (y == 1)).astype(float)
    out: dict[str, np.ndarray] = {"accuracy": w @ correct / total}

    npos, nneg = w @ pos, w @ neg
    tp, tn = w @ (correct * pos), w @ (correct * neg)
    has_pos, has_neg = npos > 0, nneg > 0
    r1 = np.divide(tp, npos, out=np.zeros(m), where=has_pos)
    r0 = np.divide(tn, nneg, out=np.zeros(m), where=has_neg)
    out["balanced_accuracy"] = (r1 + r0) / np.maximum(has_pos.astype(float) + has_neg.astype(float), 1.0)

    pc = np.clip(p, _EPS, 1.0 - _EPS)
    out["log_loss"] = w @ -(pos * np.log(pc) + neg * np.log1p(-pc)) / total

    order = np.argsort(p, kind="stable")
    ps, ys, ws = p[order], y[order], w[:, order]
    # equal-mass bins: an item's bin is where its first copy falls in the sorted (resampled) list
    start = np.cumsum(ws, axis=1) - ws
    bins = np.minimum(np.floor(start * ece_bins / total[:, None]), ece_bins - 1).astype(np.int64)
    flat = (bins + (np.arange(m) * ece_bins)[:, None]).ravel()
    sp = np.bincount(flat, weights=(ws * ps).ravel(), minlength=m * ece_bins)
    sy = np.bincount(flat, weights=(ws * (ys == 1)).ravel(), minlength=m * ece_bins)
    out["ece"] = np.abs(sp - sy).reshape(m, ece_bins).sum(1) / total

    if auroc:
        # Mann-Whitney with multiplicities: each positive scores the negative mass below it plus half the ties
        new = np.r_[True, ps[1:] != ps[:-1]]
        gid = np.cumsum(new) - 1
        ends = np.r_[np.flatnonzero(new)[1:] - 1, n - 1]
        cum_end = np.cumsum(ws * (ys == 0), axis=1)[:, ends]
        cum_before = np.concatenate([np.zeros((m, 1)), cum_end[:, :-1]], axis=1)
        neg_in = cum_end - cum_before
        pm = ys == 1
        g = gid[pm]
        num = (ws[:, pm] * (cum_before[:, g] + 0.5 * neg_in[:, g])).sum(1)
        den = npos * nneg
        out["auroc"] = np.divide(num, den, out=np.full(m, np.nan), where=den > 0)
    return out


def ece_equal_width(p: np.ndarray, y: np.ndarray, w: np.ndarray, bins: int = EXPORT_ECE_BINS) -> np.ndarray:
    """ECE in ``bins`` equal-width bins of p, for each row of item multiplicities ``w`` (m, n): sum over bins of
    |sum of (p - y) in the bin| / total weight; 0 when every bin's mean p equals its share of 1s."""
    b = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    onehot = np.zeros((p.size, bins))
    onehot[np.arange(p.size), b] = 1.0
    gap = w @ (onehot * (p - (y == 1))[:, None])
    return np.abs(gap).sum(1) / np.maximum(w.sum(1), 1e-12)


def _bootstrap_weights(n: int, n_boot: int, seed: int) -> list[np.ndarray]:
    """Multinomial item counts for n_boot resamples, in chunks; the same for every method (paired)."""
    if n_boot <= 0 or n == 0:
        return []
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    chunks, left = [], n_boot
    pvals = np.full(n, 1.0 / n)
    while left > 0:
        k = min(rows, left)
        chunks.append(rng.multinomial(n, pvals, size=k).astype(np.float64))
        left -= k
    return chunks


def _interval(point: float, samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of the finite samples, widened to contain the point (never NaN)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return point, point
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(min(lo, point)), float(max(hi, point))


def _row(method: str, seed: int, metric: str, value: float, lo: float, hi: float) -> dict[str, Any]:
    return {
        "method": method,
        "seed": int(seed),
        "metric": metric,
        "value": float(value),
        "ci_low": lo,
        "ci_high": hi,
    }


def _empty_metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": pd.Series([], dtype=object),
            "seed": pd.Series([], dtype="int64"),
            "metric": pd.Series([], dtype=object),
            "value": pd.Series([], dtype="float64"),
            "ci_low": pd.Series([], dtype="float64"),
            "ci_high": pd.Series([], dtype="float64"),
        }
    )


# ---------------------------------------- evaluate


def evaluate(
    labels: Labels,
    items: pd.DataFrame,
    seed: int,
    n_boot: int = 1000,
    *,
    ece_bins: int = 10,
    ci: float = 0.95,
    notes: list[str] | None = None,
    references: Sequence[str] = REFERENCES,
) -> pd.DataFrame:
    """Gold metrics for every method and seed, with paired bootstrap CIs (see the module docstring).

    references: the methods every other one gets a paired ``delta_accuracy_vs_<ref>`` against (the ablate stage
    passes the selected config, whose variants refit the same answers).

    Returns an empty table (same columns) when no item has gold. Human-readable caveats (coverage gaps, PGR
    omitted, AUROC skipped) are appended to ``notes`` when a list is given.
    """
    notes = notes if notes is not None else []
    gold = gold_items(items)
    if gold.empty:
        notes.append("no gold labels: only unsupervised diagnostics")
        return _empty_metrics()
    ids = gold["item_id"].to_numpy()
    y = gold["gold"].astype("int64").to_numpy()
    n = len(ids)
    both_classes = bool((y == 1).any() and (y == 0).any())
    if not both_classes:
        notes.append(
            f"gold has a single class (all {int(y[0])}): AUROC and balanced accuracy are undefined and not reported"
        )
    chunks = _bootstrap_weights(n, n_boot, seed)
    ones = np.ones((1, n))

    rows: list[dict[str, Any]] = []
    acc_point: dict[str, dict[int, float]] = {}
    acc_boot: dict[str, dict[int, np.ndarray]] = {}
    for method in sorted(labels):
        per_seed = labels[method]
        if not per_seed:
            notes.append(f"{method}: no label files")
            continue
        acc_point[method], acc_boot[method] = {}, {}
        per_metric_seed: dict[str, list[float]] = {k: [] for k in BASE_METRICS}
        for s in sorted(per_seed):
            p, filled = _p_vector(per_seed[s], ids)
            if filled:
                notes.append(f"{method} seed {s}: {filled} of {n} gold items unlabeled, counted as p_true = 0.5")
            point = _batch_metrics(p, y, ones, ece_bins, both_classes)
            boots = [_batch_metrics(p, y, w, ece_bins, both_classes) for w in chunks]
            for metric in BASE_METRICS:
                if metric not in point or (metric in TWO_CLASS_METRICS and not both_classes):
                    continue
                v = float(point[metric][0])
                samples = np.concatenate([b[metric] for b in boots]) if boots else np.empty(0)
                lo, hi = _interval(v, samples, ci)
                rows.append(_row(method, s, metric, v, lo, hi))
                per_metric_seed[metric].append(v)
            acc_point[method][s] = float(point["accuracy"][0])
            acc_boot[method][s] = np.concatenate([b["accuracy"] for b in boots]) if boots else np.empty(0)
        for metric, values in per_metric_seed.items():
            if not values:
                continue
            arr = np.asarray(values)
            mean = float(arr.mean())
            std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            rows.append(_row(method, MEAN_SEED, metric, mean, mean - std, mean + std))

    if labels.get(EXPORTED):
        p = seed_mean_p(labels[EXPORTED], ids)
        p = np.where(np.isfinite(p), p, 0.5)
        v = float(ece_equal_width(p, y, ones)[0])
        samples = np.concatenate([ece_equal_width(p, y, w) for w in chunks]) if chunks else np.empty(0)
        rows.append(_row(EXPORTED, MEAN_SEED, EXPORT_ECE, v, *_interval(v, samples, ci)))

    def seed_avg(method: str) -> tuple[float, np.ndarray]:
        pts = acc_point[method]
        point = float(np.mean([pts[s] for s in sorted(pts)]))
        samples = np.mean(np.vstack([acc_boot[method][s] for s in sorted(pts)]), axis=0)
        return point, samples

    for method in sorted(acc_point):
        v, samples = seed_avg(method)
        rows.append(_row(method, MEAN_SEED, "accuracy_seed_mean", v, *_interval(v, samples, ci)))

    for ref in references:
        if ref not in acc_point:
            continue
        ref_v, ref_b = seed_avg(ref)
        for method in sorted(acc_point):
            if method == ref:
                continue
            name = f"delta_accuracy_vs_{ref}"
            for s in sorted(acc_point[method]):
                d = acc_point[method][s] - ref_v
                rows.append(_row(method, s, name, d, *_interval(d, acc_boot[method][s] - ref_b, ci)))
            mv, mb = seed_avg(method)
            rows.append(_row(method, MEAN_SEED, name, mv - ref_v, *_interval(mv - ref_v, mb - ref_b, ci)))

    rows.extend(_pgr_rows(acc_point, acc_boot, seed_avg, ci, notes))
    n_pos = int((y == 1).sum())
    for method in sorted(acc_point):
        rows.append(_row(method, MEAN_SEED, "n_gold", n, float(n), float(n)))
        rows.append(_row(method, MEAN_SEED, "n_gold_positive", n_pos, float(n_pos), float(n_pos)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["seed"] = df["seed"].astype("int64")
    for col in ("value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    order = {m: i for i, m in enumerate(_metric_order(df["metric"].astype(str).unique().tolist()))}
    df = df.assign(_m=df["metric"].map(order)).sort_values(["method", "seed", "_m"], kind="stable")
    return df.drop(columns="_m").reset_index(drop=True)


def _metric_order(metrics: Sequence[str]) -> list[str]:
    fixed = [
        *BASE_METRICS,
        "accuracy_seed_mean",
        *(f"delta_accuracy_vs_{r}" for r in REFERENCES),
        "pgr",
        EXPORT_ECE,
    ]
    return fixed + sorted(set(metrics) - set(fixed))


def _pgr_rows(
    acc_point: dict[str, dict[int, float]],
    acc_boot: dict[str, dict[int, np.ndarray]],
    seed_avg: Callable[[str], tuple[float, np.ndarray]],
    ci: float,
    notes: list[str],
) -> list[dict[str, Any]]:
    """PGR rows, only when golden_fewshot - zero_shot is distinguishable from 0 (else a note, no rows)."""
    if "zero_shot" not in acc_point or "golden_fewshot" not in acc_point:
        absent = [m for m in ("zero_shot", "golden_fewshot") if m not in acc_point]
        notes.append(f"PGR not reported: {', '.join(absent)} labels absent")
        return []
    zs_v, zs_b = seed_avg("zero_shot")
    g_v, g_b = seed_avg("golden_fewshot")
    den_v, den_b = g_v - zs_v, g_b - zs_b
    lo, hi = _interval(den_v, den_b, ci)
    if not lo > 0 or den_v <= 0:  # below zero-shot, a "recovered share" of a negative gap reads as a gain
        why = "is below 0, so there is no gap to recover" if hi < 0 else "includes 0, so the gap is noise"
        notes.append(
            "PGR not reported: golden few-shot minus zero-shot accuracy is "
            f"{100 * den_v:+.1f} points (95 % CI [{100 * lo:+.1f}, {100 * hi:+.1f}]), which {why}"
        )
        return []
    rows = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for method in sorted(acc_point):
            for s in sorted(acc_point[method]):
                v = (acc_point[method][s] - zs_v) / den_v
                samples = (acc_boot[method][s] - zs_b) / den_b
                rows.append(_row(method, s, "pgr", v, *_interval(v, samples, ci)))
            mv, mb = seed_avg(method)
            v = (mv - zs_v) / den_v
            rows.append(_row(method, MEAN_SEED, "pgr", v, *_interval(v, (mb - zs_b) / den_b, ci)))
    return rows


# ---------------------------------------- reading the table


class Row(NamedTuple):
    """One metrics row's numbers."""

    value: float
    ci_low: float
    ci_high: float


def metric_row(metrics: pd.DataFrame, method: str, metric: str, seed: int = MEAN_SEED) -> Row | None:
    """The (value, ci_low, ci_high) of one row of the metrics table, or None when absent."""
    sel = metrics[(metrics["method"] == method) & (metrics["metric"] == metric) & (metrics["seed"] == seed)]
    if sel.empty:
        return None
    r = sel.iloc[0]
    return Row(float(r["value"]), float(r["ci_low"]), float(r["ci_high"]))


class GoldCounts(NamedTuple):
    """Size of the evaluation set."""

    n: int
    positive: int

    @property
    def one_class(self) -> bool:
        return self.n > 0 and self.positive in (0, self.n)


def gold_counts(metrics: pd.DataFrame) -> GoldCounts | None:
    """Gold items and gold 1s from the ``n_gold``/``n_gold_positive`` rows (None in tables written without them)."""
    if metrics.empty:
        return None
    sel = metrics[(metrics["metric"] == "n_gold") & (metrics["seed"] == MEAN_SEED)]
    if sel.empty:
        return None
    n = int(sel.iloc[0]["value"])
    pos = metric_row(metrics, str(sel.iloc[0]["method"]), "n_gold_positive")
    return GoldCounts(n, int(pos.value) if pos is not None else -1)


def undefined_metrics(metrics: pd.DataFrame) -> dict[str, str]:
    """Metrics a gold-scored run lacks because they are undefined on its data: metric -> short reason.

    ``balanced_accuracy`` and ``auroc`` -> "one class" when gold has a single class; ``pgr`` -> why it was not
    written (golden few-shot indistinguishable from zero-shot, or a reference absent). Empty for gold-less runs.
    The report prints ``n/a (<reason>)`` and metrics.json a null with a ``<metric>_na`` reason, never NaN.
    """
    if metrics.empty or not (metrics["metric"] == "accuracy").any():
        return {}
    present = set(metrics["metric"].astype(str))
    counts = gold_counts(metrics)
    # tables written before the count rows: AUROC was left out exactly when gold had one class
    one_class = counts.one_class if counts is not None else "auroc" not in present
    out = {m: ONE_CLASS for m in TWO_CLASS_METRICS if one_class and m not in present}
    if "pgr" not in present:
        methods = set(metrics["method"].astype(str))
        names = {"zero_shot": "zero-shot", "golden_fewshot": "golden few-shot"}
        absent = [name for m, name in names.items() if m not in methods]
        out["pgr"] = f"no {' or '.join(absent)} labels" if absent else "golden few-shot does not beat zero-shot"
    return out


# ---------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """Accuracy of method a minus method b (seed-averaged), with the evidence behind it."""

    a: str
    b: str
    diff: float
    ci_low: float | None
    """Paired bootstrap CI of the difference; None when no paired row exists for (a, b)."""
    ci_high: float | None
    a_accuracy: float
    a_ci: tuple[float, float]
    b_accuracy: float
    b_ci: tuple[float, float]
    overlap: bool
    """Whether the two methods' own accuracy CIs overlap (the conservative, unpaired view)."""

    @property
    def paired(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @property
    def significant(self) -> bool:
        """The paired CI excludes 0 (falls back to non-overlapping CIs when unpaired)."""
        if self.ci_low is not None and self.ci_high is not None:
            return self.ci_low > 0 or self.ci_high < 0
        return not self.overlap


def compare(metrics: pd.DataFrame, a: str, b: str) -> Comparison | None:
    """Paired accuracy difference a - b (None if either method has no accuracy)."""
    ra, rb = metric_row(metrics, a, "accuracy_seed_mean"), metric_row(metrics, b, "accuracy_seed_mean")
    if ra is None or rb is None:
        return None
    a_ci = (float(ra.ci_low), float(ra.ci_high))
    b_ci = (float(rb.ci_low), float(rb.ci_high))
    overlap = a_ci[0] <= b_ci[1] and b_ci[0] <= a_ci[1]
    diff = float(ra.value - rb.value)
    lo: float | None = None
    hi: float | None = None
    direct = metric_row(metrics, a, f"delta_accuracy_vs_{b}")
    inverse = metric_row(metrics, b, f"delta_accuracy_vs_{a}")
    if direct is not None:
        diff, lo, hi = float(direct.value), float(direct.ci_low), float(direct.ci_high)
    elif inverse is not None:
        diff, lo, hi = -float(inverse.value), -float(inverse.ci_high), -float(inverse.ci_low)
    return Comparison(a, b, diff, lo, hi, float(ra.value), a_ci, float(rb.value), b_ci, overlap)
