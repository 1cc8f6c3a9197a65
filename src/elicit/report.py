"""The run report (one self-contained HTML file) and the cross-run summary.

Why self-contained: a report is mailed, archived and opened offline years later, so images are inlined as
base64 data URIs, CSS is inline, and nothing (fonts, scripts, images) is fetched from the network. Texts that
look like URLs (a dataset's source) are printed as text, never as links.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml

from elicit.config import ParamsError
from elicit.contracts import BASELINES, GOLD_READING, ZERO_SHOT_ONLY
from elicit.evaluate import (
    BASE_METRICS,
    COLUMNS,
    gold_counts,
    headline,
    metric_row,
    undefined_metrics,
    verdict,
)
from elicit.plots import PLOT_TITLES, method_kind
from elicit.verdicts import RunVerdict, min_items, too_few_items

TEMPLATES = Path(__file__).parent / "templates"
VALUE_COLS = ("seed", "value", "ci_low", "ci_high")

NUISANCE_PHRASES: dict[str, str] = {
    "copy": "copies shown labels with strength {v}",
    "position": "leans towards the label shown last with strength {v}",
    "acquiescence_pos": "leans towards answering True under the positive framing by {v}",
    "acquiescence_neg": "leans towards answering True under the negative framing by {v}",
}
"""Plain-words sentence per known oracle-bias coefficient (log-odds units); others are shown by name."""


@dataclass(frozen=True)
class ReportConfig:
    """The ``report:`` section of params.yaml."""

    title_prefix: str = "Elicitation report"
    """Shown before the run name in the report's title."""
    reliability_bins: int = 10
    """Equal-mass bins in the reliability diagrams."""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> ReportConfig:
        """Build from the params section, naming unknown keys so typos do not pass silently."""
        section = dict(section or {})
        known = {"title_prefix", "reliability_bins"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ParamsError(f"report: unknown key(s) {unknown}; known keys are {sorted(known)}")
        cfg = cls(**section)
        if cfg.reliability_bins < 1:
            raise ParamsError(f"report.reliability_bins: {cfg.reliability_bins} must be >= 1; use e.g. 10")
        return cfg


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["count"] = _count
    return env


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _pct(v: Any, digits: int = 1) -> str:
    return f"{100 * float(v):.{digits}f}" if _finite(v) else "–"


def _num(v: Any, digits: int = 3) -> str:
    return f"{float(v):.{digits}f}" if _finite(v) else "–"


def _count(v: Any) -> str:
    return f"{float(v):,.0f}" if _finite(v) else "–"


def data_uri(png: bytes | None) -> str | None:
    """A PNG as an inline ``data:`` URI (None stays None: "not available")."""
    if not png:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------------- tables


def expected_methods(card: Mapping[str, Any]) -> list[str]:
    """Every method a complete run would have: the baselines, each swept config, and ``selected``."""
    params = card.get("params") or {}
    configs = sorted(((params.get("optimize") or {}).get("configs") or {}).keys())
    return [*BASELINES, *configs, "selected"]


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
    rows.sort(key=lambda r: (-(r["accuracy"] if _finite(r["accuracy"]) else -1.0), r["method"]))
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
            num = float(v) if v is not None and _finite(v) else None
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

    A baseline with its own oracle job (icm, golden/random/bootstrap few-shot: telemetry ``job`` = the method)
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
            vals = [float(by_job[j][k]) for j in jobs if _finite(by_job[j].get(k))]
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


def _nuisance_entries(d: Mapping[str, Any]) -> dict[str, tuple[float, str | None]]:
    """Flatten one nuisance.json into name -> (value, meaning), whatever of the usual shapes it has."""
    meanings: dict[str, str] = {}
    for key in ("meaning", "meanings"):
        if isinstance(d.get(key), Mapping):
            meanings.update({str(k): str(v) for k, v in d[key].items()})
    source: Mapping[str, Any] = d["coefficients"] if isinstance(d.get("coefficients"), Mapping) else d
    out: dict[str, tuple[float, str | None]] = {}
    for name, v in source.items():
        if name in ("meaning", "meanings", "coefficients"):
            continue
        if isinstance(v, Mapping):
            val = v.get("value", v.get("coef"))
            if _finite(val):
                out[str(name)] = (float(val), str(v["meaning"]) if v.get("meaning") else meanings.get(name))
        elif _finite(v) and not isinstance(v, bool):
            out[str(name)] = (float(v), meanings.get(str(name)))
    return out


def nuisance_summary(
    nuisance: Mapping[str, Mapping[int, Mapping[str, Any]]] | None,
    selection: Mapping[str, Any] | None,
    n_items: int | None = None,
) -> dict[str, Any]:
    """Fitted oracle biases in words for the selected config, and a table (mean ± std over seeds).

    On a run with too few items (:func:`elicit.verdicts.too_few_items` of ``n_items``) the coefficients are
    not estimable: no "± std" is printed as if it measured their uncertainty, each sentence says so, and
    ``caveat`` (None otherwise) says the whole table is unreliable.
    """
    small = too_few_items(n_items)
    table = []
    per_config: dict[str, dict[str, tuple[float, float, str | None]]] = {}
    for config in sorted(nuisance or {}):
        values: dict[str, list[float]] = {}
        meaning: dict[str, str | None] = {}
        for seed in sorted((nuisance or {})[config]):
            for name, (v, m) in _nuisance_entries((nuisance or {})[config][seed]).items():
                values.setdefault(name, []).append(v)
                meaning[name] = meaning.get(name) or m
        for name in sorted(values):
            arr = np.asarray(values[name])
            std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            per_config.setdefault(config, {})[name] = (float(arr.mean()), std, meaning[name])
            table.append(
                {
                    "config": config,
                    "name": name,
                    "mean": float(arr.mean()),
                    "std": std,
                    "meaning": meaning[name],
                }
            )
    sel = str((selection or {}).get("selected") or "")
    # Speak of a config that fitted the biases: the selected one if it did (prior_only, say, fits none).
    fitted = [c for c in sorted(per_config) if any(s.get("fitted", True) for s in (nuisance or {})[c].values())]
    focus = sel if sel in fitted else ("full" if "full" in fitted else (fitted[0] if fitted else None))
    sentences = []
    if focus is not None:
        known = [k for k in NUISANCE_PHRASES if k in per_config[focus]]
        names = known + sorted(set(per_config[focus]) - set(known))
        for name in names:
            mean, std, m = per_config[focus][name]
            value = f"{mean:+.2f} ± {std:.2f}" if std and not small else f"{mean:+.2f}"
            phrase = NUISANCE_PHRASES.get(name)
            text = f"Your oracle {phrase.format(v=value)}" if phrase else f"Bias coefficient {name} = {value}"
            sentences.append(text + (f" ({m})" if m else "") + (" — not estimable at this size." if small else "."))
    caveat = (
        f"Only {n_items} items: fitted biases are not estimable at this size (a verdict needs at least "
        f"{min_items()}); the values below are what the fit returned, not measurements."
        if small
        else None
    )
    return {"focus": focus, "sentences": sentences, "table": table, "caveat": caveat}


def _card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    balance = card.get("class_balance")
    if isinstance(balance, Mapping):
        balance_text = ", ".join(f"label {k}: {_num(v)}" for k, v in balance.items())
    elif _finite(balance):
        balance_text = f"{_pct(balance)} % label 1"
    else:
        balance_text = "unknown (no gold)"
    fields = [
        ("Run", card.get("run")),
        ("Dataset", card.get("dataset")),
        ("Items (n)", card.get("n")),
        ("What label 1 means", card.get("label_meaning")),
        ("Class balance (gold)", balance_text),
        ("Source", card.get("source")),
        ("Licence", card.get("licence")),
        ("Citation", card.get("citation")),
        ("Seed", card.get("seed")),
        *(_hygiene_rows(card["hygiene"]) if "hygiene" in card else []),
    ]
    return [(k, "–" if v is None or v == "" else str(v)) for k, v in fields]


def _hygiene_rows(h: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """Dataset-card rows of the load stage's duplicate check (``hygiene.json``, see elicit.hygiene)."""
    if not h:
        return [("Duplicates", "not recorded")]
    within = h.get("within")
    if within is None:
        return [("Duplicates", "not checked (hygiene.action: none)")]
    threshold = h.get("near_threshold")
    near = f"{within['near_items']} rows" + (
        f" (same text up to case and punctuation, or cosine ≥ {threshold})"
        if threshold is not None
        else " (same text up to case and punctuation; near_threshold: null)"
    )
    rows: list[tuple[str, Any]] = [
        ("Exact duplicates within", f"{within['exact_items']} of {h['rows_checked']} rows"),
        ("Near duplicates within", near),
        ("Duplicate pairs with conflicting gold", f"{within.get('conflicting_gold_pairs')} pairs"),
    ]
    splits = h.get("other_splits") or {}
    if splits:
        rows.append(
            (
                "Overlap with other splits",
                "; ".join(
                    f"{name}: {s['exact_items']} exact + {s['near_items']} near ({s['rows']} rows)"
                    for name, s in splits.items()
                )
                + f" — {h.get('other_split_items', 0)} items in all",
            )
        )
    else:
        rows.append(("Overlap with other splits", "no other split configured (datasets.<name>.other_splits)"))
    if h.get("action") == "drop":
        done = f"dropped {h.get('dropped', 0)} rows ({h.get('dropped_group_mates', 0)} of them consistency-group mates)"
    else:
        sample = h.get("sample") or {}
        done = f"flagged {h.get('flagged', 0)} rows (kept; columns dup_within, dup_other_split)"
        if sample:
            done += (
                f"; in this run's {sample['items']} items: {sample['dup_within']} within, "
                f"{sample['dup_other_split']} in other splits"
            )
    rows.append(("Duplicates handling", done))
    return rows


def _params_yaml(card: Mapping[str, Any]) -> str:
    params = card.get("params")
    if not params:
        return "(not available)"
    return yaml.safe_dump(_plain(params), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plain(x: Any) -> Any:
    """Params as plain Python (numpy scalars and tuples would otherwise make safe_dump fail)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


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
) -> str:
    """The whole report as one HTML string (no external references; images as data URIs)."""
    metrics = _metrics_or_empty(metrics)
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
    all_notes = [*(notes or []), *(diagnostics.get("notes") or [])]
    sel = dict(selection or {})
    n_items = _n_items(card)
    decided = headline(metrics, sel, n_items=n_items)
    counts = gold_counts(metrics)
    n_gold = counts.n if counts is not None else n_items
    context = {
        "title": f"{title_prefix}: {card.get('run', '')}".strip(": "),
        "headline": _headline(decided),
        "verdict": verdict(metrics, sel, n_items=n_items).split("\n"),
        "too_few": f"Only {n_gold} gold items" if decided is RunVerdict.TOO_FEW_ITEMS else None,
        "notes": list(dict.fromkeys(all_notes)),
        "card_rows": _card_rows(card),
        "oracle": {
            "name": card.get("oracle") or "–",
            "model": card.get("model") or "–",
            "endpoint": card.get("endpoint") or "–",
        },
        "telemetry": telemetry_summary(telemetry),
        "costs": [{"method": m, **c} for m, c in sorted((costs or {}).items())],
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
        "params_yaml": _params_yaml(card),
    }
    return _env().get_template("report.html.j2").render(**context)


def _n_items(card: Mapping[str, Any]) -> int | None:
    """The run's item count from its card (None when absent or not a number)."""
    n = card.get("n")
    if n is None or isinstance(n, bool) or not _finite(n):
        return None
    return int(float(n))


def _headline(decided: RunVerdict) -> dict[str, Any]:
    """The verdict box's first, bold line: the shared verdict's sentence (not repeated for a gold-less run,
    whose explanation already starts with it)."""
    return {
        "name": decided.name,
        "label": decided.value,
        "sentence": decided.sentence,
        "show": decided is not RunVerdict.NO_GOLD,
    }


def _metrics_or_empty(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """A metrics table with the contract's columns, also when a caller passes None or a bare DataFrame()."""
    if metrics is None or not set(COLUMNS).issubset(metrics.columns):
        return pd.DataFrame({c: pd.Series([], dtype="float64" if c in VALUE_COLS else object) for c in COLUMNS})
    return metrics


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
        for row in metrics_table(_metrics_or_empty(metrics)):
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


def render_summary(
    runs: Sequence[tuple[Mapping[str, Any], pd.DataFrame]], *, title: str = "Elicitation summary"
) -> tuple[pd.DataFrame, str]:
    """``results/summary.{parquet,html}``: the table above, and one HTML page with a section per run."""
    df = summary_table(runs)
    sections = []
    for card, metrics in runs:
        run = str(card.get("run", "?"))
        sub = df[df["run"] == run]
        sections.append(
            {
                "run": run,
                "dataset": card.get("dataset") or "–",
                "oracle": card.get("oracle") or "–",
                "model": card.get("model") or "–",
                "n": card.get("n") if card.get("n") is not None else "–",
                "headline": _headline(headline(_metrics_or_empty(metrics), n_items=_n_items(card))),
                "verdict": verdict(_metrics_or_empty(metrics), n_items=_n_items(card)).split("\n"),
                "rows": sub.to_dict(orient="records"),
            }
        )
    html = _env().get_template("summary.html.j2").render(title=title, sections=sections)
    return df, html
