"""The run report (one self-contained HTML file) and the cross-run summary.

Why self-contained: a report is mailed, archived and opened offline years later, so images are inlined as
base64 data URIs, CSS is inline, and nothing (fonts, scripts, images) is fetched from the network. Texts that
look like URLs (a dataset's source) are printed as text, never as links.

This module assembles the pages (each template's context); the numbers on them are :mod:`elicit.report_tables`, the
sentences (verdict headline, fitted biases in words, dataset card) :mod:`elicit.report_text`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.cost_table import report_rows
from elicit.evaluate import MISSING_WARN, gold_counts, headline, missing_answers, missing_warnings, verdict
from elicit.params_types import SECTION, Int, Str, build, typed
from elicit.plots import PLOT_TITLES
from elicit.report_tables import (
    expected_methods,
    finite,
    metrics_or_empty,
    metrics_table,
    summary_table,
    telemetry_summary,
)
from elicit.report_text import (
    card_rows,
    count,
    estimate_block,
    headline_box,
    nuisance_summary,
    num,
    params_yaml,
    pct,
)
from elicit.verdicts import RunVerdict

TEMPLATES = Path(__file__).parent / "templates"


@typed("report")
@pydantic_dataclass(frozen=True, config=SECTION)
class ReportConfig:
    """The ``report:`` section of params.yaml."""

    title_prefix: Str = Field(
        default="Elicitation report", description='the report\'s title is "<title_prefix>: <run>"'
    )
    reliability_bins: Int = Field(default=10, ge=1, description="equal-mass bins in the reliability diagrams")

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> ReportConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if section is None else section, "report")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    env.filters["num"] = num
    env.filters["count"] = count
    return env


def data_uri(png: bytes | None) -> str | None:
    """A PNG as an inline ``data:`` URI (None stays None: "not available")."""
    if not png:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------------- render


def render_report(
    card: Mapping[str, Any],
    metrics: pd.DataFrame,
    diagnostics: Mapping[str, Any] | None,
    plots: Mapping[str, bytes | None],
    telemetry: Sequence[Mapping[str, Any]] | None,
    selection: Mapping[str, Any] | None,
    nuisance: Mapping[str, Mapping[int, Mapping[str, Any]]] | None,
    notes: Sequence[str] | None = None,
    *,
    title_prefix: str = "Elicitation report",
    costs: Mapping[str, Mapping[str, Any]] | None = None,
    predictions: pd.DataFrame | None = None,
    calls: Mapping[str, pd.DataFrame] | None = None,
    planned: pd.DataFrame | None = None,
    actual: pd.DataFrame | None = None,
    unplanned_why: str | None = None,
) -> str:
    """The whole report as one HTML string (no external references; images as data URIs).

    It opens with the gold-free estimate of the selected labels' accuracy, then the verdict. ``predictions`` (all
    query rounds) and ``calls`` (method -> its own oracle calls) feed the missing-answers table and its warnings.
    ``planned`` (:func:`elicit.cost.plan_costs`) and ``actual`` (:func:`elicit.cost_actual.actual_costs`) the
    planned-vs-actual table of the oracle jobs; without a plan, ``unplanned_why`` says why in one line.
    """
    metrics = metrics_or_empty(metrics)
    diagnostics = diagnostics or {}
    present = set(metrics["method"].astype(str)) | set(diagnostics.get("methods") or [])
    missing = [m for m in expected_methods(card) if m not in present]
    plot_list = [
        {"name": name, "title": title, "uri": data_uri(plots.get(name))} for name, title in PLOT_TITLES.items()
    ]
    plot_list += [
        {"name": name, "title": name.replace("_", " "), "uri": data_uri(png)}
        for name, png in sorted(plots.items())
        if name not in PLOT_TITLES
    ]
    diag_methods = list(diagnostics.get("methods") or [])
    diag_rows = [
        {
            "method": m,
            "positive_rate": (diagnostics.get("positive_rate") or {}).get(m),
            "flip_rate": (diagnostics.get("flip_rate_vs_zero_shot") or {}).get(m),
            "seed_agreement": (diagnostics.get("seed_agreement") or {}).get(m),
            "violations": (diagnostics.get("consistency_violations") or {}).get(m),
            "nuisance": (diagnostics.get("nuisance_agreement") or {}).get(m),
        }
        for m in diag_methods
    ]
    answers = missing_answers(predictions, calls)
    all_notes = [*missing_warnings(answers), *(notes or []), *(diagnostics.get("notes") or [])]
    sel = dict(selection or {})
    n_items = _n_items(card)
    decided = headline(metrics, sel, n_items=n_items)
    counts = gold_counts(metrics)
    n_gold = counts.n if counts is not None else n_items
    context = {
        "title": f"{title_prefix}: {card.get('run', '')}".strip(": "),
        "estimate": estimate_block(metrics, sel),
        "headline": headline_box(decided),
        "verdict": verdict(metrics, sel, n_items=n_items).split("\n"),
        "too_few": f"Only {n_gold} gold items" if decided is RunVerdict.TOO_FEW_ITEMS else None,
        "notes": list(dict.fromkeys(all_notes)),
        "card_rows": card_rows(card),
        "oracle": {
            "name": card.get("oracle") or "–",
            "model": card.get("model") or "–",
            "endpoint": card.get("endpoint") or "–",
        },
        "telemetry": telemetry_summary(telemetry),
        "answers": answers,
        "missing_warn": MISSING_WARN,
        "costs": [{"method": m, **c} for m, c in sorted((costs or {}).items())],
        "plan_check": _plan_check(str(card.get("run") or "<run>"), planned, actual, unplanned_why),
        "nuisance": nuisance_summary(nuisance, sel, n_items),
        "selection": {
            "selected": sel.get("selected"),
            "method": sel.get("method"),
            "gold_best": sel.get("gold_best"),
            "scores": sorted((sel.get("scores") or {}).items(), key=lambda kv: str(kv[0])),
        },
        "rows": metrics_table(metrics, sel),
        "has_gold": bool(not metrics.empty and (metrics["metric"] == "accuracy").any()),
        "missing": missing,
        "diag_rows": diag_rows,
        "has_nuisance": bool(diagnostics.get("nuisance_agreement")),
        "consistency_rule": diagnostics.get("consistency_rule") or "none",
        "plots": plot_list,
        "params_yaml": params_yaml(card),
    }
    return _env().get_template("report.html.j2").render(**context)


def _plan_check(run: str, planned: pd.DataFrame | None, actual: pd.DataFrame | None, why: str | None) -> dict[str, Any]:
    """The planned-vs-actual section's context: rows and the total line, or (no rows) why it is not available."""
    out: dict[str, Any] = {"run": run, "rows": [], "total": "", "missing": ""}
    if planned is None:
        out["missing"] = why or "no plan was passed to the report"
    elif actual is None or actual.empty:
        out["missing"] = "no record of what the run's oracle jobs did (no predictions, calls or telemetry)"
    else:
        out["rows"], out["total"] = report_rows(planned, actual)
    return out


