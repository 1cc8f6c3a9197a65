"""Few-shot baselines with their own oracle calls (golden, random, bootstrap) against a fake oracle.

The fake oracle answers from a planted truth: a persistent per-item latent, extra zero-shot confusion that
any context removes (a format effect), an in-context-learning effect (correct shown labels pull towards the
truth, wrong ones away), copying of shown labels, acquiescence, hash-seeded per-prompt noise and optional
missing answers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from elicit.baselines.fewshot import (
    BaselineConfigError,
    FewShotConfig,
    bootstrap_fewshot,
    fewshot_contexts,
    golden_fewshot,
    random_fewshot,
)
from elicit.baselines.votes import zero_shot
from elicit.contracts import count_violations as count_inconsistencies
from elicit.contracts import group_violations as group_inconsistencies
from elicit.contracts import repair_group as fix_group
from elicit.plan import QUERY_PLAN_COLUMNS as QUERY_COLUMNS


@dataclass
class FakeOracle:
    """Answers query rows from a planted truth; ``calls`` counts the rows it answered."""

    truth: np.ndarray
    signal: float = 1.0
    item_noise: float = 0.8
    zero_shot_noise: float = 1.5
    prompt_noise: float = 0.3
    acquiescence: float = 1.0
    icl: float = 1.0
    copy: float = 0.3
    missing_rate: float = 0.0
    seed: int = 0
    calls: int = 0
    latent: np.ndarray = field(init=False)
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = len(self.truth)
        self.latent = (2 * self.truth - 1) * self.signal + rng.normal(0, self.item_noise, n)
        self.confusion = rng.normal(0, self.zero_shot_noise, n)

    def __call__(self, queries: pd.DataFrame) -> pd.DataFrame:
        lp_t: list[float | None] = []
        lp_f: list[float | None] = []
        score: list[float | None] = []
        columns = ("target_id", "framing", "template_id", "context_ids", "context_shown")
        for t, framing, template, ctx_ids, ctx_shown in zip(*(queries[c].to_list() for c in columns), strict=True):
            ctx, shown = [int(c) for c in ctx_ids], [int(s) for s in ctx_shown]
            rng = np.random.default_rng(zlib.crc32(repr((int(t), framing, template, ctx, shown)).encode()))
            s = self.latent[t] + self.prompt_noise * rng.normal()
            if ctx:
                correct = np.mean(np.asarray(shown) == self.truth[ctx])
                s += self.icl * (2 * correct - 1) * (2 * self.truth[t] - 1)
                s += self.copy * (2 * np.mean(shown) - 1)
            else:
                s += self.confusion[t]
            diff = (s if framing == "pos" else -s) + self.acquiescence  # lp_true - lp_false
            lost = rng.random() < self.missing_rate
            lp_t.append(None if lost else float(-np.logaddexp(0, -diff)))
            lp_f.append(None if lost else float(-np.logaddexp(0, diff)))
            score.append(None if lost else float(diff if framing == "pos" else -diff))
        self.calls += len(queries)
        answers = pd.DataFrame(
            {
                "lp_true": pd.array(lp_t, dtype="Float64"),
                "lp_false": pd.array(lp_f, dtype="Float64"),
                "score": pd.array(score, dtype="Float64"),
                "missing": [x is None for x in score],
                "model": "fake",
                "oracle": "fake",
            }
        )
        return pd.concat([queries.reset_index(drop=True), answers], axis=1)


def make_items(truth: np.ndarray, group_size: int | None = None, rng_seed: int = 0) -> pd.DataFrame:
    n = len(truth)
    cid = pd.array([i // group_size if group_size else None for i in range(n)], dtype="Int64")
    return pd.DataFrame(
        {
            "item_id": np.arange(n),
            "text": [f"item {i}" for i in range(n)],
            "gold": pd.array(truth, dtype="Int8"),
            "consistency_id": cid,
        }
    )


def make_groups(n: int, size: int = 10, rounds: int = 2, seed: int = 0) -> pd.DataFrame:
    """A partition into groups of ``size`` per round (the group stage's shape, without overlap)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(1, rounds + 1):
        for g, chunk in enumerate(np.array_split(rng.permutation(n), max(1, n // size))):
            rows += [{"round": r, "group_id": g, "item_id": int(i), "is_anchor": False} for i in chunk]
    return pd.DataFrame(rows)


def make_priors(oracle: FakeOracle, n: int) -> pd.DataFrame:
    """Zero-shot in both framings through the oracle, averaged over framings (the priors stage's job)."""
    rows = [
        {
            "query_id": f"zs-{f}-{i}",
            "round": 0,
            "group_id": -1,
            "target_id": i,
            "kind": "zero_shot",
            "framing": f,
            "template_id": "t0",
            "context_ids": np.array([], dtype=np.int64),
            "context_shown": np.array([], dtype=np.int8),
            "perm_seed": 0,
            "flipped_pos": -1,
            "flip_of": None,
        }
        for f in ("pos", "neg")
        for i in range(n)
    ]
    pred = oracle(pd.DataFrame(rows, columns=QUERY_COLUMNS))
    pred["score"] = pred["score"].astype(float)
    score = pred.groupby("target_id")["score"].mean().reindex(range(n))
    return pd.DataFrame({"item_id": np.arange(n), "score": pd.array(score.to_numpy(), dtype="Float64")})


def acc(labels: pd.DataFrame, truth: np.ndarray) -> float:
    p = labels.sort_values("item_id")["p_true"].to_numpy()
    return float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == truth)))


def check_labels(labels: pd.DataFrame, n: int) -> None:
    assert list(labels.columns) == ["item_id", "p_true"]
    assert labels["item_id"].tolist() == list(range(n))
    p = labels["p_true"].to_numpy(dtype=float)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()


CFG = FewShotConfig(k_context=4, template_id="t0")


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    rng = np.random.default_rng(0)
    n = 300
    truth = rng.integers(0, 2, n)
    oracle = FakeOracle(truth, missing_rate=0.02)
    return {
        "n": n,
        "truth": truth,
        "items": make_items(truth),
        "groups": make_groups(n),
        "priors": make_priors(oracle, n),
        "oracle": oracle,
    }


@pytest.fixture(scope="module")
def runs(world: dict[str, object]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    items, groups, priors, oracle = world["items"], world["groups"], world["priors"], world["oracle"]
    assert isinstance(items, pd.DataFrame) and isinstance(groups, pd.DataFrame)
    assert isinstance(priors, pd.DataFrame) and isinstance(oracle, FakeOracle)
    return {
        "golden": golden_fewshot(items, groups, oracle, CFG, seed=0),
        "random": random_fewshot(items, groups, priors, oracle, CFG, seed=0),
        "bootstrap": bootstrap_fewshot(items, groups, priors, oracle, CFG, seed=0, rounds=2),
    }


def test_outputs_are_complete_finite_and_calls_follow_the_query_schema(
    world: dict[str, object], runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> None:
    n = int(world["n"])  # type: ignore[call-overload]
    for name, (labels, calls) in runs.items():
        check_labels(labels, n)
        assert set(QUERY_COLUMNS) <= set(calls.columns)
        assert calls["query_id"].is_unique
        assert (calls["kind"] == f"{name}_fewshot").all()
        assert calls["context_ids"].map(len).between(1, CFG.k_context).all()
        per_round = calls.groupby("round").size()
        assert (per_round == 2 * n).all(), per_round  # one query per item per framing (per bootstrap round)
    assert len(runs["bootstrap"][1]) == 2 * 2 * n  # the call count is recorded: 2 rounds x 2 framings


def test_golden_fewshot_beats_zero_shot_with_an_icl_effect(
    world: dict[str, object], runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> None:
    truth = world["truth"]
    assert isinstance(truth, np.ndarray) and isinstance(world["priors"], pd.DataFrame)
    zs = acc(zero_shot(world["priors"]), truth)
    assert acc(runs["golden"][0], truth) >= zs + 0.10


def test_random_fewshot_sits_between_zero_shot_and_golden(
    world: dict[str, object], runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> None:
    truth = world["truth"]
    assert isinstance(truth, np.ndarray) and isinstance(world["priors"], pd.DataFrame)
    zs = acc(zero_shot(world["priors"]), truth)
    rnd, gold = acc(runs["random"][0], truth), acc(runs["golden"][0], truth)
    assert zs + 0.02 <= rnd <= gold - 0.05, (zs, rnd, gold)


def test_golden_shows_gold_and_random_shows_other_labels_on_the_same_contexts(
    world: dict[str, object], runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> None:
    truth = world["truth"]
    assert isinstance(truth, np.ndarray)
    golden, rnd = runs["golden"][1], runs["random"][1]
    assert [list(c) for c in golden["context_ids"]] == [list(c) for c in rnd["context_ids"]]
    assert golden["perm_seed"].tolist() == rnd["perm_seed"].tolist()
    shown_g = np.concatenate(golden["context_shown"].to_list())
    shown_r = np.concatenate(rnd["context_shown"].to_list())
    ctx = np.concatenate(golden["context_ids"].to_list())
    assert (shown_g == truth[ctx]).all()
    assert 0.35 < (shown_r == truth[ctx]).mean() < 0.65


def test_bootstrap_beats_zero_shot_and_never_reads_gold(
    world: dict[str, object], runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> None:
    truth, items, groups, priors = world["truth"], world["items"], world["groups"], world["priors"]
    assert isinstance(truth, np.ndarray) and isinstance(items, pd.DataFrame)
    assert isinstance(groups, pd.DataFrame) and isinstance(priors, pd.DataFrame)
    labels, calls = runs["bootstrap"]
    assert acc(labels, truth) >= acc(zero_shot(priors), truth) + 0.03
    shuffled = items.copy()
    shuffled["gold"] = pd.array(np.random.default_rng(9).permutation(truth), dtype="Int8")
    oracle = FakeOracle(truth, missing_rate=0.02)
    labels2, calls2 = bootstrap_fewshot(shuffled, groups, priors, oracle, CFG, seed=0, rounds=2)
    pd.testing.assert_frame_equal(labels, labels2)
    pd.testing.assert_frame_equal(calls, calls2)
    rnd2, rnd_calls2 = random_fewshot(shuffled.drop(columns="gold"), groups, priors, oracle, CFG, seed=0)
    pd.testing.assert_frame_equal(rnd_calls2, runs["random"][1])


def test_query_ids_are_deterministic_and_distinct_per_seed(world: dict[str, object]) -> None:
    items, groups, oracle = world["items"], world["groups"], world["oracle"]
    assert isinstance(items, pd.DataFrame) and isinstance(groups, pd.DataFrame)
    assert isinstance(oracle, FakeOracle)
    small = items.iloc[:40].reset_index(drop=True)
    sgroups = groups[groups["item_id"] < 40]
    a = golden_fewshot(small, sgroups, oracle, CFG, seed=0)
    b = golden_fewshot(small, sgroups, oracle, CFG, seed=0)
    c = golden_fewshot(small, sgroups, oracle, CFG, seed=1)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not set(a[1]["query_id"]) & set(c[1]["query_id"])
    assert a[1]["query_id"].iloc[0] == "golden_fewshot-s0-t0-pos"


def test_bootstrap_repairs_consistency_groups() -> None:
    """Groups of 4 with exactly one true item: an acquiescent, noisy oracle calls several true; the repair
    leaves at most one per group."""
    rng = np.random.default_rng(5)
    n = 120
    truth = np.zeros(n, dtype=int)
    truth[np.arange(0, n, 4) + rng.integers(0, 4, n // 4)] = 1
    items = make_items(truth, group_size=4)
    oracle = FakeOracle(truth, acquiescence=0.0, signal=0.3, seed=1)
    priors = make_priors(oracle, n)
    priors["score"] = priors["score"] + 2.0  # the model leans towards "true": many violations to repair
    groups = make_groups(n, size=8, seed=1)
    labels, _ = bootstrap_fewshot(
        items, groups, priors, oracle, CFG, seed=0, rounds=1, consistency_rule="at_most_one_true"
    )
    hard = (labels["p_true"].to_numpy() > 0.5).astype(np.int8)
    members = [np.arange(g, g + 4) for g in range(0, n, 4)]
    assert count_inconsistencies(hard, members, np.full(n, None, dtype=object), "at_most_one_true") == 0
    unrepaired, _ = bootstrap_fewshot(items, groups, priors, oracle, CFG, seed=0, rounds=1)
    loose = (unrepaired["p_true"].to_numpy() > 0.5).astype(np.int8)
    assert count_inconsistencies(loose, members, np.full(n, None, dtype=object), "at_most_one_true") > 0


@pytest.mark.parametrize(
    ("rule", "labels", "keys", "fixed", "before", "after"),
    [
        # two true in an at-most-one group: the fixed one stays true, the other goes false
        ("at_most_one_true", [1, 1, 0, -1], [None] * 4, 1, 1, [0, 1, 0, -1]),
        # no fixed item: the highest score (item 0) keeps its true label
        ("at_most_one_true", [1, 1, 1, 0], [None] * 4, None, 3, [1, 0, 0, 0]),
        # all labelled false in an exactly-one group: the best-scoring non-fixed member becomes true
        ("exactly_one_true", [0, 0, 0, 0], [None] * 4, 0, 1, [0, 1, 0, 0]),
        # an unlabelled member may still be the true one: no violation, nothing to repair
        ("exactly_one_true", [0, 0, 0, -1], [None] * 4, None, 0, [0, 0, 0, -1]),
        # same answer, different labels: the fixed member's label wins for its answer; no key, no conflict
        ("same_answer_same_label", [1, 0, 0, 1], ["7", "7", "8", None], 1, 1, [0, 0, 0, 1]),
        # two different answers both true: only the fixed one's answer stays true
        ("same_answer_same_label", [1, 1, 1, -1], ["7", "7", "8", "8"], 2, 2, [0, 0, 1, -1]),
        # both problems at once, nothing fixed: answer "7" (scores 2 + 1) wins over "8"
        ("same_answer_same_label", [1, 0, 1, 1], ["7", "7", "8", "8"], None, 3, [1, 1, 0, 0]),
        ("none", [1, 1, 1, 1], [None] * 4, None, 0, [1, 1, 1, 1]),
    ],
)
def test_consistency_rules_count_and_repair(
    rule: str, labels: list[int], keys: list[str | None], fixed: int | None, before: int, after: list[int]
) -> None:
    lab = np.array(labels, dtype=np.int8)
    scores = np.array([2.0, 1.0, -0.5, np.nan])
    members = np.arange(4)
    key_arr = np.array(keys, dtype=object)
    assert group_inconsistencies(lab, members, key_arr, rule) == before
    fix_group(lab, scores, members, key_arr, rule, fixed=fixed)
    assert lab.tolist() == after
    assert group_inconsistencies(lab, members, key_arr, rule) == 0


def test_contexts_come_from_the_targets_group_and_never_the_target() -> None:
    groups = make_groups(50, size=10, seed=3)
    contexts = fewshot_contexts(50, groups, k=4, seed=0)
    r1 = groups[groups["round"] == 1]
    for t, (gid, ctx, _) in enumerate(contexts):
        mates = set(r1.loc[r1["group_id"] == gid, "item_id"])
        assert t in mates and t not in ctx and set(ctx) <= mates and len(ctx) == 4
    # an item in no group still gets a context (random items), group_id -1
    lonely = fewshot_contexts(51, groups, k=4, seed=0)[50]
    assert lonely[0] == -1 and len(lonely[1]) == 4 and 50 not in lonely[1]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(BaselineConfigError, match="baselines.fewshot.k_context"):
        FewShotConfig.from_params({"k_context": 0})
    with pytest.raises(BaselineConfigError, match="baselines.fewshot.framings"):
        FewShotConfig.from_params({"framings": ["pos", "up"]})
    with pytest.raises(BaselineConfigError, match="baselines.fewshot.shots: unknown key"):
        FewShotConfig.from_params({"shots": 3})
    with pytest.raises(BaselineConfigError, match="template_id is unset"):
        golden_fewshot(
            make_items(np.array([0, 1])),
            make_groups(2, 2, 1),
            FakeOracle(np.array([0, 1])),
            FewShotConfig(),
            0,
        )
    assert FewShotConfig.from_params({"framings": ["pos"]}).framings == ("pos",)
