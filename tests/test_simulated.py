"""The simulated oracle: the presets' promised observables and one test per planted bias.

All on 2,000 synthetic balanced items through the real driver (`ask_sync`, no HTTP, no cache), K = 4
random other items as context. The presets are fixed in elicit/oracle/simulated.py and never tuned
to these tests: the tests only check what the docstring promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import PRESETS, OracleConfig, OracleError, ask_sync, simulate
from elicit.oracle.simulated import SimParams, resolve_sim_params, systematically_wrong
from elicit.prompts import Template

N = 2000
K = 4
TEMPLATES = [
    Template(id="a", pos="Is it wrong?", neg="Is it acceptable?"),
    Template(id="b", pos="Is this wrong?", neg="Is this fine?"),
]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, dict[int, int]]:
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.arange(N) % 2)
    items = pd.DataFrame({"item_id": np.arange(N), "text": [f"item {i}" for i in range(N)], "gold": labels})
    return items, {int(i): int(g) for i, g in zip(items["item_id"], items["gold"], strict=True)}


def contexts(seed: int) -> list[list[int]]:
    """K random other items per target."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N):
        c = rng.choice(N - 1, size=K, replace=False)
        out.append([int(x + (x >= i)) for x in c])
    return out


def queries(
    ctx_ids: list[list[int]] | None,
    shown: list[list[int]] | None,
    template: str = "a",
    framings: tuple[str, ...] = ("pos", "neg"),
    tag: str = "",
) -> pd.DataFrame:
    rows = []
    for i in range(N):
        for f in framings:
            rows.append(
                {
                    "query_id": f"{tag}{i}-{f}-{template}",
                    "round": 0,
                    "group_id": 0,
                    "target_id": i,
                    "kind": "zero_shot" if ctx_ids is None else "few_shot",
                    "framing": f,
                    "template_id": template,
                    "context_ids": [] if ctx_ids is None else ctx_ids[i],
                    "context_shown": [] if shown is None else shown[i],
                    "perm_seed": 0,
                    "flipped_pos": -1,
                    "flip_of": None,
                },
            )
    return pd.DataFrame(rows)


def ask(preset: str | dict[str, Any], q: pd.DataFrame, data: tuple[pd.DataFrame, dict[int, int]]) -> pd.DataFrame:
    items, gold = data
    d: dict[str, Any] = {"kind": "simulated"}
    d.update({"preset": preset} if isinstance(preset, str) else {"sim": preset})
    preds, _ = ask_sync(q, items, OracleConfig.from_params("sim", d), TEMPLATES, Path("/nonexistent"), gold, False)
    return preds


def avg_score(preds: pd.DataFrame) -> pd.Series:
    """Framing-averaged score per target."""
    return preds.assign(s=preds["score"].astype(float)).groupby("target_id")["s"].mean()


def accuracy(scores: pd.Series, gold: dict[int, int]) -> float:
    y = np.array([gold[int(i)] for i in scores.index])
    return float(((scores.to_numpy() > 0).astype(int) == y).mean())


def observables(preset: str, data: tuple[pd.DataFrame, dict[int, int]]) -> dict[str, float]:
    _, gold = data
    zs = ask(preset, queries(None, None), data)
    ctx = contexts(1)
    fs = ask(preset, queries(ctx, [[gold[c] for c in cs] for cs in ctx]), data)
    pos = zs[zs["framing"] == "pos"].set_index("target_id")["score"].astype(float)
    return {
        "zero_shot": accuracy(avg_score(zs), gold),
        "golden_few_shot": accuracy(avg_score(fs), gold),
        "pos_only": accuracy(pos, gold),
        "acquiescence": float((zs["lp_true"] - zs["lp_false"]).astype(float).mean()),
    }


_FLIPS: dict[str, tuple[float, float]] = {}


def flip_effects(preset: str, data: tuple[pd.DataFrame, dict[int, int]]) -> tuple[float, float]:
    """Mean framing-averaged score change when the LAST / the FIRST shown label goes 0 -> 1."""
    if preset not in _FLIPS:
        _FLIPS[preset] = _flip_effects(preset, data)
    return _FLIPS[preset]


def _flip_effects(preset: str, data: tuple[pd.DataFrame, dict[int, int]]) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    ctx = contexts(2)
    base = [list(rng.integers(0, 2, size=K)) for _ in range(N)]

    def with_pos(pos: int, value: int) -> list[list[int]]:
        return [[*b[:pos], value, *b[pos + 1 :]] if pos >= 0 else [*b[:-1], value] for b in base]

    def run(pos: int, value: int, tag: str) -> pd.Series:
        return avg_score(ask(preset, queries(ctx, with_pos(pos, value), tag=tag), data))

    last = float((run(-1, 1, "l1") - run(-1, 0, "l0")).mean())
    first = float((run(0, 1, "f1") - run(0, 0, "f0")).mean())
    return last, first


# ------------------------------------------------------------------------------------------------
# the presets' promises


