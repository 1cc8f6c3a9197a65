"""What a run's oracle jobs really cost, read from what they wrote, and how it compares with the plan
(:mod:`elicit.cost_plan`): the check that the cost printed before a run is the cost the run had.

Two records of a job: its telemetry (``telemetry/<job>.json``: fresh ``calls``, ``cache_hits``, ``prompt_tokens`` from
the API's usage, ``wall_s``) and its rows (``round<r>/predictions.parquet``, ``labels/<method>/calls.parquet``: one per
query asked, cached or not). The plan counts queries asked, so the rows are what it is compared with; a run answered
from the cache has the same rows and fewer fresh calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ACTUAL_COLUMNS = ("stage", "queries", "calls", "cache_hits", "prompt_tokens", "wall_s")
COMPARED_COLUMNS = (
    "stage",
    "kind",
    "planned",
    "low",
    "high",
    "actual",
    "ratio",
    "in_range",
    "planned_tokens",
    "actual_tokens",
    "planned_s",
    "actual_s",
)


def _rows(path: Path) -> tuple[int, float]:
    """(rows, summed prompt_tokens; NaN when the file holds none) of a predictions or calls file."""
    n = pq.read_metadata(path).num_rows
    names = pq.read_schema(path).names
    if "prompt_tokens" not in names:
        return n, math.nan
    tok = pd.to_numeric(pq.read_table(path, columns=["prompt_tokens"]).column(0).to_pandas(), errors="coerce")
    return n, float(tok.sum()) if tok.notna().any() and tok.sum() > 0 else math.nan


def _stage(folder: Path) -> str:
    """The job of a label folder now: a run built before ICM's rename wrote the budget variant as ``icm``
    (labels/icm/); its energy traces lack the faithful search's ``batch`` column, and it is counted as
    ``icm_budget``."""
    if folder.name != "icm":
        return folder.name
    traces = sorted(folder.glob("seed*.energy.parquet"))
    return "icm_budget" if traces and "batch" not in pq.read_schema(traces[0]).names else folder.name


def actual_costs(
    run_dir: Path | str, predictions: Sequence[Path] | None = None, labels: Sequence[Path] | None = None
) -> pd.DataFrame:
    """One row per oracle job of ``results/<run>/`` that left a record: queries asked (rows of the files it wrote),
    fresh oracle calls, cache hits, prompt tokens (the rows' API usage, else the telemetry's; NaN when none is
    reported, as for the simulator) and wall time. Jobs without telemetry have NaN calls and time.

    ``predictions`` (``round<r>/predictions.parquet`` files) and ``labels`` (label folders, whose ``calls.parquet``
    is read where there is one) name the rows to read, as a stage's declared inputs; None: every one under
    ``run_dir``. Telemetry is always every ``telemetry/*.json`` of the run (a record, never a declared input)."""
    run_dir = Path(run_dir)
    rounds = sorted(run_dir.glob("round*/predictions.parquet")) if predictions is None else list(predictions)
    folders = sorted(d for d in run_dir.glob("labels/*") if d.is_dir()) if labels is None else list(labels)
    by_name = {d.name: d for d in folders}
    found: dict[str, dict[str, float]] = {}
    for f in sorted((run_dir / "telemetry").glob("*.json")):
        rec = json.loads(f.read_text())
        if "calls" not in rec:
            continue  # not an oracle job
        tokens = float(rec.get("prompt_tokens") or 0)
        job = str(rec.get("job") or f.stem)
        found[_stage(by_name.get(job, run_dir / "labels" / job)) if job == "icm" else job] = {
            "calls": float(rec["calls"]),
            "cache_hits": float(rec.get("cache_hits") or 0),
            "prompt_tokens": tokens if tokens > 0 else math.nan,
            "wall_s": float(rec.get("wall_s") or math.nan),
        }
    files = [(f"query.{p.parent.name}", p) for p in rounds]
    files += [(_stage(d), d / "calls.parquet") for d in folders if (d / "calls.parquet").is_file()]
    for stage, path in files:
        n, tokens = _rows(path)
        rec = found.setdefault(stage, {})
        rec["queries"] = float(n)
        if not math.isnan(tokens):
            rec["prompt_tokens"] = tokens
    df = pd.DataFrame([{"stage": s, **v} for s, v in found.items()], columns=list(ACTUAL_COLUMNS))
    return df.astype({c: "float64" for c in ACTUAL_COLUMNS[1:]}).sort_values("stage", key=_order).reset_index(drop=True)


def _order(stages: pd.Series) -> pd.Series:
    """Query rounds first, in round order, then the other jobs by name."""
    return stages.map(lambda s: (0, int(s.rsplit("round", 1)[1]), "") if s.startswith("query.round") else (1, 0, s))


def planned_vs_actual(planned: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """One row per stage of either frame: the planned point and [low, high], the actual queries, their ratio
    (actual / planned point), whether the actual lies in the range, and the same for prompt tokens and seconds.

    ``planned``: :func:`elicit.cost.plan_costs` (stage, kind, calls, calls_low, calls_high, prompt_tokens, seconds);
    ``actual``: :func:`actual_costs`. A job's actual count is its rows, else its fresh calls plus cache hits."""
    p = planned.set_index("stage")
    a = actual.set_index("stage")
    stages = [*p.index, *(s for s in a.index if s not in p.index)]
    rows = []
    for s in stages:
        pr = p.loc[s] if s in p.index else None
        ac = a.loc[s] if s in a.index else None
        got = math.nan
        if ac is not None:
            got = float(ac["queries"]) if not math.isnan(ac["queries"]) else float(ac["calls"] + ac["cache_hits"])
        point = float(pr["calls"]) if pr is not None else math.nan
        low = float(pr["calls_low"]) if pr is not None else math.nan
        high = float(pr["calls_high"]) if pr is not None else math.nan
        rows.append(
            {
                "stage": s,
                "kind": pr["kind"] if pr is not None else "unplanned",
                "planned": point,
                "low": low,
                "high": high,
                "actual": got,
                "ratio": got / point if point > 0 else math.nan,
                "in_range": bool(low <= got <= high),
                "planned_tokens": float(pr["prompt_tokens"]) if pr is not None else math.nan,
                "actual_tokens": float(ac["prompt_tokens"]) if ac is not None else math.nan,
                "planned_s": float(pr["seconds"]) if pr is not None and "seconds" in pr else math.nan,
                "actual_s": float(ac["wall_s"]) if ac is not None else math.nan,
            }
        )
    df = pd.DataFrame(rows, columns=list(COMPARED_COLUMNS))
    return df.astype({c: "float64" for c in COMPARED_COLUMNS if c not in ("stage", "kind", "in_range")})
