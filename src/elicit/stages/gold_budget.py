"""gold_budget: the run's ``gold_budget`` items (chosen by the run's seed alone) and their gold →
``gold_budget.parquet`` (empty without a budget; ``elicit.gold_budget``). Its own stage, so setting or changing the
budget re-runs only what reads it (select, evaluate, report), never the oracle stages. The one gold reader besides
load, evaluate, report, protocol and golden_fewshot, and it reads the gold of the chosen items only. Chosen items
without gold (your own unlabelled data) are written to ``gold_budget_todo.csv`` for you to label, and the run stops
with one line naming that file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.gold_budget import BudgetError, budget_table
from elicit.io import write_parquet
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--out", type=Path, help="gold_budget.parquet (default results/<run>/gold_budget.parquet)")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    out = args.out or paths.gold_budget
    with _cli.telemetry(paths.telemetry("gold_budget"), "gold_budget") as tel:
        items = pd.read_parquet(args.items or paths.items)
        try:
            table = budget_table(items, cfg.gold_budget, cfg.seed, run=cfg.name)
        except BudgetError as exc:
            if exc.unlabelled is None:
                raise
            todo = out.parent / "gold_budget_todo.csv"
            exc.unlabelled.to_csv(todo)
            raise BudgetError(f"{exc}; the items to label are listed in {todo}") from None
        tel["gold_budget"] = len(table)
        write_parquet(table, out)
    _cli.log.info("gold_budget: %d items of run '%s' -> %s", len(table), cfg.name, out)


if __name__ == "__main__":
    _cli.main(run)
