"""Consistency rules: one declaration of the logic between the items of a consistency group, one way to count its
violations, one way to repair them.

A rule names the items of a group that must share one label, its *subgroups* (each item alone, or under
``same_answer_same_label`` all items with the same ``answer_key``; an item without one takes no part), and how
many subgroups may be labelled 1 (at most one, or exactly one). Everything below follows from that:

* :func:`layout` -- the groups as flat arrays (members, subgroup of each member, group of each subgroup), exactly
  the tensors the optimizer's consistency loss sums over (``elicit.optimize.problem``);
* :func:`violations` -- violations per group for 0/1 labels (-1 = unlabelled), the one count used by the
  baselines (ICM's energy), evaluate's diagnostics and the tests;
* :func:`repair_group` / :func:`repair` -- the one repair (bootstrap few-shot and ICM);
* :meth:`ConsistencyRule.may_reject` -- which item of a group may be the rejected one against a chosen one
  (export's DPO pairs).

The optimizer's loss (``elicit.optimize.losses.consistency``) is the soft counterpart: -log P(rule holds) for
independent Bernoulli labels, a differentiable tensor function over the same layout that dispatches on this
enum. It stays separate because a hard count has no gradient, and a probability over all labellings is not a
count of violated pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from elicit.errors import ElicitError

UNLABELLED = -1
"""Label value of an item that has no label yet (ICM, bootstrap): it takes part in no violation."""


class ConsistencyRuleError(ElicitError, ValueError):
    """An unknown consistency rule, or items that lack what the rule needs; one line naming the fix."""


class ConsistencyRule(StrEnum):
    """The logical rule over a dataset's ``consistency_id`` groups (``datasets.<name>.consistency``)."""

    NONE = "none"
    AT_MOST_ONE_TRUE = "at_most_one_true"
    EXACTLY_ONE_TRUE = "exactly_one_true"
    SAME_ANSWER_SAME_LABEL = "same_answer_same_label"

    @property
    def description(self) -> str:
        """One line: what the rule asks of a group."""
        return _DESCRIPTIONS[self]

    @property
    def by_answer(self) -> bool:
        """Subgroups are the items sharing an answer_key (not single items)."""
        return self is ConsistencyRule.SAME_ANSWER_SAME_LABEL

    @property
    def needs_a_true(self) -> bool:
        """A fully labelled group with no item labelled 1 is a violation."""
        return self is ConsistencyRule.EXACTLY_ONE_TRUE

    @classmethod
    def parse(cls, value: str | ConsistencyRule | None) -> ConsistencyRule:
        """The rule named by a params string (None = ``none``); an unknown name raises one line naming the valid
        ones."""
        if value is None:
            return cls.NONE
        try:
            return cls(value)
        except ValueError:
            raise ConsistencyRuleError(
                f"unknown consistency rule {str(value)!r}; use one of: {', '.join(CONSISTENCY_RULES)}"
            ) from None

    def may_reject(self, chosen_key: Any, rejected_key: Any) -> bool:
        """Whether an item labelled 0 may stand as the rejected answer against a chosen item labelled 1 of its
        group: never under ``none`` (a group is no set of alternatives), and under ``same_answer_same_label``
        not when both share an answer_key (the rule gives them one label, so the pair would contradict it)."""
        if self is ConsistencyRule.NONE:
            return False
        if self.by_answer and not _missing(chosen_key) and not _missing(rejected_key):
            return str(chosen_key) != str(rejected_key)
        return True

    def check_items(self, items: pd.DataFrame) -> None:
        """Items must carry what the rule reads: ``answer_key`` for ``same_answer_same_label``."""
        if self.by_answer and "answer_key" not in items.columns:
            raise ConsistencyRuleError(
                f"consistency rule '{self}' needs an answer_key column in items; add it or use another rule"
            )


_DESCRIPTIONS: dict[ConsistencyRule, str] = {
    ConsistencyRule.NONE: "no logical constraint between the items of a group",
    ConsistencyRule.AT_MOST_ONE_TRUE: "at most one item of a consistency group may be labelled 1",
    ConsistencyRule.EXACTLY_ONE_TRUE: "exactly one item of a consistency group is labelled 1",
    ConsistencyRule.SAME_ANSWER_SAME_LABEL: (
        "items of a group with the same answer_key share one label, and at most one answer_key of a group is true"
    ),
}
CONSISTENCY_RULES: tuple[str, ...] = tuple(rule.value for rule in ConsistencyRule)
"""The rule names, in declaration order (params strings, JSON schema enums)."""


def _missing(v: Any) -> bool:
    return v is None or bool(pd.isna(v))


# ---------------------------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class GroupLayout:
    """A rule's consistency groups as flat arrays: members [M] -> subgroups [S] -> groups [G].

    Members are sorted by (consistency_id, item_id) and are the items that take part in their group's rule;
    ``sub`` numbers each member's subgroup in (consistency_id, answer_key) order, ``sub_group`` each subgroup's
    group in consistency_id order. What ``elicit.optimize.problem`` turns into its ``cons_*`` tensors.
    """

    rule: ConsistencyRule
    item: np.ndarray
    sub: np.ndarray
    sub_group: np.ndarray
    n_groups: int

    @property
    def n_subgroups(self) -> int:
        return int(self.sub_group.shape[0])

    @property
    def group(self) -> np.ndarray:
        """Group index of each member [M]."""
        return self.sub_group[self.sub]


