"""Tables -> padded tensors: everything a loss needs, precomputed once so each epoch is a handful of tensor
ops.

The pipeline hands us three tables (tuples, priors, the gold-free columns of items). ``build_problem``
validates them, pads the variable-length contexts to ``[T, K]`` index / sign / mask tensors, pairs every flip
row with its twin, calibrates the zero-shot prior without gold, and lays out the consistency groups as flat
segment indices (``elicit.contracts.layout``: the same groups the baselines and evaluate count violations on).
Nothing here reads ``gold``: only ``item_id``, ``consistency_id`` and ``answer_key`` are
taken from items.

Score conventions (DESIGN.md "What a label and a score mean"): ``score`` is the log-odds that the target has
label 1 with the framing already undone. NaN or ``missing`` rows are masked out; +-inf (an answer with ~all
the mass) is clipped to +-``score_clip`` so that it is very strong, finite evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from elicit.contracts import CONSISTENCY_RULES as CONSISTENCY_RULES  # re-exported by elicit.optimize
from elicit.contracts import ConsistencyRule, ConsistencyRuleError, GroupLayout, items_layout
from elicit.optimize.config import OptimizeError
from elicit.plan import FEW_SHOT_KINDS

SCORE_CLIP = 20.0  # |log-odds| beyond this is clipped (p ~ 2e-9): keeps +-inf answers finite and strong
PRIOR_CLIP = 8.0  # calibrated prior log-odds are clipped to +-this: a zero-shot prior is never near-certain
BALANCE_RANGE = (0.05, 0.95)  # an estimated class balance is clipped into this range

TUPLE_COLUMNS = (
    "query_id",
    "target_id",
    "kind",
    "framing",
    "context_ids",
    "context_shown",
    "flipped_pos",
    "flip_of",
    "score",
    "missing",
)


@dataclass
class Problem:
    """Padded tensors for N items and T tuples (K = longest context), on one device and dtype.

    Tuple features: ``ctx_sign`` is the shown label coded +-1 (0 at padding), ``copy_feat`` its mean over real
    entries (the copying regressor), ``last_feat`` the sign of the last shown label (the position regressor),
    both 0 for a tuple without context. ``framing`` is +1 (pos) / -1 (neg). Flip pairs:
    ``flip_row``/``twin_row`` index tuples, ``flip_item`` is the context item whose label was flipped and
    ``flip_dir`` the sign shown for it in the flip row (+1: the flip row shows label 1 and its twin label 0).
    Consistency: items ``cons_item`` belong to subgroups ``cons_sub``, subgroups to groups ``sub_group`` (a
    subgroup is one item, or for same_answer_same_label all items of a group sharing an answer_key), laid out
    by ``elicit.contracts.layout`` (``consistency_layout`` gives it back).
    """

    n_items: int
    target: torch.Tensor  # [T] long
    score: torch.Tensor  # [T] float, 0 where missing
    has_score: torch.Tensor  # [T] bool
    framing: torch.Tensor  # [T] float +-1
    ctx_ids: torch.Tensor  # [T, K] long, 0 at padding
    ctx_sign: torch.Tensor  # [T, K] float +-1, 0 at padding
    ctx_mask: torch.Tensor  # [T, K] bool
    copy_feat: torch.Tensor  # [T] float
    last_feat: torch.Tensor  # [T] float
    flip_row: torch.Tensor  # [F] long
    twin_row: torch.Tensor  # [F] long
    flip_item: torch.Tensor  # [F] long
    flip_dir: torch.Tensor  # [F] float +-1
    prior_logit: torch.Tensor  # [N] float, calibrated; logit(balance) where the prior is missing
    prior_known: torch.Tensor  # [N] bool
    cons_item: torch.Tensor  # [M] long
    cons_sub: torch.Tensor  # [M] long
    sub_group: torch.Tensor  # [S] long
    n_subgroups: int
    n_groups: int
    consistency_rule: ConsistencyRule
    balance: float
    calibration: dict[str, Any] = field(default_factory=dict)
    score_stats: tuple[float, float] = (1.0, 1.0)  # (mean |score|, std score) of non-missing scores, for init
    # rows of the input table that these tuples came from
    tuple_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Derived once per (device, dtype) so an epoch does no conversion and no per-slot transcendental:
    # ctx_code [T, K] indexes a per-item table [f(-z) (N), f(z) (N), 0]: item + N * shown, 2N at padding, so a
    # masked context mean of f(+-z) is one gather and one row sum times inv_count [T] (1 / number of real
    # entries). bias_features [T, 4] = (copy_feat, last_feat, framing is pos, -(framing is neg)) so the bias
    # is one matvec.
    ctx_code: torch.Tensor = field(init=False, repr=False)
    inv_count: torch.Tensor = field(init=False, repr=False)
    bias_features: torch.Tensor = field(init=False, repr=False)
    score_weight: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.n_items
        small = 2 * n < 2**31 - 1  # index_select takes int32 indices: half the memory of the [T, K] codes
        code = self.ctx_ids.to(torch.int32 if small else torch.int64)  # a copy, built up in place
        code += n * (self.ctx_sign > 0).to(code.dtype)
        code.masked_fill_(~self.ctx_mask, 2 * n)
        self.ctx_code = code.reshape(-1)
        self.inv_count = 1.0 / self.ctx_mask.sum(1).clamp_min(1).to(self.score.dtype)
        is_pos = (self.framing > 0).to(self.score.dtype)
        self.bias_features = torch.stack([self.copy_feat, self.last_feat, is_pos, is_pos - 1.0], dim=1)
        self.score_weight = self.has_score.to(self.score.dtype)

    def consistency_layout(self) -> GroupLayout:
        """The consistency groups as ``elicit.contracts`` lays them out (numpy), e.g. to count violations."""
        item, sub, sub_group = (t.cpu().numpy() for t in (self.cons_item, self.cons_sub, self.sub_group))
        return GroupLayout(self.consistency_rule, item, sub, sub_group, self.n_groups)

    @property
    def n_tuples(self) -> int:
        return int(self.target.shape[0])

    @property
    def n_flips(self) -> int:
        return int(self.flip_row.shape[0])

    @property
    def device(self) -> torch.device:
        return self.target.device

    @property
    def dtype(self) -> torch.dtype:
        return self.score.dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Problem:
        """A copy on ``device`` with float tensors in ``dtype`` (index and mask tensors keep their type)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and dtype is not None:
                    value = value.to(dtype=dtype)
                if device is not None:
                    value = value.to(device=device)
                changes[f.name] = value
        return replace(self, **changes)

    def subset(self, rows: np.ndarray | torch.Tensor) -> Problem:
        """The same items, prior and consistency groups with only the tuples ``rows`` (sorted, unique
        indices).

        Flip pairs survive only when both rows are kept; used by ``select`` to fit on a training split.
        """
        rows_np = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
        idx = torch.as_tensor(np.unique(rows_np.astype(np.int64)), device=self.device)
        remap = torch.full((self.n_tuples,), -1, dtype=torch.long, device=self.device)
        remap[idx] = torch.arange(idx.numel(), device=self.device)
        keep = (remap[self.flip_row] >= 0) & (remap[self.twin_row] >= 0)
        return replace(
            self,
            target=self.target[idx],
            score=self.score[idx],
            has_score=self.has_score[idx],
            framing=self.framing[idx],
            ctx_ids=self.ctx_ids[idx],
            ctx_sign=self.ctx_sign[idx],
            ctx_mask=self.ctx_mask[idx],
            copy_feat=self.copy_feat[idx],
            last_feat=self.last_feat[idx],
            flip_row=remap[self.flip_row[keep]],
            twin_row=remap[self.twin_row[keep]],
            flip_item=self.flip_item[keep],
            flip_dir=self.flip_dir[keep],
            tuple_rows=self.tuple_rows[idx.cpu().numpy()],
        )


