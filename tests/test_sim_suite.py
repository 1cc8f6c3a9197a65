"""The out-of-family simulator suite (elicit/oracle/sim_suite.py): its calibration, fixed 2026-12-02, asserted on
the synthetic item set of benchmarks/calibrate_suite.py (the same code the script prints from), its mechanisms,
determinism and errors; and the in-family presets answering exactly as before the suite existed.

The presets were fixed before any method result on the suite and are never tuned to these tests.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import OracleConfig, OracleError, ask_sync, open_oracle
from elicit.oracle.sim_suite import SUITE, belief_ceiling, belief_signs, beliefs, item_space
from elicit.oracle.simulated import PRESETS, SimParams, SimulatedOracle, resolve_sim_params, simulate
from elicit.prompts import Template

ROOT = Path(__file__).resolve().parents[1]


def _load_calibration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("calibrate_suite", ROOT / "benchmarks" / "calibrate_suite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibrate_suite"] = module
    spec.loader.exec_module(module)
    return module


cal = _load_calibration()


@pytest.fixture(scope="module")
def data() -> Any:
    return cal.synthetic()


@pytest.fixture(scope="module")
def space(data: Any) -> Any:
    return item_space((data.ids, data.vectors), PRESETS["sim_latent"].seed)


@pytest.fixture(scope="module")
def obs(data: Any, space: Any) -> dict[str, dict[str, float]]:
    return {name: cal.observables(data, PRESETS[name], space) for name in SUITE}


# ------------------------------------------------------------------------------------------------
# the frozen presets and their calibration


def test_suite_presets_are_frozen() -> None:
    """The numbers fixed on 2026-12-02 (sim_suite.py's docstring); changing one is a new preset, not a tune."""
    frozen = {
        "signal": 0.6, "item_noise": 1.0, "wrong_frac": 0.05, "prompt_noise": 0.2, "acquiescence": 1.0,
        "position": 0.2, "copy": 0.0, "icl": 0.6, "mass": 0.85, "missing_rate": 0.0, "seed": 0,
        "topic_share": 0.5, "format_gain": 0.9, "sim_copy": 0.8, "sim_temp": 0.05, "primacy": 0.3,
        "acq_sd": 0.6, "noise_df": 3,
    }  # fmt: skip
    for name, lam in (("sim_latent", 1.0), ("sim_mixed", 0.5), ("sim_belief", 0.0)):
        assert asdict(PRESETS[name]) == {**frozen, "latent_share": lam}, name


def test_suite_presets_differ_only_in_lambda() -> None:
    latent = PRESETS["sim_latent"]
    for name in ("sim_mixed", "sim_belief"):
        assert replace(PRESETS[name], latent_share=latent.latent_share) == latent


@pytest.mark.parametrize("name", SUITE)
def test_observables_hit_their_targets(name: str, obs: dict[str, dict[str, float]]) -> None:
    results = cal.check(name, obs[name])
    assert results and all(ok for *_, ok in results), results


def test_observables_as_documented(obs: dict[str, dict[str, float]]) -> None:
    """The measured values in sim_suite.py's docstring (3 decimals)."""
    documented = {
        "sim_latent": {"zero_shot": 0.684, "golden_gain": 0.244, "random_pgr": 0.678, "pos_only_drop": 0.077,
                       "flip_ratio": 2.880, "belief_ceiling": 0.931},
        "sim_mixed": {"golden_gain": 0.197, "flip_ratio": 3.059},
        "sim_belief": {"golden_gain": 0.142, "flip_ratio": 2.856},
    }  # fmt: skip
    for name, values in documented.items():
        for key, value in values.items():
            assert obs[name][key] == pytest.approx(value, abs=6e-4), (name, key)


def test_random_labels_beat_zero_shot(obs: dict[str, dict[str, float]]) -> None:
    """Unlike sim_mild / sim_strong: examples help whatever their labels (the format gain)."""
    for name in SUITE:
        assert obs[name]["random_gain"] > 0.1, name


def test_lambda_zero_pulls_towards_the_models_belief(data: Any, space: Any) -> None:
    a = cal.belief_agreement(data, PRESETS["sim_belief"], space)
    # showing the model its own beliefs makes it agree with them more than zero-shot
    assert a["belief_agree"] > a["zero_agree"] + 0.02, a
    # gold labels push no further towards truth than random labels (only the format gain helps)
    assert a["gold_acc"] <= a["random_acc"] + 0.01, a
    # at lambda = 1 gold labels do push towards truth
    b = cal.belief_agreement(data, PRESETS["sim_latent"], space)
    assert b["gold_acc"] > b["random_acc"] + 0.05, b


def test_belief_ceiling(data: Any, space: Any, obs: dict[str, dict[str, float]]) -> None:
    p = PRESETS["sim_belief"]
    ids = list(data.ids)
    ceiling = belief_ceiling(ids, data.gold, p, space)
    assert obs["sim_latent"]["zero_shot"] < ceiling < 1.0
    # the noise-free few-shot belief: sign(b + g s)
    s = np.array([2 * data.gold[i] - 1 for i in ids])
    b = beliefs(ids, data.gold, p, space)
    assert ceiling == pytest.approx(float((np.sign(b + p.format_gain * s) == s).mean()))
    assert set(np.unique(belief_signs(ids, data.gold, p, space))) <= {-1.0, 1.0}
    # at lambda = 0 no prompting condition beats it
    a = cal.belief_agreement(data, p, space)
    assert max(a["zero_acc"], a["gold_acc"], a["belief_acc"], a["random_acc"]) < ceiling
    # the same from raw embeddings (mapping form), clustered here
    emb = {int(i): v for i, v in zip(data.ids, data.vectors, strict=True)}
    assert belief_ceiling(ids, data.gold, p, emb) == ceiling


# ------------------------------------------------------------------------------------------------
# mechanisms


def test_topic_noise_is_shared_within_clusters(data: Any, space: Any) -> None:
    p = replace(PRESETS["sim_latent"], signal=0.0, wrong_frac=0.0)
    b = pd.Series(beliefs(list(data.ids), data.gold, p, space), index=space.ids)
    topic = pd.Series(space.topic_key, index=space.ids)
    share = b.groupby(topic).mean().var() / b.var()  # ~ topic_share + (1 - topic_share) / 25
    assert 0.35 < share < 0.7
    assert 60 <= topic.nunique() <= 100  # ~25 items per topic


def test_prompt_noise_is_heavy_tailed_and_acquiescence_varies(data: Any, space: Any) -> None:
    p = replace(PRESETS["sim_latent"], signal=0.0, item_noise=0.0, acquiescence=0.0, acq_sd=0.0, prompt_noise=1.0)
    q = cal.queries(data, None)
    out = simulate(q, data.gold, p, space)
    d = (out["lp_true"] - out["lp_false"]).astype(float).to_numpy()  # = d exactly: here prompt noise alone
    assert np.median(np.abs(d)) == pytest.approx(0.765, rel=0.1)  # median |t_3| at scale prompt_noise = 1
    x = d - d.mean()
    assert (x**4).mean() / (x**2).mean() ** 2 - 3 > 3  # t_3 has no finite 4th moment: large excess kurtosis
    acq = replace(p, prompt_noise=0.0, acq_sd=0.6, acquiescence=1.0)
    out = simulate(q, data.gold, acq, space)
    a = (out["lp_true"] - out["lp_false"]).astype(float).to_numpy()
    assert a.mean() == pytest.approx(1.0, abs=0.05) and a.std() == pytest.approx(0.6, rel=0.1)


def test_mean_label_copy_is_off_and_similarity_copy_on(data: Any, space: Any) -> None:
    """All-1 vs all-0 shown labels: the pull is sim_copy + primacy + recency (no mean-label copy term)."""
    p = replace(PRESETS["sim_latent"], icl=0.0, prompt_noise=0.0, acq_sd=0.0)
    ones = cal.scores(cal.queries(data, [[1] * cal.K] * len(data.ids)), data, p, space)
    zeros = cal.scores(cal.queries(data, [[0] * cal.K] * len(data.ids)), data, p, space)
    assert (ones - zeros).mean() == pytest.approx(2 * (p.sim_copy + p.primacy + p.position))


def test_in_family_terms_off_in_the_suite() -> None:
    for name in SUITE:
        assert PRESETS[name].copy == 0.0


# ------------------------------------------------------------------------------------------------
# determinism


def test_same_query_same_answer_in_any_batch_and_order(data: Any, space: Any) -> None:
    p = PRESETS["sim_mixed"]
    q = cal.queries(data, data.random_shown).head(600)
    full = simulate(q, data.gold, p, space)
    pd.testing.assert_frame_equal(full, simulate(q, data.gold, p, space))
    order = np.random.default_rng(3).permutation(len(q))
    shuffled = simulate(q.iloc[order].reset_index(drop=True), data.gold, p, space)
    np.testing.assert_array_equal(shuffled["lp_true"].astype(float), full["lp_true"].astype(float).iloc[order])
    part = simulate(q.iloc[::-7].reset_index(drop=True), data.gold, p, space)
    np.testing.assert_array_equal(part["lp_false"].astype(float), full["lp_false"].astype(float).iloc[::-7])
    # raw embeddings (clustered on each call) and a mapping give the same answers as the prebuilt space
    raw = simulate(q, data.gold, p, (data.ids, data.vectors.astype(np.float64)))
    pd.testing.assert_frame_equal(raw, full)
    rows_shuffled = (data.ids[::-1], data.vectors[::-1])
    pd.testing.assert_frame_equal(simulate(q, data.gold, p, rows_shuffled), full)


def test_through_the_factory_and_driver(data: Any, tmp_path: Path) -> None:
    items = pd.DataFrame({"item_id": data.ids, "text": [f"item {i}" for i in data.ids]})
    templates = [Template(id="a", pos="Is it true?", neg="Is it false?")]
    cfg = OracleConfig.from_params("sim_belief", {"kind": "simulated"})  # the preset of that name
    assert cfg.preset == "sim_belief"
    q = cal.queries(data, data.random_shown).head(40)
    q = q.assign(query_id=[f"q{i}" for i in range(len(q))], round=0, group_id=0, kind="few_shot", perm_seed=0,
                 flipped_pos=-1, flip_of=None)  # fmt: skip
    with open_oracle(cfg, tmp_path, gold=data.gold, embeddings=(data.ids, data.vectors)) as oracle:
        preds, _ = ask_sync(q, items, cfg, templates, tmp_path, data.gold, False, oracle=oracle)
        ident = oracle.identity()
    direct = simulate(q, data.gold, PRESETS["sim_belief"], (data.ids, data.vectors))
    np.testing.assert_allclose(preds["lp_true"].astype(float), direct["lp_true"].astype(float))
    assert len(ident["embeddings_sha256"]) == 64 and ident["simulator"]["latent_share"] == 0.0
    # every preset parameter stays overridable per oracle entry
    over = OracleConfig.from_params("o", {"kind": "simulated", "preset": "sim_latent", "sim": {"sim_copy": 0.4}})
    assert over.sim == replace(PRESETS["sim_latent"], sim_copy=0.4)


# ------------------------------------------------------------------------------------------------
# errors


def test_embeddings_needed_one_line_error(data: Any) -> None:
    q = cal.queries(data, data.random_shown).head(4)
    for call in (
        lambda: simulate(q, data.gold, PRESETS["sim_latent"]),
        lambda: SimulatedOracle("s", PRESETS["sim_latent"], data.gold, "sim_latent"),
        lambda: beliefs(list(data.ids[:3]), data.gold, PRESETS["sim_belief"]),
    ):
        with pytest.raises(OracleError, match="sim_copy and topic_share need item embeddings") as err:
            call()
        assert "\n" not in str(err.value)
    # an item without a row
    with pytest.raises(OracleError, match="no embedding for item 0;") as err:
        simulate(q, data.gold, PRESETS["sim_latent"], (data.ids[4:], data.vectors[4:]))
    assert "\n" not in str(err.value)
    with pytest.raises(OracleError, match="one vector per item id"):
        simulate(q, data.gold, PRESETS["sim_latent"], (data.ids[:5], data.vectors))
    # mechanisms that need no embeddings run without them
    no_emb = replace(PRESETS["sim_latent"], sim_copy=0.0, topic_share=0.0)
    assert len(simulate(q, data.gold, no_emb)) == 4


def test_bad_suite_parameters() -> None:
    for over, match in (
        ({"latent_share": 1.5}, "latent_share must be in"),
        ({"topic_share": -0.1}, "topic_share must be in"),
        ({"noise_df": 2.5}, "noise_df must be a whole number"),
        ({"sim_temp": 0}, "sim_temp must be > 0"),
    ):
        with pytest.raises(ValueError, match=match):
            resolve_sim_params("sim_latent", over)


# ------------------------------------------------------------------------------------------------
# sim_mild / sim_strong unchanged


PIN_GOLD = {i: (i * 7 + 3) % 5 % 2 for i in range(20)}


def _row(target: int, framing: str, template: str, ctx: list[int], shown: list[int]) -> dict[str, Any]:
    return {
        "target_id": target,
        "framing": framing,
        "template_id": template,
        "context_ids": ctx,
        "context_shown": shown,
    }


PIN_ROWS = [
    _row(0, "pos", "a", [], []),
    _row(1, "neg", "a", [], []),
    _row(2, "pos", "b", [3, 4, 5, 6], [1, 0, 1, 1]),
    _row(7, "neg", "b", [8, 9], [0, 0]),
    _row(11, "pos", "a", [12, 13, 14, 15], [0, 1, 1, 0]),
]
PIN_QUERIES = pd.DataFrame(PIN_ROWS)
# computed with the code before the suite existed (bit-exact)
PINNED = {
    "sim_mild": [
        (-0.9321769290836868, -0.6806174646189629), (-1.0721482809516842, -0.5838846610889316),
        (-0.8101831025192401, -0.7869670333571448), (-0.1839884297475194, -2.687445389607353),
        (-0.37448276381564555, -1.5494952248575462),
    ],
    "sim_strong": [
        (-0.6728502527317244, -1.2387442362602754), (-0.8199743841165558, -1.0228823847828346),
        (-0.25903738968550183, -3.5682264204216776), (-0.22972508249869575, -5.249920369957323),
        (-0.4836300745887853, -1.6957653451947843),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", ["sim_mild", "sim_strong"])
def test_in_family_presets_answer_exactly_as_before(name: str) -> None:
    out = simulate(PIN_QUERIES, PIN_GOLD, PRESETS[name])
    got = [(float(a), float(b)) for a, b in zip(out["lp_true"], out["lp_false"], strict=True)]
    assert got == PINNED[name]  # bit-exact, embeddings or not
    assert simulate(PIN_QUERIES, PIN_GOLD, PRESETS[name], {0: np.ones(3)}).equals(out)


def test_in_family_missing_answers_and_cache_key_as_before() -> None:
    out = simulate(PIN_QUERIES, PIN_GOLD, resolve_sim_params("sim_mild", {"missing_rate": 0.5}))
    assert out["lp_false"].isna().tolist() == [True, False, True, True, True]
    oracle = SimulatedOracle("x", PRESETS["sim_strong"], PIN_GOLD, "sim_strong", embeddings={0: np.ones(3)})
    assert oracle.space is None  # embeddings unused: not part of the identity
    key = oracle.request_key(PIN_ROWS[2], "ignored")
    assert key == "101c7637b8ef8839f3effc8b1b85e2edb38b3bc2cc3039142c9fd18b9b380efe"
    assert set(oracle.identity()["simulator"]) == {
        "signal", "item_noise", "wrong_frac", "prompt_noise", "acquiescence", "position", "copy", "icl", "mass",
        "missing_rate", "seed",
    }  # fmt: skip


def test_sim_params_new_fields_default_off() -> None:
    p = SimParams(signal=0.5, item_noise=1, wrong_frac=0, prompt_noise=0.5, acquiescence=0, position=0, copy=0, icl=0)
    from elicit.oracle.sim_suite import uses_suite

    assert not uses_suite(p)
    assert all(not uses_suite(PRESETS[n]) for n in ("sim_mild", "sim_strong"))
    assert all(uses_suite(PRESETS[n]) for n in SUITE)
