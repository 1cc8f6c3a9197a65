"""icm_budget: the cheap ICM variant (elicit.baselines.icm; not the paper's algorithm, which is the stage icm) with
live oracle calls through the same client and cache, capped by ``baselines.icm_budget``; one restart per seed, in
every run. Writes ``labels/icm_budget/seed<s>.parquet``, its calls (``calls.parquet``) and the energy trace of each
restart (``seed<s>.energy.parquet``). Never reads gold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from elicit.baselines import ICMConfig, icm
from elicit.datasets import DatasetConfig
from elicit.io import write_parquet
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, write_labels
from elicit.stages._oracle import OracleSession

METHOD = "icm_budget"


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--out", type=Path, help="labels/icm_budget folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    with _cli.telemetry(paths.telemetry(METHOD), METHOD) as tel:
        items = pd.read_parquet(args.items or paths.items)
        embeddings = np.load(args.embeddings or paths.embeddings)
        priors = pd.read_parquet(args.priors or paths.priors)
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        out = fresh_dir(args.out or paths.labels_dir(METHOD))
        calls = []
        with OracleSession(cfg, items, METHOD, args.embeddings or paths.embeddings) as session:
            icfg = ICMConfig.from_params(cfg.section("baselines").get(METHOD))
            icfg = dataclasses.replace(icfg, template_id=icfg.template_id or session.templates[0].id)
            for seed in cfg.baseline_seeds:
                labels, c, trace = icm(
                    items.drop(columns=["gold"]),
                    embeddings,
                    priors,
                    lambda q: session.ask(q, progress=False),
                    icfg,
                    seed,
                    rule,
                )
                write_labels(out, seed, labels, len(items), METHOD)
                write_parquet(trace, out / f"seed{seed}.energy.parquet")
                calls.append(c.assign(seed=seed))
        write_parquet(pd.concat(calls, ignore_index=True), out / "calls.parquet")
        tel.update(session.telemetry, seeds=len(calls))


if __name__ == "__main__":
    _cli.main(run)
