"""How good are the labels, without gold: each method's gold-free accuracy estimate against its gold accuracy, over
the study's runs.

Why: the estimate (:mod:`elicit.evaluate.goldfree`) is what a run without gold reports; the study's runs have gold,
so they show how far, and in which direction, it would have been wrong. Pure functions on the runs' metrics tables
(the ``study`` stage does the I/O); every draw of a replicated run counts as one run.

Per preset (oracle) x n x method, over the runs whose table has both ``est_accuracy`` and gold ``accuracy``
(seed -1) for the method:

* **error** = estimate - gold accuracy: mean over runs (the bias) and its SD over runs (the spread);
* **within 2 SE**: share of runs with |error| <= 2 sqrt(p (1 - p) / n_gold), p the gold accuracy: the estimate is as
  close as a second gold set of the same size would be;
* **coverage**: share of runs whose interval [ci_low, ci_high] contains the gold accuracy;
* **width / binomial**: mean over runs of the interval's width over the binomial interval's, 2 * 1.96 SE;
* **ECE** (``selected`` only): mean over runs of the calibration error of its p_true against gold (``ece``, seed -1).

**Targets** (issue 19), judged only for the in-family presets (:data:`IN_FAMILY`: the optimizer's own model, where
the estimate's assumption -- the model's calibrated beliefs are right -- holds): within 2 SE on >= 80 % of runs,
coverage >= 90 %, width <= 2x binomial. Elsewhere only the bias is reported: out of family the assumption is broken
by design (``sim_belief``'s model believes wrong things consistently, and the estimate follows it).

The per-run columns the study's and the summary's tables share are here too (:func:`with_run_results`): each run's
verdict (:func:`run_verdict`, the report's headline) and each method's estimate with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from elicit.contracts import METHODS, MethodKind
from elicit.evaluate import ESTIMATE, gold_counts, headline, metric_row
from elicit.plots import method_kind
from elicit.verdicts import RunVerdict

IN_FAMILY: tuple[str, ...] = ("sim_strong", "sim_mild")
"""Presets whose answers follow the optimizer's own model: the targets apply."""
BELIEF = "sim_belief"
"""The preset whose model believes wrong things consistently: the estimate's assumption fails by design."""
Z = 1.96
"""Normal quantile of the binomial reference interval (95 %)."""
WITHIN_2SE_MIN = 0.80
"""Target: share of runs whose error is within 2 binomial SE."""
COVERAGE_MIN = 0.90
"""Target: share of runs whose interval contains the gold accuracy."""
WIDTH_MAX = 2.0
"""Target: the interval at most twice as wide as the binomial interval."""
SELECTED = "selected"
OTHER_METHODS: tuple[str, ...] = tuple(
    m.name for m in METHODS if not m.reads_gold and m.kind is not MethodKind.REFERENCE and m.name != SELECTED
)
"""The methods of the page's second table (registry order): every built-in candidate but ``selected``."""

COLUMNS: dict[str, str] = {
    "preset": "string",
    "n": "Int64",
    "method": "string",
    "runs": "Int64",
    "mean_error": "float64",
    "error_sd": "float64",
    "within_2se": "float64",
    "coverage": "float64",
    "rel_width": "float64",
    "ece": "float64",
    "judged": "boolean",
    "met": "boolean",
    "target": "string",
}
"""The columns of :attr:`EstimateCheck.table`."""


@dataclass(frozen=True)
class EstimateRun:
    """What the comparison reads of one run."""

    run: str
    preset: str
    n: int | None
    """the run's item count (its size in the table; the SE uses the metrics' ``n_gold``)."""
    metrics: pd.DataFrame


@dataclass(frozen=True)
class EstimateCheck:
    """The comparison: one row per preset x n x method (:data:`COLUMNS`), and the runs left out."""

    table: pd.DataFrame
    without_estimate: list[str] = field(default_factory=list)
    """runs whose metrics have no ``est_accuracy`` (written before the estimate existed: re-run evaluate)."""
    without_gold: list[str] = field(default_factory=list)
    """runs with estimates but no gold accuracy: nothing to compare with."""


