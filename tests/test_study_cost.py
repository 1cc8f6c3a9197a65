"""The cost-efficiency figure: per-item costs charge a method its own job per restart or the shared rounds, and the
accuracy interval is over draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from elicit.evaluate import evaluate
from elicit.study import StudyRun
from elicit.study_cost import cost_markdown, cost_points, draw_costs, plot_cost_efficiency

N = 200


def _metrics(acc: dict[str, float], seeds: dict[str, int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, N)
    labels = {}
    for m, a in acc.items():
        labels[m] = {}
        for s in range(seeds.get(m, 1)):
            right = rng.random(N) < a
            p = np.where(right, gold, 1 - gold) * 0.8 + 0.1
            labels[m][s] = pd.DataFrame({"item_id": np.arange(N), "p_true": p})
    items = pd.DataFrame({"item_id": np.arange(N), "gold": pd.array(gold, dtype="Int8")})
    return evaluate(labels, items, seed=0, n_boot=50)


def _draw(k: int, q: int) -> StudyRun:
    acc = {"selected": 0.70 + 0.02 * q, "few_shot_mean": 0.66, "bootstrap_fewshot": 0.68, "zero_shot": 0.6}
    shared = ["query.round0", "query.round1"]
    costs = {
        "selected": {"jobs": shared, "calls": N * (2 + 2 * q), "prompt_tokens": N * 400 * q},
        "few_shot_mean": {"jobs": shared, "calls": N * (2 + 2 * q), "prompt_tokens": N * 400 * q},
        "bootstrap_fewshot": {"jobs": ["bootstrap_fewshot"], "calls": 3 * N * 4, "prompt_tokens": 3 * N * 1000},
        "zero_shot": {"jobs": ["query.round0"], "calls": N * 2, "prompt_tokens": N * 60},
    }
    card = {"run": f"r{q}", "dataset": "ethics", "oracle": "sim_latent", "n": N}
    metrics = _metrics(acc, {"bootstrap_fewshot": 3}, seed=10 * q + k)
    return StudyRun(card=card, metrics=metrics, costs=costs)


def test_a_baseline_with_its_own_job_is_charged_per_restart_and_shared_rounds_are_not_divided() -> None:
    rows = {r["method"]: r for r in draw_costs(_draw(0, 1))}
    assert rows["bootstrap_fewshot"]["calls_per_item"] == 4.0  # 3 restarts x 4 calls per item, per restart
    assert rows["bootstrap_fewshot"]["tokens_per_item"] == 1000.0
    assert rows["selected"]["calls_per_item"] == 4.0 and rows["selected"]["tokens_per_item"] == 400.0
    assert rows["zero_shot"]["calls_per_item"] == 2.0
    assert "dawid_skene" not in rows  # no labels: no point, not a zero


def test_points_have_an_interval_over_draws_and_the_page_and_figure_show_them() -> None:
    groups = {f"r{q}": [_draw(k, q) for k in range(3)] for q in (1, 4)}
    points = cost_points(groups, {"r1": 1, "r4": 4})
    sel = points[points["method"] == "selected"].set_index("queries_per_item")
    assert list(sel["draws"]) == [3, 3]
    assert (sel["acc_low"] <= sel["accuracy"]).all() and (sel["accuracy"] <= sel["acc_high"]).all()
    assert (sel["acc_high"] - sel["acc_low"] > 0).all()
    assert sel.loc[4, "tokens_per_item"] == 4 * sel.loc[1, "tokens_per_item"]
    assert not points[["accuracy", "acc_low", "acc_high", "calls_per_item"]].isna().any().any()
    md = "\n".join(cost_markdown(points, "figures/cost.png"))
    assert "![accuracy against oracle calls" in md and "| r4 | selected | 4 | 3 |" in md
    png = plot_cost_efficiency(points)
    assert png.startswith(b"\x89PNG")


def test_no_replicated_cost_runs_give_no_section_but_still_a_figure() -> None:
    points = cost_points({}, {})
    assert points.empty and cost_markdown(points, "x.png") == []
    assert plot_cost_efficiency(points).startswith(b"\x89PNG")
