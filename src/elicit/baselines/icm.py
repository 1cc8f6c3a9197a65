"""The method ``icm_budget``: a cheap variant of Internal Coherence Maximization (ICM; Wen et al. 2025, arXiv
2506.10139) within a call budget, on in every run. Not the paper's algorithm, which is ``elicit.baselines.icm_official``
(the method ``icm``, opt-in: it shows every labelled item of a batch in every prompt and re-scores them all).

ICM searches for the label set the model finds most coherent, U(D) = alpha * P(D) - I(D), where P(D) is
mutual predictability (how well each label is predicted from the others shown in context) and I(D) the number
of logical inconsistencies, by simulated annealing over one-label proposals (the paper's Algorithm 1):

1. label ``n_init`` random items at random (half 1, half 0), score them, repair inconsistencies;
2. step n: T = max(t_min, t0 / (1 + beta * log n)); pick an item: unlabelled ones weighted x100, and again
   x100 those sharing a consistency group with a labelled item (the paper's priority); labelled ones can be
   revisited, to correct earlier mistakes;
3. ask about it with its ``k_context`` nearest labelled items (embedding cosine) shown with their current
   labels, in each of ``framings``; propose the label with the higher probability (mean score > 0);
4. repair the inconsistencies the proposal creates in its consistency group (the dataset's rule,
   `elicit.contracts.repair_group`), then accept if Delta U > 0, else with probability exp(Delta U / T).

How P(D) is approximated (the paper re-scores every labelled item: N calls per step). Each labelled item
keeps the score of its most recent query; P(D) is the MEAN over labelled items of log P(label | that score)
(the reference implementation also averages, so a new label is judged by whether it raises the average
predictability, not penalised for growing the set). A proposal that changes the label set also re-scores the
``n_rescore`` labelled items nearest to the proposed item, with the proposed item forced into their context,
and Delta U uses those fresh scores: that is the part of mutual predictability a new label moves most
(similar items are the ones it is shown beside). Other terms may be stale until their item is revisited. A
step costs ``len(framings) * (1 + n_rescore)`` calls (``len(framings)`` when it keeps the label); the run
stops when the next step would exceed the budget (the initial scoring is always made). The consistency
repair uses the stored scores and no calls (the paper asks the model).

Output: labelled items get p_true = sigmoid(latest score) where that score agrees with the ICM label, else a
barely-decided +/-0.05 log-odds (`soft_labels`); items ICM never labelled (outside the ``max_items`` sample,
or not reached within the budget) get their zero-shot prior sigmoid(score), 0.5 if missing. Never reads gold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.baselines.fewshot import (
    ALL_FRAMINGS,
    Ask,
    BaselineConfigError,
    Framings,
    QueryRows,
    ask_scores,
    concat_calls,
    item_count,
    require_template,
    soft_labels,
)
from elicit.baselines.votes import labels_frame, prior_scores, sigmoid
from elicit.contracts import (
    UNLABELLED,
    ConsistencyRule,
    answer_keys,
    consistency_groups,
    groups_layout,
    repair,
    repair_group,
    violations,
)
from elicit.params_types import SECTION, Float, Int, Str, build, fail, typed

TRACE_COLUMNS = ["step", "energy", "n_labelled", "accepted", "temperature"]
PRIORITY = 100.0
"""Sampling-weight factor for unlabelled items (and again for those sharing a consistency group with a label).
"""


@typed("baselines.icm_budget", BaselineConfigError)
@pydantic_dataclass(frozen=True, config=SECTION)
class ICMConfig:
    """params ``baselines.icm_budget``: the cheap ICM variant (Wen et al. 2025) within a call budget; defaults
    follow the paper where it gives them."""

    n_init: Int = Field(default=8, ge=1, description="randomly labelled items to start from (paper: K = 8)")
    alpha: Float = Field(
        default=50.0, ge=0, description="weight of mutual predictability against the inconsistency count (paper: 50)"
    )
    t0: Float = Field(default=10.0, gt=0, description="initial annealing temperature (paper: 10)")
    t_min: Float = Field(default=0.01, gt=0, description="final temperature, at most t0 (paper: 0.01)")
    beta: Float = Field(
        default=2.0,
        ge=0,
        description="cooling rate: T = max(t_min, t0 / (1 + beta * log n)), n = step (the reference implementation: 2)",
    )
    k_context: Int = Field(
        default=4,
        ge=1,
        description="labelled items shown per prompt, the nearest by embedding cosine (few: prompt length costs)",
    )
    max_items: Int = Field(
        default=256,
        ge=2,
        description="items ICM works on (a random sample of whole consistency groups above this; paper's batch: 256)",
    )
    max_calls: Int | None = Field(
        default=None, ge=1, description="oracle calls allowed in all; null = calls_per_item x the items worked on"
    )
    calls_per_item: Float = Field(default=4.0, gt=0, description="budget per item when max_calls is null")
    n_rescore: Int = Field(
        default=1,
        ge=0,
        description="labelled neighbours re-scored per label-changing proposal (0: judge a proposal by its own term)",
    )
    framings: Framings = Field(
        default=ALL_FRAMINGS,
        description="framings asked per query; their scores are averaged (both together cancel acquiescence)",
    )
    template_id: Str | None = Field(
        default=None, description="template of every prompt; the stage fills in the dataset's first template when unset"
    )

    @model_validator(mode="after")
    def _cooling(self) -> Self:
        if self.t_min > self.t0:
            fail(("t_min",), f"{self.t_min} is above t0 = {self.t0}; the final temperature is at most the initial one")
        return self

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> ICMConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "baselines.icm_budget", BaselineConfigError)

    def budget(self, n_items: int) -> int:
        """Calls allowed for a run over ``n_items`` items."""
        if self.max_calls is not None:
            return int(self.max_calls)
        return max(1, math.ceil(self.calls_per_item * n_items))


def temperature(step: int, cfg: ICMConfig) -> float:
    """T(n) = max(t_min, t0 / (1 + beta log n)), n >= 1 (paper, Algorithm 1)."""
    return max(cfg.t_min, cfg.t0 / (1.0 + cfg.beta * math.log(max(step, 1))))


def _log_p(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """log P(label | score) per item; a missing score counts as log 0.5."""
    s = np.nan_to_num(scores, nan=0.0)
    signed = np.where(labels == 1, s, -s)
    return -np.logaddexp(0.0, -signed)


def _sample_items(items: pd.DataFrame, n: int, max_items: int, rng: np.random.Generator) -> np.ndarray:
    """All items if n <= max_items, else whole consistency groups (singletons for items in none) at random."""
    if n <= max_items:
        return np.arange(n, dtype=np.int64)
    cid = items.set_index(items["item_id"].astype(int))["consistency_id"] if "consistency_id" in items else None
    units: dict[Any, list[int]] = {}
    for i in range(n):
        c = None if cid is None or pd.isna(cid[i]) else cid[i]
        units.setdefault(("g", c) if c is not None else ("i", i), []).append(i)
    chosen: list[int] = []
    unit_list = list(units.values())
    for u in rng.permutation(len(unit_list)):
        members = unit_list[u]
        if chosen and len(chosen) + len(members) > max_items:
            continue
        chosen.extend(members)
        if len(chosen) >= max_items:
            break
    return np.sort(np.asarray(chosen, dtype=np.int64))


class _State:
    """Labels, each label's latest score, and the energy bookkeeping of one ICM run."""

    def __init__(
        self, n: int, cgroups: Sequence[np.ndarray], keys: np.ndarray, rule: ConsistencyRule, alpha: float
    ) -> None:
        self.labels = np.full(n, UNLABELLED, dtype=np.int8)
        self.scores = np.full(n, np.nan)
        self.cgroups = list(cgroups)
        self.keys = keys
        self.rule = rule
        self.layout = groups_layout(self.cgroups, keys, rule)
        self.alpha = alpha
        self.group_of: dict[int, list[int]] = {}
        for g, members in enumerate(self.cgroups):
            for m in members:
                self.group_of.setdefault(int(m), []).append(g)

    def copy(self) -> _State:
        new = object.__new__(_State)
        new.__dict__.update(self.__dict__)
        new.labels = self.labels.copy()
        new.scores = self.scores.copy()
        return new

    def energy(self) -> float:
        lab = self.labels != UNLABELLED
        mp = float(_log_p(self.labels[lab], self.scores[lab]).mean()) if lab.any() else 0.0
        inc = int(violations(self.layout, self.labels).sum())
        return self.alpha * mp - inc

    def fix_around(self, item: int) -> None:
        """Repair the consistency groups of ``item`` with its label held fixed."""
        for g in self.group_of.get(item, []):
            repair_group(self.labels, self.scores, self.cgroups[g], self.keys, self.rule, fixed=item)

    def shares_group_with_label(self, item: int) -> bool:
        return any(bool((self.labels[self.cgroups[g]] != UNLABELLED).any()) for g in self.group_of.get(item, []))


