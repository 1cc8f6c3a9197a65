"""The ICM paper's evaluation protocol (elicit.protocol): a gold-free split by whole groups, the same demonstrations for
every label set, better demonstration labels scoring higher with an oracle that follows them, and the opt-in job."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from elicit.baselines.fewshot import ask_scores
from elicit.config import load_params
from elicit.pipeline import jobs_for_run, study_target
from elicit.protocol import (
    GOLD,
    NO_DEMOS,
    TABLE_COLUMNS,
    ProtocolConfig,
    ProtocolError,
    accuracy_table,
    demo_orders,
    half_ids,
    hard_labels,
    predictions,
    protocol_queries,
    split,
)
from helpers import REPO, sh

FRAMINGS = ("pos", "neg")


def make_items(n: int = 60, group_every: int = 3, seed: int = 0) -> pd.DataFrame:
    """n items with random gold; from item 30 on, every ``group_every`` consecutive items share a consistency_id (the
    rest have none)."""
    ids = np.arange(n)
    cid = pd.array([f"g{i // group_every}" if i >= 30 else pd.NA for i in ids], dtype="string")
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"item_id": ids, "text": [f"item {i}" for i in ids], "gold": rng.integers(0, 2, n), "consistency_id": cid}
    )


def test_split_is_by_whole_groups_disjoint_seeded_and_gold_free() -> None:
    items = make_items()
    halves = split(items, 0.5, seed=3)
    assert sorted(halves["item_id"]) == list(range(len(items)))  # every item once: disjoint, covering
    assert set(halves["half"]) == {"demo", "test"}
    by_cid = halves.assign(cid=items["consistency_id"]).dropna(subset=["cid"]).groupby("cid")["half"].nunique()
    assert (by_cid == 1).all()  # a consistency group never straddles the halves
    assert abs((halves["half"] == "test").sum() - 30) <= 2  # test_share 0.5, up to one group over
    assert split(items, 0.5, seed=3).equals(halves)  # seeded
    assert not split(items, 0.5, seed=4).equals(halves)
    shuffled = items.assign(gold=np.random.default_rng(9).permutation(items["gold"].to_numpy()))
    assert split(shuffled, 0.5, seed=3).equals(halves)  # gold-free
    assert split(items.drop(columns=["gold"]), 0.5, seed=3).equals(halves)
    small = split(make_items(), 0.2, seed=0)
    assert 10 <= (small["half"] == "test").sum() <= 14


def test_split_refuses_what_cannot_be_split() -> None:
    one_group = make_items(4).assign(consistency_id="g")
    with pytest.raises(ProtocolError, match="needs two or more"):
        split(one_group, 0.5, 0)
    with pytest.raises(ProtocolError, match=r"protocol\.test_share"):
        split(make_items(), 1.0, 0)


def test_every_method_shows_the_same_demos_in_the_same_order() -> None:
    items = make_items()
    halves = split(items, 0.5, seed=1)
    demo, test = half_ids(halves, "demo"), half_ids(halves, "test")
    orders = demo_orders(demo, test, max_demos=8, seed=1)
    assert all(len(o) == 8 and set(o) <= set(demo) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) > 1  # each test item its own order: no shared position bias
    ones = {int(d): 1 for d in demo}
    mixed = {int(d): int(d) % 2 for d in demo}
    a = protocol_queries("a", orders, ones, FRAMINGS, "t", 1)
    b = protocol_queries("b", orders, mixed, FRAMINGS, "t", 1)
    assert len(a) == len(test) * 2
    assert [list(x) for x in a["context_ids"]] == [list(x) for x in b["context_ids"]]
    assert (a["perm_seed"].to_numpy() == b["perm_seed"].to_numpy()).all()
    assert [list(x) for x in a["context_shown"]] != [list(x) for x in b["context_shown"]]
    none = protocol_queries(NO_DEMOS, orders, None, FRAMINGS, "t", 1)
    assert all(len(x) == 0 for x in none["context_ids"])
    # a label set missing a demo item (gold missing) drops it from that prompt, keeping the order of the rest
    partial = protocol_queries(
        GOLD, orders, {d: v for d, v in mixed.items() if d != orders[int(test[0])][0]}, FRAMINGS, "t", 1
    )
    assert list(partial["context_ids"].iloc[0]) == orders[int(test[0])][1:]
    # the order does not depend on the labels at all, and max_demos caps it
    assert demo_orders(demo, test, 8, 1) == orders
    assert all(len(o) == len(demo) for o in demo_orders(demo, test, 10_000, 1).values())


def fake_ask(queries: pd.DataFrame) -> pd.DataFrame:
    """An oracle that follows the shown labels of the demos most like the target (same id parity: the 'topic'); with
    no such demo it says a weak 'true' (score 0.1)."""
    scores = []
    for t, ids, shown in zip(queries["target_id"], queries["context_ids"], queries["context_shown"], strict=True):
        near = [s for i, s in zip(ids, shown, strict=True) if int(i) % 2 == int(t) % 2]
        scores.append(0.1 if not near else 2.0 * (np.mean(near) - 0.5))
    return queries.assign(score=scores)


def run_protocol(items: pd.DataFrame, label_sets: dict[str, dict[int, pd.DataFrame]], seed: int = 0) -> pd.DataFrame:
    halves = split(items.drop(columns=["gold"]), 0.5, seed)
    demo, test = half_ids(halves, "demo"), half_ids(halves, "test")
    orders = demo_orders(demo, test, 16, seed)
    gold = dict(zip(items["item_id"].astype(int), items["gold"].astype(int), strict=True))
    shown: dict[str, dict[int, int] | None] = {NO_DEMOS: None, GOLD: {int(d): gold[int(d)] for d in demo}}
    for m, seeds in label_sets.items():
        own = hard_labels(seeds)
        shown[m] = {int(d): own[int(d)] for d in demo}
    queries = pd.concat([protocol_queries(m, orders, s, FRAMINGS, "t", seed) for m, s in shown.items()])
    calls, _ = ask_scores(fake_ask, queries.reset_index(drop=True))
    units = dict(zip(halves["item_id"], halves["unit"], strict=True))
    return accuracy_table(predictions(calls), {int(t): gold[int(t)] for t in test}, units, n_boot=200, seed=seed)


def test_better_demo_labels_give_higher_test_accuracy_and_the_table_has_no_nan() -> None:
    items = make_items(80).assign(gold=lambda d: d["item_id"] % 2)  # the 'topic' decides the label
    n = len(items)
    rng = np.random.default_rng(5)
    gold = items["gold"].to_numpy()

    def labels(p: np.ndarray) -> dict[int, pd.DataFrame]:
        return {0: pd.DataFrame({"item_id": np.arange(n), "p_true": p})}

    noisy = np.where(rng.random(n) < 0.3, 1 - gold, gold).astype(float)
    two_seeds = {  # seed-mean 0.6 / 0.4: thresholds to gold
        0: pd.DataFrame({"item_id": np.arange(n), "p_true": np.where(gold == 1, 0.9, 0.0)}),
        1: pd.DataFrame({"item_id": np.arange(n), "p_true": np.where(gold == 1, 0.3, 0.8)}),
    }
    table = run_protocol(
        items,
        {"good": two_seeds, "noisy": labels(noisy * 0.8 + 0.1), "inverted": labels(1.0 - gold)},
    ).set_index("method")
    assert list(table.index[:2]) == [NO_DEMOS, GOLD]
    acc = table["accuracy"]
    assert acc[GOLD] == acc["good"] == 1.0
    assert acc["good"] > acc["noisy"] > acc["inverted"]
    assert acc["inverted"] < acc[NO_DEMOS] < acc[GOLD]
    assert not table.isna().any().any()
    assert list(table.reset_index().columns) == list(TABLE_COLUMNS)
    assert (table["ci_low"] <= acc).all() and (acc <= table["ci_high"]).all()
    assert table.loc[GOLD, "diff_vs_gold"] == 0.0 and table.loc[GOLD, "diff_vs_gold_low"] == 0.0
    assert table.loc["good", "diff_vs_no_demos"] == pytest.approx(1.0 - acc[NO_DEMOS])
    assert table.loc["good", "diff_vs_no_demos_low"] > 0  # paired: the gain is clear of 0
    assert table.loc["inverted", "diff_vs_gold_high"] < 0
    assert table.loc[NO_DEMOS, "n_demos"] == 0 and table.loc["good", "n_demos"] == 16
    assert (table["calls"] == table["n_test"] * 2).all()


def test_all_missing_answers_give_p_one_half_not_nan() -> None:
    q = protocol_queries(NO_DEMOS, {0: [], 1: []}, None, FRAMINGS, "t", 0)
    preds = predictions(q.assign(score=pd.array([None] * len(q), dtype="Float64")))
    assert (preds["p_true"] == 0.5).all() and (preds["missing"] == 2).all()


def test_config_defaults_and_errors() -> None:
    cfg = ProtocolConfig.from_params(None)
    assert (cfg.enabled, cfg.test_share, cfg.max_demos, cfg.seed) == (False, 0.5, 64, None)
    with pytest.raises(ProtocolError, match=r"protocol\.max_demo"):
        ProtocolConfig.from_params({"max_demo": 3})
    with pytest.raises(ProtocolError, match=r"protocol\.test_share"):
        ProtocolConfig.from_params({"test_share": 1.5})


def test_the_protocol_job_exists_only_where_a_run_enables_it() -> None:
    params = load_params(REPO / "tests/fixtures/params.tiny.yaml")
    assert "protocol" not in [j.name for j in jobs_for_run(params, "tiny")]
    on = copy.deepcopy(params)
    on["runs"]["tiny"]["overrides"] = {"protocol": {"enabled": True}}
    jobs = {j.name: j for j in jobs_for_run(on, "tiny")}
    job = jobs["protocol"]
    assert job.outputs == ["results/tiny/protocol"]
    assert {f"results/tiny/labels/{m}" for m in ("selected", "zero_shot", "golden_fewshot")} <= set(job.inputs)
    assert "results/tiny/embeddings.npy" in job.inputs  # the simulated oracle reads them
    assert "runs.tiny.overrides.protocol" in job.param_keys(on)
    assert "protocol" not in [j.name for j in jobs_for_run(on, "other")]


def test_a_study_target_builds_the_protocol_of_the_draws_that_enable_it(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "tests/fixtures/params.tiny.yaml").read_text())
    raw["runs"]["tiny"]["replicates"] = 2
    raw["study"] = {"targets": {"t": ["tiny", "other"]}}

    def target(raw: dict) -> list[str]:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
        return study_target(load_params(tmp_path / "params.yaml"), "t")

    assert not [p for p in target(raw) if p.endswith("/protocol")]
    raw["runs"]["tiny"]["overrides"] = {"protocol": {"enabled": True}}
    built = target(raw)
    assert [p for p in built if p.endswith("/protocol")] == ["results/tiny/protocol", "results/tiny__draw1/protocol"]
    assert "results/other/report.html" in built


@pytest.mark.slow
def test_protocol_stage_end_to_end(repo_copy: Path) -> None:
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["runs"]["tiny"]["overrides"] = {"protocol": {"enabled": True, "max_demos": 8, "n_boot": 100}}
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("snakemake --cores 2 results/tiny/protocol", repo_copy, timeout=1800)
    out = repo_copy / "results/tiny/protocol"
    table = pd.read_parquet(out / "accuracy.parquet")
    assert {NO_DEMOS, GOLD, "selected", "zero_shot"} <= set(table["method"])
    assert not table.isna().any().any()
    calls = pd.read_parquet(out / "calls.parquet")
    assert len(calls) == int(table["calls"].sum()) and set(calls["method"]) == set(table["method"])
    assert (out / "protocol.json").is_file() and (out / "split.parquet").is_file()
