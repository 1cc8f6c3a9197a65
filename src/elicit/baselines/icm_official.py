"""Internal Coherence Maximization as its authors ran it (Wen et al. 2025, arXiv 2506.10139): the faithful
algorithm, pure code over an ``ask`` callable. Source: their script ``ICM.py``, read from the copy at
wassname/Unsupervised-Elicitation ``docs/original_ICM.py``, and its helpers ``src/experiments/ICM_tools.py``
(copy at saprmarks/Unsupervised-Elicitation); the script's functions are named in brackets below.

This is the method ``icm`` (params ``baselines.icm``, opt-in), the algorithm at its real cost: every labelled item
of a batch is shown in every prompt, and every proposed label change re-scores every labelled item. The method
``icm_budget`` (``elicit.baselines.icm``) is a cheap variant (<= 256 items, 4 nearest labelled items as context,
stale scores).

1. Batches [``load_data``]: the script sorts the data by consistency group and samples ONE batch of
   ``batch_size`` = 256 items as whole groups. Here ALL items are cut into disjoint batches of at most
   ``batch_size`` items, whole consistency groups (``consistency_id``, whatever the rule; items without one
   are singletons) in a seeded random order, sizes balanced (``make_batches``), and each batch is searched
   exactly as the script searches its one batch, so every item gets a label. Positions in a batch follow that
   order: the members of a group are adjacent (the script's ``uid`` order).
2. Seeds [``initialize``]: the first ``n_init`` = 8 positions of the batch get random labels, half 1 and half
   0, shuffled (an odd ``n_init`` gets one more 0; the script's list would be one short). The rest start
   unlabelled.
3. Mutual predictability [``get_pipeline`` and its ``add_train_demonstrations``; ``calculate_accuracy``]: a
   labelling is scored by asking about EVERY labelled item with every OTHER labelled item of the batch shown
   with its label, grouped by consistency group in batch order (the script's grouping, which is its ``uid``
   order); ``P`` = the mean over labelled items of the score signed by the item's label (score = log-odds of
   label 1, ``log P(True) - log P(False)``; a missing answer counts 0, as the script's parser returns 0). The
   script re-runs this on every candidate labelling, so each re-scores every labelled item: so does this.
4. Energy [``get_energy``]: ``U = alpha * P - I``, ``I`` the number of inconsistent pairs, ``alpha`` = 30 (the
   script's default; the paper's text says 50). The paper writes ``U = alpha * sum_i log P(y_i | x_i, D - i) -
   I``; the script takes the MEAN where the paper sums (so ``alpha`` weighs the average item against one
   inconsistency whatever the batch size, and a new label pays off only if its item is predicted at least as
   well as the average), and of signed log-odds rather than log-probabilities (``log P = -softplus(-signed
   log-odds)``: the same sign, unbounded above). We follow the script. ``I`` is
   ``elicit.contracts.violations`` under the dataset's rule: pairs, as the script counts them, except that a
   fully labelled ``exactly_one_true`` group with no 1 counts once (the script's comparative pairs have 2
   members, where that is one pair).
5. Proposals [``main``; ``predict_assignment``]: ``K`` iterations per batch (script ``--K 3000`` for 256 items;
   here ``iterations``, else ``iterations_per_item`` x the batch size, default 3000 / 256). Each draws one item
   of the batch by weight: 100 for an unlabelled item sharing a consistency group with a labelled one, 1 for
   every other item, labelled or not (the script's weights; the paper's text says unlabelled items first);
   asks about it with every other labelled item shown (the prompt of its term in 3, so asking about a labelled
   item repeats a query: free); proposes label = score > 0 (a missing answer proposes 0, as in the script). If
   that is already its label, the iteration ends.
6. Acceptance [``main``; ``get_temperature``]: the candidate (the proposal, then the consistency fix of 7) is
   scored in full (3, 4) and accepted when ``u < exp((U_new - U) / T)``, ``u`` uniform in [0, 1): a better or
   equal one always is. ``T = max(t_min, t0 / (1 + 2 ln(1 + a)))`` with ``a`` the proposals accepted so far in
   the batch: the script's ``"log"`` schedule counts accepted flips, not iterations (the paper writes the
   iteration ``n``); ``t0`` = 10, ``t_min`` = 0.01, a floor this schedule reaches only after ~e^500 acceptances.
7. Consistency fix [``fix_inconsistency``; ``ICM_tools.pick_two_inconsistent_claims``,
   ``update_assign_based_on_decision``]: up to ``fix_iterations`` = 10 rounds. A round lists the inconsistent
   pairs of labelled items in random order; for each pair it scores (3, 4) both repairs -- a contradiction
   (different subgroups both 1, or under ``exactly_one_true`` both 0 in a fully labelled group with no 1):
   (0, 1) and (1, 0); an implication (same subgroup, different labels: ``same_answer_same_label`` items with one
   answer_key): (0, 0) and (1, 1) -- keeps the better (the first on a tie), and takes the first pair whose
   better repair is at least as good as the best energy so far, which ends the round. It stops at 0
   inconsistencies, or after a round that takes nothing (the script repeats such a round, with its cache's
   same answers, until K rounds: no change). Run on the seeds against their own energy (the script's iteration
   0) and on every candidate of 5 against no reference (the script's dummy metric: the first pair is always
   repaired). The script also asks the model a "decision" prompt per pair, then overwrites its answer with each
   option in turn, so the decision never changes the outcome: those calls are not made (our oracles have no
   decision prompt). Pair types come from the layout of ``elicit.contracts.consistency`` (subgroups within
   groups): the script's comparative rule (A>B vs B>A) is ``exactly_one_true``, its GSM8K / TruthfulQA rule
   ``same_answer_same_label``; ``at_most_one_true`` is the latter with every answer distinct.
8. An item still unlabelled after ``K`` iterations (never drawn, or every proposal about it rejected) takes
   the label of one more prediction with every labelled item of its batch shown: the script leaves such items
   out of its output, a run here labels every item. No prior fallback.

Each prompt is asked in each of ``framings`` and scored by the mean over them (the script asks one framing,
"I think this claim is" True/False; both framings cancel acquiescence, as in the other baselines). A query
asked twice in a run (same target, same labels shown) is answered once and remembered, as the script's pipeline
cache does, so the calls table lists each distinct query once. Random draws come from a numpy Generator seeded
by ``seed`` and the batch (the script: Python's ``random``), so a run is deterministic given the answers.

Output: p_true = sigmoid(latest score) where it agrees with the final label, else +/-0.05 log-odds
(`elicit.baselines.fewshot.soft_labels`). Cost: ``plan_cost`` bounds the calls and prompt tokens before any
call (at least: each item labelled once; at most: every proposal changes a label), ``check_cost`` refuses a
run whose least cost is over ``max_calls`` / ``max_tokens``, and the run itself stops with the same error
before a step would exceed them (the answers so far stay in the oracle cache). On the simulator a run made
2.3x (sim_latent) to 3.6x (sim_strong) its least calls (benchmarks/icm_speed.py: GSM8K, n = 1,000). Never
reads gold.

This module is the search (2, 3, 5-8); the params section and the cost plan are in
`elicit.baselines.icm_official_config`, the batches, temperature, acceptance test and energy (1, 4, 6) in
`elicit.baselines.icm_official_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from elicit.baselines.fewshot import Ask, QueryRows, ask_scores, concat_calls, item_count, require_template, soft_labels
from elicit.baselines.icm_official_config import (
    WHERE,
    CostPlan,
    ICMBudgetError,
    OfficialICMConfig,
    check_cost,
    item_tokens,
    plan_cost,
)
from elicit.baselines.icm_official_steps import _SALT, accept, energy, make_batches, temperature
from elicit.baselines.votes import labels_frame
from elicit.contracts import UNLABELLED, ConsistencyRule, answer_keys, consistency_groups, groups_layout, violations

KIND = "icm"
"""``kind`` of its query rows."""
PRIORITY = 100.0
"""Sampling weight of an unlabelled item sharing a consistency group with a labelled one (others: 1)."""
TRACE_COLUMNS = [
    "batch",
    "step",
    "item_id",
    "energy",
    "n_labelled",
    "n_inconsistent",
    "proposed",
    "candidate_energy",
    "accepted",
    "temperature",
]


class Scored(NamedTuple):
    """A labelling scored in full: its energy, each item's score (NaN where unlabelled) and inconsistencies."""

    energy: float
    scores: np.ndarray
    n_inconsistent: int


