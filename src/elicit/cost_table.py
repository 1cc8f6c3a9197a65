"""The cost plan as a table for people (``python -m elicit.cost`` without ``--json``): one row per oracle job and a
total, a range where the answers decide, and with ``--compare`` what the run really did beside it; and the same
comparison as rows for the run's report (:func:`report_rows`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from elicit.cost_actual import planned_vs_actual


def _duration(s: float) -> str:
    if math.isnan(s):
        return "n/a"
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    return f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"


def _span(low: float, high: float, fmt: Any) -> str:
    """``low-high`` as ``fmt`` writes them, empty where they read the same."""
    a, b = fmt(low), fmt(high)
    return "" if a == b else f"{a}-{b}"


def _with_span(point: str, low: float, high: float, fmt: Any) -> str:
    span = _span(low, high, fmt)
    return f"{point} ({span})" if span else point


def totals(planned: pd.DataFrame) -> dict[str, float]:
    """The run's total of every count, range end, time and money column of a plan (NaN where none is known)."""
    cols = [c for c in planned.columns if c not in ("stage", "kind", "shown", "note")]
    return {c: float(planned[c].sum(min_count=1)) for c in cols}


def _count(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}"


def _planned_cells(r: Mapping[str, Any], money: bool) -> list[str]:
    cells = [
        str(r["stage"]),
        _count(r["calls"]),
        _span(r["calls_low"], r["calls_high"], _count),
        "~" + _count(r["prompt_tokens"]),
        _with_span(_duration(r["seconds"]), r["seconds_low"], r["seconds_high"], _duration),
    ]
    if money:
        cells.append(_with_span(f"{r['money']:,.2f}", r["money_low"], r["money_high"], "{:,.2f}".format))
    return cells


def _actual_cells(r: Mapping[str, Any], actual: pd.DataFrame) -> list[str]:
    """actual queries, actual / planned, in range, actual wall time of a stage (of all of them on the total row)."""
    if r["stage"] == "total":
        got, wall, inside = float(actual["actual"].sum(min_count=1)), float(actual["actual_s"].sum(min_count=1)), ""
    elif r["stage"] in actual.index:
        row = actual.loc[r["stage"]]
        got, wall = float(row["actual"]), float(row["actual_s"])
        inside = "" if math.isnan(got) else str(bool(row["in_range"])).lower()
    else:
        got, wall, inside = math.nan, math.nan, ""
    ratio = "-" if math.isnan(got) or not r["calls"] else f"{got / r['calls']:.2f}"
    return [_count(got), ratio, inside, _duration(wall)]


def format_table(planned: pd.DataFrame, compared: pd.DataFrame | None = None) -> str:
    """The plan as a readable table, a total row last; with ``compared`` the actual queries and their ratio too."""
    money = not planned["money"].isna().all()
    head = ["stage", "calls", "range", "prompt tokens", "time"] + (["money"] if money else [])
    if compared is not None:
        head += ["actual", "actual/planned", "in range", "actual time"]
    records: list[dict[str, Any]] = [
        *({str(k): v for k, v in r.items()} for r in planned.to_dict("records")),
        {"stage": "total", **totals(planned)},
    ]
    actual = compared.set_index("stage") if compared is not None else None
    body = [_planned_cells(r, money) + ([] if actual is None else _actual_cells(r, actual)) for r in records]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(x.rjust(w) for x, w in zip(row[1:], widths[1:], strict=True))]).rstrip()
        for row in [head, *body]
    ]
    notes = [f"  {r['stage']}: {r['note']}" for r in records if r.get("note")]
    return "\n".join([*lines, "", "notes:", *notes] if notes else lines)


# ---------------------------------------------------------------------------------------------- the report's rows


def _known(x: Any) -> float | None:
    """A number, or None where it is unknown (NaN never reaches a page)."""
    return None if x is None or math.isnan(float(x)) else float(x)


def report_rows(planned: pd.DataFrame, actual: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    """Planned vs actual per oracle job, for the report, and the total in one line.

    ``planned``: :func:`elicit.cost.plan_costs`; ``actual``: :func:`elicit.cost_actual.actual_costs`. One row per
    job of either (:func:`~elicit.cost_actual.planned_vs_actual`): ``planned`` queries, ``low``/``high`` where the
    plan is a range (None where they are equal), ``actual`` queries, ``ratio`` = actual / planned, ``in_range``
    (None where the job has no record or no plan: ``kind`` ``unplanned``), planned and actual prompt tokens; None
    wherever a number is unknown."""
    rows = []
    for r in planned_vs_actual(planned, actual).to_dict("records"):
        point, low, high, got = _known(r["planned"]), _known(r["low"]), _known(r["high"]), _known(r["actual"])
        ranged = low is not None and high is not None and low < high
        rows.append(
            {
                "stage": str(r["stage"]),
                "kind": str(r["kind"]),
                "planned": point,
                "low": low if ranged else None,
                "high": high if ranged else None,
                "actual": got,
                "ratio": got / point if got is not None and point else None,
                "in_range": bool(r["in_range"]) if got is not None and point is not None else None,
                "planned_tokens": _known(r["planned_tokens"]),
                "actual_tokens": _known(r["actual_tokens"]),
            }
        )
    return rows, total_line(rows)


def _sum(rows: list[dict[str, Any]], key: str) -> float:
    return float(sum(r[key] for r in rows if r[key] is not None))


def total_line(rows: list[dict[str, Any]]) -> str:
    """``Total: <planned> queries planned (<low>–<high>), <actual> asked (<ratio> × planned); <k> of <n> planned
    jobs within their plan; prompt tokens ~<planned> planned, <actual> reported``, naming jobs without a record or a
    plan; where only some jobs reported tokens, their planned tokens beside what they reported."""
    if not rows:
        return "Total: no oracle job planned or recorded."
    plan = [r for r in rows if r["planned"] is not None]
    unplanned = [r["stage"] for r in rows if r["planned"] is None]
    missing = [r["stage"] for r in plan if r["actual"] is None]
    point = _sum(plan, "planned")
    low = sum(r["planned"] if r["low"] is None else r["low"] for r in plan)
    high = sum(r["planned"] if r["high"] is None else r["high"] for r in plan)
    line = f"Total: {_count(point)} queries planned" + (f" ({_count(low)}–{_count(high)})" if low < high else "")
    got = _sum(rows, "actual")
    line += f", {_count(got)} asked"
    if not missing and not unplanned and point > 0:
        line += f" ({got / point:.2f} × planned)"
    within = sum(1 for r in plan if r["in_range"])
    line += f"; {within} of {len(plan)} planned jobs within their plan"
    if missing:
        line += f"; no record of {', '.join(missing)}"
    if unplanned:
        line += f"; not planned: {', '.join(unplanned)}"
    reported = [r for r in rows if r["actual_tokens"] is not None]
    line += f"; prompt tokens ~{_count(_sum(plan, 'planned_tokens'))} planned"
    if not reported:
        line += ", none reported by the oracle"
    elif len(reported) == len(rows):
        line += f", {_count(_sum(reported, 'actual_tokens'))} reported"
    else:  # like with like: the plan of the jobs whose tokens were reported
        ours, theirs = _count(_sum(reported, "planned_tokens")), _count(_sum(reported, "actual_tokens"))
        line += f"; for the {len(reported)} of {len(rows)} jobs that reported them, ~{ours} planned, {theirs} reported"
    return line + "."
