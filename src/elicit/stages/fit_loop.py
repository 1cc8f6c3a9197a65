"""fit_loop: the labels shown in round r + 1, fitted from the priors and the few-shot calls of rounds 1..r with the
optimizer's ``optimize.loop_config`` (not swept, so editing a swept config never re-asks the oracle)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.datasets import DatasetConfig
from elicit.io import write_parquet
from elicit.optimize import OptimizeSection, build_problem, fit
from elicit.stages import _cli
from elicit.tuples import tuples_from_predictions


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--items", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--predictions", type=Path, nargs="+", help="round{q}/predictions.parquet for q = 1..r")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    r = args.round
    files = args.predictions or [paths.predictions(q) for q in range(1, r + 1)]
    job = f"fit_loop.round{r}"
    with _cli.telemetry(paths.telemetry(job), job) as tel:
        items = pd.read_parquet(args.items or paths.items, columns=["item_id", "consistency_id", "answer_key"])
        priors = pd.read_parquet(args.priors or paths.priors)
        tuples = tuples_from_predictions([pd.read_parquet(f) for f in files])
        section = OptimizeSection.from_params(cfg.section("optimize"))
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        problem = build_problem(tuples, priors, items, rule)
        result = fit(problem, section.loop_config, seed=cfg.seed)
        fitted = pd.DataFrame({"item_id": range(len(result.p_true)), "p_true": result.p_true.astype("float64")})
        tel.update(tuples=len(tuples), epochs=result.n_epochs, converged=bool(result.converged))
        write_parquet(fitted, args.out or paths.fit(r))


if __name__ == "__main__":
    _cli.main(run)
