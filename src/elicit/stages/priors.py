"""priors: round-0 zero-shot predictions → ``priors.parquet`` (framing-averaged score per item, spread, missing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.io import write_parquet
from elicit.priors import priors_from_predictions
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--predictions", type=Path, help="round0/predictions.parquet")
    p.add_argument("--out", type=Path, help="priors.parquet")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    with _cli.telemetry(paths.telemetry("priors"), "priors") as tel:
        preds = pd.read_parquet(args.predictions or paths.predictions(0))
        n_items = int(preds["target_id"].max()) + 1 if len(preds) else 0
        priors = priors_from_predictions(preds, n_items)
        tel.update(items=len(priors), no_prior=int(priors["score"].isna().sum()))
        write_parquet(priors, args.out or paths.priors)


if __name__ == "__main__":
    _cli.main(run)
