"""tuples: every few-shot and flip call of all rounds, framing undone → ``tuples.parquet`` (the optimizer's input)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.io import write_parquet
from elicit.stages import _cli
from elicit.tuples import TUPLES_SCHEMA, tuples_from_predictions


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--predictions", type=Path, nargs="+", help="round{r}/predictions.parquet for r >= 1")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    rounds = int(cfg.section("base")["rounds"])
    files = args.predictions or [paths.predictions(r) for r in range(1, rounds + 1)]
    with _cli.telemetry(paths.telemetry("tuples"), "tuples") as tel:
        tuples = tuples_from_predictions([pd.read_parquet(f) for f in files])
        tel.update(tuples=len(tuples), missing=int(tuples["missing"].sum()))
        write_parquet(tuples, args.out or paths.tuples, schema=TUPLES_SCHEMA)


if __name__ == "__main__":
    _cli.main(run)