def run_errors(run: EstimateRun) -> pd.DataFrame:
    """One row per method with both an estimate and a gold accuracy: estimate, interval, gold accuracy, n_gold,
    error, within 2 SE, covered, width / binomial width, ECE."""
    m = run.metrics
    rows = []
    methods = sorted(set(m.loc[m["metric"] == ESTIMATE, "method"].astype(str))) if not m.empty else []
    counts = gold_counts(m) if not m.empty else None
    for method in methods:
        est, acc = metric_row(m, method, ESTIMATE), metric_row(m, method, "accuracy")
        if est is None or acc is None:
            continue
        n_row = metric_row(m, method, "n_gold")
        n_gold = int(n_row.value) if n_row else counts.n if counts else run.n
        if not n_gold:
            continue
        p, error = acc.value, est.value - acc.value
        se = math.sqrt(p * (1 - p) / n_gold)
        binomial = 2 * Z * se
        ece = metric_row(m, method, "ece")
        rows.append(
            {
                "run": run.run,
                "preset": run.preset,
                "n": run.n,
                "method": method,
                "estimate": est.value,
                "low": est.ci_low,
                "high": est.ci_high,
                "accuracy": p,
                "n_gold": n_gold,
                "error": error,
                "within_2se": abs(error) <= 2 * se + 1e-12,
                "covered": est.ci_low - 1e-12 <= p <= est.ci_high + 1e-12,
                "rel_width": (est.ci_high - est.ci_low) / binomial if binomial > 0 else math.nan,
                "ece": ece.value if ece is not None else math.nan,
            }
        )
    return pd.DataFrame(rows)


def _target(preset: str, within: float, coverage: float, width: float) -> tuple[bool, bool | None, str]:
    """(judged, met, the target cell's text) for one row."""
    if preset not in IN_FAMILY:
        if preset == BELIEF:
            return False, None, "bias only: the estimate assumes the model's beliefs are right, which they are not here"
        return False, None, "bias only (out of family)"
    missed = []
    if not within >= WITHIN_2SE_MIN:
        missed.append(f"within 2 SE {100 * within:.0f} % < {100 * WITHIN_2SE_MIN:.0f} %")
    if not coverage >= COVERAGE_MIN:
        missed.append(f"coverage {100 * coverage:.0f} % < {100 * COVERAGE_MIN:.0f} %")
    if not width <= WIDTH_MAX:
        missed.append(f"width {width:.1f}x > {WIDTH_MAX:.0f}x" if math.isfinite(width) else "width undefined")
    return True, not missed, "met" if not missed else "not met: " + "; ".join(missed)


def estimate_vs_truth(runs: Sequence[EstimateRun]) -> EstimateCheck:
    """The comparison over ``runs`` (module docstring): one row per preset x n x method, in the runs' preset order,
    then n, then ``selected`` first and the registry's order."""
    without_estimate, without_gold, frames = [], [], []
    for r in runs:
        if r.metrics.empty or not (r.metrics["metric"] == ESTIMATE).any():
            without_estimate.append(r.run)
            continue
        errors = run_errors(r)
        if errors.empty:
            without_gold.append(r.run)
            continue
        frames.append(errors)
    if not frames:
        table = pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})  # type: ignore[call-overload]
        return EstimateCheck(table, without_estimate, without_gold)
    per_run = pd.concat(frames, ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys((SELECTED, *(m.name for m in METHODS))))}
    presets = {p: i for i, p in enumerate(dict.fromkeys(r.preset for r in runs))}
    out = []
    for (preset, n, method), g in per_run.groupby(["preset", "n", "method"], sort=False, dropna=False):
        err = g["error"].to_numpy(dtype=float)
        within = float(g["within_2se"].mean())
        coverage = float(g["covered"].mean())
        widths = g["rel_width"].to_numpy(dtype=float)
        width = float(np.mean(widths[np.isfinite(widths)])) if np.isfinite(widths).any() else math.nan
        eces = g["ece"].to_numpy(dtype=float)
        judged, met, text = _target(str(preset), within, coverage, width)
        out.append(
            {
                "preset": preset,
                "n": n,
                "method": method,
                "runs": len(g),
                "mean_error": float(err.mean()),
                "error_sd": float(err.std(ddof=1)) if len(err) > 1 else math.nan,
                "within_2se": within,
                "coverage": coverage,
                "rel_width": width,
                "ece": float(np.mean(eces[np.isfinite(eces)])) if np.isfinite(eces).any() else math.nan,
                "judged": judged,
                "met": met,
                "target": text,
            }
        )
    table = pd.DataFrame(out, columns=list(COLUMNS))
    table["_p"] = table["preset"].map(presets)
    table["_m"] = table["method"].map(lambda m: order.get(m, len(order)))
    table = table.sort_values(["_p", "n", "_m", "method"], kind="stable").drop(columns=["_p", "_m"])
    for col, dtype in COLUMNS.items():
        table[col] = table[col].astype(dtype)  # type: ignore[call-overload]
    return EstimateCheck(table.reset_index(drop=True), without_estimate, without_gold)