Observer = Callable[[np.ndarray, int, np.ndarray, Scored], None]
"""Called after each step with (the batch's item ids in batch order, step, labels by position, the labelling's
score) of the labelling kept (tests)."""


class _Run:
    """What the batches of one run share: the oracle, the config, the counters and the calls made."""

    def __init__(
        self,
        items: pd.DataFrame,
        ask: Ask,
        cfg: OfficialICMConfig,
        seed: int,
        rule: ConsistencyRule,
        plan: CostPlan,
    ) -> None:
        self.n = item_count(items)
        self.ask = ask
        self.cfg = cfg
        self.seed = int(seed)
        self.rule = rule
        self.plan = plan
        self.template_id = require_template(cfg.template_id, "icm")
        self.keys = answer_keys(items, self.n)
        self.tokens = item_tokens(items, self.n)
        self.group_of = np.full(self.n, -1, dtype=np.int64)
        for g, members in enumerate(consistency_groups(items)):
            self.group_of[members] = g
        self.calls = 0
        self.prompt_tokens = 0
        self.frames: list[pd.DataFrame] = []
        self.n_queries = 0

    def spend(self, calls: int, tokens: int) -> None:
        cfg = self.cfg
        for key, cap, made, more, what in (
            ("max_calls", cfg.max_calls, self.calls, calls, "oracle calls"),
            ("max_tokens", cfg.max_tokens, self.prompt_tokens, tokens, "prompt tokens"),
        ):
            if cap is not None and made + more > cap:
                raise ICMBudgetError(
                    f"{WHERE}: the run needs more than {key} = {cap:,} {what} (made {made:,}, the next step "
                    f"needs {more:,} more; planned: {self.plan.line()}); raise {WHERE}.{key}: the answers so "
                    "far are in the oracle cache"
                )
        self.calls += calls
        self.prompt_tokens += tokens


