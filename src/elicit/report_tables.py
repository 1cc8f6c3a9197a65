"""The numbers of a report and of the cross-run summary: the metrics table, oracle costs, telemetry totals, and the
run x method summary table.

Apart from the page (:mod:`elicit.report`) because they are data, not HTML: the study reads the same tables
(:func:`summary_table`, :func:`gold_best_config`), and a test can check a number without rendering a page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from elicit.contracts import BASELINES, GOLD_READING, ZERO_SHOT_ONLY
from elicit.contracts.methods import BY_NAME, enabled
from elicit.evaluate import BASE_METRICS, COLUMNS, metric_row, undefined_metrics
from elicit.plots import method_kind

VALUE_COLS = ("seed", "value", "ci_low", "ci_high")


def finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def metrics_or_empty(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """A metrics table with the contract's columns, also when a caller passes None or a bare DataFrame()."""
    if metrics is None or not set(COLUMNS).issubset(metrics.columns):
        return pd.DataFrame({c: pd.Series([], dtype="float64" if c in VALUE_COLS else object) for c in COLUMNS})
    return metrics


def expected_methods(card: Mapping[str, Any]) -> list[str]:
    """Every method a complete run would have: the baselines it makes (an opt-in one only where enabled), each swept
    config, and ``selected``."""
    params = card.get("params") or {}
    configs = sorted(((params.get("optimize") or {}).get("configs") or {}).keys())
    baselines = [m for m in BASELINES if enabled(BY_NAME[m], params.get("baselines"))]
    return [*baselines, *configs, "selected"]


def metrics_table(metrics: pd.DataFrame, selection: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per method for the report, sorted by seed-averaged accuracy (best first).

    ``accuracy`` carries the bootstrap CI of the seed mean; ``accuracy_std`` the spread over seeds; the other
    metrics are seed means. ``mark`` says how to read a row (selected, gold-best upper bound, reads gold). ``na``
    maps a metric undefined on this run's data (AUROC with one gold class, say) to the reason the report prints
    as "n/a (<reason>)" instead of a number.
    """
    if metrics.empty:
        return []
    undefined = undefined_metrics(metrics)
    sel = (selection or {}).get("selected")
    gold_best = (selection or {}).get("gold_best")
    rows = []
    for method in sorted(set(metrics["method"].astype(str))):
        sub = metrics[metrics["method"] == method]
        n_seeds = int(sub.loc[sub["seed"] >= 0, "seed"].nunique())
        acc = metric_row(metrics, method, "accuracy_seed_mean")
        mean = metric_row(metrics, method, "accuracy")
        row: dict[str, Any] = {
            "method": method,
            "kind": method_kind(method),
            "n_seeds": n_seeds,
            "accuracy": acc.value if acc else None,
            "ci_low": acc.ci_low if acc else None,
            "ci_high": acc.ci_high if acc else None,
            "accuracy_std": (mean.ci_high - mean.value) if mean else None,
        }
        for metric in BASE_METRICS[1:]:
            r = metric_row(metrics, method, metric)
            row[metric] = r.value if r else None
        for metric in ("pgr", "delta_accuracy_vs_zero_shot"):
            r = metric_row(metrics, method, metric)
            row[metric] = r.value if r else None
            row[f"{metric}_ci"] = (r.ci_low, r.ci_high) if r else None
        marks = []
        if method == "selected" or (method == sel and "selected" not in set(metrics["method"])):
            marks.append(f"selected without gold ({sel})" if sel else "selected without gold")
        elif method == sel:
            marks.append("the selected config")
        if method == gold_best:
            marks.append("gold-best config: upper bound, not selectable")
        if method in GOLD_READING:
            marks.append("reads gold: reference only")
        row["mark"] = "; ".join(marks)
        row["na"] = {k: v for k, v in undefined.items() if row.get(k) is None} if row["accuracy"] is not None else {}
        rows.append(row)
    rows.sort(key=lambda r: (-(r["accuracy"] if finite(r["accuracy"]) else -1.0), r["method"]))
    return rows


def telemetry_summary(telemetry: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Totals over all jobs' telemetry files (calls, cache hits, tokens, wall time) plus the per-job rows."""
    keys = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "wall_s")
    totals = {k: 0.0 for k in keys}
    jobs = []
    for t in sorted(telemetry or [], key=lambda t: str(t.get("job", ""))):
        row: dict[str, Any] = {"job": str(t.get("job", "?"))}
        for k in keys:
            v = t.get(k)
            num = float(v) if v is not None and finite(v) else None
            row[k] = num
            if num is not None:
                totals[k] += num
        jobs.append(row)
    hit_rate = totals["cache_hits"] / totals["calls"] if totals["calls"] else None
    return {"totals": totals, "jobs": jobs, "cache_hit_rate": hit_rate}


