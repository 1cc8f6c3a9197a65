"""fewshot: baselines with their own oracle calls through the same client and cache — golden_fewshot (the only one
that reads gold: a reference ceiling), random_fewshot (random shown labels) and bootstrap_fewshot (the model's own
labels, re-prompted). Writes ``labels/<method>/seed<s>.parquet`` and ``labels/<method>/calls.parquet``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from elicit.baselines import BootstrapConfig, FewShotConfig, bootstrap_fewshot, golden_fewshot, random_fewshot
from elicit.contracts import FEWSHOT_METHODS
from elicit.datasets import DatasetConfig
from elicit.io import write_parquet
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, write_labels
from elicit.stages._oracle import OracleSession


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--method", required=True, choices=FEWSHOT_METHODS)
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--groups", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--out", type=Path, help="labels/<method> folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    method = args.method
    baselines = cfg.section("baselines")
    with _cli.telemetry(paths.telemetry(method), method) as tel:
        items = pd.read_parquet(args.items or paths.items)
        groups = pd.read_parquet(args.groups or paths.groups)
        priors = pd.read_parquet(args.priors or paths.priors)
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        seeds = [0] if method == "golden_fewshot" else cfg.baseline_seeds
        out = fresh_dir(args.out or paths.labels_dir(method))
        calls = []
        with OracleSession(cfg, items, method, _cli.optional_input(args.embeddings, paths.embeddings)) as session:
            fcfg = FewShotConfig.from_params(baselines.get("fewshot"))
            fcfg = dataclasses.replace(fcfg, template_id=fcfg.template_id or session.templates[0].id)
            for seed in seeds:
                if method == "golden_fewshot":
                    labels, c = golden_fewshot(items, groups, session.ask, fcfg, seed)
                elif method == "random_fewshot":
                    labels, c = random_fewshot(items.drop(columns=["gold"]), groups, priors, session.ask, fcfg, seed)
                else:
                    rounds = BootstrapConfig.from_params(baselines.get("bootstrap")).rounds
                    labels, c = bootstrap_fewshot(
                        items.drop(columns=["gold"]), groups, priors, session.ask, fcfg, seed, rounds, rule
                    )
                write_labels(out, seed, labels, len(items), method)
                calls.append(c.assign(seed=seed))
        write_parquet(pd.concat(calls, ignore_index=True), out / "calls.parquet")
        tel.update(session.telemetry, seeds=len(seeds))


if __name__ == "__main__":
    _cli.main(run)