def _no_groups(rule: ConsistencyRule) -> GroupLayout:
    empty = np.zeros(0, dtype=np.int64)
    return GroupLayout(rule, empty, empty, empty, 0)


def layout(
    item_ids: Any, consistency_ids: Any, answer_keys: Any, rule: ConsistencyRule | str, *, min_size: int = 2
) -> GroupLayout:
    """The groups of ``rule`` with at least ``min_size`` members taking part (null consistency_id = no group;
    under ``same_answer_same_label`` a null answer_key takes no part). ``answer_keys`` may be None for rules
    that do not read it."""
    rule = ConsistencyRule.parse(rule)
    if rule is ConsistencyRule.NONE:
        return _no_groups(rule)
    df = pd.DataFrame({"item_id": np.asarray(item_ids), "consistency_id": pd.array(consistency_ids)})
    if rule.by_answer:
        df["answer_key"] = pd.Series(list(answer_keys) if answer_keys is not None else [None] * len(df), dtype=object)
    df = df[df["consistency_id"].notna()]
    if rule.by_answer:
        df = df[df["answer_key"].notna()]  # no answer: nothing to be consistent with
    df["item_id"] = df["item_id"].astype(np.int64)
    sizes = df.groupby("consistency_id")["item_id"].transform("size")
    df = df[sizes >= min_size].sort_values(["consistency_id", "item_id"], kind="stable")
    if df.empty:
        return _no_groups(rule)
    group = df.groupby("consistency_id", sort=True).ngroup().to_numpy(np.int64)
    if rule.by_answer:
        sub = df.groupby(["consistency_id", "answer_key"], sort=True).ngroup().to_numpy(np.int64)
    else:
        sub = np.arange(len(df), dtype=np.int64)
    sub_group = np.zeros(int(sub.max()) + 1, dtype=np.int64)
    sub_group[sub] = group
    return GroupLayout(rule, df["item_id"].to_numpy(np.int64), sub, sub_group, int(group.max()) + 1)


def items_layout(items: pd.DataFrame, rule: ConsistencyRule | str, *, min_size: int = 2) -> GroupLayout:
    """:func:`layout` of an items table (its gold-free columns item_id, consistency_id, answer_key)."""
    rule = ConsistencyRule.parse(rule)
    if rule is ConsistencyRule.NONE or "consistency_id" not in items.columns:
        return _no_groups(rule)
    rule.check_items(items)
    keys = items["answer_key"].to_numpy(dtype=object) if rule.by_answer else None
    return layout(items["item_id"].to_numpy(), items["consistency_id"], keys, rule, min_size=min_size)


def groups_layout(groups: Sequence[np.ndarray], keys: np.ndarray, rule: ConsistencyRule | str) -> GroupLayout:
    """:func:`layout` of groups given as member arrays (one group each, whatever its size) and keys per item."""
    rule = ConsistencyRule.parse(rule)
    members = np.concatenate([np.asarray(m, dtype=np.int64) for m in groups]) if len(groups) else np.zeros(0, int)
    gid = np.repeat(np.arange(len(groups)), [len(m) for m in groups])
    return layout(members, gid, keys[members] if rule.by_answer else None, rule, min_size=1)


# ---------------------------------------------------------------------------------------------- counting


def violations(groups: GroupLayout, labels: np.ndarray) -> np.ndarray:
    """Violations per group [G] of 0/1 labels indexed by item id (``UNLABELLED`` takes no part).

    Within a group: pairs of members of one subgroup with different labels, plus pairs of members labelled 1
    in different subgroups (two items, or two answers, that cannot both be true), plus 1 under
    ``exactly_one_true`` when every member is labelled and none is 1. So ``at_most_one_true`` counts the
    C(n1, 2) pairs of true items, and a group is consistent exactly when its count is 0.
    """
    g = groups.n_groups
    if g == 0:
        return np.zeros(0, dtype=np.int64)
    y = np.asarray(labels)[groups.item]
    ones = (y == 1).astype(np.int64)
    n1_sub = np.bincount(groups.sub, weights=ones, minlength=groups.n_subgroups)
    n0_sub = np.bincount(groups.sub, weights=(y == 0).astype(np.int64), minlength=groups.n_subgroups)
    mixed = np.bincount(groups.sub_group, weights=n1_sub * n0_sub, minlength=g)
    n1 = np.bincount(groups.sub_group, weights=n1_sub, minlength=g)
    same_sub = np.bincount(groups.sub_group, weights=n1_sub * n1_sub, minlength=g)
    out = mixed + (n1 * n1 - same_sub) / 2
    if groups.rule.needs_a_true:
        unlabelled = np.bincount(groups.group, weights=(y == UNLABELLED).astype(np.int64), minlength=g)
        out += (unlabelled == 0) & (n1 == 0)
    return np.rint(out).astype(np.int64)