# ---------------------------------------- the per-run columns of the study's and the summary's tables


def n_items(card: Mapping[str, Any]) -> int | None:
    """A run card's item count (None when absent): the verdict's fallback size for tables without ``n_gold``."""
    n = card.get("n")
    return int(n) if isinstance(n, int | float) and not isinstance(n, bool) and n == n else None


def run_verdict(metrics: pd.DataFrame, selection: Mapping[str, Any] | None, card: Mapping[str, Any]) -> RunVerdict:
    """The run's verdict: the shared rule (:func:`elicit.evaluate.headline`), the same as its report's headline."""
    return headline(metrics, selection, n_items=n_items(card))


def with_run_results(
    table: pd.DataFrame, runs: Sequence[tuple[Mapping[str, Any], pd.DataFrame, Mapping[str, Any] | None]]
) -> pd.DataFrame:
    """A summary table (one row per run x method, :func:`~elicit.report_tables.summary_table`) with each run's
    verdict (:func:`run_verdict`, on every row of the run) and each method's gold-free accuracy estimate
    (``est_accuracy``, ``est_low``, ``est_high``: its 95 % interval). A method with an estimate but no gold accuracy
    (every method of a run without gold) gets a row of its own, its gold columns empty."""
    out = table.copy()
    extra: list[dict[str, Any]] = []
    verdicts: dict[str, str] = {}
    estimates: dict[tuple[str, str], tuple[float, float, float]] = {}
    for card, metrics, selection in runs:
        run = str(card.get("run"))
        verdicts[run] = run_verdict(metrics, selection, card).value
        if metrics.empty:
            continue
        have = set(out.loc[out["run"] == run, "method"].astype(str))
        for method in sorted(set(metrics.loc[metrics["metric"] == ESTIMATE, "method"].astype(str))):
            est = metric_row(metrics, method, ESTIMATE)
            if est is None:
                continue
            estimates[(run, method)] = (est.value, est.ci_low, est.ci_high)
            if method not in have:
                extra.append(
                    {
                        "run": run,
                        "dataset": card.get("dataset"),
                        "oracle": card.get("oracle"),
                        "model": card.get("model"),
                        "n": card.get("n"),
                        "method": method,
                        "kind": method_kind(method),
                    }
                )
    if extra:
        added = pd.DataFrame.from_records(extra, columns=list(out.columns)).astype(out.dtypes.to_dict())
        out = pd.concat([out, added], ignore_index=True) if not out.empty else added
    keys = list(zip(out["run"].astype(str), out["method"].astype(str), strict=True))
    out["verdict"] = pd.array([verdicts.get(run) for run, _ in keys], dtype="string")
    for i, col in enumerate(("est_accuracy", "est_low", "est_high")):
        out[col] = pd.array([estimates[k][i] if k in estimates else None for k in keys], dtype="Float64")
    return out.reset_index(drop=True)


