"""evaluate: every method's labels against gold → ``metrics.parquet`` + ``metrics.json`` (with bootstrap CIs, PGR and
gold-free diagnostics), and each method's gold-free accuracy estimate, calibrated on the few-shot rounds' answers or
the baselines' own calls (a run without gold gets only the diagnostics and the estimates). With a ``gold_budget``,
its items are left out of every metric and their gold gives PPI intervals (``elicit.evaluate.ppi``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.datasets import DatasetConfig
from elicit.evaluate import (
    FEW_SHOT_ROUNDS,
    SIMULATOR_KEY,
    EvaluateConfig,
    diagnostics,
    estimate_all,
    estimate_rows,
    evaluate,
    metrics_json,
    with_estimates,
)
from elicit.evaluate.ppi import ppi_rows
from elicit.gold_budget import read_budget
from elicit.io import write_json, write_parquet
from elicit.pipeline import label_methods
from elicit.stages import _cli
from elicit.stages._labels import read_answers, read_calls, read_methods
from elicit.stages._oracle import simulator_diagnostics


def held_out_answers(folders: list[Path], pred_files: list[Path]) -> dict[str, pd.DataFrame]:
    """The answers the gold-free estimate may calibrate on: every method's own calls and the few-shot rounds'
    predictions (never the gold column)."""
    answers = read_calls(folders)
    if pred_files:
        answers[FEW_SHOT_ROUNDS] = pd.concat([read_answers(f) for f in pred_files], ignore_index=True)
    return answers


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--labels", type=Path, nargs="+", help="labels/<method> folders")
    p.add_argument(
        "--predictions", type=Path, nargs="*", help="round{r}/predictions.parquet of the few-shot rounds (r >= 1)"
    )
    p.add_argument("--budget", type=Path, help="gold_budget.parquet: items left out of the metrics, gold for PPI")
    p.add_argument("--out", type=Path, help="metrics.parquet")
    p.add_argument("--json", type=Path, help="metrics.json")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    folders = args.labels or [paths.labels_dir(m) for m in label_methods(cfg.params, {"run": cfg.name})]
    with _cli.telemetry(paths.telemetry("evaluate"), "evaluate") as tel:
        items = pd.read_parquet(args.items or paths.items)
        budget_ids, budget_gold = read_budget(args.budget or paths.gold_budget)
        scored = items[~items["item_id"].isin(budget_ids)]  # the budget's labels were chosen with its gold
        labels = read_methods(folders)
        ecfg = EvaluateConfig.from_dict(cfg.section("evaluate"))
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        notes: list[str] = []
        metrics = evaluate(labels, scored, cfg.seed, ecfg.n_boot, ece_bins=ecfg.ece_bins, ci=ecfg.ci, notes=notes)
        rounds = int(cfg.section("base")["rounds"])
        pred_files = (
            args.predictions if args.predictions is not None else [paths.predictions(r) for r in range(1, rounds + 1)]
        )
        answers = held_out_answers(folders, pred_files)
        scored_ids = scored["item_id"].to_numpy()
        estimates = estimate_all(
            labels, answers, scored_ids, seed=cfg.seed, n_boot=ecfg.n_boot, ci=ecfg.ci, notes=notes
        )
        metrics = with_estimates(metrics, estimate_rows(estimates))
        metrics = with_estimates(metrics, ppi_rows(labels, estimates, budget_ids, budget_gold, scored_ids, ecfg.ci))
        diag = diagnostics(labels, items, rule)
        diag["notes"] = list(diag.get("notes") or []) + notes
        tel.update(methods=len(labels), rows=len(metrics))
        write_parquet(metrics, args.out or paths.metrics)
        summary = metrics_json(metrics, diag)
        simulator = simulator_diagnostics(cfg, items, _cli.optional_input(args.embeddings, paths.embeddings))
        if simulator is not None:  # beside the methods, under a name no method can take
            summary[SIMULATOR_KEY] = simulator
        write_json(summary, args.json or paths.metrics_json)


if __name__ == "__main__":
    _cli.main(run)