def gold_best_config(metrics: pd.DataFrame, configs: Sequence[str]) -> str | None:
    """The swept config with the highest seed-mean accuracy against gold (ties: first by name): an upper bound,
    never a choice."""
    acc = metrics[(metrics["metric"] == "accuracy_seed_mean") & metrics["method"].isin(list(configs))]
    return None if acc.empty else str(acc.sort_values(["value", "method"], ascending=[False, True]).iloc[0]["method"])


COST_KEYS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "wall_s")


def method_costs(methods: Iterable[str], telemetry: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """What each method's labels cost in oracle use (calls, cache hits, tokens, oracle wall time), from telemetry.

    A baseline with its own oracle job (both ICMs, golden/random/bootstrap few-shot: telemetry ``job`` = the method)
    is charged that job, all seeds. zero_shot and zero_shot_calibrated are charged the zero-shot round
    (``query.round0``); every other method (few-shot votes, Dawid-Skene, each optimize config, selected) reads the
    answers of all shared query rounds (``query.round*``) and is charged all of them: their costs are shared, not
    additive. Methods with no telemetry at all are left out.
    """
    by_job = {str(t.get("job")): t for t in telemetry or []}

    def total(jobs: list[str]) -> dict[str, Any] | None:
        if not jobs:
            return None
        out: dict[str, Any] = {"jobs": jobs}
        for k in COST_KEYS:
            vals = [float(by_job[j][k]) for j in jobs if finite(by_job[j].get(k))]
            out[k] = sum(vals) if vals else None
        return out

    shared = sorted(j for j in by_job if j.startswith("query.round"))
    costs = {}
    for m in sorted(set(methods)):
        jobs = [m] if m in by_job else [j for j in shared if j == "query.round0"] if m in ZERO_SHOT_ONLY else shared
        c = total(jobs)
        if c is not None:
            costs[m] = c
    return costs


def summary_table(runs: Sequence[tuple[Mapping[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    """One row per run x method: seed-averaged accuracy with its bootstrap CI, std over seeds, PGR with CI."""
    cols = {
        "run": "string",
        "dataset": "string",
        "oracle": "string",
        "model": "string",
        "n": "Int64",
        "method": "string",
        "kind": "string",
        "n_seeds": "Int64",
        "accuracy": "Float64",
        "accuracy_ci_low": "Float64",
        "accuracy_ci_high": "Float64",
        "accuracy_std": "Float64",
        "delta_vs_zero_shot": "Float64",
        "pgr": "Float64",
        "pgr_ci_low": "Float64",
        "pgr_ci_high": "Float64",
    }
    records = []
    for card, metrics in runs:
        for row in metrics_table(metrics_or_empty(metrics)):
            if row["accuracy"] is None:
                continue
            pgr_ci = row["pgr_ci"] or (None, None)
            records.append(
                {
                    "run": card.get("run"),
                    "dataset": card.get("dataset"),
                    "oracle": card.get("oracle"),
                    "model": card.get("model"),
                    "n": card.get("n"),
                    "method": row["method"],
                    "kind": row["kind"],
                    "n_seeds": row["n_seeds"],
                    "accuracy": row["accuracy"],
                    "accuracy_ci_low": row["ci_low"],
                    "accuracy_ci_high": row["ci_high"],
                    "accuracy_std": row["accuracy_std"],
                    "delta_vs_zero_shot": row["delta_accuracy_vs_zero_shot"],
                    "pgr": row["pgr"],
                    "pgr_ci_low": pgr_ci[0],
                    "pgr_ci_high": pgr_ci[1],
                }
            )
    df = pd.DataFrame.from_records(records, columns=list(cols))
    for col, dtype in cols.items():
        df[col] = df[col].astype(dtype)  # type: ignore[call-overload]
    return df.sort_values(["run", "accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)