# ---------------------------------------- the page's section


def _share(x: float, runs: int) -> str:
    return f"{100 * x:.0f} % ({round(x * runs)}/{runs})"


def _error(mean: float, sd: float) -> str:
    return f"{100 * mean:+.1f}" + (f" ± {100 * sd:.1f}" if math.isfinite(sd) else "")


def _cells(r: pd.Series) -> list[str]:
    runs = int(r["runs"])
    width = f"{r['rel_width']:.1f}×" if math.isfinite(r["rel_width"]) else "–"
    return [_error(r["mean_error"], r["error_sd"]), _share(r["within_2se"], runs), _share(r["coverage"], runs), width]


HEADER = ["error, points (mean ± SD)", "within 2 SE", "coverage", "width / binomial"]


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def estimate_markdown(check: EstimateCheck) -> list[str]:
    """The page's section: a reading guide, ``selected``'s table (with its ECE), the other methods' table, and a note
    on the runs left out (empty when no run has estimates)."""
    t = check.table
    if t.empty and not check.without_estimate:
        return []
    lines = [
        "## How good are the labels, without gold: the estimate against the truth (generated)",
        "",
        "Each method's gold-free accuracy estimate (`est_accuracy`: the report's first number, all a run without gold "
        "has) against its gold accuracy, over every run and draw of a preset and size. Error = estimate − gold "
        "accuracy in points (mean ± SD over runs: the bias and its spread); within 2 SE = share of runs whose "
        "error is within two binomial standard errors sqrt(p(1−p)/n_gold), as close as a second gold set would be; "
        "coverage = share of runs whose 95 % interval contains the gold accuracy; width / binomial = the interval's "
        "width over 2·1.96·SE. Targets (in-family presets only, where the estimate's assumption holds): within 2 SE "
        f"on ≥ {100 * WITHIN_2SE_MIN:.0f} % of runs, coverage ≥ {100 * COVERAGE_MIN:.0f} %, width ≤ "
        f"{WIDTH_MAX:.0f}×. Out of family only the bias is reported: there the estimate reads too high where the "
        "model is wrong in the same way every time, and under `sim_belief` it assumes the model's beliefs are right, "
        "which they are not. ECE = calibration error of `selected`'s p_true against gold, mean over runs (points).",
        "",
    ]
    sel = t[t["method"] == SELECTED]
    if not sel.empty:
        body = [
            [
                str(r["preset"]),
                str(r["n"]) if pd.notna(r["n"]) else "–",
                str(int(r["runs"])),
                *_cells(r),
                f"{100 * r['ece']:.1f}" if math.isfinite(r["ece"]) else "–",
                str(r["target"]),
            ]
            for _, r in sel.iterrows()
        ]
        lines += ["**`selected`**", "", *_md(["preset", "n", "runs", *HEADER, "ECE", "target"], body), ""]
    other = t[t["method"].isin(OTHER_METHODS)]
    if not other.empty:
        body = [
            [
                str(r["preset"]),
                str(r["n"]) if pd.notna(r["n"]) else "–",
                str(r["method"]),
                str(int(r["runs"])),
                *_cells(r),
                str(r["target"]),
            ]
            for _, r in other.iterrows()
        ]
        lines += ["**The other methods**", "", *_md(["preset", "n", "method", "runs", *HEADER, "target"], body), ""]
    notes = []
    if check.without_estimate:
        notes.append(
            f"{len(check.without_estimate)} runs have no estimate in their metrics (written before it existed; "
            "re-run their evaluate stage) and are left out: " + ", ".join(f"`{r}`" for r in check.without_estimate)
        )
    if check.without_gold:
        notes.append(
            f"{len(check.without_gold)} runs have no gold to compare with: "
            + ", ".join(f"`{r}`" for r in check.without_gold)
        )
    if notes:
        lines += [f"*{'. '.join(notes)}.*", ""]
    return lines
