"""Seeded subsampling of an items table to a run's ``n`` (whole consistency groups; optional stress fractions)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from elicit.datasets.items import DataError, is_null

log = logging.getLogger(__name__)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _fill_groups(comp: np.ndarray, order: np.ndarray, chosen: np.ndarray, share: np.ndarray, room: int) -> int:
    """Greedily add the whole group that keeps the class mix closest to ``share`` (ties: the seeded order).

    Used for stress fractions over groups (a random walk would spend the label-1 budget on label-1-heavy
    groups first) and to top up the walk. Mutates ``chosen``; returns the room left.
    """
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    sizes = comp.sum(axis=1)
    taken = comp[chosen].sum(axis=0)
    while room > 0:
        cand = np.flatnonzero(~chosen & (sizes <= room))
        if len(cand) == 0:
            break
        after = taken + comp[cand]
        dev = np.abs(after - np.outer(after.sum(axis=1), share)).sum(axis=1)
        u = cand[np.lexsort((rank[cand], np.round(dev, 9)))[0]]
        chosen[u] = True
        taken += comp[u]
        room -= int(sizes[u])
    return room


GROUP_ORDER_STREAM = 1
"""The order within consistency groups is drawn from ``numpy.random.default_rng([seed, GROUP_ORDER_STREAM])``: a
stream of its own, so a group's order does not depend on which units the sample drew."""


def _units(cid: pd.Series) -> np.ndarray:
    """The unit of each row: a whole consistency group, or the row alone where consistency_id is null."""
    keys = [f"g{c}" if not is_null(c) else f"s{i}" for i, c in enumerate(cid.tolist())]
    unit_of, _ = pd.factorize(pd.Series(keys, dtype="object"))
    return np.asarray(unit_of, dtype=np.int64)


def _walk(comp: np.ndarray, order: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, int]:
    """Take, in ``order``, every unit whose rows (``comp[u]``, per class) still fit the per-class ``targets``;
    return the chosen units and the room left (targets not filled)."""
    chosen = np.zeros(len(comp), dtype=bool)
    remaining = targets.copy()
    room = int(targets.sum())
    for u in order:
        size = int(comp[u].sum())
        if size <= room and (comp[u] <= remaining).all():
            chosen[u] = True
            remaining -= comp[u]
            room -= size
            if room == 0:
                break
    return chosen, room


def group_order(rows: np.ndarray, cid: pd.Series, seed: int) -> np.ndarray:
    """``rows`` (positions into a table whose consistency ids are ``cid``, in file order) with each consistency
    group's rows put in a seeded random order among the group's own positions; rows without a group stay put.

    Files list a group's members in an order that predicts gold (GSM8K: the correct solution first in every
    group; ETHICS virtue: the true trait first in 82 % of blocks), so file order would hand every stage that
    reads items in order a hint. The order comes from the seed alone (``GROUP_ORDER_STREAM``, one key per row of
    the table), never from gold, and is the same whatever ``n`` drew the group.
    """
    keys = np.random.default_rng([seed, GROUP_ORDER_STREAM]).random(len(cid))
    in_group = cid.iloc[rows].notna().to_numpy()
    out = np.array(rows, dtype=np.int64, copy=True)
    if in_group.any():
        slots = np.flatnonzero(in_group)
        members = out[in_group]
        group = cid.iloc[members].to_numpy(dtype=np.int64)
        # each group's slots in file order receive the group's members in key order
        out[slots[np.lexsort((slots, group))]] = members[np.lexsort((keys[members], group))]
    return out


