"""The results study: one table over many runs (datasets x oracles x stress cases x ablations) and its Markdown page.

Why: a researcher should see, in one place and with confidence intervals, where consistency-based labels beat
just asking the model and where they do not. Pure functions on the per-run tables (``metrics.parquet``, telemetry,
``selection.json``, ``ablation/ablation.parquet``); the ``study`` stage does the I/O.

Columns of the compact table, per run: accuracy (seed mean, 95 % paired bootstrap CI) of each method in
:data:`COLUMNS`, ``gold_best`` = the swept config with the best gold accuracy (an upper bound, never selectable),
the selected config's PGR and oracle calls, and the run's verdict: the shared rule (:func:`elicit.verdicts.decide`,
through :func:`elicit.evaluate.headline`, INDETERMINATE included), with the paired differences of ``selected`` against
``zero_shot`` and ``few_shot_mean`` as its evidence. The page also compares every method's gold-free accuracy estimate
with its gold accuracy (:mod:`elicit.study_estimate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from elicit.contracts import STUDY_COLUMNS
from elicit.evaluate import CHEAP_BASELINES, NUISANCE_WARN, compare, metric_row
from elicit.evaluate.describe import collapsed, mirror_notes
from elicit.indeterminate import fired
from elicit.replicates import MIN_DRAWS, compare_draws, draw_of, pgr_over_draws, t_interval
from elicit.report_tables import gold_best_config, summary_table
from elicit.study_estimate import (
    IN_FAMILY,
    EstimateCheck,
    EstimateRun,
    estimate_markdown,
    estimate_vs_truth,
    n_items,
    run_verdict,
    with_run_results,
)
from elicit.verdicts import RunVerdict

COLUMNS: tuple[str, ...] = STUDY_COLUMNS
"""One accuracy column per method (the registry's ``in_study`` methods, upper bounds last)."""


@dataclass
class StudyRun:
    """What the study reads of one run."""

    card: Mapping[str, Any]
    metrics: pd.DataFrame
    costs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    selection: Mapping[str, Any] | None = None
    ablation: pd.DataFrame | None = None
    wall_s: float | None = None
    metrics_json: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    belief_ceiling: float | None = None
    """simulated oracles only: accuracy of the model's noise-free few-shot belief (see elicit.oracle.sim_suite)."""

    @property
    def gold_best(self) -> str | None:
        """The swept config (those ``select`` scored) with the best gold accuracy."""
        configs = list((self.selection or {}).get("scores") or {})
        return gold_best_config(self.metrics, configs) if not self.metrics.empty else None


def long_table(runs: Sequence[StudyRun]) -> pd.DataFrame:
    """``summary_table`` (one row per run x method) with each run's verdict and each method's gold-free estimate
    (:func:`with_run_results`), plus oracle calls and tokens, and the gold-best flag."""
    df = summary_table([(r.card, r.metrics) for r in runs])
    df = with_run_results(df, [(r.card, r.metrics, r.selection) for r in runs])
    calls, tokens, best = [], [], []
    by_run = {str(r.card.get("run")): r for r in runs}
    best_of = {run: r.gold_best for run, r in by_run.items()}  # once per run, not per row
    for run, method in zip(df["run"].astype(str), df["method"].astype(str), strict=True):
        r = by_run[run]
        c = r.costs.get(method) or {}
        calls.append(c.get("calls"))
        tokens.append((c.get("prompt_tokens") or 0) + (c.get("completion_tokens") or 0) if c else None)
        best.append(method == best_of[run])
    df["oracle_calls"] = pd.array(calls, dtype="Float64")
    df["tokens"] = pd.array(tokens, dtype="Float64")
    df["gold_best_upper_bound"] = pd.array(best, dtype="boolean")
    return df


def warnings(metrics_json: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Study-level warnings from a run's metrics.json: labels that follow a known nuisance feature, collapse
    (almost every item in one class), and ``selected`` flipping most of zero-shot's labels (a mirror image?)."""
    out = []
    for method in ("selected", "zero_shot", "few_shot_mean", "icm_budget"):
        entry = metrics_json.get(method) or {}
        a = entry.get("nuisance_agreement")
        if a is not None and max(a, 1 - a) >= NUISANCE_WARN:
            out.append(f"{method} labels equal the known nuisance feature on {100 * max(a, 1 - a):.0f} % of items")
        rate = entry.get("positive_rate")
        if rate is not None and collapsed(rate):
            out.append(f"{method} labels {100 * rate:.0f} % of items as 1 (collapse)")
    out += mirror_notes(
        (metrics_json.get("selected") or {}).get("flip_rate_vs_zero_shot"),
        (metrics_json.get("zero_shot") or {}).get("positive_rate"),
    )
    return out


def _cell(metrics: pd.DataFrame, method: str | None) -> str:
    if method is None:
        return "–"
    r = metric_row(metrics, method, "accuracy_seed_mean")
    if r is None:
        return "–"
    std = metric_row(metrics, method, "accuracy")
    spread = f" ±{100 * (std.ci_high - std.value):.1f}" if std is not None and std.ci_high > std.value + 1e-9 else ""
    return f"{100 * r.value:.1f} [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]{spread}"


def verdict_cell(metrics: pd.DataFrame, selection: Mapping[str, Any] | None, card: Mapping[str, Any]) -> str:
    """The study's verdict cell: :func:`run_verdict`, then its evidence (the fired signals of an INDETERMINATE run;
    otherwise ``selected`` minus each cheap baseline in points, * where the paired 95 % CI excludes 0)."""
    decided = run_verdict(metrics, selection, card)
    if decided is RunVerdict.INDETERMINATE:
        return f"{decided.value} ({', '.join(s.name for s in fired(selection))})"
    diffs = []
    for ref in CHEAP_BASELINES:
        c = compare(metrics, "selected", ref) if not metrics.empty else None
        if c is not None:
            diffs.append(f"{ref} {100 * c.diff:+.1f}{'*' if c.significant else ''}")
    return f"{decided.value} (vs {', '.join(diffs)})" if diffs else decided.value


def compact_rows(runs: Sequence[StudyRun]) -> list[dict[str, str]]:
    """One row per run: the cells of the Markdown table."""
    rows = []
    for r in runs:
        m = r.metrics
        best = r.gold_best
        row = {
            "run": str(r.card.get("run")),
            "dataset": str(r.card.get("dataset") or "–"),
            "oracle": str(r.card.get("oracle") or "–"),
            "n": str(r.card.get("n") or "–"),
        }
        for col in COLUMNS:
            row[col] = _cell(m, best if col == "gold_best" else col) if not m.empty else "–"
        if best:
            row["gold_best"] += f" ({best})"
        sel = (r.selection or {}).get("selected")
        row["selected_config"] = str(sel) if sel else "–"
        pgr = metric_row(m, "selected", "pgr") if not m.empty else None
        row["pgr"] = f"{pgr.value:.2f} [{pgr.ci_low:.2f}, {pgr.ci_high:.2f}]" if pgr else "–"
        calls = (r.costs.get("selected") or {}).get("calls")
        row["calls"] = f"{int(calls):,}" if calls is not None else "–"
        row["verdict"] = verdict_cell(m, r.selection, r.card)
        row["wall_min"] = f"{r.wall_s / 60:.1f}" if r.wall_s else "–"
        rows.append(row)
    return rows


def _paired_delta(v: Mapping[Any, Any]) -> str:
    """A variant's difference to the selected config with its paired interval (tables written before the paired
    columns show the difference alone)."""
    d = v.get("delta_vs_selected")
    if d is None or pd.isna(d):
        return "–"
    lo, hi = v.get("delta_low"), v.get("delta_high")
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return f"{100 * d:+.1f}"
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


DRAW_REFERENCES: tuple[str, ...] = ("zero_shot", "few_shot_mean", "random_fewshot", "bootstrap_fewshot", "dawid_skene")
"""What ``selected`` is compared with across draws: asking the model, and every cheap trick."""


def per_draw_accuracy(draw_runs: Sequence[StudyRun]) -> pd.DataFrame:
    """One row per draw, one column per method: accuracy (mean over the method's restarts) as a fraction."""
    rows = []
    for r in draw_runs:
        m = r.metrics
        methods = sorted(set(m["method"].astype(str))) if not m.empty else []
        row: dict[str, float] = {}
        for method in methods:
            acc = metric_row(m, method, "accuracy_seed_mean")
            if acc is not None:
                row[method] = acc.value
        rows.append(row)
    return pd.DataFrame(rows, dtype="float64")


def replicate_rows(groups: Mapping[str, Sequence[StudyRun]]) -> list[dict[str, str]]:
    """One row per replicated run: ``selected`` on the draw means, its paired differences to each of
    :data:`DRAW_REFERENCES` with t-intervals over draws and a verdict, PGR over draws, and the belief ceiling
    (simulated oracles only)."""
    out = []
    for name, draw_runs in groups.items():
        acc = per_draw_accuracy(draw_runs)
        card = draw_runs[0].card
        row = {
            "run": name,
            "dataset": str(card.get("dataset") or "–"),
            "oracle": str(card.get("oracle") or "–"),
            "n": str(card.get("n") or "–"),
            "draws": str(len(draw_runs)),
        }
        if "selected" in acc:
            mean, _, _, sd = t_interval(acc["selected"].dropna().to_numpy())
            row["selected"] = f"{100 * mean:.1f} ± {100 * sd:.1f} (SD over draws)"
        else:
            row["selected"] = "–"
        for ref in DRAW_REFERENCES:
            c = compare_draws(acc, "selected", ref)
            row[ref] = f"{c.text()} {c.verdict}" if c is not None else "–"
        row["pgr"] = pgr_over_draws(acc, "selected").text()
        ceilings = [r.belief_ceiling for r in draw_runs if r.belief_ceiling is not None]
        row["belief_ceiling"] = f"{100 * float(np.mean(ceilings)):.1f}" if ceilings else "–"
        out.append(row)
    return out


def replicate_groups(runs: Sequence[StudyRun]) -> dict[str, list[StudyRun]]:
    """The study's runs with two draws or more, by the run they were drawn from (in the study's order)."""
    groups: dict[str, list[StudyRun]] = {}
    for r in runs:
        groups.setdefault(draw_of(str(r.card.get("run")))[0], []).append(r)
    return {name: group for name, group in groups.items() if len(group) > 1}


def replicate_markdown(groups: Mapping[str, Sequence[StudyRun]]) -> list[str]:
    """The replicate-level table: the only source of the page's between-method verdicts."""
    if not groups:
        return []
    rows = replicate_rows(groups)
    header = ["run", "n", "draws", "selected", *(f"vs {r}" for r in DRAW_REFERENCES), "PGR", "belief ceiling"]
    body = [
        [
            r["run"],
            r["n"],
            r["draws"],
            r["selected"],
            *(r[ref] for ref in DRAW_REFERENCES),
            r["pgr"],
            r["belief_ceiling"],
        ]
        for r in rows
    ]
    return [
        "## Verdicts over whole-pipeline draws (generated)",
        "",
        "Each draw redraws the subsample, grouping, plan, oracle noise and fit (seed + k). Accuracy in %; "
        "`vs <method>` = `selected` minus that method in points, the mean of the per-draw paired differences with "
        f"its 95 % t-interval over draws; **beats** / **worse** only when that interval excludes 0 and at least "
        f"{MIN_DRAWS} draws exist. PGR over draws (bootstrap over draws) only where golden few-shot beats zero-shot. "
        "Belief ceiling (simulated oracles only): accuracy of the model's noise-free few-shot belief; without a "
        "consistency rule no method can beat it from the oracle's answers alone under λ = 0.",
        "",
        *_md_table(header, body),
        "",
    ]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


KEEP_FLOOR = -0.005
"""The method-improvement keep rule (issue 15): a change becomes the default only if its paired per-draw margin over
the current default has a lower bound >= KEEP_FLOOR (-0.5 points) on every out-of-family suite preset ..."""
KEEP_MIN_POSITIVE = 2
"""... and a lower bound > 0 on at least KEEP_MIN_POSITIVE of them."""


@dataclass(frozen=True)
class AblationOverDraws:
    """One ablation variant's paired margin over the selected config, per replicated run: t-intervals over draws."""

    variant: str
    cells: dict[str, tuple[float, float, float, int]]
    """replicated run -> (mean, low, high, draws) of the per-draw Δ vs selected (fractions)."""
    keep: str
    """the keep rule's reading of the variant as a new default."""


def ablations_over_draws(groups: Mapping[str, Sequence[StudyRun]]) -> list[AblationOverDraws]:
    """Each ablation variant's Δ vs the selected config over the draws of each replicated run that has ablations on
    at least two draws, and the keep rule (:data:`KEEP_FLOOR`, :data:`KEEP_MIN_POSITIVE`) over the runs whose oracle is
    out of family. Each draw's Δ is a refit of that draw's answers (the variant applied to the draw's selected config,
    not a re-selection over a changed sweep)."""
    per_run: dict[str, dict[str, list[float]]] = {}
    oracle: dict[str, str] = {}
    for name, draws in groups.items():
        tables = [r.ablation for r in draws if r.ablation is not None and not r.ablation.empty]
        if len(tables) < 2:
            continue
        oracle[name] = str(draws[0].card.get("oracle") or "")
        cells: dict[str, list[float]] = {}
        for t in tables:
            for v, d in zip(t["variant"].astype(str), t["delta_vs_selected"].astype(float), strict=True):
                if v != "selected":
                    cells.setdefault(v, []).append(d)
        per_run[name] = cells
    variants = sorted({v for cells in per_run.values() for v in cells})
    out = []
    for v in variants:
        over: dict[str, tuple[float, float, float, int]] = {}
        for name, by_variant in per_run.items():
            if v in by_variant and len(by_variant[v]) >= 2:
                mean, low, high, _ = t_interval(by_variant[v])
                over[name] = (mean, low, high, len(by_variant[v]))
        suite = [c for name, c in over.items() if oracle[name] not in IN_FAMILY]
        if not suite:
            keep = "no out-of-family run"
        elif all(c[1] >= KEEP_FLOOR for c in suite) and sum(c[1] > 0 for c in suite) >= KEEP_MIN_POSITIVE:
            keep = "**passes**"
        else:
            worst = min(c[1] for c in suite)
            positive = sum(c[1] > 0 for c in suite)
            keep = f"fails (lowest bound {100 * worst:+.1f}; {positive} of {len(suite)} bounds > 0)"
        out.append(AblationOverDraws(v, over, keep))
    return out


def ablations_over_draws_markdown(groups: Mapping[str, Sequence[StudyRun]]) -> list[str]:
    """The table of :func:`ablations_over_draws` ([] when no replicated run has ablations on two draws)."""
    rows = ablations_over_draws(groups)
    if not rows:
        return []
    runs = sorted({name for r in rows for name in r.cells}, key=list(groups).index)

    def cell(c: tuple[float, float, float, int] | None) -> str:
        return "–" if c is None else f"{100 * c[0]:+.1f} [{100 * c[1]:+.1f}, {100 * c[2]:+.1f}] ({c[3]})"

    body = [[r.variant, *(cell(r.cells.get(name)) for name in runs), r.keep] for r in rows]
    return [
        "## Ablations over draws: the keep rule (generated)",
        "",
        "Each draw's selected config refitted on that draw's answers with one change (a loss term removed, the "
        "inverted zero-shot start, one round); Δ = variant − selected in points, the mean over draws with its 95 % "
        "t-interval (draws). Keep rule for making a change the default: lower bound ≥ "
        f"{100 * KEEP_FLOOR:+.1f} on every out-of-family suite preset and > 0 on at least {KEEP_MIN_POSITIVE} of them "
        "(in-family runs shown, not counted). A refit of the selected config only: a passing variant still has to pass "
        "as a change of the whole sweep before it becomes a default.",
        "",
        *_md_table(["variant", *runs, "keep rule"], body),
        "",
    ]


def _ablation_markdown(abl: Sequence[tuple[StudyRun, pd.DataFrame]]) -> list[str]:
    """The ablations of the selected config: refits of one draw's answers, so paired CIs over items apply (of a
    replicated run, its first draw)."""
    if not abl:
        return []
    lines = ["", "## Ablations of the selected config (generated)", ""]
    for r, t in abl:
        lines += [f"**{r.card.get('run')}** (selected config `{t['config'].iloc[0]}`)", ""]
        body = [
            [
                str(v["variant"]),
                f"{100 * v['accuracy']:.1f} [{100 * v['ci_low']:.1f}, {100 * v['ci_high']:.1f}]",
                _paired_delta(v.to_dict()),
            ]
            for _, v in t.iterrows()
        ]
        header = ["variant", "accuracy [95 % CI, items]", "Δ vs selected, points [paired 95 % CI, items]"]
        lines += [*_md_table(header, body), ""]
    return lines


def estimate_check(runs: Sequence[StudyRun]) -> EstimateCheck:
    """Every method's gold-free estimate against its gold accuracy, per preset (the run's oracle) and n, over all
    ``runs`` (each draw one run): :func:`elicit.study_estimate.estimate_vs_truth`."""
    return estimate_vs_truth(
        [
            EstimateRun(str(r.card.get("run")), str(r.card.get("oracle") or "–"), n_items(r.card), r.metrics)
            for r in runs
        ]
    )


def markdown(
    runs: Sequence[StudyRun],
    notes: str = "",
    meta: Mapping[str, Any] | None = None,
    groups: Mapping[str, Sequence[StudyRun]] | None = None,
) -> str:
    """``docs/results.md``: the hand-written notes, the verdicts over draws (``groups``: replicated runs), the
    gold-free estimate against the truth over every run and draw (:func:`estimate_check`), then the single-draw table
    of every other run, labelled as such."""
    meta = meta or {}
    lines = [notes.rstrip(), ""] if notes.strip() else []
    lines += replicate_markdown(groups or {})
    lines += ablations_over_draws_markdown(groups or {})
    lines += estimate_markdown(estimate_check(runs))
    later = {id(r) for group in (groups or {}).values() for r in group[1:]}  # per-draw tables: the first draw only
    abl = [(r, r.ablation) for r in runs if r.ablation is not None and not r.ablation.empty and id(r) not in later]
    drawn = {id(r) for group in (groups or {}).values() for r in group}
    runs = [r for r in runs if id(r) not in drawn]
    timing = (
        f"; the stages' own time summed over all their jobs (telemetry; no process start-up, no parallelism):"
        f" {meta['wall_min']:.0f} min"
        if meta.get("wall_min")
        else ""
    )
    if not runs:
        return "\n".join([*lines, *_ablation_markdown(abl)]).rstrip() + "\n"
    lines += [
        "## Single draws (generated)",
        "",
        "**One whole-pipeline draw per row: its intervals resample items only, so a 'beats' here is a check of that "
        "draw, not a verdict** (draws of one run spread more than these intervals; verdicts are in the table over "
        "draws).",
        "",
        f"Generated by `{meta.get('command', 'uv run snakemake --cores 2 study')}` from {len(runs)} runs{timing}"
        ". Accuracy in % (seed mean) with its 95 % paired bootstrap CI and ± the std over restarts where a"
        " method has several seeds; `gold_best` is the swept config with the best gold accuracy: an upper bound,"
        " never selectable; `golden_fewshot` reads gold (reference only). PGR = (selected − zero_shot) /"
        " (golden_fewshot − zero_shot). Calls = oracle calls behind `selected` (the shared query rounds)."
        " Verdict = the run report's headline (one shared rule), with `selected` minus each cheap baseline in points"
        " (* where its paired 95 % CI excludes 0), or the gold-free signals that made it indeterminate.",
        "",
    ]
    if meta.get("missing"):
        lines += [
            f"**Partial study:** {len(meta['missing'])} listed runs had no results when this page was written: "
            + ", ".join(f"`{m}`" for m in meta["missing"])
            + ".",
            "",
        ]
    rows = compact_rows(runs)
    header = ["run", "n", *COLUMNS, "selected config", "PGR", "calls", "verdict (Δ selected − baseline)"]
    body = [
        [r["run"], r["n"], *(r[c] for c in COLUMNS), r["selected_config"], r["pgr"], r["calls"], r["verdict"]]
        for r in rows
    ]
    lines += _md_table(header, body)
    lines += _ablation_markdown(abl)
    warn = [(str(r.card.get("run")), n) for r in runs for n in warnings(r.metrics_json)]
    if warn:
        lines += ["", "## Warnings from the reports (generated)", ""]
        lines += [f"- **{run}**: {n}" for run, n in warn]
    return "\n".join(lines).rstrip() + "\n"
