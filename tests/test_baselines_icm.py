"""The cheap ICM variant (the method icm_budget, elicit.baselines.icm) against the fake oracle of
test_baselines_fewshot; the paper's algorithm (the method icm) is tested in test_icm_official.

The fake oracle has an in-context-learning effect (correct shown labels pull its answer towards the truth),
so the most mutually predictable labelling is the true one: ICM's energy should rise as it finds it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elicit.baselines.fewshot import BaselineConfigError
from elicit.baselines.icm import ICMConfig, icm, temperature
from elicit.baselines.votes import zero_shot
from elicit.contracts import count_violations as count_inconsistencies

try:  # the fake oracle and fixtures live beside the few-shot tests (pytest puts tests/ on sys.path)
    from test_baselines_fewshot import FakeOracle, make_items, make_priors
except ImportError:  # tests/ as a package
    from tests.test_baselines_fewshot import FakeOracle, make_items, make_priors  # type: ignore[no-redef]


def _world(n: int, seed: int = 0, group_size: int | None = None) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    emb = rng.normal(0, 1, (n, 16))
    emb[:, 0] += 1.5 * (2 * truth - 1)  # similar items tend to share a label, as embeddings of real data do
    oracle = FakeOracle(truth, seed=seed)
    return {
        "truth": truth,
        "emb": emb,
        "items": make_items(truth, group_size=group_size),
        "priors": make_priors(oracle, n),
        "oracle": oracle,
    }


def _run(world: dict[str, object], cfg: ICMConfig, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items, emb, priors, oracle = world["items"], world["emb"], world["priors"], world["oracle"]
    assert isinstance(items, pd.DataFrame) and isinstance(emb, np.ndarray)
    assert isinstance(priors, pd.DataFrame) and isinstance(oracle, FakeOracle)
    return icm(items, emb, priors, oracle, cfg, seed=seed)


N = 60
CFG = ICMConfig(template_id="t0", k_context=6, max_calls=6 * N)


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    return _world(N)


@pytest.fixture(scope="module")
def result(world: dict[str, object]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _run(world, CFG)


def _initial_labels(calls: pd.DataFrame) -> dict[int, int]:
    """The random start, read back from what the step-0 prompts showed."""
    start = calls[calls["query_id"].str.contains("-n0-")]
    return {
        int(c): int(s)
        for ids, shown in zip(start["context_ids"], start["context_shown"], strict=True)
        for c, s in zip(ids, shown, strict=True)
    }


def test_energy_rises_and_labels_beat_the_random_start(
    world: dict[str, object], result: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    truth = world["truth"]
    assert isinstance(truth, np.ndarray)
    labels, calls, trace = result
    energy = trace["energy"].to_numpy()
    assert energy[-1] > energy[0] + 10
    assert energy[-10:].mean() > energy[:10].mean()
    start = _initial_labels(calls)
    assert len(start) == CFG.n_init
    start_acc = np.mean([truth[i] == y for i, y in start.items()])
    final = (labels["p_true"].to_numpy() > 0.5).astype(int)
    assert trace["n_labelled"].iloc[-1] >= 0.8 * N
    final_acc = float(np.mean(final == truth))
    assert final_acc >= max(start_acc + 0.2, 0.8), (start_acc, final_acc)
    assert final_acc > (zero_shot(world["priors"])["p_true"] > 0.5).eq(truth == 1).mean()  # type: ignore[arg-type]


def test_outputs_respect_schema_and_caps(result: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    labels, calls, trace = result
    assert labels["item_id"].tolist() == list(range(N))
    p = labels["p_true"].to_numpy(dtype=float)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert len(calls) <= CFG.max_calls  # type: ignore[operator]
    assert (calls["kind"] == "icm").all() and (calls["round"] == -1).all() and (calls["group_id"] == -1).all()
    assert calls["query_id"].is_unique
    assert (calls["context_ids"].map(len) <= CFG.k_context).all()
    assert list(trace.columns) == ["step", "energy", "n_labelled", "accepted", "temperature"]
    assert trace["step"].tolist() == list(range(len(trace)))
    assert np.isfinite(trace["energy"]).all()
    assert (np.diff(trace["temperature"].to_numpy()[1:]) <= 0).all()
    assert trace["temperature"].min() >= CFG.t_min


def test_a_label_change_rescoring_shows_the_proposed_item_to_its_neighbour(
    result: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    _, calls, _ = result
    steps = calls[~calls["query_id"].str.contains("-n0-")].copy()
    steps["step"] = steps["query_id"].str.extract(r"-n(\d+)-", expand=False).astype(int)
    rescored = 0
    for _, rows in steps.groupby("step"):
        targets = list(dict.fromkeys(rows["target_id"].tolist()))
        if len(targets) == 2:
            proposed, neighbour = targets
            ctx = rows.loc[rows["target_id"] == neighbour, "context_ids"].iloc[0]
            assert proposed in set(int(c) for c in ctx)
            rescored += 1
    assert rescored > 10


def test_deterministic_and_never_reads_gold(
    world: dict[str, object], result: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    items = world["items"]
    assert isinstance(items, pd.DataFrame)
    shuffled = items.copy()
    shuffled["gold"] = pd.array(np.random.default_rng(3).permutation(items["gold"].to_numpy()), dtype="Int8")
    again = _run({**world, "items": shuffled}, CFG)
    for a, b in zip(result, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    other_seed = _run(world, ICMConfig(template_id="t0", k_context=6, max_calls=40), seed=1)
    assert not set(other_seed[1]["query_id"]) & set(result[1]["query_id"])


def test_items_outside_the_sample_keep_their_zero_shot_prior(world: dict[str, object]) -> None:
    cfg = ICMConfig(template_id="t0", k_context=4, max_items=20, max_calls=80)
    labels, calls, trace = _run(world, cfg)
    touched = set(calls["target_id"]) | {int(c) for ids in calls["context_ids"] for c in ids}
    assert len(touched) <= 20 and trace["n_labelled"].max() <= 20
    prior = zero_shot(world["priors"])["p_true"].to_numpy()  # type: ignore[arg-type]
    untouched = sorted(set(range(N)) - touched)
    np.testing.assert_allclose(labels["p_true"].to_numpy()[untouched], prior[untouched])


def test_labels_obey_the_consistency_rule() -> None:
    """Groups of 4 with exactly one true item: ICM's labels never call two of a group true."""
    n = 40
    w = _world(n, seed=2, group_size=4)
    truth = w["truth"]
    assert isinstance(truth, np.ndarray)
    truth[:] = 0
    truth[np.arange(0, n, 4) + np.random.default_rng(4).integers(0, 4, n // 4)] = 1
    w["oracle"] = FakeOracle(truth, seed=2, signal=0.3, acquiescence=2.0)  # leans "true": violations to repair
    w["items"] = make_items(truth, group_size=4)
    assert isinstance(w["oracle"], FakeOracle)
    w["priors"] = make_priors(w["oracle"], n)
    cfg = ICMConfig(template_id="t0", k_context=4, max_calls=12 * n, framings=("pos",))
    items, emb, priors = w["items"], w["emb"], w["priors"]
    assert isinstance(items, pd.DataFrame) and isinstance(emb, np.ndarray) and isinstance(priors, pd.DataFrame)
    labels, _, trace = icm(items, emb, priors, w["oracle"], cfg, seed=0, consistency_rule="at_most_one_true")
    assert trace["n_labelled"].iloc[-1] == n  # everything labelled, so every p_true is an ICM label
    hard = (labels["p_true"].to_numpy() > 0.5).astype(np.int8)
    members = [np.arange(g, g + 4) for g in range(0, n, 4)]
    assert count_inconsistencies(hard, members, np.full(n, None, dtype=object), "at_most_one_true") == 0
    with pytest.raises(ValueError, match="unknown consistency rule 'one_of'; use one of: none, "):
        icm(items, emb, priors, w["oracle"], cfg, seed=0, consistency_rule="one_of")


def test_temperature_schedule_and_config_checks() -> None:
    cfg = ICMConfig()
    assert temperature(1, cfg) == cfg.t0
    assert temperature(100, cfg) == pytest.approx(cfg.t0 / (1 + cfg.beta * math.log(100)))
    assert temperature(10**300, cfg) == cfg.t_min
    assert ICMConfig(calls_per_item=4).budget(50) == 200 and ICMConfig(max_calls=7).budget(50) == 7
    with pytest.raises(BaselineConfigError, match=r"baselines\.icm_budget\.alpha"):
        ICMConfig.from_params({"alpha": -1})
    with pytest.raises(BaselineConfigError, match=r"baselines\.icm_budget\.temp: unknown key"):
        ICMConfig.from_params({"temp": 3})
    assert ICMConfig.from_params({"framings": ["neg"], "max_calls": None}).framings == ("neg",)
    with pytest.raises(ValueError, match="embeddings have shape"):
        icm(
            make_items(np.array([0, 1, 1])),
            np.zeros((2, 4)),
            pd.DataFrame({"item_id": [], "score": []}),
            FakeOracle(np.array([0, 1, 1])),
            ICMConfig(template_id="t0"),
        )