def count_violations(
    labels: np.ndarray, groups: Sequence[np.ndarray], keys: np.ndarray, rule: ConsistencyRule | str
) -> int:
    """Total violations over groups given as member arrays, with answer keys per item (see :func:`violations`)."""
    return int(violations(groups_layout(groups, keys, rule), labels).sum())


def group_violations(labels: np.ndarray, members: np.ndarray, keys: np.ndarray, rule: ConsistencyRule | str) -> int:
    """Violations of one group given as its member ids (see :func:`violations`)."""
    return count_violations(labels, [np.asarray(members)], keys, rule)


# ---------------------------------------------------------------------------------------------- groups of items


def consistency_groups(items: pd.DataFrame) -> list[np.ndarray]:
    """Item ids of each consistency group with at least two members (null consistency_id = no group), in
    consistency_id order."""
    cid = items["consistency_id"] if "consistency_id" in items else pd.Series(pd.NA, index=items.index)
    df = pd.DataFrame({"item_id": items["item_id"].astype(np.int64).to_numpy(), "cid": cid.to_numpy()})
    df = df[df["cid"].notna()]
    out = [np.sort(sub["item_id"].to_numpy()) for _, sub in df.groupby("cid", sort=True)]
    return [m for m in out if len(m) >= 2]


def answer_keys(items: pd.DataFrame, n_items: int) -> np.ndarray:
    """answer_key per item id (object array; None where absent)."""
    keys = np.full(n_items, None, dtype=object)
    if "answer_key" in items:
        for i, k in zip(items["item_id"].astype(int), items["answer_key"], strict=True):
            keys[i] = None if pd.isna(k) else str(k)
    return keys


# ---------------------------------------------------------------------------------------------- repair


def _best(cands: Sequence[int], scores: np.ndarray) -> int:
    """The candidate with the highest score (NaN counts as 0; ties: lowest id)."""
    s = np.nan_to_num(scores[list(cands)], nan=0.0)
    return int(list(cands)[int(np.argmax(s))])


def _class_score(sub: Sequence[int], scores: np.ndarray) -> float:
    return float(np.nan_to_num(scores[list(sub)], nan=0.0).sum())


def repair_group(
    labels: np.ndarray,
    scores: np.ndarray,
    members: np.ndarray,
    keys: np.ndarray,
    rule: ConsistencyRule | str,
    fixed: int | None = None,
) -> None:
    """Repair one group in place, trusting the strongest evidence; ``fixed`` (a just-proposed label) stays.

    at_most_one_true / exactly_one_true: of several members labelled 1 only the fixed one, else the one with
    the highest score, stays 1. exactly_one_true also sets the highest-scoring member to 1 when all are
    labelled 0. same_answer_same_label: members sharing an answer_key take the fixed member's label, else the
    sign of their summed scores (majority of labels when no score); then, if several answers are labelled 1,
    only the fixed member's answer (else the one with the highest summed score) stays 1. Unlabelled members
    (and, for answers, members without an answer_key) are left as they are. Uses no oracle call.
    """
    rule = ConsistencyRule.parse(rule)
    if rule is ConsistencyRule.NONE:
        return
    lab = labels[members]
    if not rule.by_answer:
        ones = [int(m) for m in members[lab == 1]]
        if len(ones) > 1:
            keep = fixed if fixed in ones else _best(ones, scores)
            for m in ones:
                if m != keep:
                    labels[m] = 0
        if rule.needs_a_true and bool((labels[members] == 0).all()):
            cands = [int(m) for m in members if m != fixed]
            if cands:
                labels[_best(cands, scores)] = 1
        return
    known = [int(m) for m in members if labels[m] != UNLABELLED and keys[m] is not None]
    classes = {k: [m for m in known if str(keys[m]) == k] for k in sorted({str(keys[m]) for m in known})}
    for sub in classes.values():  # one label per answer
        vals = labels[sub]
        if len(set(vals.tolist())) <= 1:
            continue
        if fixed is not None and fixed in sub:
            value = int(labels[fixed])
        else:
            s = np.nan_to_num(scores[sub], nan=0.0)
            value = int(s.sum() > 0) if np.any(s != 0) else int(vals.mean() > 0.5)
        labels[sub] = value
    true_classes = [k for k, sub in classes.items() if labels[sub[0]] == 1]
    if len(true_classes) > 1:  # at most one answer is correct
        with_fixed = [k for k in true_classes if fixed is not None and fixed in classes[k]]
        by_score = sorted(true_classes, key=lambda k: -_class_score(classes[k], scores))
        winner = with_fixed[0] if with_fixed else by_score[0]
        for k in true_classes:
            if k != winner:
                labels[classes[k]] = 0


def repair(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: Sequence[np.ndarray],
    keys: np.ndarray,
    rule: ConsistencyRule | str,
) -> np.ndarray:
    """A repaired copy of ``labels`` (every group, see :func:`repair_group`)."""
    rule = ConsistencyRule.parse(rule)
    out = labels.copy()
    for m in groups:
        repair_group(out, scores, m, keys, rule)
    return out
