"""Seeded subsampling of an items table to a run's ``n`` (whole consistency groups; optional stress fractions)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from elicit.datasets.items import DataError, is_null

log = logging.getLogger(__name__)


def _largest_remainder(n: int, counts: np.ndarray) -> np.ndarray:
    """Split n proportionally to counts into integers summing to n (ties go to the lower index)."""
    total = int(counts.sum())
    exact = n * counts / total
    base = np.floor(exact).astype(np.int64)
    rest = n - int(base.sum())
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


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


def subsample(
    items: pd.DataFrame,
    n: int | None,
    seed: int,
    positive_fraction: float | None = None,
    *,
    dataset: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """Seeded, gold-stratified subsample of ``n`` items; chosen rows keep their order and get item_id 0..n-1.

    - Stratified by gold (classes 0, 1 and <NA>, each drawn in proportion, by largest remainder) with
      ``numpy.random.default_rng(seed)``: the same inputs always give the same rows.
    - ``positive_fraction`` (stress subsampling, dataset construction by ``load`` only): draw round(n*f)
      label-1 items (rounded half up) and the rest label 0; items without gold are left out. ``n=None`` then
      means the largest sample with that fraction. Without it, ``n=None`` keeps every item.
    - Consistency groups: rows sharing a ``consistency_id`` are drawn as a whole (a group is never split), by
      walking the groups in a seeded random order and taking each one that still fits the per-class targets,
      then (best effort) topping up with the groups that keep the class mix closest to the targets. With
      ``positive_fraction`` only that closest-mix rule is used, so a stress sample favours groups whose own
      mix is near f (GSM8K has no group without a correct solution: f=0.2, n=400 gives 100 label-1 items,
      0.25). Stratification is then approximate, and when groups cannot add up to n exactly (blocks of 4,
      n=75) the sample has fewer than n items (72), never more.
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

    gold = pool["gold"]
    cls = np.where(gold.isna().to_numpy(), 2, gold.fillna(0).to_numpy(dtype=np.int64))  # 0, 1, 2 = <NA>
    counts = np.bincount(cls, minlength=3)
    if positive_fraction is not None:
        f = positive_fraction
        if n is None:
            n = int(min(counts[1] / f, counts[0] / (1 - f)))
            while n > 0 and (_round_half_up(n * f) > counts[1] or n - _round_half_up(n * f) > counts[0]):
                n -= 1
            if n == 0:
                raise DataError(f"dataset '{name}' cannot give positive_fraction={f}; it has {counts.tolist()[:2]}")
        n1 = _round_half_up(n * f)
        targets = np.array([n - n1, n1, 0], dtype=np.int64)
    elif n is None:
        out = items.reset_index(drop=True).copy()
        out["item_id"] = np.arange(len(out), dtype=np.int64)
        return out
    else:
        targets = _largest_remainder(n, counts)

    # units: whole consistency groups, or single rows where consistency_id is null
    cid = pool["consistency_id"]
    keys = [f"g{c}" if not is_null(c) else f"s{i}" for i, c in enumerate(cid.tolist())]
    unit_of, _ = pd.factorize(pd.Series(keys, dtype="object"))
    n_units = int(unit_of.max()) + 1
    comp = np.zeros((n_units, 3), dtype=np.int64)
    np.add.at(comp, (unit_of, cls), 1)
    grouped = bool(cid.notna().any())
    if not grouped:
        for c, label in ((0, "label-0"), (1, "label-1")):
            if targets[c] > counts[c]:
                raise DataError(
                    f"run asks for {targets[c]} {label} items (n={n}, positive_fraction={positive_fraction}) "
                    f"but dataset '{name}' has {counts[c]}; "
                    f"lower {n_key} or runs.{run or '<run>'}.positive_fraction"
                )

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_units)
    chosen = np.zeros(n_units, dtype=bool)
    room = int(n)
    if not grouped or positive_fraction is None:
        # a seeded walk taking every unit that fits the per-class targets: exact for single rows, and a random
        # sample of whole groups with about the natural balance
        remaining = targets.copy()
        for u in order:
            size = int(comp[u].sum())
            if size <= room and (comp[u] <= remaining).all():
                chosen[u] = True
                remaining -= comp[u]
                room -= size
                if room == 0:
                    break
    if room > 0 and grouped:
        room = _fill_groups(comp, order, chosen, targets / max(int(n), 1), room)
    if room > 0:
        log.warning("dataset '%s': took %d whole-group items for n=%d (groups cannot be split)", name, n - room, n)
    rows = np.flatnonzero(chosen[unit_of])
    out = pool.iloc[rows].reset_index(drop=True).copy()
    out["item_id"] = np.arange(len(out), dtype=np.int64)
    out.attrs["dataset"] = name
    return out