def _fail(msg: str) -> OptimizeError:
    return OptimizeError(msg)


def calibrate_prior(scores: np.ndarray, class_balance: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrate framing-averaged zero-shot log-odds without gold; returns (log-odds [N], what was done).

    1. Fit a two-component, equal-variance 1-D Gaussian mixture to the non-missing scores by EM (deterministic
       start at the 25 %/75 % quantiles, 200 iterations). Its weight of the upper component is the
       class-balance estimate pi (clipped to [0.05, 0.95]) unless ``class_balance`` is given.
    2. Centre: c = the (1 - pi) quantile of the scores, so exactly a fraction pi of items get log-odds > 0.
    3. Temperature: T = v / (m1 - m0) with the mixture's pooled within-class variance v and component means
    m0 < m1
       -- the slope of the mixture's own posterior log-odds, i.e. the spread of scores within a class sets
       how much one unit of score is worth. If the components do not separate (m1 - m0 <= 1e-6) the prior is
       flat.
    4. log-odds = clip((s - c) / T, +-8); missing items get logit(pi) (no evidence: the class balance).
    Deterministic, uses scores only; the framing average has already removed symmetric acquiescence.
    """
    s = np.asarray(scores, dtype=np.float64)
    known = np.isfinite(s)
    x = s[known]
    info: dict[str, Any] = {"method": "gmm2_equal_variance_quantile_centre", "n_known": int(known.sum())}
    m0 = m1 = 0.0
    v = 1.0
    pi = 0.5
    if x.size >= 2 and float(np.std(x)) > 1e-9:
        m0, m1 = (float(q) for q in np.quantile(x, [0.25, 0.75]))
        v = float(np.var(x))
        floor = 1e-6 * v
        for _ in range(200):
            l1 = math.log(pi) - (x - m1) ** 2 / (2 * v)
            l0 = math.log(1 - pi) - (x - m0) ** 2 / (2 * v)
            r = 1.0 / (1.0 + np.exp(np.clip(l0 - l1, -700, 700)))
            pi = float(np.clip(r.mean(), *BALANCE_RANGE))
            m1 = float((r * x).sum() / max(r.sum(), 1e-12))
            m0 = float(((1 - r) * x).sum() / max((1 - r).sum(), 1e-12))
            v = max(float((r * (x - m1) ** 2 + (1 - r) * (x - m0) ** 2).mean()), floor)
        if m1 < m0:  # the score is log-odds of label 1: the upper component is label 1
            m0, m1, pi = m1, m0, 1 - pi
    if class_balance is not None:
        pi = float(class_balance)
    pi = float(np.clip(pi, *BALANCE_RANGE))
    out = np.full(s.shape, math.log(pi / (1 - pi)))
    centre = float(np.quantile(x, 1 - pi)) if x.size else 0.0
    sep = m1 - m0
    temperature = v / sep if sep > 1e-6 else math.inf
    if x.size and math.isfinite(temperature):
        out[known] = np.clip((x - centre) / temperature, -PRIOR_CLIP, PRIOR_CLIP)
    elif x.size:
        out[known] = 0.0
    info.update(
        class_balance=pi,
        class_balance_source="given" if class_balance is not None else "estimated",
        centre=centre,
        temperature=temperature if math.isfinite(temperature) else None,
        component_means=[m0, m1],
        within_class_std=math.sqrt(v),
    )
    return out, info


def _int_array(where: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(f"{where}: expected integers") from None
    if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise _fail(f"{where}: expected integers, found null or non-integer values")
    return arr.astype(np.int64)


def _lists(where: str, col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a list column: (lengths [T], concatenated values), without a per-row copy."""
    vals = col.to_numpy()
    lengths = np.fromiter((0 if v is None else len(v) for v in vals), dtype=np.int64, count=len(vals))
    parts = [v for v in vals if v is not None and len(v)]
    try:
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    except (TypeError, ValueError):
        raise _fail(f"tuples.{where}: expected lists of integers") from None
    if flat.dtype.kind not in "iub":
        as_float = flat.astype(np.float64)  # lists of Python ints/None, or floats
        if not np.isfinite(as_float).all() or (as_float != np.round(as_float)).any():
            raise _fail(f"tuples.{where}: expected integer lists, found null or non-integer values")
    return lengths, flat.astype(np.int64, copy=False)


def _consistency(items: pd.DataFrame | None, rule: ConsistencyRule) -> GroupLayout:
    """The consistency groups of ``rule`` (groups of >= 2 members taking part) from items' gold-free columns."""
    if rule is not ConsistencyRule.NONE and (items is None or "consistency_id" not in items.columns):
        raise _fail(f"consistency rule '{rule}' needs items with a consistency_id column; pass items or use 'none'")
    try:
        return items_layout(items if items is not None else pd.DataFrame(), rule)
    except ConsistencyRuleError as err:
        raise _fail(str(err)) from None


def build_problem(
    tuples: pd.DataFrame,
    priors: pd.DataFrame,
    items: pd.DataFrame | None = None,
    consistency_rule: str = "none",
    *,
    class_balance: float | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Problem:
    """Validate the tables and turn them into a ``Problem`` (see module docstring); raises OptimizeError."""
    try:
        rule = ConsistencyRule.parse(consistency_rule)
    except ConsistencyRuleError as err:
        raise _fail(str(err)) from None
    if tuples is None or len(tuples) == 0:
        raise _fail("tuples table is empty: nothing to fit; run the few-shot rounds first (rounds >= 1)")
    missing_cols = [c for c in TUPLE_COLUMNS if c not in tuples.columns]
    if missing_cols:
        raise _fail(f"tuples table lacks columns {missing_cols}; it must follow the tuples.parquet contract")
    for c in ("item_id", "score"):
        if c not in priors.columns:
            raise _fail(f"priors table lacks column '{c}'; it must follow the priors.parquet contract")

    prior_ids = _int_array("priors.item_id", priors["item_id"])
    n = len(prior_ids)
    if n == 0 or not np.array_equal(np.sort(prior_ids), np.arange(n)):
        raise _fail(f"priors.item_id must be exactly 0..N-1 (one row per item); got {n} rows with other ids")
    if items is not None:
        item_ids = _int_array("items.item_id", items["item_id"])
        if not np.array_equal(np.sort(item_ids), np.arange(n)):
            raise _fail(f"items.item_id must be 0..{n - 1}, the same items as priors; got {len(item_ids)} rows")

    t = len(tuples)
    target = _int_array("tuples.target_id", tuples["target_id"])
    bad = (target < 0) | (target >= n)
    if bad.any():
        raise _fail(
            f"tuples.target_id {int(target[bad][0])} is not a known item id (0..{n - 1}); "
            "tuples and priors describe different items"
        )
    kinds = tuples["kind"].astype(str).to_numpy()
    bad_kind = ~np.isin(kinds, list(FEW_SHOT_KINDS))
    if bad_kind.any():
        raise _fail(f"tuples.kind '{kinds[bad_kind][0]}' is not few_shot or flip; only those rows belong in tuples")
    framing_str = tuples["framing"].astype(str).to_numpy()
    bad_fr = ~np.isin(framing_str, ["pos", "neg"])
    if bad_fr.any():
        raise _fail(f"tuples.framing '{framing_str[bad_fr][0]}' is not pos or neg")
    framing = np.where(framing_str == "pos", 1.0, -1.0)

    lengths, flat_ids = _lists("context_ids", tuples["context_ids"])
    lengths_s, flat_shown = _lists("context_shown", tuples["context_shown"])
    if not np.array_equal(lengths, lengths_s):
        row = int(np.flatnonzero(lengths != lengths_s)[0])
        raise _fail(f"tuples row {row}: context_ids and context_shown differ in length; they must pair up")
    if flat_ids.size and ((flat_ids < 0) | (flat_ids >= n)).any():
        bad_id = int(flat_ids[(flat_ids < 0) | (flat_ids >= n)][0])
        raise _fail(f"tuples.context_ids contains {bad_id}, not a known item id (0..{n - 1})")
    if flat_shown.size and not np.isin(flat_shown, [0, 1]).all():
        raise _fail("tuples.context_shown must hold label values 0/1")
    k = int(lengths.max()) if t else 0
    # Row-major boolean assignment fills each row's first len entries in order: no per-slot index arrays.
    ctx_mask = np.arange(k)[None, :] < lengths[:, None]
    ctx_ids = np.zeros((t, k), dtype=np.int64)
    ctx_ids[ctx_mask] = flat_ids
    ctx_sign = np.zeros((t, k), dtype=np.int8)
    ctx_sign[ctx_mask] = 2 * flat_shown.astype(np.int8) - 1
    del flat_ids, flat_shown
    copy_feat = ctx_sign.sum(1, dtype=np.float64) / np.maximum(lengths, 1)
    last_feat = np.zeros(t)
    has_ctx = lengths > 0
    last_feat[has_ctx] = ctx_sign[np.flatnonzero(has_ctx), lengths[has_ctx] - 1]

    score = pd.to_numeric(tuples["score"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = tuples["missing"].fillna(True).astype(bool).to_numpy()
    has_score = ~missing & ~np.isnan(score)
    score = np.where(has_score, np.clip(np.nan_to_num(score, nan=0.0), -SCORE_CLIP, SCORE_CLIP), 0.0)

    # Flip pairs: the flip row, its twin (by query_id), the flipped context item and the direction shown.
    qid = pd.Index(tuples["query_id"].astype(str))
    if not qid.is_unique:
        raise _fail(f"tuples.query_id '{qid[qid.duplicated()][0]}' occurs twice; query ids must be unique")
    flip_of = tuples["flip_of"]
    fp = _int_array("tuples.flipped_pos", tuples["flipped_pos"].fillna(-1))
    is_flip = flip_of.notna().to_numpy() & (fp >= 0)
    frows = np.flatnonzero(is_flip)
    twins = qid.get_indexer(pd.Index(flip_of.to_numpy()[frows].astype(str)))
    ok = twins >= 0
    frows, twins = frows[ok], twins[ok].astype(np.int64)
    ok = (fp[frows] < lengths[frows]) & (target[frows] == target[twins])
    frows, twins = frows[ok], twins[ok]
    flip_item = ctx_ids[frows, fp[frows]]
    flip_dir = ctx_sign[frows, fp[frows]]

    prior_score = pd.to_numeric(priors.sort_values("item_id")["score"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    prior_score = np.clip(prior_score, -SCORE_CLIP, SCORE_CLIP)  # +-inf -> strong but finite; NaN stays missing
    prior_logit, calibration = calibrate_prior(prior_score, class_balance)
    groups = _consistency(items, rule)

    known_scores = score[has_score]
    stats = (float(np.abs(known_scores).mean()), float(known_scores.std())) if known_scores.size else (1.0, 1.0)

    def ft(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.require(a, np.float64, ["C", "W"]), dtype=dtype, device=device)

    def lt(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.require(a, np.int64, ["C", "W"]), device=device)

    def bt(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.require(a, bool, ["C", "W"]), device=device)

    return Problem(
        n_items=n,
        target=lt(target),
        score=ft(score),
        has_score=bt(has_score),
        framing=ft(framing),
        ctx_ids=lt(ctx_ids),
        ctx_sign=torch.as_tensor(ctx_sign, device=device).to(dtype),
        ctx_mask=bt(ctx_mask),
        copy_feat=ft(copy_feat),
        last_feat=ft(last_feat),
        flip_row=lt(frows),
        twin_row=lt(twins),
        flip_item=lt(flip_item),
        flip_dir=ft(flip_dir),
        prior_logit=ft(prior_logit),
        prior_known=bt(np.isfinite(prior_score)),
        cons_item=lt(groups.item),
        cons_sub=lt(groups.sub),
        sub_group=lt(groups.sub_group),
        n_subgroups=groups.n_subgroups,
        n_groups=groups.n_groups,
        consistency_rule=rule,
        balance=float(calibration["class_balance"]),
        calibration=calibration,
        score_stats=stats,
        tuple_rows=np.arange(t, dtype=np.int64),
    )


def sample_ranking_pairs(
    problem: Problem, per_item: float, min_gap: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (hi, lo) of items whose calibrated prior log-odds differ by >= min_gap, hi above lo.

    ``per_item * N`` candidate pairs are drawn uniformly (once per fit, from the fit's seeded generator) and
    the ones with too small a gap or an unknown prior are dropped, so only confident prior orderings are
    enforced.
    """
    n = problem.n_items
    m = int(round(per_item * n))
    if m <= 0 or n < 2:
        empty = torch.zeros(0, dtype=torch.long, device=problem.device)
        return empty, empty
    a = torch.randint(0, n, (m,), generator=generator).to(problem.device)
    b = torch.randint(0, n, (m,), generator=generator).to(problem.device)
    pa, pb = problem.prior_logit[a], problem.prior_logit[b]
    keep = (pa - pb).abs() >= min_gap
    keep &= problem.prior_known[a] & problem.prior_known[b] & (a != b)
    hi = torch.where(pa >= pb, a, b)[keep]
    lo = torch.where(pa >= pb, b, a)[keep]
    return hi, lo
