"""Few-shot baselines that make their own oracle calls: golden, random and bootstrapped shown labels.

All three ask the same kind of prompt: one target, ``k_context`` other items of one of its round-1 groups
shown with a label, in each framing; p_true = sigmoid(mean score over framings). They differ in shown labels:

golden_fewshot     gold labels: the reference ceiling of PGR, and the ONLY baseline that reads gold.
random_fewshot     a random labelling with the class balance estimated without gold: what showing labels at
                   all is worth (format, priming) when the labels carry no information.
bootstrap_fewshot  the model's own labels: zero-shot first, then re-prompted with its current labels for a
                   few rounds, repairing logical inconsistencies after each (self-training without search).

Oracle calls go through an ``ask`` callable (the stage closes it over the shared client and cache), so these
are pure functions that tests drive with a fake oracle. This module also holds what ICM shares with
bootstrap: configs and query rows (the consistency rules and their repair are ``elicit.contracts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.baselines.votes import (
    as_float,
    estimate_class_balance,
    labels_frame,
    prior_scores,
    sigmoid,
)
from elicit.contracts import UNLABELLED, ConsistencyRule, answer_keys, consistency_groups, repair
from elicit.errors import ElicitError
from elicit.params_types import SECTION, Int, Str, build, typed
from elicit.plan import QUERY_PLAN_COLUMNS
from elicit.prompts import Framing

Ask = Callable[[pd.DataFrame], pd.DataFrame]
"""Oracle driver as the baselines see it: query rows in, the same rows with answer columns (``score``...) out.
"""

DECIDED_MARGIN = 0.05
"""Log-odds given to a label that has no supporting score of its own (e.g. imposed by the consistency repair):
it still thresholds to its label, with almost no confidence.
"""


class BaselineConfigError(ElicitError, ValueError):
    """A ``baselines:`` params entry is malformed; one line naming the key and the fix."""


# ----------------------------------------------------------------------------------------------------
# Configs


def _distinct(framings: tuple[Framing, ...]) -> tuple[Framing, ...]:
    if len(set(framings)) != len(framings):
        raise ValueError(f"{list(framings)!r} lists a framing twice; use [pos, neg] or [pos]")
    return framings


Framings = Annotated[
    tuple[Framing, ...], Field(min_length=1, json_schema_extra={"uniqueItems": True}), AfterValidator(_distinct)
]
"""Distinct framings asked per item (``[pos, neg]`` or one of them); scores are averaged over them."""
ALL_FRAMINGS: tuple[Framing, ...] = get_args(Framing)


@typed("baselines.fewshot", BaselineConfigError)
@pydantic_dataclass(frozen=True, config=SECTION)
class FewShotConfig:
    """params ``baselines.fewshot``: golden_fewshot, random_fewshot and bootstrap_fewshot prompts."""

    k_context: Int = Field(
        default=4,
        ge=1,
        description="context items per prompt, drawn from the target's group (fewer if the group is smaller)",
    )
    framings: Framings = Field(
        default=ALL_FRAMINGS,
        description="framings asked per target; p_true = sigmoid(mean score), so both together cancel acquiescence",
    )
    template_id: Str | None = Field(
        default=None, description="template of every prompt; the stage fills in the dataset's first template when unset"
    )
    group_round: Int = Field(
        default=1,
        ge=1,
        description="which grouping's groups supply the context (golden and random; bootstrap round r uses grouping r)",
    )

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> FewShotConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "baselines.fewshot", BaselineConfigError)


@typed("baselines.bootstrap", BaselineConfigError)
@pydantic_dataclass(frozen=True, config=SECTION)
class BootstrapConfig:
    """params ``baselines.bootstrap``."""

    rounds: Int = Field(
        default=2, ge=1, description="re-prompting rounds with the model's own labels after the zero-shot labels"
    )

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> BootstrapConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "baselines.bootstrap", BaselineConfigError)


def require_template(template_id: str | None, section: str) -> str:
    if template_id is None:
        raise BaselineConfigError(
            f"baselines.{section}.template_id is unset; pass the dataset's template id "
            "(the stage uses the first template of the dataset)"
        )
    return str(template_id)


# ----------------------------------------------------------------------------------------------------
# Query rows


@dataclass
class QueryRows:
    """Accumulates query rows (the shared schema), then builds one frame for ``ask``."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        query_id: str,
        round_: int,
        group_id: int,
        target_id: int,
        kind: str,
        framing: str,
        template_id: str,
        context_ids: Sequence[int],
        context_shown: Sequence[int],
        perm_seed: int,
    ) -> None:
        self.rows.append(
            {
                "query_id": query_id,
                "round": int(round_),
                "group_id": int(group_id),
                "target_id": int(target_id),
                "kind": kind,
                "framing": framing,
                "template_id": template_id,
                "context_ids": np.asarray(context_ids, dtype=np.int64),
                "context_shown": np.asarray(context_shown, dtype=np.int8),
                "perm_seed": int(perm_seed),
                "flipped_pos": -1,
                "flip_of": None,
            }
        )

    def frame(self) -> pd.DataFrame:
        """The rows as one frame with the schema's dtypes (list columns hold int64 / int8 arrays)."""
        n = len(self.rows)
        cols: dict[str, Any] = {}
        for col in QUERY_PLAN_COLUMNS:
            values = [r[col] for r in self.rows]
            if col in ("round", "group_id", "target_id", "perm_seed", "flipped_pos"):
                cols[col] = np.asarray(values, dtype=np.int64)
            elif col in ("context_ids", "context_shown"):
                arr = np.empty(n, dtype=object)
                for k, v in enumerate(values):
                    arr[k] = v
                cols[col] = arr
            elif col == "flip_of":
                cols[col] = pd.Series([None] * n, dtype="str")  # a string column, all null
            else:
                cols[col] = pd.Series(values, dtype="str")
        return pd.DataFrame(cols)


