"""Plan the oracle calls of a round: zero-shot queries (round 0), few-shot + flip queries (rounds >= 1).

Pure functions on DataFrames; no file I/O and no gold: only ``item_id`` of ``items`` is ever read, so
shuffling or dropping a ``gold`` column cannot change a plan (gold isolation, see DESIGN.md).

Few-shot plan of round r (``plan_round``), the rules in order:

1. **Home group.** An item may sit in several groups of a round (overlap), anchors sit in all of them,
   so each item is a *target* in exactly one group per round, drawn uniformly among its groups; it is
   still shown as context in all of its groups. This keeps the budget per item, not per membership.
2. **Budget.** Each item gets ``queries_per_item`` queries, flip twins included. From round 2 on
   (``adaptive``), groups are ranked by uncertainty = mean over members (anchors included) of
   ``1 - |2 p_true - 1|`` in the shown frame (ties: lower group_id first); the top
   ``round_half_up(adaptive_fraction * n_groups)`` groups give each of their home targets
   ``adaptive_extra`` more queries. Round 1 is never adaptive: its labels are the raw priors.
3. **Flips.** Of an item's ``q`` queries, about ``q * flip_fraction`` are flip twins, allocated by
   systematic sampling over the items in a random order, so the round's total is within 1 of
   ``flip_fraction`` x total; capped so every flip has an unflipped twin and no base query has one
   position flipped twice (``n_flip <= floor(q * L / (L + 1))`` for a context of length L; a target
   with no context gets no flip). The rest are few-shot base queries; flip m of an item copies its
   base query ``m mod n_base`` and flips the shown label at position ``(start + m div n_base) mod L``
   (``start`` random per base query).
4. **Context.** Each base query shows ``L = min(k_context, |group| - 1)`` other members of the target's
   home group (anchors are ordinary candidates), drawn without replacement, independently per query.
   With ``balanced_context`` the draw takes ``L // 2`` items shown 1 and the rest shown 0 (a random
   side gets the odd one) and falls back to the other side where one side runs short.
5. **Order.** With ``permute_order`` each base query draws a ``perm_seed`` in [0, 2**31) and shows its
   context sorted by ``splitmix64(perm_seed << 32 ^ item_id)`` (``plan_context.order_context`` reproduces it);
   otherwise ``perm_seed = -1`` and the context is in ascending item_id.
6. **Shown labels.** ``round(p_true)`` of the shown frame as int8: 1 if p > 0.5, 0 if p < 0.5, and a
   tie at exactly 0.5 shows ``item_id % 2`` (deterministic and balanced; missing priors are 0.5).
7. **Framing and template.** Base queries are counted (c = 0, 1, ...) in the order (target has flips,
   random item rank, j); with ``both_framings`` the c-th uses framing ``c % 2`` (0 = pos) and template
   ``(c // 2) % T``, so an item's consecutive queries alternate framing and both the flipped and the
   unflipped queries are balanced (+-1); without it all are pos and the template is ``c % T``. A flip
   twin shares its base query's framing, template, context and order.

Rules 1-3 (the budget) are :mod:`elicit.plan_budget`, rules 4-6 (what a query shows) :mod:`elicit.plan_context`;
this module checks the inputs, applies rule 7 and assembles the rows.

Query ids: ``r{round}-g{group}-t{target}-q{j}``; flip ``...-q{j}-f{flipped_pos}``; zero-shot
``r{round}-t{target}-{framing}-{template}``. Randomness: independent streams spawned from
``SeedSequence([seed, round])`` per rule, so switching one ablation changes as little else as possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import SECTION, Bool, Float, Int, build, typed
from elicit.plan_budget import flip_counts, flip_twins, home_groups, queries_per_item, ragged_arange
from elicit.plan_context import draw_context, order_drawn_context, shown_labels
from elicit.prompts import FRAMINGS

QUERY_PLAN_COLUMNS: tuple[str, ...] = (
    "query_id",
    "round",
    "group_id",
    "target_id",
    "kind",
    "framing",
    "template_id",
    "context_ids",
    "context_shown",
    "perm_seed",
    "flipped_pos",
    "flip_of",
)
"""Columns of a planned query row (the query-row schema before the oracle adds its answer columns)."""

QUERY_PLAN_SCHEMA = pa.schema(
    [
        ("query_id", pa.large_string()),
        ("round", pa.int64()),
        ("group_id", pa.int64()),
        ("target_id", pa.int64()),
        ("kind", pa.large_string()),
        ("framing", pa.large_string()),
        ("template_id", pa.large_string()),
        ("context_ids", pa.list_(pa.int64())),
        ("context_shown", pa.list_(pa.int8())),
        ("perm_seed", pa.int64()),
        ("flipped_pos", pa.int64()),
        ("flip_of", pa.large_string()),
    ]
)
"""Arrow types that ``pa.Table.from_pandas`` infers for a plan frame (asserted by the tests)."""

FEW_SHOT, FLIP = "few_shot", "flip"
FEW_SHOT_KINDS: tuple[str, ...] = (FEW_SHOT, FLIP)
"""Query kinds of a few-shot round (rounds >= 1): a base query and its flip twin, the rows that become tuples."""


class PlanError(ElicitError, ValueError):
    """Bad budget value or bad plan input; the message is one line naming the key and the fix."""


@typed("budget", PlanError)
@pydantic_dataclass(frozen=True, config=SECTION)
class BudgetConfig:
    """params.yaml ``budget:``: how many oracle calls a few-shot round spends, and the ablation switches."""

    k_context: Int = Field(
        default=4,
        ge=1,
        description="context items shown per few-shot query (the embedded server costs ~0.4 s per shown item)",
    )
    queries_per_item: Int = Field(
        default=2, ge=1, description="oracle calls per item per few-shot round, flip twins included"
    )
    flip_fraction: Float = Field(
        default=0.25, ge=0, lt=1, description="share of those calls that are flip twins (one shown label flipped)"
    )
    adaptive: Bool = Field(default=True, description="from round 2, give the most uncertain groups extra calls")
    adaptive_fraction: Float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="share of groups (most uncertain by mean 1 - |2p - 1|) that get the extra calls",
    )
    adaptive_extra: Int = Field(default=1, ge=0, description="extra calls per target item of a selected group")
    permute_order: Bool = Field(
        default=True,
        description="random context order per query (identifies position bias); false: ascending item_id",
    )
    both_framings: Bool = Field(
        default=True,
        description=(
            "alternate pos/neg framings (identifies acquiescence); false: pos only, the zero-shot round too (for "
            "templates without a negated question)"
        ),
    )
    flips: Bool = Field(
        default=True, description="plan flip twins (identify label copying and coupling); false: no flips"
    )
    balanced_context: Bool = Field(
        default=False,
        description="draw context so shown labels are balanced where the group allows; false: uniform draw",
    )

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> BudgetConfig:
        """Build from the ``budget:`` mapping; missing keys take the defaults, unknown keys are an error."""
        return build(cls, {} if d is None else d, "budget", PlanError)

    @property
    def framings(self) -> tuple[str, ...]:
        """The framings the run's own rounds ask (zero-shot included): both, or pos only."""
        return FRAMINGS if self.both_framings else ("pos",)