def test_sim_mild_observables(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    o = observables("sim_mild", data)
    assert abs(o["zero_shot"] - 0.75) <= 0.03, o
    assert o["golden_few_shot"] >= o["zero_shot"] + 0.08, o
    # acquiescence present but small
    assert 0.1 < o["acquiescence"] < 0.6, o
    assert 0.0 <= o["zero_shot"] - o["pos_only"] < 0.05, o


def test_sim_mild_position_bias_small(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    last, first = flip_effects("sim_mild", data)
    assert 0.2 < last - first < 0.7  # planted 2 * 0.2


def test_sim_strong_observables(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    o = observables("sim_strong", data)
    assert abs(o["zero_shot"] - 0.65) <= 0.03, o
    assert o["golden_few_shot"] >= o["zero_shot"] + 0.15, o
    assert o["pos_only"] <= o["zero_shot"] - 0.05, o  # single-framing majority vote suffers acquiescence
    assert 1.2 < o["acquiescence"] < 1.8, o


def test_sim_strong_position_bias_and_copying(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    last, first = flip_effects("sim_strong", data)
    # position: flipping the last shown label moves the score far more than flipping the first
    assert 1.2 < last - first < 2.0  # planted 2 * position = 1.6
    # copying: flipping any shown label 0 -> 1 moves the score towards 1 (planted 2 * copy / K = 0.5)
    assert 0.3 < first < 0.7


# ------------------------------------------------------------------------------------------------
# one test per planted bias


def test_acquiescence_pushes_both_framings_towards_true(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    zs = ask({"signal": 0.8, "item_noise": 1, "wrong_frac": 0, "prompt_noise": 0.3, "acquiescence": 1.0,
              "position": 0, "copy": 0, "icl": 0}, queries(None, None), data)  # fmt: skip
    said_true = (zs["lp_true"] > zs["lp_false"]).groupby(zs["framing"]).mean()
    assert said_true["pos"] > 0.6 and said_true["neg"] > 0.6  # "True" wins under both framings
    none = ask({"signal": 0.8, "item_noise": 1, "wrong_frac": 0, "prompt_noise": 0.3, "acquiescence": 0.0,
                "position": 0, "copy": 0, "icl": 0}, queries(None, None), data)  # fmt: skip
    assert accuracy(avg_score(zs), data[1]) == pytest.approx(accuracy(avg_score(none), data[1]), abs=0.02)


def test_position_bias_towards_last_shown_label(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    last, first = flip_effects("sim_strong", data)
    assert last > first + 1.0


def test_copying_of_shown_labels(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    _, gold = data
    ctx = contexts(3)
    ones = avg_score(ask("sim_strong", queries(ctx, [[1] * K] * N, tag="1"), data))
    zeros = avg_score(ask("sim_strong", queries(ctx, [[0] * K] * N, tag="0"), data))
    # planted: copy + position on the difference of all-1 vs all-0 contexts = 2 * (1.0 + 0.8)
    assert (ones - zeros).mean() == pytest.approx(3.6, abs=0.25)
    # predicted label 1 far more often after all-1 contexts
    assert (ones > 0).mean() > (zeros > 0).mean() + 0.3


def test_in_context_learning_depends_on_correct_shown_labels(
    data: tuple[pd.DataFrame, dict[int, int]],
) -> None:
    _, gold = data
    ctx = contexts(4)
    rng = np.random.default_rng(4)
    right = [[gold[c] for c in cs] for cs in ctx]
    random = [[int(x) for x in rng.integers(0, 2, size=K)] for _ in range(N)]
    wrong = [[1 - gold[c] for c in cs] for cs in ctx]
    acc = {
        name: accuracy(avg_score(ask("sim_strong", queries(ctx, shown, tag=name), data)), gold)
        for name, shown in (("right", right), ("random", random), ("wrong", wrong))
    }
    assert acc["right"] > acc["random"] + 0.1 > acc["wrong"] + 0.2, acc


def test_item_difficulty_is_persistent_and_some_items_systematically_wrong(
    data: tuple[pd.DataFrame, dict[int, int]],
) -> None:
    _, gold = data
    p = PRESETS["sim_strong"]
    a = avg_score(ask("sim_strong", queries(None, None, template="a"), data))
    b = avg_score(ask("sim_strong", queries(None, None, template="b"), data))
    assert np.corrcoef(a, b)[0, 1] > 0.6  # persistent per-item noise dominates
    # the prompt noise differs between prompts: std of the difference of framing averages ~ prompt_noise
    assert (a - b).std() == pytest.approx(p.prompt_noise, rel=0.15)
    wrong = systematically_wrong(list(a.index), p)
    assert abs(wrong.mean() - p.wrong_frac) < 0.02
    correct = ((a + b) > 0).astype(int).to_numpy() == np.array([gold[int(i)] for i in a.index])
    assert correct[wrong].mean() < 0.4 < 0.7 < correct[~wrong].mean()


def test_negative_framing_means_true_is_label_0(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    _, gold = data
    zs = ask("sim_mild", queries(None, None), data)
    diff = (zs["lp_true"] - zs["lp_false"]).astype(float)
    y = zs["target_id"].map(gold)
    pos, neg = zs["framing"] == "pos", zs["framing"] == "neg"
    assert diff[pos & (y == 1)].mean() > diff[pos & (y == 0)].mean() + 1
    assert diff[neg & (y == 1)].mean() < diff[neg & (y == 0)].mean() - 1
    np.testing.assert_allclose(zs["score"][neg].astype(float), -diff[neg])


def test_same_query_same_answer_in_any_batch(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    _, gold = data
    q = queries(contexts(5), [[1, 0, 1, 0]] * N)
    full = simulate(q, gold, PRESETS["sim_strong"])
    again = simulate(q, gold, PRESETS["sim_strong"])
    pd.testing.assert_frame_equal(full, again)
    sub = q.iloc[::-7]
    part = simulate(sub.reset_index(drop=True), gold, PRESETS["sim_strong"])
    np.testing.assert_allclose(part["lp_true"].astype(float), full["lp_true"].astype(float).iloc[::-7])
    other_seed = simulate(q, gold, SimParams(**{**PRESETS["sim_strong"].__dict__, "seed": 1}))
    assert not np.allclose(other_seed["lp_true"].astype(float), full["lp_true"].astype(float))


def test_mass_and_missing_rate(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    _, gold = data
    q = queries(None, None).head(400)
    p = resolve_sim_params("sim_mild", {"missing_rate": 0.25})
    out = simulate(q, gold, p)
    total = np.exp(out["lp_true"].astype(float)) + np.exp(out["lp_false"].astype(float))
    np.testing.assert_allclose(total.dropna(), p.mass)
    assert 0.18 < out["lp_false"].isna().mean() < 0.32
    preds = ask({**PRESETS["sim_mild"].__dict__, "missing_rate": 0.25}, q, data)
    assert preds["missing"].mean() == pytest.approx(out["lp_false"].isna().mean())
    assert preds.loc[preds["missing"], "score"].isna().all()


# ------------------------------------------------------------------------------------------------
# through the driver


def test_simulated_needs_gold(data: tuple[pd.DataFrame, dict[int, int]], tmp_path: Path) -> None:
    items, _ = data
    cfg = OracleConfig.from_params("sim", {"kind": "simulated", "preset": "sim_mild"})
    with pytest.raises(OracleError, match="kind simulated needs gold"):
        ask_sync(queries(None, None).head(4), items, cfg, TEMPLATES, tmp_path, None, False)


def test_simulated_cache_is_keyed_by_params_and_gold(data: tuple[pd.DataFrame, dict[int, int]], tmp_path: Path) -> None:
    items, gold = data
    q = queries(None, None).head(50)

    def run(preset: str, g: dict[int, int]) -> dict[str, Any]:
        cfg = OracleConfig.from_params("sim", {"kind": "simulated", "preset": preset, "cache": True})
        return ask_sync(q, items, cfg, TEMPLATES, tmp_path, g, False)[1]

    assert run("sim_mild", gold)["cache_hits"] == 0
    assert run("sim_mild", gold)["cache_hits"] == 50
    assert run("sim_strong", gold)["cache_hits"] == 0
    flipped = {i: 1 - g for i, g in gold.items()}
    assert run("sim_mild", flipped)["cache_hits"] == 0


def test_driver_columns_for_simulated(data: tuple[pd.DataFrame, dict[int, int]]) -> None:
    preds = ask("sim_strong", queries(None, None).head(10), data)
    assert set(preds["model"]) == {"simulated:sim_strong"} and set(preds["oracle"]) == {"sim"}
    assert (preds["prompt_tokens"] > 0).all() and not preds["cached"].any()  # estimated from the rendered prompt
    ctx = contexts(1)
    few = ask("sim_strong", queries(ctx, [[1] * K for _ in ctx], tag="f").head(10), data)
    assert (few["prompt_tokens"] > preds["prompt_tokens"].max()).all()  # shown examples make a prompt longer
    assert preds["prompt_sha256"].str.len().eq(64).all()


def test_truth_column_makes_the_simulator_believe_a_nuisance_feature() -> None:
    from elicit.oracle import OracleConfig, OracleError, gold_for_simulator

    cfg = OracleConfig.from_params("s", {"kind": "simulated", "preset": "sim_strong", "truth_column": "nuisance"})
    items = pd.DataFrame(
        {
            "item_id": [0, 1, 2],
            "text": ["a", "b", "c"],
            "gold": pd.array([None, None, None], dtype="Int8"),
            "nuisance": pd.array([1, 0, None], dtype="Int8"),
        }
    )
    assert gold_for_simulator(items, cfg) == {0: 1, 1: 0}
    with pytest.raises(OracleError, match="truth_column: items have no column 'nuisance'"):
        gold_for_simulator(items.drop(columns="nuisance"), cfg)
    with pytest.raises(OracleError, match="only for kind simulated"):
        OracleConfig.from_params("o", {"kind": "openai", "base_url": "http://x/v1", "model": "m", "truth_column": "g"})
