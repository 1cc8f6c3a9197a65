"""icm: Internal Coherence Maximization as its paper runs it (elicit.baselines.icm_official) with live oracle calls
through the same client and cache, one run per baseline seed. Opt-in (``baselines.icm.enabled``): a run gets this job
only when it sets it, since the search makes thousands of calls with every labelled item of a batch in the prompt.
Before any call it logs the calls and prompt tokens each seed will need (``plan_cost``) and refuses the run, in one
line, when one is over ``baselines.icm.max_calls`` / ``max_tokens``. Writes ``labels/icm/seed<s>.parquet``, its calls
(``calls.parquet``) and each seed's energy trace (``seed<s>.energy.parquet``). Never reads gold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from elicit.baselines.icm_official import icm_official
from elicit.baselines.icm_official_config import OfficialICMConfig, check_cost, plan_cost
from elicit.datasets import DatasetConfig
from elicit.io import write_parquet
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, write_labels
from elicit.stages._oracle import OracleSession

METHOD = "icm"


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--out", type=Path, help="labels/icm folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    baselines = cfg.section("baselines")
    with _cli.telemetry(paths.telemetry(METHOD), METHOD) as tel:
        items = pd.read_parquet(args.items or paths.items)
        free = items.drop(columns=["gold"])
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        seeds = cfg.baseline_seeds
        calls = []
        with OracleSession(cfg, items, METHOD, _cli.optional_input(args.embeddings, paths.embeddings)) as session:
            icfg = OfficialICMConfig.from_params(baselines.get(METHOD))
            icfg = dataclasses.replace(icfg, template_id=icfg.template_id or session.templates[0].id)
            plans = {seed: plan_cost(free, icfg, seed) for seed in seeds}
            for seed, plan in plans.items():  # every seed checked before the first call
                _cli.log.info("icm seed %d: %s", seed, plan.line())
                check_cost(plan, icfg)
            out = fresh_dir(args.out or paths.labels_dir(METHOD))
            for seed in seeds:
                labels, c, trace = icm_official(free, lambda q: session.ask(q, progress=False), icfg, seed, rule)
                write_labels(out, seed, labels, len(items), METHOD)
                write_parquet(trace, out / f"seed{seed}.energy.parquet")
                calls.append(c.assign(seed=seed))
        write_parquet(pd.concat(calls, ignore_index=True), out / "calls.parquet")
        tel.update(
            session.telemetry,
            seeds=len(calls),
            planned_calls=sum(plan.calls for plan in plans.values()),
            planned_prompt_tokens=sum(plan.prompt_tokens for plan in plans.values()),
        )


if __name__ == "__main__":
    _cli.main(run)
