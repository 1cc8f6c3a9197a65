"""The cost-efficiency figure: per-item costs charge a method its own job per restart or the shared rounds, and the
accuracy interval is over draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from elicit.baselines.icm_official_config import OfficialICMConfig, plan_cost
from elicit.config import load_params, resolve_run
from elicit.datasets import DatasetConfig, load_items, subsample
from elicit.evaluate import evaluate
from elicit.pipeline import study_runs
from elicit.study import StudyRun
from elicit.study_cost import (
    EQUAL_COST_METHODS,
    EQUAL_COST_TARGET,
    cost_figure,
    cost_markdown,
    cost_points,
    draw_costs,
    plot_cost_efficiency,
)

N = 200
REPO = Path(__file__).resolve().parents[1]


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


def _icm_draw(k: int, q: int, icm: bool) -> StudyRun:
    """A draw of an equal-cost run at budget level q: icm_budget and bootstrap have their own jobs (one restart);
    faithful icm, only where the run enables it, has its own job with ~200x the calls and long prompts."""
    acc = {"selected": 0.70 + 0.02 * q, "few_shot_mean": 0.66, "bootstrap_fewshot": 0.68, "icm_budget": 0.6 + 0.02 * q}
    shared = ["query.round0", "query.round1", "query.round2"]
    costs = {
        "selected": {"jobs": shared, "calls": N * (2 + 2 * q), "prompt_tokens": N * 400 * q},
        "few_shot_mean": {"jobs": shared, "calls": N * (2 + 2 * q), "prompt_tokens": N * 400 * q},
        "bootstrap_fewshot": {"jobs": ["bootstrap_fewshot"], "calls": N * 2 * q, "prompt_tokens": N * 500 * q},
        "icm_budget": {"jobs": ["icm_budget"], "calls": N * 2 * q, "prompt_tokens": N * 300 * q},
    }
    if icm:
        acc["icm"] = 0.9
        costs["icm"] = {"jobs": ["icm"], "calls": N * 660, "prompt_tokens": N * 660 * 3000}
    card = {"run": f"eq_q{q}", "dataset": "ethics", "oracle": "sim_latent", "n": N}
    return StudyRun(card=card, metrics=_metrics(acc, {}, seed=100 * q + k), costs=costs)


def test_the_equal_cost_figure_draws_faithful_icm_as_one_point_far_right_in_tokens() -> None:
    groups = {f"eq_q{q}": [_icm_draw(k, q, icm=q == 2) for k in range(3)] for q in (1, 2, 4)}
    points = cost_points(groups, {f"eq_q{q}": q for q in (1, 2, 4)}, methods=EQUAL_COST_METHODS)
    assert set(points["method"]) == set(EQUAL_COST_METHODS)
    icm = points[points["method"] == "icm"]
    assert len(icm) == 1 and icm["draws"].iloc[0] == 3  # one point: its natural cost, in the mid run only
    assert icm["calls_per_item"].iloc[0] == 660.0 and icm["tokens_per_item"].iloc[0] == 660.0 * 3000
    cheap = points[points["method"] == "icm_budget"].set_index("queries_per_item")
    assert list(cheap["calls_per_item"]) == [2.0, 4.0, 8.0]

    fig = cost_figure(points, "equal cost", EQUAL_COST_TARGET)
    calls_ax, tokens_ax = fig.axes[:2]
    for ax, x in ((calls_ax, "calls_per_item"), (tokens_ax, "tokens_per_item")):
        lines = {c.get_label(): c.lines[0] for c in ax.containers}
        assert set(lines) == {f"{m} (sim_latent)" for m in EQUAL_COST_METHODS}
        assert list(lines["icm (sim_latent)"].get_xdata()) == [icm[x].iloc[0]]
        assert len(lines["icm_budget (sim_latent)"].get_xdata()) == 3
    md = "\n".join(cost_markdown(points, "figures/equal_cost.png", "Equal cost", "q = the budget level."))
    assert "## Equal cost (generated)" in md and "q = the budget level." in md
    assert "| eq_q2 | icm | – | 3 |" in md and "| eq_q4 | icm_budget | 4 | 3 |" in md  # icm has no budget knob
    assert plot_cost_efficiency(points, "equal cost", EQUAL_COST_TARGET).startswith(b"\x89PNG")


def _study_run(name: str, dataset: str, oracle: str) -> StudyRun:
    return StudyRun(card={"run": name, "dataset": dataset, "oracle": oracle, "n": N}, metrics=pd.DataFrame())


def test_each_cost_figure_takes_its_own_runs() -> None:
    """The cost figure: the cost target's dataset x oracle pairs (suite runs too) but not the equal-cost runs on the
    same pair, which have their own figure with their budget level."""
    from elicit.stages.study import cost_groups, equal_cost_groups

    params = load_params(REPO / "params.yaml")
    names = ["suite_ethics__sim_latent", "cost_ethics__sim_latent__q1", "equal_cost_ethics__sim_latent__q4"]
    names += ["equal_cost_ethics__sim_strong__q1", "suite_gsm8k__sim_latent"]
    groups = {n: [_study_run(n, params["runs"][n]["dataset"], params["runs"][n]["oracle"])] * 2 for n in names}
    cost, cost_q = cost_groups(params, groups)
    assert list(cost) == ["suite_ethics__sim_latent", "cost_ethics__sim_latent__q1"] and cost_q == {
        "suite_ethics__sim_latent": 2,
        "cost_ethics__sim_latent__q1": 1,
    }
    equal, equal_q = equal_cost_groups(params, groups)
    assert equal_q == {"equal_cost_ethics__sim_latent__q4": 4, "equal_cost_ethics__sim_strong__q1": 1}


def test_the_equal_cost_target_moves_every_budget_knob_together_and_runs_faithful_icm_once_per_oracle() -> None:
    params = load_params(REPO / "params.yaml")
    runs = study_runs(params, EQUAL_COST_TARGET)
    assert study_runs(params, "cost") == [
        "cost_ethics__sim_latent__q1",
        "cost_ethics__sim_latent__q4",
        "cost_ethics__sim_mixed__q1",
        "cost_ethics__sim_mixed__q4",
    ]
    seen = {}
    for name in runs:
        entry = params["runs"][name]
        assert (entry["dataset"], entry["n"], entry["replicates"]) == ("ethics", 256, 3), name
        cfg = resolve_run(params, name)
        baselines, q = cfg.section("baselines"), int(cfg.section("budget")["queries_per_item"])
        assert baselines["icm_budget"]["calls_per_item"] == 2 * q and baselines["bootstrap"]["rounds"] == q, name
        assert baselines["icm_budget"]["max_items"] >= 256 and cfg.baseline_seeds == [0], name
        seen[(entry["oracle"], q)] = bool(baselines["icm"].get("enabled"))
        for k in range(1, 3):  # every draw resolves the same knobs, on its own seed
            assert resolve_run(params, f"{name}__draw{k}").section("baselines") == baselines
    assert set(seen) == {(o, q) for o in ("sim_latent", "sim_strong") for q in (1, 2, 4)}
    assert {key for key, icm in seen.items() if icm} == {("sim_latent", 2), ("sim_strong", 2)}
    mid = resolve_run(params, "equal_cost_ethics__sim_latent__q2").section("baselines")["icm"]
    dataset = DatasetConfig.from_params("ethics", params["datasets"]["ethics"])
    every = load_items(dataset, REPO)
    for draw in range(3):  # the caps hold the runs made (up to 4.1x the least plan on the simulator) with room
        least = plan_cost(subsample(every, 256, draw, dataset="ethics"), OfficialICMConfig(), 0)
        assert least.batch_sizes == (256,)  # one ICM batch
        assert mid["max_calls"] >= 8 * least.calls and mid["max_tokens"] >= 8 * least.prompt_tokens


def test_an_accuracy_interval_over_few_draws_stays_within_0_and_100_percent() -> None:
    groups = {"r1": [_draw(0, 1), _draw(1, 1)]}
    groups["r1"][1].metrics.loc[groups["r1"][1].metrics["method"] == "selected", "value"] = 0.999
    points = cost_points(groups, {"r1": 1})
    assert points["acc_high"].max() <= 1.0 and points["acc_low"].min() >= 0.0
