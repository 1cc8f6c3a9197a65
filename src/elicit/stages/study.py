"""study: the results table over the runs of ``study.runs`` → ``results/study/summary.{parquet,html}`` and
``docs/results.md`` (the hand-written ``docs/results_notes.md`` followed by the generated tables). Built by
``uv run snakemake --cores 2 study``, which first builds every listed run and the ablations of ``study.ablate``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from elicit.config import load_params, resolve_run
from elicit.errors import ElicitError
from elicit.evaluate import SIMULATOR_KEY
from elicit.io import write_bytes, write_parquet, write_text
from elicit.paths import (
    STUDY,
    STUDY_COST_FIGURE,
    STUDY_EQUAL_COST_FIGURE,
    STUDY_HTML,
    STUDY_MARKDOWN,
    STUDY_NOTES,
    RunPaths,
)
from elicit.pipeline import listed_runs, protocols, study_runs
from elicit.replicates import draw_of
from elicit.report import render_summary
from elicit.report_tables import method_costs
from elicit.stages import _cli
from elicit.stages.report import read_telemetry, run_card
from elicit.study import StudyRun, long_table, markdown, replicate_groups
from elicit.study_cost import (
    COST_TARGET,
    EQUAL_COST_METHODS,
    EQUAL_COST_TARGET,
    cost_markdown,
    cost_points,
    plot_cost_efficiency,
)
from elicit.study_protocol import protocol_markdown

COMMAND = "uv run snakemake --cores 2 study"
EQUAL_COST_TITLE = "Equal cost: each method at several budgets, faithful ICM at its natural cost"
EQUAL_COST_NOTE = (
    "q = the run's budget level, queries per item per round (the same level sets `icm_budget`'s calls per item and "
    "`bootstrap_fewshot`'s rounds; faithful `icm` has no budget knob: its natural cost)."
)


@dataclass(frozen=True)
class RunFiles:
    """What the study reads of one run, every path a flag (``results/<run>/...`` by default)."""

    metrics: Path
    metrics_json: Path
    items: Path
    selection: Path
    ablation: Path | None
    """the run's ablation folder if it is one of ``study.ablate``."""


def read_run(name: str, params: dict, files: RunFiles) -> StudyRun:
    """A run's tables as the study needs them (metrics, telemetry, selection, ablations)."""
    cfg = resolve_run(params, name)
    telemetry = read_telemetry(RunPaths(name))
    metrics = pd.read_parquet(files.metrics)
    card = run_card(cfg, pd.read_parquet(files.items), telemetry)
    ablation = files.ablation / "ablation.parquet" if files.ablation else None
    walls = [float(t["wall_s"]) for t in telemetry if isinstance(t.get("wall_s"), int | float)]
    summary = json.loads(files.metrics_json.read_text()) if files.metrics_json.exists() else {}
    return StudyRun(
        card=card,
        metrics=metrics,
        costs=method_costs(set(metrics["method"].astype(str)), telemetry),
        selection=json.loads(files.selection.read_text()) if files.selection.exists() else None,
        ablation=pd.read_parquet(ablation) if ablation and ablation.exists() else None,
        wall_s=sum(walls) if walls else None,
        metrics_json=summary,
        belief_ceiling=(summary.get(SIMULATOR_KEY) or {}).get("belief_ceiling"),
    )


def run_files(args: argparse.Namespace, names: list[str], ablate: list[str]) -> dict[str, RunFiles]:
    """Each run's files from the flags (in the order of --runs; ablations in the order of --ablate), else defaults."""
    per_run = {}
    for flag in ("metrics", "metrics_json", "items", "selection"):
        given = getattr(args, flag)
        if given is not None and len(given) != len(names):
            raise ElicitError(f"--{flag.replace('_', '-')} must name one file per run of --runs, in the same order")
        per_run[flag] = given or [getattr(RunPaths(n), flag) for n in names]
    ablations = args.ablations if args.ablations is not None else [RunPaths(n).ablation for n in ablate]
    if len(ablations) != len(ablate):
        raise ElicitError("--ablations must name one folder per run of --ablate, in the same order")
    folders = dict(zip(ablate, ablations, strict=True))
    return {
        n: RunFiles(
            metrics=Path(per_run["metrics"][i]),
            metrics_json=Path(per_run["metrics_json"][i]),
            items=Path(per_run["items"][i]),
            selection=Path(per_run["selection"][i]),
            ablation=folders.get(n),
        )
        for i, n in enumerate(names)
    }


def _target(params: dict, target: str) -> list[str]:
    return study_runs(params, target) if target in ((params.get("study") or {}).get("targets") or {}) else []


def _with_budgets(params: dict, chosen: dict[str, list[StudyRun]]) -> tuple[dict[str, list[StudyRun]], dict[str, int]]:
    return chosen, {name: int(resolve_run(params, name).section("budget")["queries_per_item"]) for name in chosen}


def cost_groups(params: dict, groups: dict[str, list[StudyRun]]) -> tuple[dict[str, list[StudyRun]], dict[str, int]]:
    """The replicated runs of the cost figure: those on a dataset x oracle that the cost target runs (its own runs
    and the suite's at the default budget; not the equal-cost target's, which have their own figure), with each
    run's queries per item per round."""
    pairs = {(params["runs"][r]["dataset"], params["runs"][r]["oracle"]) for r in _target(params, COST_TARGET)}
    own = set(_target(params, EQUAL_COST_TARGET))
    chosen = {
        name: group
        for name, group in groups.items()
        if (str(group[0].card.get("dataset")), str(group[0].card.get("oracle"))) in pairs and name not in own
    }
    return _with_budgets(params, chosen)


