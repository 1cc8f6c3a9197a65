"""optimize: fit soft labels for every item with one weight config (``optimize.configs.<config>``), once per seed in
``base.seeds``. Writes ``labels/<config>/seed<s>.parquet``, its loss curve per term (``seed<s>.curve.parquet``) and
the fitted oracle biases (``seed<s>.nuisance.json``). Never reads gold; never calls the oracle."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.config import RunConfig
from elicit.datasets import DatasetConfig
from elicit.io import atomic_dir, write_json, write_parquet
from elicit.optimize import OptimizeError, OptimizeSection, Problem, build_problem, fit
from elicit.stages import _cli
from elicit.stages._labels import write_labels


def load_problem(cfg: RunConfig, items_path: Path, priors_path: Path, tuples_path: Path) -> tuple[Problem, int]:
    """The optimizer's tensors from the run's tables (gold-free columns only)."""
    items = pd.read_parquet(items_path, columns=["item_id", "consistency_id", "answer_key"])
    priors = pd.read_parquet(priors_path)
    tuples = pd.read_parquet(tuples_path)
    rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
    return build_problem(tuples, priors, items, rule), len(items)


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--config", required=True, help="a key of optimize.configs")
    p.add_argument("--items", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--tuples", type=Path)
    p.add_argument("--out", type=Path, help="labels/<config> folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    section = OptimizeSection.from_params(cfg.section("optimize"))
    if args.config not in section.configs:
        known = ", ".join(section.configs)
        raise OptimizeError(f"unknown optimize config '{args.config}'; use one of: {known}")
    job = f"optimize.{args.config}"
    with _cli.telemetry(paths.telemetry(job), job) as tel:
        problem, n = load_problem(
            cfg, args.items or paths.items, args.priors or paths.priors, args.tuples or paths.tuples
        )
        epochs = []
        # All seeds in a temporary folder renamed into place at the end: a fit killed after some seeds leaves no
        # folder with some seeds only (select would silently use them).
        with atomic_dir(args.out or paths.labels_dir(args.config)) as out:
            for seed in cfg.section("base")["seeds"]:
                result = fit(problem, section.configs[args.config], seed=seed)
                labels = pd.DataFrame({"item_id": range(n), "p_true": result.p_true.astype("float64")})
                write_labels(out, seed, labels, n, args.config)
                write_parquet(result.curve, out / f"seed{seed}.curve.parquet")
                write_json(result.nuisance, out / f"seed{seed}.nuisance.json")
                epochs.append(result.n_epochs)
        tel.update(config=args.config, seeds=len(epochs), epochs=epochs)


if __name__ == "__main__":
    _cli.main(run)
