"""Overlapping groups of similar items, one grouping per few-shot round, sharing a few global anchors.

Why groups: a few-shot prompt shows the target beside its group's other items, and similar items are the ones whose
labels predict each other (mutual predictability). Why overlap and anchors: they tie groups together, so labels fitted
in one group constrain its neighbours and the whole dataset shares a common reference. Why a new grouping per round:
each round shows every item beside different neighbours, so the evidence is not one fixed clustering's artefact.

Rule (documented in the README):
1. ``n_anchors`` global anchors: k-means with ``n_anchors`` clusters over all items; each centroid's nearest item.
2. The other items are partitioned by k-means into cores of at most ``size - n_anchors - overlap`` items (clusters
   that are too big are cut along their main direction; round r uses ``k + r - 1`` clusters and its own seed, so no
   two rounds share a partition).
3. Each core adds its ``overlap`` nearest outside items (by cosine to the core's centroid), then the anchors.
Every item is in exactly one core per round, so it is in ≥ 1 group per round; groups have ≤ ``size`` items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import SECTION, Int, build, fail, typed

GROUP_COLUMNS = ["round", "group_id", "item_id", "is_anchor"]


class GroupError(ElicitError, ValueError):
    """Bad grouping parameters; one line with the key and the fix."""


@typed("group", GroupError)
@pydantic_dataclass(frozen=True, config=SECTION)
class GroupConfig:
    """params.yaml ``group:``: how items are grouped for few-shot context."""

    size: Int = Field(default=10, ge=2, description="items per group, anchors and overlap included")
    n_anchors: Int = Field(default=2, ge=0, description="global anchor items shown in every group")
    overlap: Int = Field(
        default=2, ge=0, description="items each group borrows from outside its core (nearest to its centroid)"
    )
    minibatch_above: Int = Field(
        default=5000,
        ge=1,
        description="use MiniBatchKMeans above this many items (plain k-means is slow with thousands of clusters)",
    )

    @model_validator(mode="after")
    def _room(self) -> Self:
        if self.size - self.n_anchors - self.overlap < 1:
            fail(
                ("size",),
                f"{self.size} leaves no room for own items after n_anchors={self.n_anchors} and "
                f"overlap={self.overlap}; raise group.size or lower the others",
            )
        return self

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> GroupConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "group", GroupError)


def _kmeans(x: np.ndarray, k: int, seed: int, minibatch_above: int) -> np.ndarray:
    if k <= 1 or len(x) <= 1:
        return np.zeros(len(x), dtype=np.int64)
    from sklearn.cluster import KMeans, MiniBatchKMeans  # here: params checks import this module (GroupConfig)

    k = min(k, len(x))
    if len(x) > minibatch_above:
        model: Any = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return np.asarray(model.fit_predict(x), dtype=np.int64)


def choose_anchors(embeddings: np.ndarray, n_anchors: int, seed: int) -> np.ndarray:
    """Global anchors: the item nearest each of ``n_anchors`` k-means centroids (distinct, sorted ids)."""
    n = len(embeddings)
    if n_anchors == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    n_anchors = min(n_anchors, n)
    labels = _kmeans(embeddings, n_anchors, seed, minibatch_above=10**9)
    anchors: list[int] = []
    for c in range(labels.max() + 1):
        members = np.flatnonzero(labels == c)
        centroid = embeddings[members].mean(axis=0)
        order = members[np.argsort(-(embeddings[members] @ centroid), kind="stable")]
        pick = next((int(i) for i in order if int(i) not in anchors), None)
        if pick is not None:
            anchors.append(pick)
    return np.array(sorted(anchors), dtype=np.int64)


def _split_large(members: np.ndarray, x: np.ndarray, cap: int) -> list[np.ndarray]:
    """Cut a cluster bigger than ``cap`` into contiguous chunks along its main direction (keeps neighbours together)."""
    if len(members) <= cap:
        return [members]
    pts = x[members] - x[members].mean(axis=0)
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    proj = pts @ vt[0]
    ordered = members[np.lexsort((members, proj))]
    n_chunks = math.ceil(len(members) / cap)
    return [chunk for chunk in np.array_split(ordered, n_chunks) if len(chunk)]


def make_groups(embeddings: np.ndarray, cfg: GroupConfig, rounds: int, seed: int) -> pd.DataFrame:
    """Groups for few-shot rounds 1..rounds as a ``groups.parquet`` frame (round, group_id, item_id, is_anchor)."""
    if rounds < 1:
        raise GroupError(f"base.rounds={rounds}: need at least one few-shot round")
    n = len(embeddings)
    if n == 0:
        raise GroupError("no items to group; check the load stage's filters and runs.<run>.n")
    x = np.asarray(embeddings, dtype=np.float64)
    anchors = choose_anchors(x, cfg.n_anchors if n > cfg.size else 0, seed)
    rest = np.setdiff1d(np.arange(n), anchors)
    core = cfg.size - len(anchors) - cfg.overlap
    rows: list[tuple[int, int, int, bool]] = []
    for r in range(1, rounds + 1):
        k = max(1, math.ceil(len(rest) / core)) + (r - 1)
        labels = _kmeans(x[rest], k, seed * 1000 + r, cfg.minibatch_above)
        cores: list[np.ndarray] = []
        for c in np.unique(labels):
            cores.extend(_split_large(rest[labels == c], x, core))
        cores.sort(key=lambda m: int(m.min()))
        for gid, members in enumerate(cores):
            group = [int(i) for i in np.sort(members)]
            if cfg.overlap and len(rest) > len(members):
                centroid = x[members].mean(axis=0)
                outside = np.setdiff1d(rest, members)
                sims = x[outside] @ centroid
                nearest = outside[np.lexsort((outside, -sims))[: cfg.overlap]]
                group.extend(int(i) for i in np.sort(nearest))
            rows.extend((r, gid, i, False) for i in group)
            rows.extend((r, gid, int(a), True) for a in anchors)
    df = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    df = df.astype({"round": "int64", "group_id": "int64", "item_id": "int64", "is_anchor": "bool"})
    return df.sort_values(["round", "group_id", "is_anchor", "item_id"], kind="stable").reset_index(drop=True)


def check_groups(groups: pd.DataFrame, n_items: int, rounds: int) -> None:
    """Invariants every later stage relies on: each item in ≥ 1 group per round, ids in range."""
    for r in range(1, rounds + 1):
        members = set(groups.loc[groups["round"] == r, "item_id"].tolist())
        missing = set(range(n_items)) - members
        if missing:
            raise GroupError(f"round {r}: items {sorted(missing)[:5]} are in no group (bug in grouping)")
