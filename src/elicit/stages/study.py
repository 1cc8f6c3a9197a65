"""study: the results table over the runs of ``study.runs`` → ``results/study/summary.{parquet,html}`` and
``docs/results.md`` (the hand-written ``docs/results_notes.md`` followed by the generated tables). Built by
``uv run snakemake --cores 2 study``, which first builds every listed run and the ablations of ``study.ablate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from elicit.config import load_params, resolve_run
from elicit.io import write_parquet, write_text
from elicit.paths import RunPaths
from elicit.report import method_costs, render_summary
from elicit.stages import _cli
from elicit.stages.report import read_telemetry, run_card
from elicit.study import StudyRun, long_table, markdown

COMMAND = "uv run snakemake --cores 2 study"


def read_run(name: str, params: dict) -> StudyRun:
    """A run's tables as the study needs them (metrics, telemetry, selection, ablations)."""
    paths = RunPaths(name)
    cfg = resolve_run(params, name)
    telemetry = read_telemetry(paths.dir)
    metrics = pd.read_parquet(paths.metrics)
    card = run_card(cfg, pd.read_parquet(paths.items), telemetry)
    selection_path = paths.dir / "selection.json"
    ablation_path = paths.dir / "ablation" / "ablation.parquet"
    walls = [float(t["wall_s"]) for t in telemetry if isinstance(t.get("wall_s"), int | float)]
    return StudyRun(
        card=card,
        metrics=metrics,
        costs=method_costs(set(metrics["method"].astype(str)), telemetry),
        selection=json.loads(selection_path.read_text()) if selection_path.exists() else None,
        ablation=pd.read_parquet(ablation_path) if ablation_path.exists() else None,
        wall_s=sum(walls) if walls else None,
        metrics_json=json.loads(paths.metrics_json.read_text()) if paths.metrics_json.exists() else {},
    )


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--runs", nargs="+", help="runs in the table (default: study.runs)")
    p.add_argument("--out", type=Path, default=Path("results/study/summary.parquet"))
    p.add_argument("--html", type=Path, default=Path("results/study/summary.html"))
    p.add_argument("--markdown", type=Path, default=Path("docs/results.md"))
    p.add_argument("--notes", type=Path, default=Path("docs/results_notes.md"), help="hand-written part of the page")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip runs that have no metrics yet and list them on the page (a partial study, by hand)",
    )
    args = p.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = load_params(args.params)
    names = args.runs or list((params.get("study") or {}).get("runs") or [])
    if not names:
        raise ValueError("no runs to study: list them under study.runs in params.yaml, or pass --runs")
    missing = [n for n in names if not RunPaths(n).metrics.exists()]
    if missing and not args.allow_missing:
        raise FileNotFoundError(
            f"runs without results: {', '.join(missing)}; build them (snakemake study) or pass --allow-missing"
        )
    runs = [read_run(name, params) for name in names if name not in missing]
    table = long_table(runs)
    _, html = render_summary([(r.card, r.metrics) for r in runs], title="Elicitation study")
    total = sum(r.wall_s or 0.0 for r in runs)
    notes = args.notes.read_text() if args.notes.exists() else ""
    write_parquet(table, args.out)
    write_text(html, args.html)
    meta = {"command": COMMAND, "wall_min": total / 60, "missing": missing}
    write_text(markdown(runs, notes, meta), args.markdown)
    _cli.log.info(
        "study of %d runs (%.0f min of jobs) -> %s, %s, %s", len(runs), total / 60, args.out, args.html, args.markdown
    )


if __name__ == "__main__":
    _cli.main(run)
