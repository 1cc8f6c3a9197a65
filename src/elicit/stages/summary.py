"""summary: one table and one page over several runs (``summary.runs``) → ``results/summary.parquet`` and
``results/summary.html``: accuracy ± CI and PGR of every method, run by run, each method's gold-free accuracy
estimate (``est_accuracy``, ``est_low``, ``est_high``) and each run's verdict (the headline of its report: one shared
rule, INDETERMINATE read from its ``selection.json``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from elicit.config import load_params, resolve_run
from elicit.errors import ElicitError
from elicit.io import write_parquet, write_text
from elicit.paths import SUMMARY, SUMMARY_HTML, RunPaths
from elicit.report import render_summary
from elicit.stages import _cli
from elicit.stages.report import read_telemetry, run_card
from elicit.study_estimate import with_run_results


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--runs", nargs="+", help="runs to summarise (default: summary.runs)")
    p.add_argument("--metrics", type=Path, nargs="+", help="results/<run>/metrics.parquet, in the order of --runs")
    p.add_argument("--items", type=Path, nargs="+", help="results/<run>/items.parquet, in the order of --runs")
    p.add_argument(
        "--selection", type=Path, nargs="+", help="results/<run>/selection.json, in the order of --runs (optional)"
    )
    p.add_argument("--out", type=Path, default=Path(SUMMARY))
    p.add_argument("--html", type=Path, default=Path(SUMMARY_HTML))
    args = p.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = load_params(args.params)
    names = args.runs or list(params["summary"]["runs"])
    metrics_files = args.metrics or [RunPaths(r).metrics for r in names]
    items_files = args.items or [RunPaths(r).items for r in names]
    selection_files = args.selection or [RunPaths(r).selection for r in names]
    if not len(names) == len(metrics_files) == len(items_files) == len(selection_files):
        raise ElicitError("--runs, --metrics, --items and --selection must name the same runs in the same order")
    runs, selections = [], []
    for name, metrics_path, items_path, selection_path in zip(
        names, metrics_files, items_files, selection_files, strict=True
    ):
        cfg = resolve_run(params, name)
        telemetry = read_telemetry(RunPaths(name))
        card = run_card(cfg, pd.read_parquet(items_path), telemetry)
        runs.append((card, pd.read_parquet(metrics_path)))
        selections.append(json.loads(selection_path.read_text()) if selection_path.exists() else None)
    table, html = render_summary(runs, selections=selections)
    table = with_run_results(table, [(c, m, s) for (c, m), s in zip(runs, selections, strict=True)])
    write_parquet(table, args.out)
    write_text(html, args.html)
    _cli.log.info("summary of %d runs -> %s, %s", len(runs), args.out, args.html)


if __name__ == "__main__":
    _cli.main(run)
