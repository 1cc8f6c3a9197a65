"""Faithful ICM (elicit.baselines.icm_official): the authors' script's behaviours, one test each, on the simulator
(small batches, so the whole file stays fast), and the simulator's context cap it relies on."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.baselines.fewshot import BaselineConfigError, FewShotConfig, golden_fewshot
from elicit.baselines.icm_official import TRACE_COLUMNS, Scored, _Batch, _Run, icm_official
from elicit.baselines.icm_official_config import ICMBudgetError, OfficialICMConfig, check_cost, plan_cost
from elicit.baselines.icm_official_steps import _SALT, accept, make_batches, temperature
from elicit.contracts import UNLABELLED, ConsistencyRule, answer_keys, consistency_groups, count_violations
from elicit.oracle import OracleError
from elicit.oracle.simulated import PRESETS, SimParams, SimulatedOracle, resolve_sim_params, simulate
from elicit.plan import QUERY_PLAN_COLUMNS

# in-family, strong in-context learning, small biases: the search can find the truth from the answers
ICL = SimParams(
    signal=0.4, item_noise=1.0, wrong_frac=0.05, prompt_noise=0.5, acquiescence=0.5, position=0.1, copy=0.1, icl=1.2
)


class SimAsk:
    """The simulator as an ``ask`` callable (score = framing-signed log-odds); counts the rows asked."""

    def __init__(self, gold: dict[int, int], params: SimParams) -> None:
        self.gold = gold
        self.params = params
        self.rows = 0

    def __call__(self, q: pd.DataFrame) -> pd.DataFrame:
        self.rows += len(q)
        out = simulate(q, self.gold, self.params)
        f = np.where(q["framing"] == "pos", 1.0, -1.0)
        answered = q.reset_index(drop=True).copy()
        answered["score"] = f * (out["lp_true"].astype(float) - out["lp_false"].astype(float)).to_numpy()
        return answered

    def score(self, target: int, ctx: list[int], shown: list[int], framings: tuple[str, ...]) -> float:
        """One fresh answer (no memory): the mean score over framings."""
        q = pd.DataFrame(
            [
                {"target_id": target, "framing": f, "template_id": "t", "context_ids": ctx, "context_shown": shown}
                for f in framings
            ]
        )
        return float(self(q)["score"].mean())


def world(
    n: int, group_size: int | None = None, keys: list[str] | None = None, seed: int = 0
) -> tuple[pd.DataFrame, dict[int, int]]:
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.arange(n) % 2)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n),
            "text": [f"item number {i:04d}, some words" for i in range(n)],
            "consistency_id": pd.array([i // group_size if group_size else None for i in range(n)], dtype="Int64"),
        }
    )
    if keys is not None:
        items["answer_key"] = [keys[i % len(keys)] for i in range(n)]
    return items, {i: int(truth[i]) for i in range(n)}


def accuracy(labels: pd.DataFrame, gold: dict[int, int]) -> float:
    y = np.array([gold[int(i)] for i in labels["item_id"]])
    return float(((labels["p_true"].to_numpy() > 0.5).astype(int) == y).mean())


CFG = OfficialICMConfig(template_id="t", batch_size=16, iterations_per_item=4.0)


# ---------------------------------------------------------------------------------------------- config and pieces


def test_defaults_are_the_scripts() -> None:
    cfg = OfficialICMConfig()
    assert (cfg.batch_size, cfg.n_init, cfg.alpha, cfg.t0, cfg.t_min, cfg.fix_iterations) == (256, 8, 30, 10, 0.01, 10)
    assert cfg.iterations_for(256) == 3000 and cfg.iterations_for(128) == 1500
    assert dataclasses.replace(cfg, iterations=7).iterations_for(256) == 7
    assert cfg.framings == ("pos", "neg") and cfg.max_calls is None and cfg.max_tokens is None
    assert cfg.enabled is False  # opt-in: a run gets the icm job only with baselines.icm.enabled
    for bad, key in (({"batch_sz": 3}, "batch_sz"), ({"t_min": 20.0}, "t_min"), ({"n_init": 300}, "n_init")):
        with pytest.raises(BaselineConfigError) as err:
            OfficialICMConfig.from_params(bad)
        assert key in str(err.value) and "\n" not in str(err.value)


def test_temperature_is_the_scripts_log_schedule() -> None:
    cfg = OfficialICMConfig()
    for a in (0, 1, 5, 100, 3000):
        assert temperature(a, cfg) == pytest.approx(max(0.01, 10 / (1 + 2 * np.log(1 + a))), rel=1e-12)
    assert temperature(0, cfg) == 10 and temperature(10**220, cfg) == 0.01  # the floor: after ~e^500 acceptances


def test_acceptance_better_always_worse_with_the_annealing_probability() -> None:
    for u in (0.0, 0.5, 0.999999):
        assert accept(0.1, 0.5, u) and accept(0.0, 0.5, u) and accept(1e6, 1e-3, u)
    us = np.random.default_rng(0).random(20_000)
    taken = np.array([accept(-1.0, 2.0, float(u)) for u in us])
    assert (taken == (us < math.exp(-0.5))).all()
    assert taken.mean() == pytest.approx(math.exp(-0.5), abs=0.01)
    assert not accept(-1e6, 1e-3, 0.0)  # no overflow, no underflow surprise


def test_batches_cover_every_item_once_with_groups_whole() -> None:
    cid = [i // 4 if i < 960 else None for i in range(1003)]  # 240 groups of 4 and 43 singletons
    items = pd.DataFrame({"item_id": np.arange(1003), "consistency_id": pd.array(cid, dtype="Int64")})
    batches = make_batches(items, 256, np.random.default_rng(0))
    sizes = [len(b) for b in batches]
    assert len(batches) == 4 and max(sizes) <= 256 and max(sizes) - min(sizes) <= 4
    assert sorted(np.concatenate(batches).tolist()) == list(range(1003))
    for b in batches:
        pos = {int(i): k for k, i in enumerate(b)}
        for g in {i // 4 for i in b if i < 960}:
            members = [pos[i] for i in range(4 * g, 4 * g + 4)]  # whole, and adjacent in batch order
            assert sorted(members) == list(range(min(members), min(members) + 4))
    big = pd.DataFrame({"item_id": np.arange(20), "consistency_id": pd.array([0] * 10 + [None] * 10, dtype="Int64")})
    assert sorted(len(b) for b in make_batches(big, 4, np.random.default_rng(0))) == [3, 3, 4, 10]


def _batch(items: pd.DataFrame, ask: Any, rule: str, cfg: OfficialICMConfig = CFG) -> _Batch:
    """The whole item set as one batch, positions = item ids."""
    run = _Run(items, ask, cfg, 0, ConsistencyRule.parse(rule), plan_cost(items, cfg))
    return _Batch(run, 0, np.arange(len(items), dtype=np.int64), None)


def test_weights_favour_unlabelled_items_next_to_a_label() -> None:
    items, gold = world(12, group_size=3)
    b = _batch(items, SimAsk(gold, ICL), "none")
    labels = np.full(12, UNLABELLED, dtype=np.int8)
    labels[[0, 7]] = [1, 0]
    w = b.weights(labels)
    assert w.tolist() == [1, 100, 100, 1, 1, 1, 100, 1, 100, 1, 1, 1]  # labelled ones and the rest: 1


# ---------------------------------------------------------------------------------------------- the fix


class Belief:
    """A fake oracle with a fixed belief per item, whatever the context: the fix should follow it."""

    def __init__(self, beliefs: dict[int, float]) -> None:
        self.beliefs = beliefs

    def __call__(self, q: pd.DataFrame) -> pd.DataFrame:
        out = q.reset_index(drop=True).copy()
        out["score"] = [self.beliefs[int(t)] for t in out["target_id"]]
        return out


@pytest.mark.parametrize(
    ("rule", "keys", "size", "start", "beliefs", "want"),
    [
        # contradiction: two items of a group both 1 -> the one the model believes keeps it
        ("at_most_one_true", None, 2, [1, 1], [-2.0, 3.0], [0, 1]),
        ("exactly_one_true", None, 2, [1, 1], [3.0, -2.0], [1, 0]),
        # exactly one true, none is: the model's favourite becomes 1 (pairs of 0s are contradictions)
        ("exactly_one_true", None, 2, [0, 0], [-2.0, 1.0], [0, 1]),
        ("exactly_one_true", None, 3, [0, 0, 0], [-2.0, -3.0, 1.0], [0, 0, 1]),
        # implication: one answer, different labels -> one label, the model's
        ("same_answer_same_label", ["a", "a", "b"], 3, [1, 0, 0], [2.0, 1.0, -3.0], [1, 1, 0]),
        ("same_answer_same_label", ["a", "a", "b"], 3, [1, 0, 0], [-2.0, -1.0, 3.0], [0, 0, 0]),
        # two answers both true: the model's stays
        ("same_answer_same_label", ["a", "b"], 2, [1, 1], [-1.0, 2.0], [0, 1]),
    ],
)
def test_consistency_fix_repairs_each_rule(
    rule: str, keys: list[str] | None, size: int, start: list[int], beliefs: list[float], want: list[int]
) -> None:
    items, _ = world(size, group_size=size, keys=keys)
    b = _batch(items, Belief(dict(enumerate(beliefs))), rule)
    labels = np.array(start, dtype=np.int8)
    assert b.score(labels).n_inconsistent > 0
    for reference in (None, b.score(labels)):  # the proposal path (no reference) and iteration 0's
        fixed, scored = b.fix(labels.copy(), reference)
        assert scored is not None and scored.n_inconsistent == 0
        if reference is not None or len(b.inconsistent_pairs(labels)) == 1:  # else: the first pair drawn decides
            assert fixed.tolist() == want
        groups, k = consistency_groups(items), answer_keys(items, size)
        assert count_violations(fixed, groups, k, rule) == 0


def test_fix_keeps_a_labelling_when_every_repair_lowers_the_energy() -> None:
    items, _ = world(2, group_size=2)
    b = _batch(items, Belief({0: 9.0, 1: 9.0}), "at_most_one_true", dataclasses.replace(CFG, alpha=1000.0))
    labels = np.array([1, 1], dtype=np.int8)  # the model is sure of both: each repair costs more than 1 violation
    fixed, scored = b.fix(labels, b.score(labels))
    assert fixed.tolist() == [1, 1] and scored is not None and scored.n_inconsistent == 1
    forced, _ = b.fix(labels, None)  # without a reference (a proposal) the first repair is taken
    assert sorted(forced.tolist()) == [0, 1]


# ---------------------------------------------------------------------------------------------- runs


def test_energy_is_recomputed_from_scratch_after_every_step() -> None:
    items, gold = world(10, group_size=3, keys=["a", "a", "b"])
    rule = "same_answer_same_label"
    sim = SimAsk(gold, ICL)
    cfg = dataclasses.replace(CFG, batch_size=10, iterations=40, n_init=4)
    seen: list[tuple[np.ndarray, int, np.ndarray, Scored]] = []
    icm_official(items, sim, cfg, 0, rule, observe=lambda ids, s, lab, sc: seen.append((ids, s, lab.copy(), sc)))
    assert len(seen) == 41
    groups, keys = consistency_groups(items), answer_keys(items, 10)
    for ids, _, labels, scored in seen:
        signed = []
        for t in np.flatnonzero(labels != UNLABELLED):
            ctx = [k for k in range(10) if k != t and labels[k] != UNLABELLED]  # batch order, all others
            s = sim.score(int(ids[t]), [int(ids[k]) for k in ctx], [int(labels[k]) for k in ctx], cfg.framings)
            signed.append(s if labels[t] == 1 else -s)
            assert scored.scores[t] == pytest.approx(s, rel=1e-12)
        full = np.full(10, UNLABELLED, dtype=np.int8)
        full[ids] = labels
        inconsistent = count_violations(full, groups, keys, rule)
        assert scored.n_inconsistent == inconsistent
        assert scored.energy == pytest.approx(cfg.alpha * float(np.mean(signed)) - inconsistent, rel=1e-12)


@pytest.fixture(scope="module")
def grouped_run() -> tuple[pd.DataFrame, dict[int, int], pd.DataFrame, pd.DataFrame, pd.DataFrame, SimAsk]:
    items, gold = world(40, group_size=4, keys=["a", "b", "a", "c"])
    sim = SimAsk(gold, ICL)
    labels, calls, trace = icm_official(items, sim, CFG, 3, "same_answer_same_label")
    return items, gold, labels, calls, trace, sim


def test_every_item_labelled_and_every_query_recorded(grouped_run: Any) -> None:
    items, gold, labels, calls, trace, sim = grouped_run
    assert labels["item_id"].tolist() == list(range(40))
    assert np.isfinite(labels["p_true"]).all() and (labels["p_true"] != 0.5).all()
    assert set(QUERY_PLAN_COLUMNS) <= set(calls.columns) and "score" in calls
    assert (calls["kind"] == "icm").all() and (calls["perm_seed"] == -1).all() and (calls["round"] == -1).all()
    assert calls["query_id"].is_unique and len(calls) == sim.rows
    asked = calls.apply(lambda r: (r.target_id, r.framing, tuple(r.context_ids), tuple(r.context_shown)), axis=1)
    assert asked.is_unique  # a query is asked once, then remembered
    batches = make_batches(items, CFG.batch_size, np.random.default_rng([3, _SALT]))
    assert len(batches) == 3 and trace["batch"].nunique() == 3
    for qid, target, ctx in zip(calls["query_id"], calls["target_id"], calls["context_ids"], strict=True):
        order = {int(i): k for k, i in enumerate(batches[int(qid.split("-b")[1].split("-")[0])])}
        pos = [order[int(c)] for c in ctx]  # within the target's batch, in batch order (groups adjacent)
        assert int(target) in order and pos == sorted(pos) and order[int(target)] not in pos
    assert list(trace.columns) == TRACE_COLUMNS
    assert (trace.groupby("batch")["step"].first() == 0).all()
    assert ((trace["step"] == 0) | (trace["item_id"] >= 0)).all()


def test_trace_follows_the_annealing_rule(grouped_run: Any) -> None:
    trace = grouped_run[4]
    cfg = CFG
    for _, tr in trace.groupby("batch"):
        prev = tr["energy"].shift(1).to_numpy()
        accepted_before = 0
        for k, row in enumerate(tr.itertuples()):
            if k == 0:
                continue
            assert row.temperature == temperature(accepted_before, cfg)
            if not row.proposed:
                assert not row.accepted and row.energy == prev[k]
                continue
            if row.candidate_energy >= prev[k]:
                assert row.accepted  # a better (or equal) labelling is always taken
            if row.accepted:
                assert row.energy == row.candidate_energy
                accepted_before += 1
            else:
                assert row.candidate_energy < prev[k] and row.energy == prev[k]
    assert trace["accepted"].iloc[1:].any() and (~trace["accepted"] & trace["proposed"]).any()


def test_same_seed_same_run(grouped_run: Any) -> None:
    items, gold, labels, calls, trace, _ = grouped_run
    again = icm_official(items, SimAsk(gold, ICL), CFG, 3, "same_answer_same_label")
    assert again[0].equals(labels) and again[2].equals(trace)
    assert again[1]["query_id"].tolist() == calls["query_id"].tolist()


def test_beats_its_random_start() -> None:
    items, gold = world(96)
    start: dict[int, int] = {}

    def first(ids: np.ndarray, step: int, labels: np.ndarray, _: Scored) -> None:
        if step == 0:
            start.update({int(i): int(y) for i, y in zip(ids, labels, strict=True) if y != UNLABELLED})

    cfg = dataclasses.replace(CFG, batch_size=48, iterations_per_item=6.0)
    labels, _, _ = icm_official(items, SimAsk(gold, PRESETS["sim_strong"]), cfg, 0, observe=first)
    assert len(start) == 2 * cfg.n_init
    start_acc = float(np.mean([gold[i] == y for i, y in start.items()]))
    assert accuracy(labels, gold) >= 0.75 and accuracy(labels, gold) > start_acc, (start_acc, accuracy(labels, gold))


def test_approaches_golden_fewshot_on_an_in_context_learner() -> None:
    n = 200
    items, gold = world(n)
    sim = SimAsk(gold, ICL)
    rng = np.random.default_rng(0)
    groups = pd.DataFrame(
        {"round": 1, "group_id": rng.permutation(np.arange(n) % 20), "item_id": np.arange(n), "is_anchor": False}
    )
    with_gold = items.assign(gold=pd.array([gold[i] for i in range(n)], dtype="Int8"))
    golden, _ = golden_fewshot(with_gold, groups, sim, FewShotConfig(template_id="t"), seed=0)
    labels, _, _ = icm_official(items, sim, dataclasses.replace(CFG, batch_size=64, iterations_per_item=3000 / 256))
    assert accuracy(labels, gold) >= accuracy(golden, gold) - 0.05, (accuracy(labels, gold), accuracy(golden, gold))


# ---------------------------------------------------------------------------------------------- cost guard


def test_plan_counts_each_item_labelled_once_and_every_proposal_at_most() -> None:
    items, _ = world(10)  # texts of 28 characters: 8 tokens each
    cfg = OfficialICMConfig(template_id="t", batch_size=10, n_init=2, framings=("pos",))
    plan = plan_cost(items, cfg)
    p = np.arange(2, 10)
    assert plan.batch_sizes == (10,) and plan.iterations == (117,)
    assert plan.calls == 2 + 8 + p.sum()  # seeds, one proposal per other item, the pool re-scored at each label
    assert plan.prompt_tokens == 8 * (2 * 2 + (p + 1).sum() + (p * (p + 1)).sum())
    assert plan.calls_max == 2 + 117 * 10 and plan.prompt_tokens_max == 8 * (4 + 117 * 100)
    assert plan_cost(items, dataclasses.replace(cfg, framings=("pos", "neg"))).calls == 2 * plan.calls


def test_cost_guard_refuses_before_any_call() -> None:
    items, gold = world(40)
    plan = plan_cost(items, CFG)
    for key, value in (("max_calls", plan.calls - 1), ("max_tokens", plan.prompt_tokens - 1)):
        cfg = dataclasses.replace(CFG, **{key: value})
        with pytest.raises(ICMBudgetError) as err:
            check_cost(plan, cfg)
        msg = str(err.value)
        assert f"baselines.icm.{key}" in msg and "raise" in msg and "\n" not in msg
        sim = SimAsk(gold, ICL)
        with pytest.raises(ICMBudgetError):
            icm_official(items, sim, cfg)
        assert sim.rows == 0
    check_cost(plan, dataclasses.replace(CFG, max_calls=plan.calls, max_tokens=plan.prompt_tokens))


def test_cost_guard_stops_a_run_at_its_cap() -> None:
    items, gold = world(40)
    plan = plan_cost(items, CFG)
    sim = SimAsk(gold, ICL)
    with pytest.raises(ICMBudgetError, match="max_calls") as err:
        icm_official(items, sim, dataclasses.replace(CFG, max_calls=plan.calls + 10))
    assert plan.calls <= sim.rows <= plan.calls + 10 and "oracle cache" in str(err.value)


# ---------------------------------------------------------------------------------------------- the simulator's cap


def test_simulator_refuses_a_context_over_its_cap_and_keys_answers_without_it() -> None:
    gold = {i: i % 2 for i in range(300)}

    def query(k: int) -> pd.DataFrame:
        row = {"target_id": 0, "framing": "pos", "template_id": "t"}
        return pd.DataFrame([{**row, "context_ids": list(range(1, k + 1)), "context_shown": [1] * k}])

    p = PRESETS["sim_strong"]
    assert p.max_context_items == 256
    simulate(query(256), gold, p)
    with pytest.raises(OracleError, match=r"sim\.max_context_items = 256") as err:
        simulate(query(257), gold, p)
    assert "\n" not in str(err.value)
    wide = resolve_sim_params("sim_strong", {"max_context_items": 299})
    assert simulate(query(200), gold, wide).equals(simulate(query(200), gold, p))  # the cap changes no answer
    assert dataclasses.replace(wide, seed=0).max_context_items == 299  # replace keeps it
    assert "max_context_items" not in dataclasses.asdict(wide)
    assert SimulatedOracle("x", wide, gold, "sim_strong").identity() == SimulatedOracle("x", p, gold, "s").identity()
    with pytest.raises(ValueError, match="max_context_items"):
        resolve_sim_params("sim_strong", {"max_context_items": 0})
