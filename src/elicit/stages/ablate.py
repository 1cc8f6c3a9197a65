"""ablate: the selected config with each loss term removed, an adversarial (inverted) start and fewer few-shot
rounds, on the run's own oracle answers (no new calls) → ``ablation/ablation.parquet`` (one row per variant:
accuracy with paired bootstrap CI, difference to the selected config), ``ablation/metrics.parquet`` and
``ablation/ablation.png``. An evaluation stage: it reads gold to score the variants, never to fit them. Part of the
study (``snakemake study``), not of a bare run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from elicit.ablation import FIT_COLUMNS, SELECTED, ablation_table, describe, run_ablations, variants
from elicit.datasets import DatasetConfig
from elicit.evaluate import EvaluateConfig, evaluate
from elicit.gold_budget import read_budget
from elicit.io import atomic_dir, write_parquet
from elicit.optimize import OptimizeError, OptimizeSection
from elicit.plots import plot_ablation
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--tuples", type=Path)
    p.add_argument("--selection", type=Path, help="selection.json (names the selected config)")
    p.add_argument("--budget", type=Path, help="gold_budget.parquet: items left out of the scores (as in evaluate)")
    p.add_argument("--out", type=Path, help="folder for ablation.parquet, metrics.parquet and ablation.png")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    section = OptimizeSection.from_params(cfg.section("optimize"))
    selection = json.loads((args.selection or paths.selection).read_text())
    name = str(selection.get("selected"))
    if name not in section.configs:
        raise OptimizeError(
            f"selection.json names config '{name}', which optimize.configs no longer has; re-run select"
        )
    out = args.out or paths.ablation
    with _cli.telemetry(paths.telemetry("ablate"), "ablate") as tel:
        items = pd.read_parquet(args.items or paths.items)
        priors = pd.read_parquet(args.priors or paths.priors)
        tuples = pd.read_parquet(args.tuples or paths.tuples)
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        todo = variants(section.configs[name], int(cfg.section("base")["rounds"]))
        seeds = list(cfg.section("base")["seeds"])
        labels = run_ablations(todo, tuples, priors, items[list(FIT_COLUMNS)], rule, seeds)
        ecfg = EvaluateConfig.from_dict(cfg.section("evaluate"))
        budget, _ = read_budget(args.budget or paths.gold_budget)
        scored = items[~items["item_id"].isin(budget)]  # the budget's labels were chosen with its gold
        metrics = evaluate(
            labels, scored, cfg.seed, ecfg.n_boot, ece_bins=ecfg.ece_bins, ci=ecfg.ci, references=[SELECTED]
        )
        table = ablation_table(metrics, name)
        for line in describe(table):
            _cli.log.info("ablation %s", line)
        png = plot_ablation(table)
        with atomic_dir(out) as tmp:  # all three files appear together, or none
            write_parquet(metrics, tmp / "metrics.parquet")
            write_parquet(table, tmp / "ablation.parquet")
            if png:
                (tmp / "ablation.png").write_bytes(png)
        tel.update(config=name, variants=len(todo), seeds=len(seeds))


if __name__ == "__main__":
    _cli.main(run)