def subsample(
    items: pd.DataFrame,
    n: int | None,
    seed: int,
    positive_fraction: float | None = None,
    *,
    dataset: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """Seeded subsample of ``n`` items, whole consistency groups at a time; the sample gets item_id 0..n-1.

    - Without ``positive_fraction`` gold is never read (DESIGN.md's gold rule: an ordinary subsample never looks
      at gold): units (a whole consistency group, or a single row where consistency_id is null) are walked in a
      seeded random order (``numpy.random.default_rng(seed)``) and each one that still fits in ``n`` is taken,
      so single rows are a uniform random sample and groups are never split. When groups cannot add up to n
      exactly (blocks of 4, n=75) the sample has fewer than n items (72), never more. ``n=None`` keeps every
      item. The same inputs always give the same rows, whatever their gold.
    - ``positive_fraction`` (stress subsampling, dataset construction by ``load`` only; the one case that reads
      gold): draw round(n*f) label-1 items (rounded half up) and the rest label 0; items without gold are left
      out. ``n=None`` then means the largest sample with that fraction. Single rows: a seeded walk that takes
      each row its class still has room for (exact). Groups: the group that keeps the class mix closest to f,
      repeatedly (a walk would spend the label-1 budget on label-1-heavy groups first), so a stress sample
      favours groups whose own mix is near f (GSM8K has no group without a correct solution: f=0.2, n=400 gives
      100 label-1 items, 0.25); stratification is then approximate.
    - Order: the chosen rows keep the file's order, except within a consistency group, whose rows are shuffled
      by the seed (:func:`group_order`).
    - ``source_row`` keeps provenance; ``dataset``/``run`` only name things in error messages.
    """
    name = dataset or items.attrs.get("dataset", "?")
    n_key = f"runs.{run or '<run>'}.n"
    pool = items
    if positive_fraction is not None:
        if not 0.0 < positive_fraction < 1.0:
            raise DataError(f"positive_fraction must be between 0 and 1 (exclusive), got {positive_fraction}")
        if items["gold"].isna().all():
            raise DataError(
                f"dataset '{name}' has no gold labels, so positive_fraction cannot be applied; "
                f"remove runs.{run or '<run>'}.positive_fraction"
            )
        pool = items[items["gold"].notna().to_numpy()]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise DataError(f"run asks for n={n!r}; {n_key} must be a positive integer or null")
    avail = len(pool)
    if n is not None and n > avail:
        after = " with gold" if positive_fraction is not None else ""
        raise DataError(
            f"run asks for n={n} but dataset '{name}' has {avail} items{after} after filters; lower {n_key}"
        )

    cid = pool["consistency_id"]
    unit_of = _units(cid)
    n_units = int(unit_of.max()) + 1
    order = np.random.default_rng(seed).permutation(n_units)
    if positive_fraction is None:
        if n is None:
            chosen, room = np.ones(n_units, dtype=bool), 0
        else:  # one class, "any item": the walk never sees gold
            chosen, room = _walk(np.bincount(unit_of, minlength=n_units)[:, None], order, np.array([n]))
    else:
        n, chosen, room = _stress(pool, unit_of, order, n, positive_fraction, name, run)
    rows = np.flatnonzero(chosen[unit_of])
    if len(rows) == 0:
        raise DataError(f"run asks for n={n} but no consistency group of dataset '{name}' is that small; raise {n_key}")
    if room > 0:
        took = len(rows)
        log.warning(
            "dataset '%s': took %d whole-group items for n=%d (groups cannot be split)", name, took, took + room
        )
    rows = group_order(rows, cid, seed)
    out = pool.iloc[rows].reset_index(drop=True).copy()
    out["item_id"] = np.arange(len(out), dtype=np.int64)
    out.attrs["dataset"] = name
    return out


def _stress(
    pool: pd.DataFrame,
    unit_of: np.ndarray,
    order: np.ndarray,
    n: int | None,
    f: float,
    name: str,
    run: str | None,
) -> tuple[int, np.ndarray, int]:
    """The units of a ``positive_fraction`` sample (see :func:`subsample`): (n, chosen units, room left)."""
    gold = pool["gold"]
    cls = gold.to_numpy(dtype=np.int64)  # the pool holds only rows with gold
    counts = np.bincount(cls, minlength=2)
    if n is None:
        n = int(min(counts[1] / f, counts[0] / (1 - f)))
        while n > 0 and (_round_half_up(n * f) > counts[1] or n - _round_half_up(n * f) > counts[0]):
            n -= 1
        if n == 0:
            raise DataError(f"dataset '{name}' cannot give positive_fraction={f}; it has {counts.tolist()[:2]}")
    n1 = _round_half_up(n * f)
    targets = np.array([n - n1, n1], dtype=np.int64)
    comp = np.zeros((len(order), 2), dtype=np.int64)
    np.add.at(comp, (unit_of, cls), 1)
    if pool["consistency_id"].notna().any():
        chosen = np.zeros(len(order), dtype=bool)
        return n, chosen, _fill_groups(comp, order, chosen, targets / max(n, 1), n)
    for c, label in ((0, "label-0"), (1, "label-1")):
        if targets[c] > counts[c]:
            raise DataError(
                f"run asks for {targets[c]} {label} items (n={n}, positive_fraction={f}) "
                f"but dataset '{name}' has {counts[c]}; lower runs.{run or '<run>'}.n or "
                f"runs.{run or '<run>'}.positive_fraction"
            )
    chosen, room = _walk(comp, order, targets)
    return n, chosen, room
