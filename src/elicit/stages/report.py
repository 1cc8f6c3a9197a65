"""report: metrics, labels, loss curves, predictions and telemetry → ``plots/*.png`` and one self-contained
``report.html`` that says plainly whether the method won, and what the oracle jobs cost against their plan (planned
again here from the run's items, embeddings and groups, as ``python -m elicit.cost`` plans it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from elicit.config import RunConfig
from elicit.cost import plan_run
from elicit.cost_actual import actual_costs
from elicit.datasets import DatasetConfig
from elicit.errors import ElicitError
from elicit.evaluate import diagnostics
from elicit.gold_budget import read_budget
from elicit.io import write_text
from elicit.paths import RunPaths
from elicit.pipeline import label_methods
from elicit.plots import make_plots
from elicit.report import ReportConfig, render_report
from elicit.report_tables import gold_best_config, method_costs
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, read_calls, read_methods
from elicit.tracking import resolved_params


def _side_files(folders: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per method: loss curves and fitted oracle biases (optimize configs)."""
    curves: dict[str, Any] = {}
    nuisance: dict[str, Any] = {}
    for folder in folders:
        method = folder.name
        for f in sorted(folder.glob("seed*.curve.parquet")):
            curves.setdefault(method, {})[int(f.name[4:].split(".")[0])] = pd.read_parquet(f)
        for f in sorted(folder.glob("seed*.nuisance.json")):
            nuisance.setdefault(method, {})[int(f.name[4:].split(".")[0])] = json.loads(f.read_text())
    return curves, nuisance


def read_telemetry(paths: RunPaths) -> list[dict[str, Any]]:
    """Every job's ``telemetry/<job>.json`` of one run, in file-name order: whatever is there, by design no declared
    input (``elicit.pipeline``), used for costs and time only."""
    pattern = paths.telemetry("*")
    return [json.loads(f.read_text()) for f in sorted(pattern.parent.glob(pattern.name))]


def planned_costs(
    cfg: RunConfig, items: Path, embeddings: Path, groups: Path
) -> tuple[pd.DataFrame | None, str | None]:
    """The run's oracle-call plan from its own files (no stand-ins), or None and why not in one line: the report
    shows planned vs actual when it can and never fails for it."""
    try:
        return plan_run(cfg, items, embeddings, groups, stand_ins=False)[0], None
    except (ElicitError, OSError) as exc:  # an input missing or not this run's, a prompt over n_ctx, bad params
        _cli.log.warning("report: planned vs actual not available: %s", exc)
        return None, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    except Exception as exc:  # a bug in planning: its traceback in the log, never a missing report
        _cli.log.exception("report: planning the oracle calls of run %s failed", cfg.name)
        return None, f"planning failed with {type(exc).__name__} (a bug; the traceback is in the report job's log)"


def run_card(
    cfg: Any, items: pd.DataFrame, telemetry: list[dict[str, Any]], hygiene: dict[str, Any] | None = None
) -> dict[str, Any]:
    ds = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params)
    gold = items["gold"].dropna()
    oracle = cfg.oracle_params
    model = next(
        (t.get("model") for t in telemetry if t.get("model")), oracle.get("model") or oracle.get("model_package")
    )
    return {
        "run": cfg.name,
        "dataset": cfg.dataset,
        "oracle": cfg.oracle,
        "oracle_kind": oracle.get("kind"),
        "n": len(items),
        "seed": cfg.seed,
        "label_meaning": ds.label_meaning,
        "source": ds.source_label(),
        "licence": ds.licence,
        "citation": ds.citation,
        "class_balance": float(gold.astype(float).mean()) if len(gold) else None,
        "model": model,
        "endpoint": oracle.get("endpoint", "completions"),
        "params": resolved_params(cfg.params, cfg.name),  # what the run's stages saw, as params.resolved.yaml
        "hygiene": hygiene,
    }


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--metrics", type=Path)
    p.add_argument("--labels", type=Path, nargs="+")
    p.add_argument("--predictions", type=Path, nargs="+")
    p.add_argument("--selection", type=Path)
    p.add_argument("--hygiene", type=Path, help="hygiene.json of the load stage (duplicate counts)")
    p.add_argument("--embeddings", type=Path, help="embeddings.npy: read to plan the oracle calls (planned vs actual)")
    p.add_argument("--groups", type=Path, help="groups.parquet: read to plan the oracle calls (planned vs actual)")
    p.add_argument("--budget", type=Path, help="gold_budget.parquet: items whose gold no plot or metric may score")
    p.add_argument("--out", type=Path, help="report.html")
    p.add_argument("--plots", type=Path, help="folder for the PNG plots")
    p.add_argument("--resolved", type=Path, help="params.resolved.yaml: the run's resolved params, shown in the report")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    rounds = int(cfg.section("base")["rounds"])
    folders = args.labels or [paths.labels_dir(m) for m in label_methods(cfg.params, {"run": cfg.name})]
    pred_files = args.predictions or [paths.predictions(r) for r in range(rounds + 1)]
    selection_path = args.selection or paths.selection
    hygiene_path = args.hygiene or paths.hygiene
    items_path = args.items or paths.items
    with _cli.telemetry(paths.telemetry("report"), "report") as tel:
        items = pd.read_parquet(items_path)
        budget, _ = read_budget(args.budget or paths.gold_budget)
        # the budget's labels were chosen with its gold: like evaluate, never score them
        items = items.assign(gold=items["gold"].mask(items["item_id"].isin(budget)))
        metrics = pd.read_parquet(args.metrics or paths.metrics)
        labels = read_methods(folders)
        predictions = pd.concat([pd.read_parquet(f) for f in pred_files], ignore_index=True)
        selection = json.loads(selection_path.read_text()) if selection_path.exists() else None
        if selection is not None:  # the report may read gold: name the gold-best config, as an upper bound only
            selection = dict(selection, gold_best=gold_best_config(metrics, list(selection.get("scores", {}))))
        telemetry = read_telemetry(paths)
        curves, nuisance = _side_files(folders)
        costs = method_costs(labels, telemetry)
        planned, unplanned_why = planned_costs(
            cfg, items_path, args.embeddings or paths.embeddings, args.groups or paths.groups
        )
        actual = actual_costs(paths.dir, pred_files, folders)
        rcfg = ReportConfig.from_dict(cfg.section("report"))
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        diag = diagnostics(labels, items, rule)
        plots = make_plots(
            metrics=metrics,
            diagnostics=diag,
            labels=labels,
            items=items,
            predictions=predictions,
            curves=curves,
            calls=costs,
            selection=selection,
            reliability_bins=rcfg.reliability_bins,
        )
        plot_dir = fresh_dir(args.plots or paths.plots)
        for name, png in plots.items():
            if png:
                (plot_dir / f"{name}.png").write_bytes(png)
        hygiene = json.loads(hygiene_path.read_text()) if hygiene_path.exists() else None
        card = run_card(cfg, items, telemetry, hygiene)
        html = render_report(
            card,
            metrics,
            diag,
            plots,
            telemetry,
            selection,
            nuisance,
            diag.get("notes"),
            title_prefix=rcfg.title_prefix,
            costs=costs,
            predictions=predictions,
            calls=read_calls(folders),
            planned=planned,
            actual=actual,
            unplanned_why=unplanned_why,
        )
        write_text(yaml.safe_dump(card["params"], sort_keys=False, allow_unicode=True), args.resolved or paths.resolved)
        write_text(html, args.out or paths.report)
        tel.update(plots=sum(1 for v in plots.values() if v), methods=len(labels))


if __name__ == "__main__":
    _cli.main(run)
