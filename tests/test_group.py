"""Grouping invariants: sizes, coverage, anchors, a different grouping per round, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from elicit.group import GroupConfig, GroupError, check_groups, make_groups


def blobs(n: int, dim: int = 16, centres: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pairs(groups: pd.DataFrame, r: int) -> set[tuple[int, int]]:
    own = groups[(groups["round"] == r) & ~groups["is_anchor"]]
    out: set[tuple[int, int]] = set()
    for _, g in own.groupby("group_id"):
        out.update(itertools.combinations(sorted(g["item_id"]), 2))
    return out


@pytest.mark.parametrize("n", [1, 5, 11, 73, 400])
def test_every_item_in_a_group_each_round_and_sizes_bounded(n: int) -> None:
    cfg = GroupConfig(size=10, n_anchors=2, overlap=2)
    groups = make_groups(blobs(n), cfg, rounds=2, seed=0)
    check_groups(groups, n, 2)
    sizes = groups.groupby(["round", "group_id"]).size()
    assert sizes.max() <= cfg.size
    assert not groups.duplicated(["round", "group_id", "item_id"]).any()


def test_anchors_are_global_and_in_every_group() -> None:
    groups = make_groups(blobs(120), GroupConfig(size=10, n_anchors=3, overlap=2), rounds=2, seed=1)
    anchors = groups[groups["is_anchor"]]
    assert anchors["item_id"].nunique() == 3
    n_groups = groups.groupby("round")["group_id"].nunique().sum()
    assert len(anchors) == 3 * n_groups
    own = groups[~groups["is_anchor"]]
    assert not set(anchors["item_id"]) & set(own["item_id"])


def test_groups_overlap_and_rounds_differ() -> None:
    groups = make_groups(blobs(200), GroupConfig(), rounds=3, seed=0)
    own = groups[~groups["is_anchor"]]
    per_round_counts = own.groupby(["round", "item_id"]).size()
    assert (per_round_counts > 1).any(), "overlap should put some items in two groups"
    p1, p2, p3 = pairs(groups, 1), pairs(groups, 2), pairs(groups, 3)
    assert p1 != p2 and p2 != p3 and p1 != p3


def test_groups_are_similar_items() -> None:
    x = blobs(300, centres=5, seed=3)
    groups = make_groups(x, GroupConfig(), rounds=1, seed=0)
    within = np.mean([float(x[a] @ x[b]) for a, b in pairs(groups, 1)])
    rng = np.random.default_rng(0)
    random_pairs = rng.integers(0, 300, size=(2000, 2))
    between = float(np.mean(np.sum(x[random_pairs[:, 0]] * x[random_pairs[:, 1]], axis=1)))
    assert within > between + 0.2


def test_deterministic_and_seed_dependent() -> None:
    x = blobs(150)
    a = make_groups(x, GroupConfig(), rounds=2, seed=4)
    b = make_groups(x, GroupConfig(), rounds=2, seed=4)
    c = make_groups(x, GroupConfig(), rounds=2, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(GroupError, match="group.size"):
        GroupConfig.from_params({"size": 4, "n_anchors": 2, "overlap": 2})
    with pytest.raises(GroupError, match="group.sise: unknown key 'sise'; did you mean 'size'"):
        GroupConfig.from_params({"sise": 10})
    with pytest.raises(GroupError, match="no items"):
        make_groups(np.zeros((0, 4), dtype=np.float32), GroupConfig(), rounds=2, seed=0)