# --------------------------------------------------------------------------------------------- helpers


def _item_ids(items: pd.DataFrame) -> np.ndarray:
    """The item ids 0..N-1 (checked); reads nothing but ``item_id``."""
    if "item_id" not in items.columns:
        raise PlanError("items has no item_id column; pass items.parquet as written by the load stage")
    ids = np.sort(np.asarray(items["item_id"], dtype=np.int64))
    if not np.array_equal(ids, np.arange(len(ids), dtype=np.int64)):
        raise PlanError("items.item_id must be exactly 0..N-1 without gaps or repeats; rebuild items.parquet")
    return ids


def _check_templates(templates: Sequence[str]) -> list[str]:
    out = [str(t) for t in templates]
    if not out:
        raise PlanError("templates is empty; give at least one template id (see the dataset's templates)")
    if len(set(out)) != len(out) or any(not t or any(c.isspace() for c in t) for t in out):
        raise PlanError(f"template ids must be unique, non-empty and without spaces; got {out!r}")
    return out


def _shown_p(shown: pd.DataFrame, n: int) -> np.ndarray:
    """p_true indexed by item_id; every item exactly once, finite, in [0, 1]."""
    if not {"item_id", "p_true"} <= set(shown.columns):
        raise PlanError("shown labels need columns item_id, p_true (priors for round 1, round{r-1}/fit.parquet)")
    ids = np.asarray(shown["item_id"], dtype=np.int64)
    p = pd.to_numeric(shown["p_true"]).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if len(ids) != n or not np.array_equal(np.sort(ids), np.arange(n)):
        raise PlanError(f"shown labels must list every item 0..{n - 1} exactly once; rebuild the previous fit")
    if not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
        raise PlanError("shown p_true must be finite and in [0, 1] for every item; rebuild the previous fit")
    out = np.empty(n, dtype=np.float64)
    out[ids] = p
    return out