class _Batch:
    """One batch's search: labels by position (the batch order), remembered scores, the energy."""

    def __init__(self, run: _Run, index: int, ids: np.ndarray, observe: Observer | None) -> None:
        self.run = run
        self.cfg = run.cfg
        self.index = index
        self.ids = ids
        self.m = len(ids)
        self.observe = observe
        self.rng = np.random.default_rng([run.seed, _SALT, index])
        gid = run.group_of[ids]
        _, self.gid = np.unique(gid, return_inverse=True)  # local group per position (-1 -> its own index)
        self.gid = np.where(gid >= 0, self.gid, -1)
        local = [np.flatnonzero(self.gid == g) for g in np.unique(self.gid[self.gid >= 0])]
        self.layout = groups_layout(local, run.keys[ids], run.rule)
        lay = self.layout
        self.members = [
            (lay.item[lay.group == g], lay.sub[lay.group == g]) for g in range(lay.n_groups)
        ]  # positions and subgroups of each group, in position order
        self.tok = run.tokens[ids]
        self.memo: dict[bytes, float] = {}
        self.scored: dict[bytes, Scored] = {}

    # -- oracle

    def scores(self, labels: np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
        """Each target's score with every other labelled item shown (remembered: a query is asked once)."""
        targets = np.asarray(targets, dtype=np.int64)
        shown = np.repeat(labels[None, :], len(targets), axis=0)
        shown[np.arange(len(targets)), targets] = UNLABELLED
        keys = [int(t).to_bytes(4, "little") + row.tobytes() for t, row in zip(targets, shown, strict=True)]
        todo = [k for k, key in enumerate(keys) if key not in self.memo]
        if todo:
            self._ask([(int(targets[k]), shown[k], keys[k]) for k in todo])
        return np.array([self.memo[key] for key in keys], dtype=np.float64)

    def _ask(self, wanted: list[tuple[int, np.ndarray, bytes]]) -> None:
        run = self.run
        frames = run.cfg.framings
        q = QueryRows()
        key_of: dict[str, bytes] = {}
        tokens = 0
        for t, row, key in wanted:
            ctx = np.flatnonzero(row != UNLABELLED)
            tokens += int(self.tok[t] + self.tok[ctx].sum())
            ctx_ids = self.ids[ctx]
            for f in frames:
                qid = f"{KIND}-s{run.seed}-b{self.index}-c{run.n_queries}-{f}"
                q.add(qid, -1, -1, int(self.ids[t]), KIND, f, run.template_id, ctx_ids, row[ctx], -1)  # type: ignore[arg-type]
                key_of[qid] = key
            run.n_queries += 1
        run.spend(len(q.rows), tokens * len(frames))
        answered, got = ask_scores(run.ask, q.frame())
        run.frames.append(answered)
        per: dict[bytes, list[float]] = {}
        for qid, key in key_of.items():
            value = got[qid]
            per.setdefault(key, [])
            if math.isfinite(value):
                per[key].append(value)
        for key, values in per.items():
            self.memo[key] = float(np.mean(values)) if values else math.nan

    def score(self, labels: np.ndarray) -> Scored:
        """The labelling scored in full: every labelled item asked about with all others shown."""
        key = labels.tobytes()
        got = self.scored.get(key)
        if got is None:
            lab = np.flatnonzero(labels != UNLABELLED)
            full = np.full(self.m, np.nan)
            if len(lab):
                full[lab] = self.scores(labels, lab)
            got = Scored(
                energy(labels, full, self.layout, self.cfg.alpha),
                full,
                int(violations(self.layout, labels).sum()),
            )
            self.scored[key] = got
        return got

    # -- consistency

    def inconsistent_pairs(self, labels: np.ndarray) -> list[tuple[int, int, bool]]:
        """(a, b, contradiction) for each inconsistent pair of labelled positions, groups and members in
        position order: contradiction = different subgroups both 1 (or a fully labelled group with no 1 under
        exactly_one_true, both 0), else implication = one subgroup, different labels."""
        lay = self.layout
        if lay.n_groups == 0:
            return []
        out: list[tuple[int, int, bool]] = []
        for g in np.flatnonzero(violations(lay, labels) > 0):
            pos, sub = self.members[g]
            y = labels[pos]
            no_true = lay.rule.needs_a_true and bool((y != UNLABELLED).all()) and not bool((y == 1).any())
            for a in range(len(pos)):
                for b in range(a + 1, len(pos)):
                    if y[a] == UNLABELLED or y[b] == UNLABELLED:
                        continue
                    if sub[a] == sub[b]:
                        if y[a] != y[b]:
                            out.append((int(pos[a]), int(pos[b]), False))
                    elif (y[a] == 1 and y[b] == 1) or (no_true and y[a] == 0 and y[b] == 0):
                        out.append((int(pos[a]), int(pos[b]), True))
        return out

    def fix(self, labels: np.ndarray, current: Scored | None) -> tuple[np.ndarray, Scored | None]:
        """The script's fix_inconsistency: repair pairs while the energy does not drop below the best so far
        (``current`` None: the first repair is always taken). Returns the labelling and its score (None when
        nothing was repaired and there was no reference)."""
        if current is not None and current.n_inconsistent == 0:
            return labels, current
        best_energy = -math.inf if current is None else current.energy
        best = current
        assignment = labels
        for _ in range(self.cfg.fix_iterations):
            pairs = self.inconsistent_pairs(assignment)
            taken: tuple[np.ndarray, Scored] | None = None
            for k in self.rng.permutation(len(pairs)):
                a, b, contradiction = pairs[int(k)]
                options = ((0, 1), (1, 0)) if contradiction else ((0, 0), (1, 1))
                cands = []
                for ya, yb in options:
                    cand = assignment.copy()
                    cand[a], cand[b] = ya, yb
                    cands.append((cand, self.score(cand)))
                pick = cands[0] if cands[0][1].energy >= cands[1][1].energy else cands[1]
                if pick[1].energy >= best_energy:
                    taken = pick
                    break
            if taken is None:
                break
            assignment, best = taken
            best_energy = best.energy
            if best.n_inconsistent == 0:
                break
        return assignment, best

    # -- the search

    def weights(self, labels: np.ndarray) -> np.ndarray:
        """100 for an unlabelled item sharing a consistency group with a labelled one, else 1."""
        unl = labels == UNLABELLED
        grouped = self.gid >= 0
        if not grouped.any():
            return np.ones(self.m)
        has_label = np.zeros(int(self.gid.max()) + 1, dtype=bool)
        has_label[self.gid[grouped & ~unl]] = True
        boost = unl & grouped & has_label[np.maximum(self.gid, 0)]
        return np.where(boost, PRIORITY, 1.0)

    def search(self) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]]:
        cfg, m = self.cfg, self.m
        trace: list[tuple[Any, ...]] = []

        def record(step: int, item: int, labels: np.ndarray, cand: Scored | None, acc: bool, t: float) -> None:
            n_lab = int((labels != UNLABELLED).sum())
            e_cand = math.nan if cand is None else cand.energy
            trace.append(
                (self.index, step, item, cur.energy, n_lab, cur.n_inconsistent, cand is not None, e_cand, acc, t)
            )
            if self.observe is not None:
                self.observe(self.ids, step, labels, cur)

        labels = np.full(m, UNLABELLED, dtype=np.int8)
        s = min(cfg.n_init, m)
        seeds = np.array([1] * (s // 2) + [0] * (s - s // 2), dtype=np.int8)
        labels[:s] = self.rng.permutation(seeds)
        labels, fixed = self.fix(labels, self.score(labels))
        cur = fixed if fixed is not None else self.score(labels)
        record(0, -1, labels, None, True, cfg.t0)

        accepted = 0
        for step in range(1, cfg.iterations_for(m) + 1):
            w = self.weights(labels)
            i = int(np.searchsorted(np.cumsum(w), self.rng.random() * w.sum(), side="right"))
            i = min(i, m - 1)
            proposal = int(float(self.scores(labels, [i])[0]) > 0)  # a missing answer proposes 0, as in the script
            temp = temperature(accepted, cfg)
            if labels[i] == proposal:
                record(step, int(self.ids[i]), labels, None, False, temp)
                continue
            cand = labels.copy()
            cand[i] = proposal
            cand, _ = self.fix(cand, None)
            new = self.score(cand)
            ok = accept(new.energy - cur.energy, temp, float(self.rng.random()))
            if ok:
                labels, cur = cand, new
                accepted += 1
            record(step, int(self.ids[i]), labels, new, ok, temp)

        final = cur.scores.copy()
        rest = np.flatnonzero(labels == UNLABELLED)
        if len(rest):  # never labelled: one prediction with every labelled item shown
            guess = self.scores(labels, rest)
            final[rest] = guess
            labels = labels.copy()
            labels[rest] = (np.nan_to_num(guess, nan=0.0) > 0).astype(np.int8)
        return labels, final, trace


def icm_official(
    items: pd.DataFrame,
    ask: Ask,
    cfg: OfficialICMConfig,
    seed: int = 0,
    consistency_rule: str = "none",
    *,
    observe: Observer | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run ICM as the authors' script does over every item (module docstring); returns (labels, calls, trace).

    labels: item_id, p_true for every item. calls: every distinct query row asked (kind "icm", round -1,
    group_id -1, perm_seed -1: context_ids are in shown order, the batch's group order), answered, in asking
    order. trace: one row per step of each batch (TRACE_COLUMNS): step 0 is the seeds after their fix;
    ``proposed`` = the proposal changed a label and was put to the annealing test, ``accepted`` its outcome;
    energy, n_labelled and n_inconsistent describe the labelling kept after the step. Raises ICMBudgetError
    before any call when the plan (`plan_cost`) exceeds ``max_calls`` / ``max_tokens``, and during the run
    when the calls made would. Deterministic given ``seed`` and the oracle's answers. Never reads gold.
    """
    items = items.drop(columns=["gold"], errors="ignore")
    rule = ConsistencyRule.parse(consistency_rule)
    rule.check_items(items)
    require_template(cfg.template_id, "icm")
    plan = plan_cost(items, cfg, seed)
    check_cost(plan, cfg)
    run = _Run(items, ask, cfg, seed, rule, plan)
    batches = make_batches(items, cfg.batch_size, np.random.default_rng([int(seed), _SALT]))
    labels = np.full(run.n, UNLABELLED, dtype=np.int8)
    scores = np.full(run.n, np.nan)
    trace: list[tuple[Any, ...]] = []
    for b, ids in enumerate(batches):
        lab, sc, tr = _Batch(run, b, ids, observe).search()
        labels[ids] = lab
        scores[ids] = sc
        trace += tr
    p = soft_labels(labels, scores, np.full(run.n, 0.5))
    trace_df = pd.DataFrame(trace, columns=TRACE_COLUMNS).astype(
        {
            "batch": np.int64,
            "step": np.int64,
            "item_id": np.int64,
            "energy": np.float64,
            "n_labelled": np.int64,
            "n_inconsistent": np.int64,
            "proposed": bool,
            "candidate_energy": np.float64,
            "accepted": bool,
            "temperature": np.float64,
        }
    )
    return labels_frame(run.n, p), concat_calls(run.frames), trace_df