def _n_items(card: Mapping[str, Any]) -> int | None:
    """The run's item count from its card (None when absent or not a number)."""
    n = card.get("n")
    if n is None or isinstance(n, bool) or not finite(n):
        return None
    return int(float(n))


def render_summary(
    runs: Sequence[tuple[Mapping[str, Any], pd.DataFrame]],
    *,
    title: str = "Elicitation summary",
    selections: Sequence[Mapping[str, Any] | None] | None = None,
) -> tuple[pd.DataFrame, str]:
    """``results/summary.{parquet,html}``: :func:`~elicit.report_tables.summary_table`, and one HTML page with a
    section per run. ``selections``: each run's ``selection.json`` (None: not read), in the order of ``runs``, so a
    section's headline is its report's, INDETERMINATE included."""
    df = summary_table(runs)
    chosen = list(selections) if selections is not None else [None] * len(runs)
    if len(chosen) != len(runs):
        raise ValueError(f"render_summary: {len(chosen)} selections for {len(runs)} runs; pass one per run")
    sections = []
    for (card, metrics), selection in zip(runs, chosen, strict=True):
        run = str(card.get("run", "?"))
        sub = df[df["run"] == run]
        m = metrics_or_empty(metrics)
        sections.append(
            {
                "run": run,
                "dataset": card.get("dataset") or "–",
                "oracle": card.get("oracle") or "–",
                "model": card.get("model") or "–",
                "n": card.get("n") if card.get("n") is not None else "–",
                "estimate": estimate_block(m, selection),
                "headline": headline_box(headline(m, selection, n_items=_n_items(card))),
                "verdict": verdict(m, selection, n_items=_n_items(card)).split("\n"),
                "rows": sub.to_dict(orient="records"),
            }
        )
    html = _env().get_template("summary.html.j2").render(title=title, sections=sections)
    return df, html
