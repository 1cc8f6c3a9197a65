"""A synthetic oracle problem with planted truth and planted biases, for tests and the speed benchmark.

The planted values below are fixed once (stated in ``SyntheticSpec``) and are not tuned to make any method
look good; tests only change sizes and the consistency layout. The generator follows the oracle model of
losses.py on purpose (so bias recovery is a well-posed check) but adds what that model ignores: a persistent
per-item error shared by all prompts about an item (difficulty: the same misconception in zero-shot and
few-shot answers, so averaging calls cannot remove it), shown labels taken from the zero-shot answers (as
round 1 does), and missing answers. Vectorized NumPy: 2 M tuples take seconds.

Per item i: truth y_i; persistent error o_i ~ N(0, item_noise^2).
Zero-shot, framing f in {pos, neg}: s = zero_shot_signal (2y-1) + o_i + f*acquiescence + N(0, prompt_noise^2).
Few-shot / flip, context C (from the target's embedding group, shown labels c_k in {-1,+1}):
  s = (few_shot_signal + icl_gain * mean_k c_k (2y_k-1)) (2y_i-1) + o_i
      + copy * mean_k c_k + position * c_last + f * acquiescence + N(0, prompt_noise^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and planted values (log-odds units). Defaults: the seed's problem size."""

    n_items: int = 1580
    n_tuples: int = 31546
    k_min: int = 6
    k_max: int = 10
    group_size: int = 12  # embedding groups; a context is drawn from the target's group
    positive_fraction: float = 0.5  # used for items outside consistency groups
    consistency: str = "none"  # "none" or "exactly_one_true"
    consistency_size: int = 2
    zero_shot_signal: float = 1.0
    few_shot_signal: float = 1.5  # ICL: few-shot calls separate the classes better than zero-shot
    icl_gain: float = 1.0  # ... and more so when the shown labels are right
    item_noise: float = 1.0  # persistent per-item error (difficulty)
    prompt_noise: float = 0.7  # fresh per call
    copy: float = 0.8
    position: float = 0.4
    acquiescence: float = 0.5
    flip_fraction: float = 0.25  # share of few-shot calls that get a flip twin
    shown_error: float = 0.1  # shown label = zero-shot answer, flipped at random with this probability
    missing_rate: float = 0.02
    seed: int = 0


