"""Dataset loaders: every builtin against the figures in data/SOURCES.md, file/hub sources, subsampling."""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import datasets as hf_datasets
import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elicit.datasets import (
    BUILTINS,
    CONSISTENCY_RULES,
    DATASET_JSON_SCHEMA,
    ITEM_COLUMNS,
    OPTIONAL_COLUMNS,
    DataError,
    DatasetConfig,
    load_items,
    subsample,
    validate_items,
)

ROOT = Path(__file__).resolve().parents[1]
FRAGMENT = ROOT / "params.yaml"


@cache
def fragment() -> dict[str, Any]:
    return yaml.safe_load(FRAGMENT.read_text())["datasets"]


@cache
def load(name: str) -> pd.DataFrame:
    """A builtin dataset as configured in the params fragment (loaded once per test session)."""
    return load_items(DatasetConfig.from_params(name, fragment()[name]), ROOT)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the datasets cache of throwaway files out of ~/.cache."""
    monkeypatch.setattr(hf_datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


# ----------------------------------------------------------------------------------------- builtins

# name: (items, label-1 items or None when there is no gold, consistency groups, rule), from data/SOURCES.md
EXPECTED = {
    "ethics": (2109, 983, 0, "none"),
    "ethics_justice": (2704, 1354, 676, "none"),
    "ethics_deontology": (3596, 1786, 899, "none"),
    "ethics_virtue": (4975, 995, 995, "exactly_one_true"),
    "truthfulqa": (2608, 1194, 652, "none"),
    "gsm8k": (2972, 1420, 743, "same_answer_same_label"),
    "gsm8k_pairs": (1486, 743, 743, "exactly_one_true"),
    "larger_than": (1584, 801, 0, "none"),
    "political_normative": (558, None, 277, "none"),
    "mfv": (132, 49, 0, "none"),
    "daily_dilemmas": (1360, None, 0, "none"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_matches_sources(name: str) -> None:
    n, n_pos, n_groups, rule = EXPECTED[name]
    items = load(name)
    validate_items(items)
    assert list(items.columns) == ITEM_COLUMNS + OPTIONAL_COLUMNS
    assert len(items) == n
    assert items["item_id"].tolist() == list(range(n))
    assert str(items["gold"].dtype) == "Int8"
    assert str(items["consistency_id"].dtype) == "Int64"
    if n_pos is None:
        assert items["gold"].isna().all()
    else:
        assert items["gold"].notna().all()
        assert int(items["gold"].sum()) == n_pos
    assert items["consistency_id"].nunique() == n_groups
    cfg = DatasetConfig.from_params(name, fragment()[name])
    assert cfg.consistency == rule
    assert cfg.label_meaning and cfg.licence and cfg.citation


def test_fragment_agrees_with_builtin_defaults_and_schema() -> None:
    assert set(fragment()) == set(EXPECTED) | {"machiavelli"}
    for name, entry in fragment().items():  # one-line builtin entries: the builtin's own defaults fill the rest
        jsonschema.validate(entry, DATASET_JSON_SCHEMA)
        spec = BUILTINS[entry["builtin"]]
        cfg = DatasetConfig.from_params(name, entry)
        assert (cfg.path, cfg.consistency, cfg.label_meaning) == (spec.path, spec.consistency, spec.label_meaning)
        assert cfg.consistency in CONSISTENCY_RULES


def test_short_only_shrinks_ethics() -> None:
    entry = {**fragment()["ethics"], "short_only": False}
    everything = load_items(DatasetConfig.from_params("ethics", entry), ROOT)
    short = load("ethics")
    assert len(everything) == 3885 and int(everything["gold"].sum()) == 1816
    assert len(short) == 2109 < len(everything)
    assert short["text"].str.len().max() < 200 < everything["text"].str.len().max()
    # source_row points back into the file: row 0 of the file is short
    assert short["source_row"].iloc[0] == 0 and short["source_row"].is_monotonic_increasing


def test_texts_read_naturally() -> None:
    virtue = load("ethics_virtue")
    assert virtue["text"].iloc[0] == (
        "Sentence: Martha hired a new babysitter and was totally at ease with her.\nTrait: trustful"
    )
    assert not virtue["text"].str.contains(r"\[SEP\]").any()
    assert load("ethics_deontology")["text"].iloc[0].startswith("Scenario: Aren't you supposed to")
    assert load("truthfulqa")["text"].iloc[0].startswith("Question: America has much less obese people")
    assert "\nClaim: " in load("truthfulqa")["text"].iloc[0]
    assert load("larger_than")["text"].iloc[0] == "Fifty-one is larger than ninety-two."


def test_virtue_blocks_have_exactly_one_true() -> None:
    v = load("ethics_virtue")
    per_block = v.groupby("consistency_id")["gold"].agg(["size", "sum"])
    assert (per_block["size"] == 5).all() and (per_block["sum"] == 1).all()


def test_gsm8k_keeps_answer_key() -> None:
    g = load("gsm8k")
    raw = json.loads((ROOT / "data/icm/test_gsm8k.json").read_text())
    assert g["answer_key"].tolist() == [r["answer"].strip() for r in raw]
    assert g["text"].iloc[0].endswith("\nFinal answer: 600")
    assert (g.groupby("consistency_id").size() == 4).all()
    # the rule's premise: within a group, different answers are never both correct
    true_answers = g[g["gold"] == 1].groupby("consistency_id")["answer_key"].nunique()
    assert (true_answers <= 1).all()
    assert load("ethics")["answer_key"].isna().all()


def test_gsm8k_pairs_exactly_one_true() -> None:
    p = load("gsm8k_pairs")
    per_q = p.groupby("consistency_id")["gold"].agg(["size", "sum"])
    assert (per_q["size"] == 2).all() and (per_q["sum"] == 1).all()


def test_political_normative_keeps_stance_as_nuisance_not_gold() -> None:
    p = load("political_normative")
    assert p["gold"].isna().all()
    assert str(p["nuisance"].dtype) == "Int8" and int(p["nuisance"].sum()) == 279
    assert load("ethics")["nuisance"].isna().all()


def test_mfv_task_is_care_or_fairness() -> None:
    m = load("mfv")
    raw = pd.read_json(ROOT / "data/mfv/vignettes_classic_other_violate.jsonl", lines=True)
    expected = raw["foundation_coarse"].isin(["Care", "Fairness"]).astype(int).tolist()
    assert m["gold"].astype(int).tolist() == expected


def test_max_chars_drops_whole_groups() -> None:
    entry = {**fragment()["ethics_virtue"], "max_chars": 90}
    v = load_items(DatasetConfig.from_params("ethics_virtue", entry), ROOT)
    assert 0 < len(v) < 4975
    assert (v["text"].str.len() <= 90).all()
    assert (v.groupby("consistency_id").size() == 5).all()


def test_machiavelli_absent_is_one_line() -> None:
    cfg = DatasetConfig.from_params("machiavelli", fragment()["machiavelli"])
    with pytest.raises(DataError) as err:
        load_items(cfg, ROOT)
    assert str(err.value) == (
        "dataset 'machiavelli': data/machiavelli/ is absent (the data is on the Hugging Face hub as "
        "wassname/machiavelli, unreachable offline); download it there and set datasets.machiavelli.path"
    )


def test_machiavelli_local_copy(tmp_path: Path, private_cache: None) -> None:
    rows = [
        {
            "f": "game",
            "row_i": 0,
            "obs": "You stand at the gate.\n0: Bribe the guard\n1: Wait",
            "choice_text": {"0": "Bribe the guard", "1": "Wait"},
            "choice_labels": {
                "0": {"morality_deception": 1.0, "agg_power": 10},
                "1": {"morality_deception": 0.0},
            },
        },
        {
            "f": "game",
            "row_i": 1,
            "obs": "A [i]quiet[/i] road.\n0: Walk on",
            "choice_text": {"0": "Walk on"},
            "choice_labels": {"0": None},
        },
    ]
    folder = tmp_path / "machiavelli"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = DatasetConfig.from_params("machiavelli", {"path": str(folder)})
    items = load_items(cfg, tmp_path)
    assert items["text"].tolist() == [
        "Scene: You stand at the gate.\nAction: Bribe the guard",
        "Scene: You stand at the gate.\nAction: Wait",
    ]
    assert items["gold"].tolist() == [1, 0]
    assert items["consistency_id"].tolist() == [0, 0]


def test_missing_builtin_file(tmp_path: Path) -> None:
    cfg = DatasetConfig.from_params("mfv", {})
    with pytest.raises(DataError, match=r"data file data/mfv/.*not found .*set datasets\.mfv\.path"):
        load_items(cfg, tmp_path)


# ----------------------------------------------------------------------------------------- config


def test_from_params_defaults_come_from_the_builtin() -> None:
    cfg = DatasetConfig.from_params("gsm8k", {})
    assert cfg.source == "builtin" and cfg.builtin == "gsm8k"
    assert cfg.path == "data/icm/test_gsm8k.json"
    assert cfg.consistency == "same_answer_same_label"
    assert cfg.max_chars is None and cfg.short_only is False


def test_from_params_unknown_key() -> None:
    with pytest.raises(DataError, match=r"datasets\.ethics\.shortonly: unknown key 'shortonly'; did you mean"):
        DatasetConfig.from_params("ethics", {"builtin": "ethics_commonsense", "shortonly": True})


def test_unknown_builtin_lists_known_ones() -> None:
    with pytest.raises(DataError, match=r"unknown builtin 'ethics_utilitarianism'; known builtins: .*ethics_virtue"):
        DatasetConfig.from_params("u", {"source": "builtin", "builtin": "ethics_utilitarianism"})


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        ({"consistency": "at_least_one"}, r"datasets\.d\.consistency: 'at_least_one' is not allowed"),
        ({"source": "web"}, r"datasets\.d\.source: 'web' is not allowed"),
        ({"max_chars": 0}, r"datasets\.d\.max_chars: 0 is less than the minimum of 1"),
        ({"source": "file", "path": "x.csv", "label_meaning": "true"}, r"needs datasets\.d\.text_column"),
        ({"source": "file", "text_column": "t", "label_meaning": "true"}, r"needs datasets\.d\.path"),
        ({"source": "file", "path": "x.csv", "text_column": "t"}, r"datasets\.d: 'label_meaning' is a required"),
    ],
)
def test_from_params_rejects(entry: dict[str, Any], pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        DatasetConfig.from_params("d", {"builtin": "mfv", **entry})


# ----------------------------------------------------------------------------------------- file / hub

OWN = pd.DataFrame(
    {
        "statement": ["The sky is blue.", "Fire is cold.", "Water is wet.", "Ice is hot.", "Snow is white."],
        "verdict": ["yes", "no", "yes", "no", None],
        "q": ["sky", "fire", "sky", "fire", "snow"],
    }
)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_file_source_with_column_mapping(tmp_path: Path, private_cache: None, fmt: str) -> None:
    path = tmp_path / f"own.{fmt}"
    if fmt == "csv":
        OWN.to_csv(path, index=False)
    elif fmt == "jsonl":
        OWN.to_json(path, orient="records", lines=True)
    else:
        OWN.to_parquet(path)
    cfg = DatasetConfig.from_params(
        "own",
        {
            "source": "file",
            "path": path.name,
            "text_column": "statement",
            "label_column": "verdict",
            "positive_values": ["yes"],
            "consistency_column": "q",
            "label_meaning": "the statement is true",
        },
    )
    items = load_items(cfg, tmp_path)
    validate_items(items)
    assert items["text"].tolist() == OWN["statement"].tolist()
    assert items["gold"].tolist() == [1, 0, 1, 0, pd.NA]
    assert items["consistency_id"].tolist() == [0, 1, 0, 1, 2]
    assert items["source_row"].tolist() == [0, 1, 2, 3, 4]


def test_file_source_without_labels_and_with_errors(tmp_path: Path, private_cache: None) -> None:
    OWN.to_csv(tmp_path / "own.csv", index=False)
    base = {"source": "file", "path": "own.csv", "text_column": "statement", "label_meaning": "true"}
    items = load_items(DatasetConfig.from_params("own", base), tmp_path)
    assert items["gold"].isna().all() and items["consistency_id"].isna().all()
    with pytest.raises(DataError, match=r"has no column 'truth' .*fix datasets\.own\.\*_column"):
        load_items(DatasetConfig.from_params("own", {**base, "label_column": "truth"}), tmp_path)
    with pytest.raises(DataError, match=r"no value of column 'verdict' is in positive_values"):
        load_items(DatasetConfig.from_params("own", {**base, "label_column": "verdict"}), tmp_path)
    with pytest.raises(DataError, match=r"data file gone\.csv not found"):
        load_items(DatasetConfig.from_params("own", {**base, "path": "gone.csv"}), tmp_path)


def test_hub_failure_is_one_quick_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Couldn't reach 'user/claims' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(hf_datasets, "load_dataset", offline)
    cfg = DatasetConfig.from_params(
        "claims",
        {
            "source": "hub",
            "hub_path": "user/claims",
            "text_column": "text",
            "label_meaning": "the claim is true",
        },
    )
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load_items(cfg, ROOT)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("dataset 'claims': could not reach the Hugging Face hub for 'user/claims' (ConnectionError")
    assert msg.endswith("download it and use source: file with path: data/<file>")


# ----------------------------------------------------------------------------------------- subsample


def test_subsample_is_deterministic_and_ordered() -> None:
    items = load("ethics")
    a = subsample(items, 75, seed=0)
    b = subsample(items, 75, seed=0)
    c = subsample(items, 75, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert a["source_row"].tolist() != c["source_row"].tolist()
    validate_items(a)
    assert a["item_id"].tolist() == list(range(75))
    assert a["source_row"].is_monotonic_increasing  # original order kept (no groups to shuffle)
    # not stratified by gold: an ordinary subsample never reads it (tests/test_gold_rule.py)
    texts = dict(zip(items["source_row"], items["text"], strict=True))
    assert all(texts[r] == t for r, t in zip(a["source_row"], a["text"], strict=True))


def test_subsample_positive_fraction() -> None:
    items = load("ethics")
    s = subsample(items, 100, seed=3, positive_fraction=0.2)
    assert len(s) == 100 and int(s["gold"].sum()) == 20
    everything = subsample(items, None, seed=3, positive_fraction=0.2)
    assert int(everything["gold"].sum()) == round(0.2 * len(everything))
    assert len(everything) - int(everything["gold"].sum()) <= 2109 - 983
    with pytest.raises(DataError, match=r"has no gold labels"):
        subsample(load("daily_dilemmas"), 10, seed=0, positive_fraction=0.2)


def test_subsample_none_keeps_all() -> None:
    items = load("mfv")
    pd.testing.assert_frame_equal(subsample(items, None, seed=0), items)


def test_subsample_too_large() -> None:
    with pytest.raises(DataError) as err:
        subsample(load("ethics"), 5000, seed=0, run="ethics")
    assert str(err.value) == (
        "run asks for n=5000 but dataset 'ethics' has 2109 items after filters; lower runs.ethics.n"
    )


def test_subsample_keeps_groups_whole() -> None:
    v = load("ethics_virtue")
    s = subsample(v, 100, seed=0)
    sizes = s.groupby("consistency_id").size()
    assert len(s) == 100 and (sizes == 5).all()
    assert (s.groupby("consistency_id")["gold"].sum() == 1).all()
    g = subsample(load("gsm8k"), 75, seed=0)  # blocks of 4: 72 items, never a split group
    assert len(g) == 72 and (g.groupby("consistency_id").size() == 4).all()
    assert g["item_id"].tolist() == list(range(72))


def test_subsample_groups_with_stress_fraction() -> None:
    t = subsample(load("truthfulqa"), 400, seed=0, positive_fraction=0.2)
    assert len(t) == 400 and int(t["gold"].sum()) == 80
    assert (t.groupby("consistency_id").size() == 4).all()
    # GSM8K has no group without a correct solution: best effort is one per group
    g = subsample(load("gsm8k"), 400, seed=0, positive_fraction=0.2)
    assert len(g) == 400 and int(g["gold"].sum()) == 100


@settings(max_examples=40, deadline=None)
@given(
    gold=st.lists(st.sampled_from([0, 1, None]), min_size=1, max_size=60),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_subsample_property(gold: list[int | None], frac: float, seed: int) -> None:
    items = pd.DataFrame(
        {
            "item_id": np.arange(len(gold), dtype=np.int64),
            "text": [f"item {i}" for i in range(len(gold))],
            "gold": pd.array(gold, dtype="Int8"),
            "consistency_id": pd.array([None] * len(gold), dtype="Int64"),
            "source_row": np.arange(len(gold), dtype=np.int64) * 2,
        }
    )
    n = max(1, round(frac * len(gold)))
    s = subsample(items, n, seed)
    validate_items(s)
    assert len(s) == n and s["source_row"].is_monotonic_increasing
    pd.testing.assert_frame_equal(s, subsample(items, n, seed))
    flipped = items.assign(gold=pd.array(gold[::-1], dtype="Int8"))  # other gold, same rows: the same sample
    assert subsample(flipped, n, seed)["source_row"].tolist() == s["source_row"].tolist()


# ----------------------------------------------------------------------------------------- validate


def test_validate_items_rejects_bad_tables() -> None:
    good = load("mfv").head(5).copy()
    validate_items(good)
    bad_gold = good.copy()
    bad_gold["gold"] = pd.array([0, 1, 2, 0, 1], dtype="Int8")
    with pytest.raises(DataError, match=r"gold must be 0, 1 or <NA>; found \[0, 1, 2\]"):
        validate_items(bad_gold)
    with pytest.raises(DataError, match=r"item_id must be 0\.\.n-1"):
        validate_items(good.assign(item_id=[0, 1, 2, 3, 3]))
    with pytest.raises(DataError, match=r"text is empty .* at item_id 2"):
        validate_items(good.assign(text=["a", "b", " ", "d", "e"]))
    with pytest.raises(DataError, match=r"must start with columns"):
        validate_items(good.drop(columns=["source_row"]))
    with pytest.raises(DataError, match=r"gold must be a nullable integer"):
        validate_items(good.assign(gold=[0.5, 1.0, 0.0, 1.0, 0.0]))
