"""query: ask the oracle. Round 0: every item zero-shot in both framings (and each template); round r ≥ 1: the plan.

Writes ``round{r}/predictions.parquet`` (one query row per call, DESIGN.md's schema). Every answer is cached the
moment it arrives, so a killed run resumes without repeating a call and an unchanged re-run makes none.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.io import write_parquet
from elicit.plan import BudgetConfig, zero_shot_queries
from elicit.stages import _cli
from elicit.stages._oracle import OracleSession, templates


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--round", type=int, required=True, help="0 = zero-shot; r >= 1 = the few-shot plan of round r")
    p.add_argument("--items", type=Path, help="items.parquet")
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--plan", type=Path, help="round{r}/plan.parquet (rounds >= 1)")
    p.add_argument("--out", type=Path, help="round{r}/predictions.parquet")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    r = args.round
    out = args.out or paths.predictions(r)
    items = pd.read_parquet(args.items or paths.items)
    job = f"query.round{r}"
    with _cli.telemetry(paths.telemetry(job), job) as tel:
        if r == 0:
            framings = BudgetConfig.from_params(cfg.section("budget")).framings
            queries = zero_shot_queries(items, [t.id for t in templates(cfg)], framings=framings)
        else:
            queries = pd.read_parquet(args.plan or paths.plan(r))
        with OracleSession(cfg, items, job, _cli.optional_input(args.embeddings, paths.embeddings)) as session:
            preds = session.ask(queries)
        tel.update(session.telemetry, oracle=cfg.oracle, round=r, queries=len(queries))
        write_parquet(preds, out)
    _cli.log.info(
        "query round %d: %d predictions (%d calls, %d cached) -> %s",
        r,
        len(preds),
        tel["calls"],
        tel["cache_hits"],
        out,
    )


if __name__ == "__main__":
    _cli.main(run)
