"""Rules 1-3 of a few-shot round's plan (:func:`elicit.plan.plan_round`): how many oracle calls a round spends, and
where — each item's home group, how many queries it gets, how many of them are flip twins, and which base query and
which shown position each twin flips.

Apart from :mod:`elicit.plan` (which checks the inputs and assembles the rows) and :mod:`elicit.plan_context` (what a
query shows) so that the budget reads in one place. Each function takes its own random stream, so the rules stay
independent of each other as the module docstring of :mod:`elicit.plan` says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from elicit.plan import BudgetConfig


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(l) for each l (0..l-1 within each segment)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def home_groups(members: np.ndarray, g_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rule 1: each item's home group (index into the round's groups), drawn uniformly among the groups it is in.

    ``members``/``g_idx``: one row per (group, item) membership of the round, sorted, covering every item."""
    key = rng.random(len(members))
    by_item = np.lexsort((key, members))
    first = np.r_[True, members[by_item][1:] != members[by_item][:-1]]
    return g_idx[by_item[first]]  # indexed by item_id (every item covered, sorted)


def queries_per_item(
    cfg: BudgetConfig,
    round: int,
    p: np.ndarray,
    members: np.ndarray,
    g_ids: np.ndarray,
    g_idx: np.ndarray,
    g_size: np.ndarray,
    home: np.ndarray,
) -> np.ndarray:
    """Rule 2: ``queries_per_item`` for every item, plus ``adaptive_extra`` (from round 2) for the home targets of
    the most uncertain groups in the shown frame ``p`` (ties: lower group_id first)."""
    q = np.full(len(home), cfg.queries_per_item, dtype=np.int64)
    if cfg.adaptive and round >= 2 and cfg.adaptive_extra > 0:
        n_sel = int(np.floor(cfg.adaptive_fraction * len(g_ids) + 0.5))
        if n_sel > 0:
            unc = 1.0 - np.abs(2.0 * p[members] - 1.0)
            g_unc = np.bincount(g_idx, weights=unc, minlength=len(g_ids)) / g_size
            ranked = np.lexsort((g_ids, -g_unc))
            selected = np.zeros(len(g_ids), dtype=bool)
            selected[ranked[:n_sel]] = True
            q += np.where(selected[home], cfg.adaptive_extra, 0)
    return q


def flip_counts(cfg: BudgetConfig, q: np.ndarray, ctx_len: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rule 3: how many of each item's ``q`` queries are flip twins — systematic allocation in a random item order,
    capped to distinct (base query, position) pairs for a context of length ``ctx_len``."""
    n = len(q)
    flip_order = rng.permutation(n)
    u = rng.random()
    n_flip = np.zeros(n, dtype=np.int64)
    if cfg.flips and cfg.flip_fraction > 0:
        expected = q[flip_order] * cfg.flip_fraction
        cum = np.floor(np.concatenate([[0.0], np.cumsum(expected)]) + u)
        n_flip[flip_order] = np.diff(cum).astype(np.int64)
        cap = (q * ctx_len) // (ctx_len + 1)
        n_flip = np.minimum(n_flip, cap)
    return n_flip


def flip_twins(
    n_flip: np.ndarray, n_base: np.ndarray, b_len: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rule 3: the base query and the flipped position of every flip twin, ``(f_base, f_pos)``: flip m of an item
    copies its base query ``m mod n_base`` and flips position ``(start + m div n_base) mod L`` (``start`` random per
    base query). Base queries are numbered item by item; ``b_len`` is each base query's context length."""
    pos_start = np.floor(rng.random(len(b_len)) * np.maximum(b_len, 1)).astype(np.int64)
    f_item = np.repeat(np.arange(len(n_flip), dtype=np.int64), n_flip)
    f_m = ragged_arange(n_flip)
    item_first_b = np.cumsum(n_base) - n_base
    f_base = item_first_b[f_item] + f_m % n_base[f_item]
    f_pos = (pos_start[f_base] + f_m // n_base[f_item]) % np.maximum(b_len[f_base], 1)
    return f_base, f_pos
