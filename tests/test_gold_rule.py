"""DESIGN.md's gold rule at load: an ordinary subsample never looks at gold, and item order does not hint at it.

- Without ``positive_fraction``, which items a run gets and in which order depend on the seed alone: permuting
  the gold column of the source table leaves the sample's rows and order unchanged.
- Files list a consistency group's members in an order that predicts gold (GSM8K: the correct solution first in
  every group); the sample puts each group's rows in a seeded order, so the position in a group tells nothing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elicit.datasets import DataError, DatasetConfig, load_items, subsample, validate_items

ROOT = Path(__file__).resolve().parents[1]


@cache
def load(name: str) -> pd.DataFrame:
    entry = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"][name]
    return load_items(DatasetConfig.from_params(name, entry), ROOT)


def shuffled_gold(items: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same rows with the gold column permuted."""
    gold = items["gold"].to_numpy(dtype=object)
    return items.assign(gold=pd.array(np.random.default_rng(seed).permutation(gold), dtype="Int8"))


def position_in_group(sample: pd.DataFrame) -> pd.Series:
    return sample.groupby("consistency_id", sort=False).cumcount()


@pytest.mark.parametrize(
    ("dataset", "n"),
    [("ethics", 75), ("ethics", None), ("gsm8k", 75), ("gsm8k", None), ("ethics_virtue", 100), ("truthfulqa", 400)],
)
def test_shuffling_gold_leaves_the_sample_unchanged(dataset: str, n: int | None) -> None:
    items = load(dataset)
    sample = subsample(items, n, seed=3)
    for permutation in (0, 1):
        other = subsample(shuffled_gold(items, permutation), n, seed=3)
        assert other["source_row"].tolist() == sample["source_row"].tolist()  # same items, same order
        pd.testing.assert_frame_equal(other.drop(columns="gold"), sample.drop(columns="gold"))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([0, 1, None]), st.one_of(st.none(), st.integers(0, 6))), min_size=1, max_size=40
    ),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_shuffling_gold_leaves_the_sample_unchanged_property(
    rows: list[tuple[int | None, int | None]], frac: float, seed: int
) -> None:
    gold = [g for g, _ in rows]
    items = pd.DataFrame(
        {
            "item_id": np.arange(len(rows), dtype=np.int64),
            "text": [f"item {i}" for i in range(len(rows))],
            "gold": pd.array(gold, dtype="Int8"),
            "consistency_id": pd.array([c for _, c in rows], dtype="Int64"),
            "source_row": np.arange(len(rows), dtype=np.int64),
        }
    )
    groups = [c for _, c in rows]
    smallest = 1 if None in groups else min(groups.count(c) for c in groups)
    n = min(len(rows), max(smallest, round(frac * len(rows))))  # some unit fits
    sample = subsample(items, n, seed)
    validate_items(sample)
    assert len(sample) <= n
    for other_gold in (gold[::-1], [None if g is None else 1 - g for g in gold]):
        other = subsample(items.assign(gold=pd.array(other_gold, dtype="Int8")), n, seed)
        assert other["source_row"].tolist() == sample["source_row"].tolist()


def test_gsm8k_position_in_a_group_no_longer_predicts_gold() -> None:
    items = load("gsm8k")
    in_file = position_in_group(items)
    assert items["gold"][in_file == 0].eq(1).all()  # the file: the correct solution always first
    sample = subsample(items, None, seed=0)
    position = position_in_group(sample)
    first = sample["gold"][position == 0]
    assert 0 < first.sum() < len(first)  # the correct solution is no longer always first
    rate = sample.groupby(position)["gold"].mean()
    assert len(rate) == 4 and rate.max() - rate.min() < 0.1  # each position: about the overall 0.48
    # correct solutions are spread over the positions (the file: positions 0 and 1 only)
    correct = position[sample["gold"] == 1].value_counts(normalize=True)
    assert set(correct.index) == {0, 1, 2, 3} and correct.min() > 0.2


def test_group_order_is_seeded_gold_free_and_keeps_groups_together() -> None:
    items = load("gsm8k")
    a, b, c = (subsample(items, 400, seed=s) for s in (0, 0, 1))
    pd.testing.assert_frame_equal(a, b)
    assert a["source_row"].tolist() != c["source_row"].tolist()
    validate_items(a)
    cid = a["consistency_id"].to_numpy()
    assert (np.diff(cid) != 0).sum() == a["consistency_id"].nunique() - 1  # each group's rows stay together
    assert not a["source_row"].is_monotonic_increasing  # but not in file order inside a group
    # a group's order comes from the seed alone: the same whatever n drew the group
    full = subsample(items, None, seed=0)
    order = full.groupby("consistency_id", sort=False)["source_row"].apply(list)
    drawn = a.groupby("consistency_id", sort=False)["source_row"].apply(list)
    assert all(order[g] == rows for g, rows in drawn.items())


def test_stress_fraction_still_reads_gold() -> None:
    """positive_fraction is the documented exception: dataset construction by load."""
    items = load("ethics")
    s = subsample(items, 100, seed=3, positive_fraction=0.2)
    assert int(s["gold"].sum()) == 20
    assert subsample(shuffled_gold(items, 0), 100, seed=3, positive_fraction=0.2)["source_row"].tolist() != (
        s["source_row"].tolist()
    )


def test_n_below_every_group_is_one_line() -> None:
    items = load("gsm8k")  # groups of 4
    with pytest.raises(
        DataError,
        match=r"^run asks for n=3 but no consistency group of dataset 'gsm8k' is that small; "
        r"raise runs\.g\.n$",
    ):
        subsample(items, 3, seed=0, run="g")
