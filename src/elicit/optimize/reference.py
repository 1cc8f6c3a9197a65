"""Plain-Python loop versions of every loss: slow, small and obviously correct, for testing the vectorized
ones.

They read the raw tables row by row (not the padded tensors), do scalar torch ops so autograd gives reference
gradients, and enumerate every label assignment of a consistency group instead of using the closed form. The
only things shared with the fast path are the conventions (score clipping, prior calibration, the nuisance
vector layout). Use with float64 and tiny inputs only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pandas as pd
import torch

from elicit.optimize.problem import SCORE_CLIP

Scalar = torch.Tensor


@dataclass
class RefRow:
    """One tuple as plain Python values."""

    query_id: str
    target: int
    score: float | None  # None when missing; clipped to +-SCORE_CLIP
    framing: int  # +1 pos, -1 neg
    context: list[tuple[int, int]]  # (item id, shown label 0/1) in shown order
    flip_of: str | None
    flipped_pos: int


def rows_from_table(tuples: pd.DataFrame) -> list[RefRow]:
    """Read the tuples table one row at a time."""
    rows = []
    for rec in tuples.to_dict("records"):
        raw = rec["score"]
        ok = raw is not None and not (isinstance(raw, float) and math.isnan(raw)) and not bool(rec["missing"])
        score = min(max(float(raw), -SCORE_CLIP), SCORE_CLIP) if ok else None
        ids = [] if rec["context_ids"] is None else [int(v) for v in rec["context_ids"]]
        shown = [] if rec["context_shown"] is None else [int(v) for v in rec["context_shown"]]
        flip_of = rec["flip_of"]
        if flip_of is not None and isinstance(flip_of, float) and math.isnan(flip_of):
            flip_of = None
        rows.append(
            RefRow(
                query_id=str(rec["query_id"]),
                target=int(rec["target_id"]),
                score=score,
                framing=1 if rec["framing"] == "pos" else -1,
                context=list(zip(ids, shown, strict=True)),
                flip_of=None if flip_of is None else str(flip_of),
                flipped_pos=int(rec["flipped_pos"]),
            )
        )
    return rows


def _ls(x: Scalar) -> Scalar:
    return torch.nn.functional.logsigmoid(x)


def _bias(row: RefRow, theta: Scalar) -> Scalar:
    signs = [2 * s - 1 for _, s in row.context]
    copy_feat = sum(signs) / len(signs) if signs else 0.0
    last = signs[-1] if signs else 0.0
    acq = theta[2] if row.framing == 1 else -theta[3]
    return theta[0] * copy_feat + theta[1] * last + acq


def _scale(theta: Scalar) -> Scalar:
    sd = torch.exp(torch.clamp(theta[6], math.log(0.05), math.log(100.0)))
    return 2 * theta[5] / sd**2


def mutual(z: Scalar, theta: Scalar | None, rows: list[RefRow]) -> Scalar:
    num = z.sum() * 0
    den = z.sum() * 0
    for row in rows:
        if row.score is None:
            continue
        logps = [_ls(z[j]) if s == 1 else _ls(-z[j]) for j, s in row.context]
        w = torch.exp(torch.stack(logps).mean()) if logps else torch.ones((), dtype=z.dtype)
        if theta is None:
            d = torch.tensor(row.score, dtype=z.dtype)
        else:
            th = theta.detach()
            d = _scale(th) * (row.score - _bias(row, th))
        i = row.target
        ce = -(torch.sigmoid(d) * _ls(z[i]) + torch.sigmoid(-d) * _ls(-z[i]))
        num = num + w * ce
        den = den + w
    return num / den if float(den.detach()) > 0 else num


def nuisance(z: Scalar, theta: Scalar, rows: list[RefRow]) -> Scalar:
    zd = z.detach()
    total = theta.sum() * 0
    count = 0
    sd = torch.exp(torch.clamp(theta[6], math.log(0.05), math.log(100.0)))
    for row in rows:
        if row.score is None:
            continue
        m = torch.zeros((), dtype=z.dtype)
        for j, s in row.context:
            m = m + (2 * torch.sigmoid(zd[j]) - 1) * (2 * s - 1)
        m = m / max(len(row.context), 1)
        a = theta[5] + theta[4] * m
        r = row.score - _bias(row, theta)
        q = torch.sigmoid(zd[row.target])
        # log of q * N(r; a, sd) + (1 - q) * N(r; -a, sd), each density written out, summed in log space
        log_dens1 = -0.5 * ((r - a) / sd) ** 2 - torch.log(sd * math.sqrt(2 * math.pi))
        log_dens0 = -0.5 * ((r + a) / sd) ** 2 - torch.log(sd * math.sqrt(2 * math.pi))
        both = torch.stack([torch.log(q) + log_dens1, torch.log(1 - q) + log_dens0])
        total = total - torch.logsumexp(both, 0)
        count += 1
    return total / max(count, 1)


def flip(z: Scalar, theta: Scalar | None, rows: list[RefRow], threshold: float, scale: float) -> Scalar:
    by_id = {row.query_id: row for row in rows}
    total = z.sum() * 0
    count = 0
    for row in rows:
        if row.flip_of is None or row.flipped_pos < 0 or row.flip_of not in by_id:
            continue
        twin = by_id[row.flip_of]
        if twin.target != row.target or row.flipped_pos >= len(row.context):
            continue
        if row.score is None or twin.score is None:
            continue
        i = row.target
        j, shown = row.context[row.flipped_pos]
        q_i = float(torch.sigmoid(z[i].detach()))
        if abs(q_i - 0.5) + 0.5 <= threshold:
            continue
        delta = torch.tensor(row.score - twin.score, dtype=z.dtype)
        if theta is not None:
            th = theta.detach()
            delta = delta - (_bias(row, th) - _bias(twin, th))
        e = torch.as_tensor(delta * (2 * shown - 1), dtype=z.dtype)
        agree = torch.tanh(0.5 * scale * e)
        sign_i = 2 * torch.sigmoid(z[i]) - 1
        sign_j = 2 * torch.sigmoid(z[j]) - 1
        total = total - agree * sign_i * sign_j
        count += 1
    return total / count if count else total


def prior(z: Scalar, prior_logit: Scalar) -> Scalar:
    total = z.sum() * 0
    for i in range(z.numel()):
        q = torch.sigmoid(z[i])
        p = torch.sigmoid(prior_logit[i])
        total = total + q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))
    return total / z.numel()


def ranking(z: Scalar, pairs: list[tuple[int, int]], margin: float) -> Scalar:
    total = z.sum() * 0
    for hi, lo in pairs:
        total = total + torch.clamp(margin - (z[hi] - z[lo]), min=0)
    return total / len(pairs) if pairs else total


def consistency_groups(items: pd.DataFrame, rule: str) -> list[list[tuple[int, object]]]:
    """Groups as lists of (item id, answer key) with >= 2 members, by plain iteration."""
    if rule == "none":
        return []
    groups: dict[object, list[tuple[int, object]]] = {}
    for rec in items.to_dict("records"):
        cid = rec["consistency_id"]
        if cid is None or cid is pd.NA or (isinstance(cid, float) and math.isnan(cid)):
            continue
        key = rec.get("answer_key")
        if rule == "same_answer_same_label" and (key is None or key is pd.NA or key != key):
            continue
        groups.setdefault(int(cid), []).append((int(rec["item_id"]), key))
    return [g for _, g in sorted(groups.items()) if len(g) >= 2]


def _rule_holds(labels: tuple[int, ...], keys: list[object], rule: str) -> bool:
    if rule == "at_most_one_true":
        return sum(labels) <= 1
    if rule == "exactly_one_true":
        return sum(labels) == 1
    if rule == "same_answer_same_label":
        by_key: dict[object, set[int]] = {}
        for y, k in zip(labels, keys, strict=True):
            by_key.setdefault(k, set()).add(y)
        if any(len(v) > 1 for v in by_key.values()):
            return False
        return sum(1 for v in by_key.values() if 1 in v) <= 1
    raise ValueError(rule)


def consistency(z: Scalar, groups: list[list[tuple[int, object]]], rule: str) -> Scalar:
    """-mean log P(rule holds), by enumerating all 2^n labelings of each group."""
    total = z.sum() * 0
    for group in groups:
        ids = [i for i, _ in group]
        keys = [k for _, k in group]
        prob = z.sum() * 0
        for labels in itertools.product((0, 1), repeat=len(ids)):
            if not _rule_holds(labels, keys, rule):
                continue
            p = torch.ones((), dtype=z.dtype)
            for i, y in zip(ids, labels, strict=True):
                p = p * (torch.sigmoid(z[i]) if y else 1 - torch.sigmoid(z[i]))
            prob = prob + p
        total = total - torch.log(prob)
    return total / len(groups) if groups else total


def balance(z: Scalar, target: float) -> Scalar:
    qbar = torch.stack([torch.sigmoid(z[i]) for i in range(z.numel())]).sum() / z.numel()
    pi = target
    return pi * torch.log(pi / qbar) + (1 - pi) * torch.log((1 - pi) / (1 - qbar))


def entropy(z: Scalar) -> Scalar:
    total = z.sum() * 0
    for i in range(z.numel()):
        q = torch.sigmoid(z[i])
        total = total - (q * torch.log(q) + (1 - q) * torch.log(1 - q))
    return total / z.numel()


def pairs_to_list(hi: torch.Tensor, lo: torch.Tensor) -> list[tuple[int, int]]:
    return list(zip(hi.tolist(), lo.tolist(), strict=True))
