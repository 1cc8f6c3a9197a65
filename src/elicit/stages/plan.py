"""plan: the few-shot and flip queries of round r within the budget (shown labels: priors for r = 1, else the fit of
round r − 1). Never reads gold."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.io import write_parquet
from elicit.plan import BudgetConfig, plan_round
from elicit.priors import shown_from_priors
from elicit.stages import _cli
from elicit.stages._oracle import templates


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--items", type=Path)
    p.add_argument("--groups", type=Path)
    p.add_argument("--shown", type=Path, help="priors.parquet (round 1) or round{r-1}/fit.parquet")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    r = args.round
    shown_path = args.shown or (paths.priors if r == 1 else paths.fit(r - 1))
    job = f"plan.round{r}"
    with _cli.telemetry(paths.telemetry(job), job) as tel:
        items = pd.read_parquet(args.items or paths.items, columns=["item_id", "text"])
        groups = pd.read_parquet(args.groups or paths.groups)
        shown = pd.read_parquet(shown_path)
        if "p_true" not in shown.columns:  # round 1 shows the zero-shot priors
            shown = shown_from_priors(shown)
        budget = BudgetConfig.from_params(cfg.section("budget"))
        plan = plan_round(items, groups, shown, r, budget, cfg.seed, [t.id for t in templates(cfg)])
        tel.update(queries=len(plan), flips=int((plan["kind"] == "flip").sum()))
        write_parquet(plan, args.out or paths.plan(r))


if __name__ == "__main__":
    _cli.main(run)