def _membership(groups: pd.DataFrame, rnd: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(group_id, item_id) rows of one round, sorted, unique, covering every item."""
    need = {"round", "group_id", "item_id"}
    if not need <= set(groups.columns):
        raise PlanError(f"groups needs columns {sorted(need)}; pass groups.parquet from the group stage")
    sel = np.asarray(groups["round"], dtype=np.int64) == rnd
    gid = np.asarray(groups["group_id"], dtype=np.int64)[sel]
    it = np.asarray(groups["item_id"], dtype=np.int64)[sel]
    if len(it) == 0:
        raise PlanError(f"groups has no rows for round {rnd}; run the group stage with at least {rnd} rounds")
    if it.min() < 0 or it.max() >= n:
        raise PlanError(f"groups of round {rnd} name item ids outside 0..{n - 1}; regroup these items")
    order = np.lexsort((it, gid))
    gid, it = gid[order], it[order]
    if np.any((gid[1:] == gid[:-1]) & (it[1:] == it[:-1])):
        raise PlanError(f"groups of round {rnd} list an item twice in one group; fix the group stage")
    covered = np.zeros(n, dtype=bool)
    covered[it] = True
    if not covered.all():
        missing = int(np.flatnonzero(~covered)[0])
        raise PlanError(f"item {missing} is in no group of round {rnd}; every item needs >= 1 group per round")
    return gid, it


def _lists(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Object array of per-row numpy arrays (the form pandas reads Parquet list columns in)."""
    arr = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
    return np.asarray(arr.to_pandas(), dtype=object)


def _frame(cols: dict[str, Any]) -> pd.DataFrame:
    """Plan frame with the plan's dtypes (str columns, int64 numbers, nullable str flip_of)."""
    df = pd.DataFrame(
        {
            "query_id": pd.Series(cols["query_id"], dtype="str"),
            "round": np.asarray(cols["round"], dtype=np.int64),
            "group_id": np.asarray(cols["group_id"], dtype=np.int64),
            "target_id": np.asarray(cols["target_id"], dtype=np.int64),
            "kind": pd.Series(cols["kind"], dtype="str"),
            "framing": pd.Series(cols["framing"], dtype="str"),
            "template_id": pd.Series(cols["template_id"], dtype="str"),
            "context_ids": pd.Series(cols["context_ids"], dtype=object),
            "context_shown": pd.Series(cols["context_shown"], dtype=object),
            "perm_seed": np.asarray(cols["perm_seed"], dtype=np.int64),
            "flipped_pos": np.asarray(cols["flipped_pos"], dtype=np.int64),
            "flip_of": pd.Series(cols["flip_of"], dtype="str"),
        }
    )
    return df.reset_index(drop=True)


def _strs(values: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(values)).astype("str")


# --------------------------------------------------------------------------------------------- round 0


def zero_shot_queries(
    items: pd.DataFrame, templates: Sequence[str], round: int = 0, framings: Sequence[str] = FRAMINGS
) -> pd.DataFrame:
    """Round-0 plan: every item x each framing (both by default) x each template, no context (the priors' raw
    material).

    Both framings for every item so that averaging them cancels acquiescence (``framings=("pos",)`` only for runs
    whose templates have no negated question: :meth:`BudgetConfig.framings`); rows sorted by (target, template
    order, pos before neg).
    """
    tpl = _check_templates(templates)
    if isinstance(round, bool) or round < 0:
        raise PlanError(f"round = {round!r}: zero-shot queries need a round >= 0 (0 by convention)")
    if not framings or any(f not in FRAMINGS for f in framings) or len(set(framings)) != len(framings):
        raise PlanError(f"framings = {list(framings)!r}: use [pos, neg] or [pos]")
    ids = _item_ids(items)
    n, t, k = len(ids), len(tpl), len(framings)
    target = np.repeat(ids, t * k)
    tpl_idx = np.tile(np.repeat(np.arange(t), k), n)
    fr_idx = np.tile(np.arange(k), n * t)
    framing = np.asarray(sorted(framings, key=FRAMINGS.index), dtype=object)[fr_idx]
    template_id = np.asarray(tpl, dtype=object)[tpl_idx]
    m = len(target)
    qid = f"r{round}-t" + _strs(target) + "-" + _strs(framing) + "-" + _strs(template_id)
    empty_offsets = np.zeros(m + 1, dtype=np.int64)
    return _frame(
        {
            "query_id": qid.to_numpy(),
            "round": np.full(m, round),
            "group_id": np.full(m, -1),
            "target_id": target,
            "kind": np.full(m, "zero_shot", dtype=object),
            "framing": framing,
            "template_id": template_id,
            "context_ids": _lists(empty_offsets, np.zeros(0, dtype=np.int64)),
            "context_shown": _lists(empty_offsets, np.zeros(0, dtype=np.int8)),
            "perm_seed": np.full(m, -1),
            "flipped_pos": np.full(m, -1),
            "flip_of": np.full(m, None, dtype=object),
        }
    )


# --------------------------------------------------------------------------------------------- rounds >= 1


def plan_round(
    items: pd.DataFrame,
    groups: pd.DataFrame,
    shown: pd.DataFrame,
    round: int,
    cfg: BudgetConfig,
    seed: int,
    templates: Sequence[str],
) -> pd.DataFrame:
    """Few-shot and flip queries of one round (rules in the module docstring), one row per oracle call.

    ``shown`` (item_id, p_true) holds the labels shown as context: priors for round 1, the previous fit after.
    Deterministic in (inputs, cfg, seed, round) and independent of input row order; reads no gold.
    Rows sorted by (group_id, target_id, j, flipped_pos): each base query is followed by its flip twins.
    """
    if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 1:
        raise PlanError(f"round = {round!r}: few-shot rounds are numbered from 1 (round 0 is zero-shot)")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise PlanError(f"seed = {seed!r}: must be an integer >= 0 (base.seed or the run's seed)")
    if not isinstance(cfg, BudgetConfig):
        raise PlanError("cfg must be a BudgetConfig; build it with BudgetConfig.from_params(params['budget'])")
    tpl = _check_templates(templates)
    n_tpl = len(tpl)
    ids = _item_ids(items)
    n = len(ids)
    p = _shown_p(shown, n)
    label = shown_labels(p, ids)
    gid, it = _membership(groups, int(round), n)

    streams = np.random.SeedSequence([int(seed), int(round)]).spawn(6)
    rng_home, rng_rank, rng_flip, rng_ctx, rng_perm, rng_pos = (np.random.default_rng(s) for s in streams)

    # groups: index, start offset and size of each
    g_ids, g_idx = np.unique(gid, return_inverse=True)
    g_size = np.bincount(g_idx, minlength=len(g_ids)).astype(np.int64)
    g_start = np.cumsum(g_size) - g_size

    # 1.-3. home group, queries per item, how many of them are flip twins (elicit.plan_budget)
    home = home_groups(it, g_idx, rng_home)
    q = queries_per_item(cfg, int(round), p, it, g_ids, g_idx, g_size, home)
    ctx_len = np.minimum(cfg.k_context, g_size[home] - 1)  # per item

    # random rank of each item: spreads framings and templates evenly over the round
    perm = rng_rank.permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[perm] = np.arange(n)

    n_flip = flip_counts(cfg, q, ctx_len, rng_flip)
    n_base = q - n_flip

    # base queries, grouped by item (item_id order), j = 0..n_base-1
    b_item = np.repeat(np.arange(n, dtype=np.int64), n_base)
    b_j = ragged_arange(n_base)
    n_b = len(b_item)
    # 7. framing/template by a counter c over bases ordered by (item has flips, rank, j): the flipped
    # bases and the others are each balanced, and an item's consecutive queries alternate framing
    counter = np.empty(n_b, dtype=np.int64)
    counter[np.lexsort((b_j, rank[b_item], n_flip[b_item] == 0))] = np.arange(n_b)
    if cfg.both_framings:
        b_framing = counter % 2
        b_tpl = (counter // 2) % n_tpl
    else:
        b_framing = np.zeros(n_b, dtype=np.int64)
        b_tpl = counter % n_tpl
    b_len = ctx_len[b_item]

    # 4.-5. context from the home group, and its order (elicit.plan_context)
    b_g = home[b_item]
    sel_b, sel_item = draw_context(b_item, b_g, b_len, it, g_start, g_size, label, cfg.balanced_context, rng_ctx)
    perm_seed, sel_item = order_drawn_context(sel_b, sel_item, n_b, cfg.permute_order, rng_perm)
    b_off = np.concatenate([[0], np.cumsum(b_len)])

    # flip twins: the base query and the position each one flips (elicit.plan_budget)
    f_base, f_pos = flip_twins(n_flip, n_base, b_len, rng_pos)

    # all rows: bases then flips, sorted by (group, target, j, flipped_pos)
    row_base = np.concatenate([np.arange(n_b, dtype=np.int64), f_base])
    row_flip = np.concatenate([np.full(n_b, -1, dtype=np.int64), f_pos])
    row_group = g_ids[b_g[row_base]]
    row_target = b_item[row_base]
    row_j = b_j[row_base]
    out = np.lexsort((row_flip, row_j, row_target, row_group))
    row_base, row_flip, row_group, row_target, row_j = (
        a[out] for a in (row_base, row_flip, row_group, row_target, row_j)
    )
    m = len(row_base)

    row_len = b_len[row_base]
    row_off = np.concatenate([[0], np.cumsum(row_len)])
    flat = np.repeat(b_off[:-1][row_base], row_len) + ragged_arange(row_len)
    ctx_ids = sel_item[flat]
    ctx_shown = label[ctx_ids].copy()
    is_flip = row_flip >= 0
    flip_at = row_off[:-1][is_flip] + row_flip[is_flip]
    ctx_shown[flip_at] ^= 1

    base_qid = (f"r{round}-g" + _strs(row_group) + "-t" + _strs(row_target) + "-q" + _strs(row_j)).to_numpy(
        dtype=object
    )
    qid = base_qid.copy()
    qid[is_flip] = base_qid[is_flip] + "-f" + _strs(row_flip[is_flip]).to_numpy(dtype=object)
    flip_of = np.full(m, None, dtype=object)
    flip_of[is_flip] = base_qid[is_flip]
    return _frame(
        {
            "query_id": qid,
            "round": np.full(m, round),
            "group_id": row_group,
            "target_id": row_target,
            "kind": np.where(is_flip, FLIP, FEW_SHOT).astype(object),
            "framing": np.asarray(FRAMINGS, dtype=object)[b_framing[row_base]],
            "template_id": np.asarray(tpl, dtype=object)[b_tpl[row_base]],
            "context_ids": _lists(row_off, ctx_ids.astype(np.int64)),
            "context_shown": _lists(row_off, ctx_shown.astype(np.int8)),
            "perm_seed": perm_seed[row_base],
            "flipped_pos": row_flip,
            "flip_of": flip_of,
        }
    )