def ask_scores(ask: Ask, queries: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Ask, check every query came back, and map query_id -> score (NaN if missing)."""
    if queries.empty:
        return queries.copy(), {}
    answered = ask(queries)
    if "query_id" not in answered or "score" not in answered:
        raise ValueError("ask() must return the query rows with a 'score' column (and query_id)")
    got = dict(zip(map(str, answered["query_id"].to_list()), as_float(answered["score"]), strict=True))
    lost = set(map(str, queries["query_id"].to_list())) - set(got)
    if lost:
        raise ValueError(f"ask() returned no answer for {len(lost)} queries, e.g. {sorted(lost)[0]!r}")
    return answered, got


def mean_scores(queries: pd.DataFrame, scores: Mapping[str, float], n_items: int) -> np.ndarray:
    """Mean non-missing score per target over its queries (NaN where none), items 0..n_items-1."""
    if queries.empty:
        return np.full(n_items, np.nan)
    s = pd.Series([scores[q] for q in queries["query_id"].astype(str)], index=queries["target_id"].to_numpy())
    return s.dropna().groupby(level=0).mean().reindex(range(n_items)).to_numpy(dtype=float, na_value=np.nan)


def concat_calls(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """All answered query rows of a baseline, in asking order (the ``calls.parquet`` table)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return QueryRows().frame()
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------------
# Contexts from groups


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(s) for s in salt]])


def fewshot_contexts(
    n_items: int,
    groups: pd.DataFrame,
    k: int,
    seed: int,
    group_round: int = 1,
    salt: int = 0,
) -> list[tuple[int, list[int], int]]:
    """Per target 0..n_items-1: (group_id, context item ids in shown order, perm_seed).

    The target's group is drawn among the groups of ``group_round`` it belongs to (the smallest round present
    if that one is absent); the context is ``k`` other members drawn at random, ordered by a permutation
    seeded with perm_seed. An item in no group gets ``k`` random other items (group_id -1). Reads no labels,
    so golden and random few-shot (same seed and salt) ask about identical contexts.
    """
    rng = _rng(seed, 7919, salt)
    g = groups
    if len(g):
        rounds = sorted(int(r) for r in g["round"].astype(np.int64).unique())
        r = group_round if group_round in rounds else rounds[0]
        g = g[g["round"] == r]
    gid_col = g["group_id"].to_numpy(dtype=np.int64)
    item_col = g["item_id"].to_numpy(dtype=np.int64)
    members = {int(gid): np.sort(item_col[gid_col == gid]) for gid in np.unique(gid_col)}
    of_item: dict[int, list[int]] = {}
    for gid, ids in members.items():
        for i in ids:
            of_item.setdefault(int(i), []).append(gid)
    out: list[tuple[int, list[int], int]] = []
    everyone = np.arange(n_items, dtype=np.int64)
    for t in range(n_items):
        gids = of_item.get(t)
        if gids:
            gid = int(gids[int(rng.integers(len(gids)))])
            pool = members[gid]
        else:
            gid, pool = -1, everyone
        pool = pool[pool != t]
        chosen = rng.choice(pool, size=min(k, len(pool)), replace=False) if len(pool) else pool
        perm_seed = int(rng.integers(2**31 - 1))
        order = np.random.default_rng(perm_seed).permutation(len(chosen))
        out.append((gid, [int(c) for c in np.asarray(chosen)[order]], perm_seed))
    return out


