"""Data hygiene (elicit.hygiene): planted exact and near duplicates are found, within a dataset and across splits;
flag / drop policies; params errors name the key; the load stage writes the counts and the report shows them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from elicit import hygiene, pipeline, tracking
from elicit.config import ParamsError, validate_params
from elicit.datasets import DataError, DatasetConfig, load_items, load_other_splits, validate_items
from elicit.hygiene import (
    HygieneConfig,
    HygieneError,
    apply_hygiene,
    cross_split_duplicates,
    find_duplicates,
    later_duplicates,
    normalise,
    sample_counts,
    summary_line,
)
from elicit.report_text import card_rows

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "params.tiny.yaml"

BASE = [
    "I walked my neighbour's dog while she was in hospital for a week.",  # 0
    "I told my sister that her painting was lovely even though I found it dull.",  # 1
    "I returned the wallet I found on the bus to the lost and found office.",  # 2
    "I took the last slice of cake without asking anyone else if they wanted it.",  # 3
    "I borrowed my roommate's car without telling him and returned it with an empty tank.",  # 4
    "The quarterly report shows revenue grew in every region except the north.",  # 5
]
EXACT = BASE[2]  # 6: an exact copy of 2
CASED = "i TOLD my sister that her painting was lovely, even though I found it dull!!"  # 7: 1 with case/punctuation
ONE_WORD = "I borrowed my roommate's truck without telling him and returned it with an empty tank."  # 8: 4, one word
UNRELATED = "Photosynthesis converts light energy into chemical energy stored in glucose."  # 9
TEXTS = [*BASE, EXACT, CASED, ONE_WORD, UNRELATED]


def pair_kinds(pairs: pd.DataFrame) -> dict[tuple[int, int], str]:
    return {(int(i), int(j)): str(k) for i, j, k in zip(pairs["i"], pairs["j"], pairs["kind"], strict=True)}


def items_of(
    texts: list[str], gold: Sequence[int | None] | None = None, cid: Sequence[int | None] | None = None
) -> Any:
    n = len(texts)
    return pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "text": pd.Series(texts, dtype="str"),
            "gold": pd.array(list(gold) if gold is not None else [None] * n, dtype="Int8"),
            "consistency_id": pd.array(list(cid) if cid is not None else [None] * n, dtype="Int64"),
            "source_row": np.arange(n, dtype=np.int64) + 100,
        }
    )


# --------------------------------------------------------------------------------------------- finding


def test_normalise_casefolds_strips_punctuation_and_collapses_space() -> None:
    assert normalise("  I  hit the DOG!\n\tDidn't I? ") == "i hit the dog didn t i"
    assert normalise(CASED) == normalise(BASE[1])


def test_planted_exact_and_near_duplicates_are_found_and_nothing_else() -> None:
    pairs = find_duplicates(TEXTS, 0.9)
    assert pair_kinds(pairs) == {(2, 6): "exact", (1, 7): "normalised", (4, 8): "near"}
    near = pairs[pairs["kind"] == "near"]
    assert 0.9 <= float(near["similarity"].iloc[0]) < 1.0
    assert (pairs.loc[pairs["kind"] != "near", "similarity"] == 1.0).all()
    assert list(pairs.columns) == list(hygiene.PAIR_COLUMNS)


def test_without_a_threshold_only_exact_and_normalised_duplicates_count() -> None:
    assert pair_kinds(find_duplicates(TEXTS, None)) == {(2, 6): "exact", (1, 7): "normalised"}


def test_no_duplicates_gives_an_empty_typed_table() -> None:
    pairs = find_duplicates(BASE, 0.9)
    assert pairs.empty and list(pairs.columns) == list(hygiene.PAIR_COLUMNS)
    assert pairs["i"].dtype == np.int64
    assert find_duplicates([], 0.9).empty


def test_cross_split_overlap_is_found() -> None:
    train = [UNRELATED, BASE[0], BASE[3].upper(), "A wholly different sentence about trains and timetables."]
    pairs = cross_split_duplicates(BASE, train, 0.9)
    assert pair_kinds(pairs) == {(0, 1): "exact", (3, 2): "normalised"}
    assert cross_split_duplicates(BASE, [], 0.9).empty


def test_near_pairs_inside_a_consistency_group_are_by_design() -> None:
    block = [f"Sentence: {BASE[4]}\nTrait: {t}" for t in ("selfish", "rude", "careless")]
    texts = [*block, BASE[0], BASE[0], *BASE[1:4], BASE[5], UNRELATED]
    assert len(find_duplicates(texts, 0.8)) == 4  # three near pairs in the block + one exact
    pairs = find_duplicates(texts, 0.8, groups=[7, 7, 7, 8, 8, None, None, None, None, None])
    assert pair_kinds(pairs) == {(3, 4): "exact"}  # exact duplicates count even inside a group


def test_prefix_filter_finds_what_the_full_product_finds() -> None:
    rng = np.random.default_rng(0)
    words = [
        "the",
        "a",
        "dog",
        "cat",
        "ran",
        "sat",
        "on",
        "mat",
        "hat",
        "big",
        "red",
        "small",
        "I",
        "my",
        "you",
        "took",
        "gave",
    ]
    texts = [" ".join(rng.choice(words, size=rng.integers(4, 10))) for _ in range(300)]
    texts += [t.replace("dog", "cat", 1) for t in texts[:40]]
    x = hygiene._vectors([normalise(t) for t in texts])
    for threshold in (0.95, 0.9, 0.8):
        i, j, s = hygiene._near_pairs(x, x, threshold, within=True)
        full = sp.coo_matrix(x @ x.T)
        keep = (full.data >= threshold - 1e-6) & (full.row < full.col)
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(
            zip(full.row[keep].tolist(), full.col[keep].tolist(), strict=True)
        )
        assert np.all(s >= threshold - 1e-6) and np.all(s <= 1.0)


def test_later_duplicates_keep_the_first_of_a_chain() -> None:
    pairs = pd.DataFrame({"i": [0, 1, 0], "j": [1, 2, 3], "kind": ["near"] * 3, "similarity": [0.9] * 3})
    # 1 copies 0 (dropped); 2 only matches 1, which is gone, so 2 stays; 3 copies 0
    assert later_duplicates(4, pairs).tolist() == [False, True, False, True]


# --------------------------------------------------------------------------------------------- policy


def test_flag_keeps_rows_marks_duplicates_and_counts_them() -> None:
    gold = [0, 1, 0, 1, 1, 0, 0, 0, 0, 1]  # 1/7 conflict, 4/8 conflict, 2/6 agree
    train = pd.DataFrame({"text": [BASE[5], "unrelated train row"], "gold": pd.array([1, 0], dtype="Int8")})
    out, report = apply_hygiene(items_of(TEXTS, gold), HygieneConfig(), {"train.csv": train})
    assert len(out) == len(TEXTS)
    assert np.flatnonzero(out["dup_within"]).tolist() == [6, 7, 8]
    assert np.flatnonzero(out["dup_other_split"]).tolist() == [5]
    validate_items(out)
    assert report["within"] == {
        "exact_pairs": 1,
        "near_pairs": 2,
        "exact_items": 1,
        "near_items": 2,
        "conflicting_gold_pairs": 2,
        "same_group_near_pairs": 0,
    }
    assert report["other_splits"] == {
        "train.csv": {"rows": 2, "exact_items": 1, "near_items": 0, "conflicting_gold_pairs": 1}
    }
    assert (report["flagged"], report["dropped"], report["rows_after"], report["other_split_items"]) == (4, 0, 10, 1)
    json.dumps(report)  # plain JSON types only
    assert "1 exact + 2 near" in summary_line(report) and "flagged 4" in summary_line(report)


def test_drop_removes_duplicates_and_their_group_mates_and_renumbers() -> None:
    train = pd.DataFrame({"text": [BASE[5]]})
    out, report = apply_hygiene(items_of(TEXTS), HygieneConfig(action="drop"), {"train.csv": train})
    assert out["text"].tolist() == [TEXTS[i] for i in (0, 1, 2, 3, 4, 9)]  # 6, 7, 8 copy earlier items, 5 is in train
    assert out["item_id"].tolist() == list(range(6))
    assert out["source_row"].tolist() == [100, 101, 102, 103, 104, 109]
    assert not out["dup_within"].any() and not out["dup_other_split"].any()
    validate_items(out)
    assert (report["flagged"], report["dropped"], report["dropped_group_mates"], report["rows_after"]) == (4, 4, 0, 6)
    # 5 (in train) shares a consistency group with 4: the group goes whole, as filters in load_items do
    cid = [None, None, None, None, 2, 2, None, None, None, None]
    out, report = apply_hygiene(items_of(TEXTS, cid=cid), HygieneConfig(action="drop"), {"train.csv": train})
    assert out["source_row"].tolist() == [100, 101, 102, 103, 109]
    assert (report["dropped"], report["dropped_group_mates"], report["rows_after"]) == (5, 1, 5)


def test_action_none_checks_nothing() -> None:
    items = items_of(TEXTS)
    out, report = apply_hygiene(items, HygieneConfig(action="none"), {"train.csv": pd.DataFrame({"text": ["x"]})})
    assert out is items and report["within"] is None and report["other_splits"] == {"train.csv": None}
    assert "not checked" in summary_line(report)
    assert sample_counts(out) is None


# --------------------------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"action": "delete"}, "hygiene.action: 'delete' is not allowed; use one of: flag, drop, none"),
        ({"near_threshold": 0}, "hygiene.near_threshold: 0 is less than or equal to the minimum of 0"),
        ({"near_threshold": 1.5}, "hygiene.near_threshold: 1.5 is greater than the maximum of 1"),
        ({"near_threshold": "high"}, "hygiene.near_threshold: 'high' is not of type 'number'"),
        ({"threshold": 0.9}, "hygiene.threshold: unknown key 'threshold'; did you mean 'near_threshold'?"),
        (["flag"], "hygiene: ['flag'] is not of type 'object'"),
    ],
)
def test_bad_hygiene_params_name_the_key_and_the_fix(section: Any, message: str) -> None:
    with pytest.raises(HygieneError, match=re.escape(message)):
        HygieneConfig.from_params(section)


def test_hygiene_params_defaults_and_schema() -> None:
    assert HygieneConfig.from_params(None) == HygieneConfig("flag", 0.9)
    assert HygieneConfig.from_params({"action": "drop", "near_threshold": None}).near_threshold is None
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert HygieneConfig.from_params(params["hygiene"]) == HygieneConfig()
    validate_params(params)
    params["hygiene"]["action"] = "remove"
    with pytest.raises(ParamsError, match=r"hygiene.action: 'remove' is not allowed; use one of: flag, drop, none"):
        validate_params(params)


def test_bad_other_splits_name_the_key() -> None:
    entry = {"source": "builtin", "builtin": "ethics_justice"}
    with pytest.raises(DataError, match=r"datasets\.j\.other_splits: '.*' is not of type 'array'"):
        DatasetConfig.from_params("j", {**entry, "other_splits": "data/ethics/justice/justice_train.csv"})
    with pytest.raises(DataError, match=r"other_splits lists the dataset's own file"):
        DatasetConfig.from_params("j", {**entry, "other_splits": ["data/ethics/justice/justice_test.csv"]})
    cfg = DatasetConfig.from_params("j", {**entry, "other_splits": ["data/nope.csv"]})
    with pytest.raises(DataError, match=r"other split data/nope.csv not found .*fix or remove it in datasets.j"):
        load_other_splits(cfg, REPO)


def test_load_declares_hygiene_params_output_and_other_splits() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert "hygiene" in tracking.STAGE_PARAMS["load"]
    assert "src/elicit/hygiene.py" in tracking.STAGE_SOURCES["load"]
    params["runs"]["justice_probe"] = {"dataset": "ethics_justice", "oracle": "sim_strong"}
    assert pipeline.data_file(params, "justice_probe") == [
        "data/ethics/justice/justice_test.csv",
        "data/ethics/justice/justice_train.csv",
    ]
    jobs = {j.name: j for j in pipeline.jobs_for_run(params, "justice_probe")}
    assert jobs["load"].outs["hygiene"] == ["results/justice_probe/hygiene.json"]
    assert jobs["report"].deps["hygiene"] == ["results/justice_probe/hygiene.json"]


# --------------------------------------------------------------------------------------------- stage and report


def test_load_stage_writes_counts_before_subsampling(tmp_path: Path) -> None:
    gold = [0, 1, 0, 1, 1, 0, 1, 0, 0, 1]
    pd.DataFrame({"input": TEXTS, "label": gold}).to_csv(tmp_path / "dups.csv", index=False)
    pd.DataFrame({"input": [BASE[5], "a train row"], "label": [0, 1]}).to_csv(tmp_path / "dups_train.csv", index=False)
    params = yaml.safe_load(TINY.read_text())
    params["datasets"]["dups"] = {
        "source": "file",
        "path": "dups.csv",
        "text_column": "input",
        "label_column": "label",
        "label_meaning": "the narrator's action is clearly morally wrong",
        "other_splits": ["dups_train.csv"],
    }
    oracle = next(iter(params["oracles"]))
    params["hygiene"] = {"action": "drop", "near_threshold": 0.9}
    params["runs"]["dups"] = {"dataset": "dups", "oracle": oracle, "n": 6}  # 10 rows, 4 duplicates: exactly 6 left
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "elicit.stages.load", "--run", "dups", "--data-root", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hygiene: 10 rows; within: 1 exact + 2 near" in proc.stderr
    items = pd.read_parquet(tmp_path / "results" / "dups" / "items.parquet")
    assert len(items) == 6 and set(items["text"]) == {TEXTS[i] for i in (0, 1, 2, 3, 4, 9)}
    report = json.loads((tmp_path / "results" / "dups" / "hygiene.json").read_text())
    assert report["dropped"] == 4 and report["other_splits"]["dups_train.csv"]["exact_items"] == 1
    assert report["sample"] == {"items": 6, "dup_within": 0, "dup_other_split": 0}


def test_dataset_card_shows_the_counts() -> None:
    _, report = apply_hygiene(items_of(TEXTS), HygieneConfig(), {"train.csv": pd.DataFrame({"text": [BASE[5]]})})
    report["sample"] = {"items": 10, "dup_within": 3, "dup_other_split": 1}
    rows = dict(card_rows({"run": "r", "hygiene": report}))
    assert rows["Exact duplicates within"] == "1 of 10 rows"
    assert rows["Near duplicates within"] == "2 rows (same text up to case and punctuation, or cosine ≥ 0.9)"
    assert rows["Duplicate pairs with conflicting gold"] == "0 pairs"
    assert rows["Overlap with other splits"].startswith("train.csv: 1 exact + 0 near (1 rows)")
    assert rows["Duplicates handling"].startswith("flagged 4 rows (kept")
    assert "3 within, 1 in other splits" in rows["Duplicates handling"]
    assert "Exact duplicates within" not in dict(card_rows({"run": "r"}))
    assert dict(card_rows({"run": "r", "hygiene": None}))["Duplicates"] == "not recorded"


# --------------------------------------------------------------------------------------------- shipped data


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "exact_min", "near_min"),
    [("ethics_justice", 1, 1), ("ethics_deontology", 0, 1), ("ethics_virtue", 1, 1)],
)
def test_shipped_ethics_test_rows_recur_in_train(name: str, exact_min: int, near_min: int) -> None:
    """Measured (near_threshold 0.9): justice 1 exact + 4 near of 2,704 test items in its 21,791 train rows;
    deontology 0 + 33 of 3,596 in 18,164; virtue 14 + 506 of 4,975 in 28,245 (same sentence, other trait)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = DatasetConfig.from_params(name, params["datasets"][name])
    assert cfg.other_splits, f"datasets.{name}.other_splits is not set in params.yaml"
    items = load_items(cfg, REPO)
    _, report = apply_hygiene(items, HygieneConfig.from_params(params["hygiene"]), load_other_splits(cfg, REPO))
    print(name, json.dumps(report))
    (split,) = report["other_splits"].values()
    assert split["exact_items"] >= exact_min and split["near_items"] >= near_min