def icm(
    items: pd.DataFrame,
    embeddings: np.ndarray,
    priors: pd.DataFrame,
    ask: Ask,
    cfg: ICMConfig,
    seed: int = 0,
    consistency_rule: str = "none",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run ICM within ``cfg``'s caps; returns (labels, calls, energy trace).

    labels: item_id, p_true for every item (see the module docstring for unlabelled items). calls: every query
    row made (kind "icm", round -1, group_id -1), answered. trace: step, energy, n_labelled, accepted,
    temperature; step 0 is the initial state. Deterministic given ``seed`` and the oracle's answers. Never
    reads gold.
    """
    items = items.drop(columns=["gold"], errors="ignore")
    template_id = require_template(cfg.template_id, "icm_budget")
    rule = ConsistencyRule.parse(consistency_rule)
    rule.check_items(items)
    n = item_count(items)
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"embeddings have shape {emb.shape}, expected ({n}, dim): one row per item_id")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng([int(seed), 2506_10139])
    used = _sample_items(items, n, cfg.max_items, rng)
    sim = emb[used] @ emb[used].T
    pos = {int(i): k for k, i in enumerate(used)}
    budget = cfg.budget(len(used))
    nf = len(cfg.framings)

    state = _State(n, consistency_groups(items), answer_keys(items, n), rule, cfg.alpha)
    frames: list[pd.DataFrame] = []
    spent = 0

    def context(target: int, labels: np.ndarray, force: int | None = None) -> list[int]:
        lab = [int(i) for i in used if labels[i] != UNLABELLED and i != target]
        if not lab:
            return []
        s = sim[pos[target], [pos[i] for i in lab]]
        order = np.lexsort((np.asarray(lab), -s))  # most similar first, ties by id
        ctx = [lab[o] for o in order[: cfg.k_context]]
        if force is not None and force != target and force not in ctx and labels[force] != UNLABELLED:
            ctx = ctx[: cfg.k_context - 1] + [force]
        return ctx

    def query(step: int, targets: Sequence[int], labels: np.ndarray, force: int | None = None) -> np.ndarray:
        """Ask about each target (all framings) with the given labels shown; mean score per target."""
        nonlocal spent
        q = QueryRows()
        for t in targets:
            ctx = context(t, labels, force)
            perm_seed = int(rng.integers(2**31 - 1))
            ctx = [ctx[j] for j in np.random.default_rng(perm_seed).permutation(len(ctx))]
            shown = [int(labels[c]) for c in ctx]
            for f in cfg.framings:
                q.add(f"icm-s{seed}-n{step}-t{t}-{f}", -1, -1, t, "icm", f, template_id, ctx, shown, perm_seed)
        queries = q.frame()
        answered, got = ask_scores(ask, queries)
        frames.append(answered)
        spent += len(queries)
        per_target: dict[int, list[float]] = {}
        for row in q.rows:
            value = got[row["query_id"]]
            if math.isfinite(value):
                per_target.setdefault(row["target_id"], []).append(value)
        return np.array([float(np.mean(per_target[t])) if t in per_target else np.nan for t in targets])

    # 1. random start: n_init items, half labelled 1, scored with each other as context, then repaired.
    init = rng.choice(used, size=min(cfg.n_init, len(used)), replace=False)
    start = np.array([1] * (len(init) // 2) + [0] * (len(init) - len(init) // 2), dtype=np.int8)
    state.labels[init] = rng.permutation(start)
    state.scores[init] = query(0, [int(i) for i in init], state.labels)
    state.labels = repair(state.labels, state.scores, state.cgroups, state.keys, rule)
    energy = state.energy()
    trace: list[tuple[int, float, int, bool, float]] = [
        (0, energy, int((state.labels != UNLABELLED).sum()), True, cfg.t0)
    ]

    # 2. annealing steps until the next one would exceed the budget.
    step = 0
    while spent + nf <= budget:
        step += 1
        temp = temperature(step, cfg)
        unl = state.labels[used] == UNLABELLED
        w = np.where(unl, PRIORITY, 1.0)
        if rule is not ConsistencyRule.NONE:
            boost = np.array([u and state.shares_group_with_label(int(i)) for i, u in zip(used, unl, strict=True)])
            w = np.where(boost, w * PRIORITY, w)
        i = int(used[rng.choice(len(used), p=w / w.sum())])
        s_new = float(query(step, [i], state.labels)[0])
        if not math.isfinite(s_new):
            trace.append((step, energy, int((state.labels != UNLABELLED).sum()), False, temp))
            continue
        y_new = int(s_new > 0)
        if state.labels[i] == y_new:  # same label: only its term is refreshed
            state.scores[i] = s_new
            energy = state.energy()
            trace.append((step, energy, int((state.labels != UNLABELLED).sum()), True, temp))
            continue
        cand = state.copy()
        cand.labels[i] = y_new
        cand.scores[i] = s_new
        cand.fix_around(i)
        if cfg.n_rescore > 0 and spent + nf <= budget:
            lab = [int(j) for j in used if cand.labels[j] != UNLABELLED and j != i]
            near = sorted(lab, key=lambda j: (-sim[pos[i], pos[j]], j))
            near = near[: min(cfg.n_rescore, (budget - spent) // nf)]
            if near:
                fresh = query(step, near, cand.labels, force=i)
                ok = np.isfinite(fresh)
                cand.scores[np.asarray(near)[ok]] = fresh[ok]
        e_new = cand.energy()
        delta = e_new - energy
        accepted = delta > 0 or rng.random() < math.exp(max(delta / temp, -700.0))
        if accepted:
            state, energy = cand, e_new
        trace.append((step, energy, int((state.labels != UNLABELLED).sum()), bool(accepted), temp))

    fallback = sigmoid(prior_scores(priors, n))
    p = soft_labels(state.labels, state.scores, np.where(np.isfinite(fallback), fallback, 0.5))
    trace_df = pd.DataFrame(trace, columns=TRACE_COLUMNS).astype(
        {
            "step": np.int64,
            "energy": np.float64,
            "n_labelled": np.int64,
            "accepted": bool,
            "temperature": np.float64,
        }
    )
    return labels_frame(n, p), concat_calls(frames), trace_df
