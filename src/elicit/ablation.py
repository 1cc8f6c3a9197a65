"""Ablations of one run's selected config: which parts of the method matter?

The default sweep compares recipes; this module answers the narrower question a reviewer asks of the *chosen*
recipe, on the run's own oracle answers and without new oracle calls:

* ``-<term>``: the selected config with one loss term's weight set to 0, for each active term;
* ``inverted_init``: the selected config started from the inverted zero-shot labels (adversarial start: does the
  objective escape a wrong basin, or do coherent-but-false labels persist?);
* ``rounds<=r``: the selected config fitted on the few-shot answers of rounds 1..r only (one round vs two), for each
  r below the run's number of rounds.

Ablations that change what is *asked* (no framing alternation, no order permutation, no flip twins, adaptive budget
off) need other oracle calls: they are separate runs with ``overrides.budget`` in params.yaml (see
``docs/results.md``). Pure functions; the ``ablate`` stage evaluates the labels against gold like ``evaluate``.

Every variant refits the *same* answers, so a variant is compared with the selected config by the paired bootstrap
interval of their difference (``delta_low`` / ``delta_high``), never by whether two marginal intervals overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
from tqdm.auto import tqdm

from elicit.evaluate.metrics import MEAN_SEED
from elicit.optimize import OptimizeConfig, build_problem, fit

SELECTED = "selected"


@dataclass(frozen=True)
class Variant:
    """One ablation: a config to fit and the last few-shot round whose answers it may use (None = all)."""

    name: str
    config: OptimizeConfig
    max_round: int | None = None


def variants(base: OptimizeConfig, rounds: int) -> list[Variant]:
    """The selected config itself, then each active term removed, the adversarial start, and fewer rounds."""
    out = [Variant(SELECTED, base)]
    active = base.weights.active()
    if len(active) > 1:  # removing the only term would leave nothing to fit
        for term in active:
            out.append(Variant(f"-{term}", base.with_(weights=replace(base.weights, **{term: 0.0}))))
    out.append(Variant("inverted_init", base.with_(init="prior" if base.init == "inverted" else "inverted")))
    for r in range(1, rounds):
        out.append(Variant(f"rounds<={r}", base, max_round=r))
    return out


def run_ablations(
    variants: Sequence[Variant],
    tuples: pd.DataFrame,
    priors: pd.DataFrame,
    items: pd.DataFrame,
    rule: str | None,
    seeds: Sequence[int],
    device: str = "auto",
) -> dict[str, dict[int, pd.DataFrame]]:
    """Fit every variant once per seed; returns labels as ``evaluate`` reads them (variant -> seed -> p_true).

    ``items`` needs only item_id, consistency_id and answer_key: fitting never reads gold.
    """
    n = len(items)
    problems: dict[int | None, object] = {}
    labels: dict[str, dict[int, pd.DataFrame]] = {}
    jobs = [(v, s) for v in variants for s in seeds]
    for v, seed in tqdm(jobs, desc="ablations", unit="fit", disable=None):
        if v.max_round not in problems:
            rows = tuples if v.max_round is None else tuples[tuples["round"] <= v.max_round]
            problems[v.max_round] = build_problem(rows.reset_index(drop=True), priors, items, rule or "none")
        result = fit(problems[v.max_round], v.config, seed=seed, device=device)  # type: ignore[arg-type]
        labels.setdefault(v.name, {})[seed] = pd.DataFrame(
            {"item_id": range(n), "p_true": result.p_true.astype("float64")}
        )
    return labels


DELTA = f"delta_accuracy_vs_{SELECTED}"
"""The paired difference to the selected config that ``evaluate(..., references=[SELECTED])`` writes."""


def ablation_table(metrics: pd.DataFrame, base_name: str) -> pd.DataFrame:
    """One row per variant: seed-mean accuracy with its bootstrap CI, and the paired difference to the selected
    config with its paired bootstrap CI (``delta_low`` / ``delta_high``; the variants refit the same answers):
    the numbers behind the ablation plot and the study's ablation table."""
    mean = metrics[metrics["seed"] == MEAN_SEED]
    acc = mean[mean["metric"] == "accuracy_seed_mean"].set_index("method")
    delta = mean[mean["metric"] == DELTA].set_index("method")
    rows = []
    for method in acc.index:
        r = acc.loc[method]
        d = delta.loc[method] if method in delta.index else None
        zero = method == SELECTED
        rows.append(
            {
                "variant": str(method),
                "config": base_name,
                "accuracy": float(r["value"]),
                "ci_low": float(r["ci_low"]),
                "ci_high": float(r["ci_high"]),
                "delta_vs_selected": 0.0 if zero else (float(d["value"]) if d is not None else None),
                "delta_low": 0.0 if zero else (float(d["ci_low"]) if d is not None else None),
                "delta_high": 0.0 if zero else (float(d["ci_high"]) if d is not None else None),
            }
        )
    columns = ["variant", "config", "accuracy", "ci_low", "ci_high", "delta_vs_selected", "delta_low", "delta_high"]
    out = pd.DataFrame(rows, columns=columns)
    if SELECTED not in set(out["variant"]):
        out = out.drop(columns=["delta_vs_selected", "delta_low", "delta_high"])
    return out


def describe(table: pd.DataFrame) -> list[str]:
    """Plain sentences: which ablations cost accuracy (paired 95 % CI of the difference below 0), which did not."""
    if table.empty or "delta_vs_selected" not in table:
        return []
    lines = []
    for _, r in table[table["variant"] != SELECTED].iterrows():
        pts = 100 * float(r["delta_vs_selected"])
        ci = f"paired CI [{100 * float(r['delta_low']):+.1f}, {100 * float(r['delta_high']):+.1f}]"
        if r["delta_high"] < 0:
            lines.append(f"{r['variant']}: {pts:+.1f} points ({ci}): this part matters.")
        elif r["delta_low"] > 0:
            lines.append(f"{r['variant']}: {pts:+.1f} points ({ci}): better than the selected config.")
        else:
            lines.append(f"{r['variant']}: {pts:+.1f} points ({ci}): no clear effect.")
    return lines


FIT_COLUMNS = ("item_id", "consistency_id", "answer_key")
"""The item columns a fit may read (never gold)."""
