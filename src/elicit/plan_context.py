"""Rules 4-6 of a few-shot round's plan (:func:`elicit.plan.plan_round`): what a query shows — which members of the
target's home group, in which order (:func:`order_context` reproduces it from a query's ``perm_seed``), and the label
shown for each item.

Apart from :mod:`elicit.plan` (which checks the inputs and assembles the rows) and :mod:`elicit.plan_budget` (how
many queries there are) so that what the oracle is shown reads in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from elicit.plan_budget import ragged_arange


def shown_labels(p_true: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Label shown for an item: round(p_true) as int8, a tie at exactly 0.5 shows ``item_id % 2``."""
    p = np.asarray(p_true, dtype=np.float64)
    ids = np.asarray(item_ids, dtype=np.int64)
    return ((p > 0.5) | ((p == 0.5) & (ids % 2 == 1))).astype(np.int8)


def _rank_within(keys_sorted: np.ndarray) -> np.ndarray:
    """Rank of each element within its run of equal keys (keys already sorted)."""
    n = len(keys_sorted)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.r_[True, keys_sorted[1:] != keys_sorted[:-1]]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    return np.arange(n, dtype=np.int64) - start


def draw_context(
    b_item: np.ndarray,
    b_g: np.ndarray,
    b_len: np.ndarray,
    members: np.ndarray,
    g_start: np.ndarray,
    g_size: np.ndarray,
    label: np.ndarray,
    balanced: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Rule 4: the context of each base query, as (base query, item) pairs ``(sel_b, sel_item)`` grouped by base query.

    Base query b (target ``b_item[b]``, home group ``b_g[b]``) shows ``b_len[b]`` other members of its home group
    (``members[g_start[g] : g_start[g] + g_size[g]]``), drawn without replacement. ``balanced`` takes ``L // 2``
    items shown 1 (``label``) and the rest shown 0, a random side getting the odd one, and falls back to the other
    side where one side runs short."""
    n_b = len(b_item)
    pair_b = np.repeat(np.arange(n_b, dtype=np.int64), g_size[b_g])
    pair_item = members[np.repeat(g_start[b_g], g_size[b_g]) + ragged_arange(g_size[b_g])]
    keep = pair_item != b_item[pair_b]
    pair_b, pair_item = pair_b[keep], pair_item[keep]
    pair_key = rng.random(len(pair_b))
    odd_side = rng.integers(0, 2, n_b)
    pair_lab = label[pair_item]
    if balanced:
        order = np.argsort(pair_b * 2 + pair_lab + pair_key, kind="stable")
        pair_b, pair_item, pair_lab = pair_b[order], pair_item[order], pair_lab[order]
        r = _rank_within(pair_b * 2 + pair_lab)
        c1 = np.bincount(pair_b, weights=pair_lab, minlength=n_b).astype(np.int64)
        c0 = np.bincount(pair_b, minlength=n_b).astype(np.int64) - c1
        want1 = b_len // 2 + (b_len % 2) * odd_side
        n1 = np.clip(want1, b_len - c0, c1)
        n0 = b_len - n1
        chosen = r < np.where(pair_lab == 1, n1[pair_b], n0[pair_b])
    else:
        order = np.argsort(pair_b + pair_key, kind="stable")
        pair_b, pair_item = pair_b[order], pair_item[order]
        chosen = _rank_within(pair_b) < b_len[pair_b]
    return pair_b[chosen], pair_item[chosen]


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _order_key(perm_seed: np.ndarray, item_id: np.ndarray) -> np.ndarray:
    """splitmix64(perm_seed << 32 ^ item_id): a per-query random sort key, reproducible from perm_seed."""
    x = (np.asarray(perm_seed, dtype=np.int64).astype(np.uint64) << np.uint64(32)) ^ np.asarray(
        item_id, dtype=np.int64
    ).astype(np.uint64)
    x = x + _M1
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    return x ^ (x >> np.uint64(31))


def order_drawn_context(
    sel_b: np.ndarray, sel_item: np.ndarray, n_b: int, permute: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rule 5: each base query's ``perm_seed`` and the context items of :func:`draw_context` in the order shown,
    ``(perm_seed, sel_item)``: sorted by the splitmix64 key of the query's seed (``permute``), else by item_id with
    ``perm_seed = -1``."""
    perm_seed = rng.integers(0, 2**31, n_b, dtype=np.int64)
    if permute:
        by_key = np.argsort(_order_key(perm_seed[sel_b], sel_item), kind="stable")
        order = by_key[np.argsort(sel_b[by_key], kind="stable")]
    else:
        perm_seed = np.full(n_b, -1, dtype=np.int64)
        by_item = np.argsort(sel_item, kind="stable")
        order = by_item[np.argsort(sel_b[by_item], kind="stable")]
    return perm_seed, sel_item[order]


def order_context(context_ids: Sequence[int] | np.ndarray, perm_seed: int) -> np.ndarray:
    """The order in which a query shows its context items: reproduces ``plan_round`` from ``perm_seed``.

    ``perm_seed == -1`` means no permutation (ascending item_id); otherwise items are sorted by
    ``splitmix64(perm_seed << 32 ^ item_id)`` (a bijection, so no ties), whatever order they are given in.
    """
    ids = np.asarray(context_ids, dtype=np.int64)
    if perm_seed == -1:
        return np.sort(ids)
    key = _order_key(np.full(len(ids), perm_seed, dtype=np.int64), ids)
    return ids[np.argsort(key, kind="stable")]