def _fewshot_queries(
    name: str,
    seed: int,
    round_: int,
    contexts: Sequence[tuple[int, list[int], int]],
    shown_of: Callable[[list[int]], tuple[list[int], list[int]]],
    framings: Sequence[str],
    template_id: str,
) -> pd.DataFrame:
    """One query per target per framing; ``shown_of`` maps the context to (kept ids, their shown labels)."""
    q = QueryRows()
    for t, (gid, ctx, perm_seed) in enumerate(contexts):
        ids, shown = shown_of(ctx)
        rtag = f"-r{round_}" if round_ >= 0 else ""
        for f in framings:
            q.add(f"{name}-s{seed}{rtag}-t{t}-{f}", round_, gid, t, name, f, template_id, ids, shown, perm_seed)
    return q.frame()


# ----------------------------------------------------------------------------------------------------
# Hard labels to p_true (shared with ICM)


def soft_labels(labels: np.ndarray, scores: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """p_true from hard labels and their latest scores: sigmoid(score) where the score agrees with the label,
    sigmoid(+/-0.05) where it does not or there is none (the label stands, unconfidently); ``fallback`` where
    unlabelled.
    """
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    signed = np.where(labels == 1, s, -s)
    margin = np.where(signed > DECIDED_MARGIN, signed, DECIDED_MARGIN)
    p = sigmoid(np.where(labels == 1, margin, -margin))
    return np.where(labels == UNLABELLED, fallback, p)


# ----------------------------------------------------------------------------------------------------
# The baselines


def item_count(items: pd.DataFrame) -> int:
    ids = items["item_id"].astype(int).to_numpy()
    n = int(ids.max()) + 1 if len(ids) else 0
    if len(ids) != n or len(np.unique(ids)) != n:
        raise ValueError(f"items.item_id must be 0..N-1 without gaps; got {len(ids)} rows, max id {n - 1}")
    return n


def golden_fewshot(
    items_with_gold: pd.DataFrame,
    groups: pd.DataFrame,
    ask: Ask,
    cfg: FewShotConfig,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Few-shot prompts whose shown labels are the GOLD labels: the reference ceiling (PGR's denominator).

    This is the only baseline that reads ``gold``, by design (DESIGN.md "Gold isolation"). One query per item
    per framing, context = ``k_context`` other members of one of its round-``group_round`` groups; context
    items without gold are left out of that prompt. p_true = sigmoid(mean score over framings), 0.5 if all
    answers are missing. Returns (labels, calls).
    """
    template_id = require_template(cfg.template_id, "fewshot")
    n = item_count(items_with_gold)
    gold = pd.Series(
        items_with_gold["gold"].to_numpy(dtype=object),
        index=items_with_gold["item_id"].astype(int).to_numpy(),
    )

    def shown_of(ctx: list[int]) -> tuple[list[int], list[int]]:
        kept = [c for c in ctx if not pd.isna(gold[c])]
        return kept, [int(gold[c]) for c in kept]

    contexts = fewshot_contexts(n, groups, cfg.k_context, seed, cfg.group_round)
    queries = _fewshot_queries("golden_fewshot", seed, -1, contexts, shown_of, cfg.framings, template_id)
    calls, scores = ask_scores(ask, queries)
    return labels_frame(n, sigmoid(mean_scores(queries, scores, n))), calls


def random_labelling(priors: pd.DataFrame, n_items: int, seed: int) -> np.ndarray:
    """A random 0/1 label per item: round(balance * N) ones, balance estimated from the priors (no gold)."""
    balance = estimate_class_balance(prior_scores(priors, n_items))
    rng = _rng(seed, 104729)
    labels = np.zeros(n_items, dtype=np.int8)
    labels[rng.permutation(n_items)[: int(round(balance * n_items))]] = 1
    return labels


def random_fewshot(
    items: pd.DataFrame,
    groups: pd.DataFrame,
    priors: pd.DataFrame,
    ask: Ask,
    cfg: FewShotConfig,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The golden_fewshot prompts (same targets, contexts, order), a random labelling shown instead of gold.

    Why: separates what showing labelled examples does by itself (format, priming) from what correct labels
    add. The random labelling gives each item one label, with the class balance estimated from the zero-shot
    priors (`estimate_class_balance`); never reads gold (the column is dropped on entry). Returns (labels,
    calls).
    """
    items = items.drop(columns=["gold"], errors="ignore")
    template_id = require_template(cfg.template_id, "fewshot")
    n = item_count(items)
    shown_labels = random_labelling(priors, n, seed)

    def shown_of(ctx: list[int]) -> tuple[list[int], list[int]]:
        return ctx, [int(shown_labels[c]) for c in ctx]

    contexts = fewshot_contexts(n, groups, cfg.k_context, seed, cfg.group_round)
    queries = _fewshot_queries("random_fewshot", seed, -1, contexts, shown_of, cfg.framings, template_id)
    calls, scores = ask_scores(ask, queries)
    return labels_frame(n, sigmoid(mean_scores(queries, scores, n))), calls


def bootstrap_fewshot(
    items: pd.DataFrame,
    groups: pd.DataFrame,
    priors: pd.DataFrame,
    ask: Ask,
    cfg: FewShotConfig,
    seed: int = 0,
    rounds: int = 2,
    consistency_rule: str = "none",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Self-training by prompting: zero-shot labels, then ``rounds`` rounds of few-shot prompts showing the
    model's own current labels, each followed by the consistency repair (`elicit.contracts.repair`, the
    dataset's rule).

    Start: label = prior score > 0 (an item with no prior score gets a random label at the estimated class
    balance). Round r (query rows with round = r) takes contexts from grouping r (grouping 1 if absent); an
    item's new score is its mean over framings, kept from the previous round if all answers are missing.
    p_true = sigmoid(last score) where it agrees with the final label (else +/-0.05 log-odds, see
    `soft_labels`). Never reads gold (the column is dropped on entry). Returns (labels, calls): calls holds
    every query, so ``len(calls)`` is the call count.
    """
    items = items.drop(columns=["gold"], errors="ignore")
    template_id = require_template(cfg.template_id, "fewshot")
    rule = ConsistencyRule.parse(consistency_rule)
    rule.check_items(items)
    if rounds < 1:
        raise BaselineConfigError(f"baselines.bootstrap.rounds={rounds}: must be >= 1")
    n = item_count(items)
    cgroups = consistency_groups(items)
    keys = answer_keys(items, n)
    scores = prior_scores(priors, n)
    rng = _rng(seed, 15485863)
    coin = (rng.random(n) < estimate_class_balance(scores)).astype(np.int8)
    labels = np.where(np.isfinite(scores), (scores > 0).astype(np.int8), coin).astype(np.int8)
    labels = repair(labels, scores, cgroups, keys, rule)
    frames = []
    for r in range(1, rounds + 1):
        current = labels.copy()

        def shown_of(ctx: list[int], current: np.ndarray = current) -> tuple[list[int], list[int]]:
            return ctx, [int(current[c]) for c in ctx]

        contexts = fewshot_contexts(n, groups, cfg.k_context, seed, group_round=r, salt=r)
        queries = _fewshot_queries("bootstrap_fewshot", seed, r, contexts, shown_of, cfg.framings, template_id)
        calls, got = ask_scores(ask, queries)
        frames.append(calls)
        new = mean_scores(queries, got, n)
        fresh = np.isfinite(new)
        scores = np.where(fresh, new, scores)
        labels = np.where(fresh, (new > 0).astype(np.int8), labels).astype(np.int8)
        labels = repair(labels, scores, cgroups, keys, rule)
    return labels_frame(n, soft_labels(labels, scores, np.full(n, 0.5))), concat_calls(frames)