@dataclass
class SyntheticData:
    """Tables in the pipeline's contracts plus the planted truth (``items`` carries a gold column)."""

    tuples: pd.DataFrame
    priors: pd.DataFrame
    items: pd.DataFrame
    truth: np.ndarray
    consistency_rule: str
    spec: SyntheticSpec


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def generate(spec: SyntheticSpec) -> SyntheticData:
    """Draw one synthetic problem from ``spec`` (deterministic in spec.seed)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n_items

    # Truth and consistency groups (exactly one true per group, like a question's candidate answers).
    truth = (rng.random(n) < spec.positive_fraction).astype(np.int64)
    cons_id = np.full(n, -1, dtype=np.int64)
    if spec.consistency == "exactly_one_true":
        m = spec.consistency_size
        n_groups = n // m
        cons_id[: n_groups * m] = np.repeat(np.arange(n_groups), m)
        truth[: n_groups * m] = 0
        winner = np.arange(n_groups) * m + rng.integers(0, m, n_groups)
        truth[winner] = 1
    elif spec.consistency != "none":
        raise ValueError(f"synthetic consistency '{spec.consistency}' not supported")
    sign_y = 2.0 * truth - 1.0
    offset = rng.normal(0.0, spec.item_noise, n)

    # Zero-shot answers, both framings -> priors table.
    s_pos = spec.zero_shot_signal * sign_y + offset + spec.acquiescence + rng.normal(0, spec.prompt_noise, n)
    s_neg = spec.zero_shot_signal * sign_y + offset - spec.acquiescence + rng.normal(0, spec.prompt_noise, n)
    miss_pos = rng.random(n) < spec.missing_rate
    miss_neg = rng.random(n) < spec.missing_rate
    sp = np.where(miss_pos, np.nan, s_pos)
    sn = np.where(miss_neg, np.nan, s_neg)
    both = np.vstack([sp, sn])
    count = (~np.isnan(both)).sum(0)
    prior_score = np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)
    spread = np.where(miss_pos | miss_neg, 0.0, np.abs(np.nan_to_num(sp) - np.nan_to_num(sn)) / 2)
    priors = pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "score": prior_score,
            "score_pos": sp,
            "score_neg": sn,
            "spread": np.nan_to_num(spread),
            "n_missing": (miss_pos.astype(np.int64) + miss_neg.astype(np.int64)),
        }
    )
    zero_shot_label = np.where(np.isnan(prior_score), rng.integers(0, 2, n), prior_score > 0).astype(np.int64)

    # Embedding groups (random: no label homophily) -> padded member matrix.
    perm = rng.permutation(n)
    n_emb = max(n // spec.group_size, 1)
    emb_of = np.empty(n, dtype=np.int64)
    emb_of[perm] = np.arange(n) % n_emb
    order = np.argsort(emb_of, kind="stable")
    sizes = np.bincount(emb_of, minlength=n_emb)
    width = int(sizes.max())
    members = np.full((n_emb, width), -1, dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    col = np.arange(n) - np.repeat(starts, sizes)
    members[emb_of[order], col] = order

    # Few-shot calls and their flip twins, in chunks so a 2 M-call problem never holds big padded temporaries.
    n_fs = int(round(spec.n_tuples / (1 + spec.flip_fraction)))
    n_flip = min(spec.n_tuples - n_fs, n_fs)
    chunk = 200_000
    bounds = list(range(0, n_fs, chunk)) + [n_fs]
    flip_bounds = [round(n_flip * b / max(n_fs, 1)) for b in bounds]

    def scores(tgt: np.ndarray, ctx_: np.ndarray, shown_: np.ndarray, mask_: np.ndarray, fr: np.ndarray) -> np.ndarray:
        c = np.where(mask_, 2.0 * shown_ - 1.0, 0.0)
        kk = np.maximum(mask_.sum(1), 1)
        copy_feat = c.sum(1) / kk
        correct = (c * np.where(mask_, sign_y[ctx_], 0.0)).sum(1) / kk
        last_idx = np.maximum(mask_.sum(1) - 1, 0)
        last = np.where(mask_.any(1), c[np.arange(len(tgt)), last_idx], 0.0)
        return (
            (spec.few_shot_signal + spec.icl_gain * correct) * sign_y[tgt]
            + offset[tgt]
            + spec.copy * copy_feat
            + spec.position * last
            + spec.acquiescence * fr
            + rng.normal(0, spec.prompt_noise, len(tgt))
        )

    keys_ = ("target", "ctx", "shown", "score", "framing")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in (*keys_, "twin", "fpos")}
    flip_parts: dict[str, list[np.ndarray]] = {key: [] for key in keys_}
    for c0, c1, f0, f1 in zip(bounds[:-1], bounds[1:], flip_bounds[:-1], flip_bounds[1:], strict=True):
        m = c1 - c0
        target = rng.integers(0, n, m)
        grp = emb_of[target]
        cand = members[grp]  # [m, width]
        keys = rng.random(cand.shape)
        keys[(cand < 0) | (cand == target[:, None])] = np.inf
        k = np.minimum(rng.integers(spec.k_min, spec.k_max + 1, m), np.maximum(sizes[grp] - 1, 0))
        kmax = int(k.max()) if m else 0
        ctx = np.take_along_axis(cand, np.argsort(keys, axis=1)[:, :kmax], axis=1)
        mask = np.arange(kmax)[None, :] < k[:, None]
        ctx = np.where(mask, ctx, 0)
        shown = (zero_shot_label[ctx] ^ (rng.random(ctx.shape) < spec.shown_error)).astype(np.int8)
        shown = np.where(mask, shown, 0).astype(np.int8)
        framing = np.where(rng.random(m) < 0.5, 1.0, -1.0)
        parts["target"].append(target)
        parts["ctx"] += _split(ctx[mask].astype(np.int64), k)
        parts["shown"] += _split(shown[mask], k)
        parts["score"].append(scores(target, ctx, shown, mask, framing))
        parts["framing"].append(framing)
        twin = rng.choice(m, size=f1 - f0, replace=False) if f1 > f0 else np.zeros(0, np.int64)
        fpos = (rng.random(len(twin)) * k[twin]).astype(np.int64)
        f_shown = shown[twin].copy()
        f_shown[np.arange(len(twin)), fpos] ^= 1
        flip_parts["target"].append(target[twin])
        flip_parts["ctx"] += _split(ctx[twin][mask[twin]].astype(np.int64), k[twin])
        flip_parts["shown"] += _split(f_shown[mask[twin]], k[twin])
        flip_parts["score"].append(scores(target[twin], ctx[twin], f_shown, mask[twin], framing[twin]))
        flip_parts["framing"].append(framing[twin])
        parts["twin"].append(twin + c0)
        parts["fpos"].append(fpos)

    def cat(key: str) -> np.ndarray:
        return np.concatenate(parts[key] + flip_parts[key]) if parts[key] else np.zeros(0)

    all_target = cat("target").astype(np.int64)
    all_score = cat("score")
    all_framing = cat("framing")
    twin_all = np.concatenate(parts["twin"]) if parts["twin"] else np.zeros(0, np.int64)
    fpos_all = np.concatenate(parts["fpos"]) if parts["fpos"] else np.zeros(0, np.int64)
    total = len(all_target)
    missing = rng.random(total) < spec.missing_rate
    qid = np.array([f"q{i}" for i in range(total)], dtype=object)
    flip_of = np.full(total, None, dtype=object)
    flip_of[n_fs:] = qid[twin_all]
    flipped = np.full(total, -1, dtype=np.int64)
    flipped[n_fs:] = fpos_all
    context_ids = pd.Series(parts["ctx"] + flip_parts["ctx"], dtype=object)
    context_shown = pd.Series(parts["shown"] + flip_parts["shown"], dtype=object)
    tuples = pd.DataFrame(
        {
            "query_id": qid,
            "round": np.ones(total, dtype=np.int64),
            "group_id": emb_of[all_target],
            "target_id": all_target,
            "kind": np.where(np.arange(total) < n_fs, "few_shot", "flip"),
            "framing": np.where(all_framing > 0, "pos", "neg"),
            "template_id": "t0",
            "context_ids": context_ids,
            "context_shown": context_shown,
            "perm_seed": np.arange(total, dtype=np.int64),
            "flipped_pos": flipped,
            "flip_of": flip_of,
            "score": np.where(missing, np.nan, all_score),
            "missing": missing,
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "consistency_id": pd.array(np.where(cons_id >= 0, cons_id, 0), dtype="Int64"),
            "answer_key": pd.array([None] * n, dtype="string"),
            "gold": truth,
        }
    )
    items.loc[cons_id < 0, "consistency_id"] = pd.NA
    return SyntheticData(
        tuples=tuples,
        priors=priors,
        items=items,
        truth=truth,
        consistency_rule=spec.consistency,
        spec=spec,
    )


def few_shot_mean_vote(tuples: pd.DataFrame, n_items: int) -> np.ndarray:
    """Baseline: per item, the mean of its non-missing few-shot/flip scores (> 0 -> 1); 0.5 with no score."""
    score = pd.to_numeric(tuples["score"], errors="coerce").to_numpy(dtype=float)
    ok = ~tuples["missing"].to_numpy(bool) & np.isfinite(score)
    tgt = tuples["target_id"].to_numpy(np.int64)[ok]
    sums = np.bincount(tgt, weights=score[ok], minlength=n_items)
    counts = np.bincount(tgt, minlength=n_items)
    out = np.full(n_items, 0.5)
    has = counts > 0
    out[has] = (sums[has] / counts[has] > 0).astype(float)
    return out