def equal_cost_groups(
    params: dict, groups: dict[str, list[StudyRun]]
) -> tuple[dict[str, list[StudyRun]], dict[str, int]]:
    """The replicated runs of the equal-cost figure: the equal-cost target's own, with each run's queries per item
    per round (its budget level)."""
    own = set(_target(params, EQUAL_COST_TARGET))
    return _with_budgets(params, {name: group for name, group in groups.items() if name in own})


def protocol_groups(folders: list[Path] | list[str]) -> dict[str, list[pd.DataFrame]]:
    """Each protocol folder's accuracy table, by the run its draw was drawn from (a folder's parent names the draw);
    folders not built yet are skipped, as a partial study skips runs."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for folder in map(Path, folders):
        table = folder / "accuracy.parquet"
        if table.exists():
            groups.setdefault(draw_of(folder.parent.name)[0], []).append(pd.read_parquet(table))
    return groups


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--runs", nargs="+", help="runs in the table (default: study.runs)")
    p.add_argument("--metrics", type=Path, nargs="+", help="results/<run>/metrics.parquet, in the order of --runs")
    p.add_argument("--metrics-json", type=Path, nargs="+", help="results/<run>/metrics.json, in the order of --runs")
    p.add_argument("--items", type=Path, nargs="+", help="results/<run>/items.parquet, in the order of --runs")
    p.add_argument("--selection", type=Path, nargs="+", help="results/<run>/selection.json, in the order of --runs")
    p.add_argument("--ablate", nargs="*", help="runs whose ablations are shown (default: study.ablate)")
    p.add_argument("--ablations", type=Path, nargs="*", help="results/<run>/ablation, in the order of --ablate")
    p.add_argument(
        "--protocols",
        type=Path,
        nargs="*",
        help="results/<run>/protocol of each studied run that enables the protocol (default: found from params)",
    )
    p.add_argument("--out", type=Path, default=Path(STUDY))
    p.add_argument("--html", type=Path, default=Path(STUDY_HTML))
    p.add_argument("--markdown", type=Path, default=Path(STUDY_MARKDOWN))
    p.add_argument("--notes", type=Path, default=Path(STUDY_NOTES), help="hand-written part of the page")
    p.add_argument("--cost-figure", type=Path, default=Path(STUDY_COST_FIGURE), help="the cost-efficiency figure")
    p.add_argument(
        "--equal-cost-figure", type=Path, default=Path(STUDY_EQUAL_COST_FIGURE), help="the equal-cost figure"
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip runs that have no metrics yet and list them on the page (a partial study, by hand)",
    )
    args = p.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = load_params(args.params)
    study = params.get("study") or {}
    names = args.runs or listed_runs(params, "study")
    if not names:
        raise ElicitError("no runs to study: list them under study.runs in params.yaml, or pass --runs")
    files = run_files(args, names, args.ablate if args.ablate is not None else list(study.get("ablate") or []))
    missing = [n for n in names if not files[n].metrics.exists()]
    if missing and not args.allow_missing:
        raise FileNotFoundError(
            f"runs without results: {', '.join(missing)}; build them (snakemake study) or pass --allow-missing"
        )
    runs = [read_run(name, params, files[name]) for name in names if name not in missing]
    table = long_table(runs)
    _, html = render_summary(
        [(r.card, r.metrics) for r in runs], title="Elicitation study", selections=[r.selection for r in runs]
    )
    total = sum(r.wall_s or 0.0 for r in runs)
    notes = args.notes.read_text() if args.notes.exists() else ""
    write_parquet(table, args.out)
    write_text(html, args.html)
    meta = {"command": COMMAND, "wall_min": total / 60, "missing": missing}
    groups = replicate_groups(runs)
    points = cost_points(*cost_groups(params, groups))
    write_bytes(plot_cost_efficiency(points), args.cost_figure)
    figure = os.path.relpath(args.cost_figure, args.markdown.parent)
    equal = cost_points(*equal_cost_groups(params, groups), methods=EQUAL_COST_METHODS)
    write_bytes(plot_cost_efficiency(equal, EQUAL_COST_TITLE, EQUAL_COST_TARGET), args.equal_cost_figure)
    equal_figure = os.path.relpath(args.equal_cost_figure, args.markdown.parent)
    sections = [
        *cost_markdown(points, figure),
        *cost_markdown(equal, equal_figure, "Equal cost", EQUAL_COST_NOTE),
        *protocol_markdown(protocol_groups(args.protocols if args.protocols is not None else protocols(params, names))),
    ]
    page = markdown(runs, notes, meta, groups=groups).rstrip() + "\n\n" + "\n".join(sections)
    write_text(page.rstrip() + "\n", args.markdown)
    _cli.log.info(
        "study of %d runs (%.0f min of jobs) -> %s, %s, %s", len(runs), total / 60, args.out, args.html, args.markdown
    )


if __name__ == "__main__":
    _cli.main(run)
