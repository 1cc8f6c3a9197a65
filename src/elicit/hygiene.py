"""Data hygiene: exact and near-duplicate texts within a dataset and between it and other splits (pure core).

Part of the ``load`` stage. Three kinds of duplicate pair, strongest first:

- ``exact``: the same raw text;
- ``normalised``: the same text after :func:`normalise` (casefolded, punctuation stripped, whitespace collapsed);
- ``near``: cosine similarity ≥ ``near_threshold`` between character 3-5-gram TF-IDF vectors of the normalised
  texts (e.g. one word changed in a sentence). ``near_threshold: null`` skips this search.

Within a dataset an item is a *later duplicate* when it matches an earlier item that is itself kept (keep-first,
greedy in item order); between splits an item *overlaps* when it matches any row of another split (e.g. an ETHICS
test row repeated in the train file). The policy (params ``hygiene.action``): ``flag`` keeps every row and adds the
boolean columns ``dup_within`` / ``dup_other_split``; ``drop`` removes flagged rows (and the rest of their
consistency groups, which would be left incomplete) and renumbers ``item_id``; ``none`` checks nothing.

Gold: ``load`` may read it (dataset construction, DESIGN.md "Gold isolation"); here it is only *counted* (duplicate
pairs whose gold labels disagree), never used to decide what is flagged or dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import SECTION, Float, build, typed

KINDS = ("exact", "normalised", "near")
"""Duplicate kinds, strongest first."""
NGRAM_RANGE = (3, 5)
"""Character n-gram lengths of the TF-IDF vectors (within word boundaries, ``char_wb``)."""
PRODUCT_CELLS = 2_000_000
"""Rows of the left matrix per similarity chunk = PRODUCT_CELLS // rows of the right one (bounds memory)."""
FLAG_COLUMNS = ("dup_within", "dup_other_split")
PAIR_COLUMNS = ("i", "j", "kind", "similarity")


class HygieneError(ElicitError, ValueError):
    """A bad ``hygiene:`` section; one line naming the key and the fix."""


Action = Literal["flag", "drop", "none"]
ACTIONS: tuple[str, ...] = get_args(Action)


@typed("hygiene", HygieneError)
@pydantic_dataclass(frozen=True, config=SECTION)
class HygieneConfig:
    """params.yaml ``hygiene:`` (the load stage; a run may override it in ``runs.<run>.overrides.hygiene``)."""

    action: Action = Field(
        default="flag",
        description="flag = keep rows, add dup_within / dup_other_split; drop = remove them; none = no check",
    )
    near_threshold: Float | None = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "cosine similarity of character 3-5-gram TF-IDF vectors from which two texts are near duplicates; "
            "null = only exact and normalised-text duplicates"
        ),
    )

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> HygieneConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "hygiene", HygieneError)


# --------------------------------------------------------------------------------------------- texts

_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Casefold, strip punctuation (and symbols), collapse whitespace: 'I  hit the DOG!' → 'i hit the dog'."""
    t = unicodedata.normalize("NFKC", str(text)).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", t)).strip()


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.zeros(0, dtype=np.int64),
            "j": np.zeros(0, dtype=np.int64),
            "kind": pd.Series([], dtype="str"),
            "similarity": np.zeros(0, dtype=np.float64),
        }
    )


def _index(keys: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k, key in enumerate(keys):
        out.setdefault(key, []).append(k)
    return out


def _equal_pairs(left: Sequence[str], right: Sequence[str] | None) -> set[tuple[int, int]]:
    """(i, j) with left[i] == right[j]; ``right=None`` means within ``left``, i < j."""
    if right is None:
        pairs: set[tuple[int, int]] = set()
        for members in _index(left).values():
            pairs.update((a, b) for x, a in enumerate(members) for b in members[x + 1 :])
        return pairs
    where = _index(right)
    return {(i, j) for i, key in enumerate(left) for j in where.get(key, ())}


def _vectors(norm: Sequence[str]) -> sp.csr_matrix:
    from sklearn.feature_extraction.text import TfidfVectorizer  # here: params checks import HygieneConfig

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True, dtype=np.float32)
    return sp.csr_matrix(vec.fit_transform(norm))


def _prefixes(x: sp.csr_matrix, rank: np.ndarray, threshold: float) -> sp.csr_matrix:
    """Each row's rarest features, just enough that the rest has norm < threshold (the other entries zeroed).

    Prefix filter (Bayardo et al. 2007, "Scaling up all pairs similarity search"): with one global feature order,
    two unit rows whose cosine is >= threshold share a feature inside both prefixes, so the cheap product of the
    prefixes (rare features only) yields every candidate pair.
    """
    x = sp.csr_matrix(x)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    order = np.argsort(rows * np.int64(x.shape[1]) + rank[x.indices], kind="stable")
    w2 = x.data[order].astype(np.float64) ** 2
    before = np.cumsum(w2) - w2  # mass of the row's earlier (rarer) entries, plus all earlier rows
    row_start = np.concatenate(([0.0], np.cumsum(w2)))[x.indptr[:-1]]
    total = np.add.reduceat(w2, x.indptr[:-1]) if len(w2) else np.zeros(0)
    total = np.where(np.diff(x.indptr) > 0, total, 0.0)
    rest = total[rows[order]] - (before - row_start[rows[order]])  # mass of this entry and the rarer-ordered rest
    keep = rest >= (threshold * (1.0 - 1e-4)) ** 2
    return sp.csr_matrix(
        (x.data[order][keep], (rows[order][keep], x.indices[order][keep])), shape=x.shape, dtype=x.dtype
    )


def _near_pairs(
    a: sp.csr_matrix, b: sp.csr_matrix, threshold: float, within: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) of L2-normalised rows with cosine >= threshold: candidates from the prefix filter, then the
    exact cosine of each candidate, both in chunks so memory stays bounded (a few hundred MB at 5k x 30k rows)."""
    a, b = sp.csr_matrix(a), sp.csr_matrix(b)
    df = np.bincount(a.indices, minlength=a.shape[1]) + np.bincount(b.indices, minlength=b.shape[1])
    rank = np.empty(len(df), dtype=np.int64)
    rank[np.argsort(df, kind="stable")] = np.arange(len(df))
    pa = _prefixes(a, rank, threshold)
    pbt = sp.csr_matrix(_prefixes(b, rank, threshold).T)
    step = max(1, PRODUCT_CELLS // max(b.shape[0], 1))
    found_i, found_j, found_s = [], [], []
    for start in range(0, a.shape[0], step):
        cand = sp.coo_matrix(pa[start : start + step] @ pbt)
        i = cand.row.astype(np.int64) + start
        j = cand.col.astype(np.int64)
        if within:
            upper = i < j
            i, j = i[upper], j[upper]
        for lo in range(0, len(i), PRODUCT_CELLS // 64):
            ci, cj = i[lo : lo + PRODUCT_CELLS // 64], j[lo : lo + PRODUCT_CELLS // 64]
            cos = np.asarray(a[ci].multiply(b[cj]).sum(axis=1), dtype=np.float64).ravel()
            keep = cos >= threshold - 1e-6
            found_i.append(ci[keep])
            found_j.append(cj[keep])
            found_s.append(cos[keep])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_i), np.concatenate(found_j), np.minimum(np.concatenate(found_s), 1.0)


def _pairs(texts: Sequence[str], other: Sequence[str] | None, threshold: float | None) -> pd.DataFrame:
    texts = [str(t) for t in texts]
    right = None if other is None else [str(t) for t in other]
    kinds: dict[tuple[int, int], tuple[str, float]] = {}
    for pair in _equal_pairs(texts, right):
        kinds[pair] = ("exact", 1.0)
    norm = [normalise(t) for t in texts]
    norm_right = None if right is None else [normalise(t) for t in right]
    for pair in _equal_pairs(norm, norm_right):
        kinds.setdefault(pair, ("normalised", 1.0))
    if threshold is not None and texts and (right is None or right):
        if norm_right is None:
            x = _vectors(norm)
            i, j, s = _near_pairs(x, x, float(threshold), within=True)
        else:
            x = _vectors([*norm, *norm_right])
            i, j, s = _near_pairs(x[: len(norm)], x[len(norm) :], float(threshold), within=False)
        for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True):
            kinds.setdefault((a, b), ("near", c))
    if not kinds:
        return _empty_pairs()
    keys = sorted(kinds)
    return pd.DataFrame(
        {
            "i": np.array([k[0] for k in keys], dtype=np.int64),
            "j": np.array([k[1] for k in keys], dtype=np.int64),
            "kind": pd.Series([kinds[k][0] for k in keys], dtype="str"),
            "similarity": np.array([kinds[k][1] for k in keys], dtype=np.float64),
        }
    )


def find_duplicates(
    texts: Sequence[str], threshold: float | None = 0.9, groups: Sequence[Any] | None = None
) -> pd.DataFrame:
    """Duplicate pairs within ``texts``: columns ``i < j`` (positions), ``kind`` (exact | normalised | near) and
    ``similarity`` (1.0 unless near), one row per pair with its strongest kind, sorted by (i, j).

    ``groups`` (e.g. consistency_id; null = no group): *near* pairs inside one group are left out, since a group's
    members are variants by design (one virtue sentence with five traits, one deontology request with four excuses).
    """
    pairs = _pairs(texts, None, threshold)
    return pairs.loc[~_same_group_near(pairs, groups)].reset_index(drop=True)


def _same_group_near(pairs: pd.DataFrame, groups: Sequence[Any] | None) -> np.ndarray:
    """Mask of the near pairs whose two items share a (non-null) group."""
    if groups is None or pairs.empty:
        return np.zeros(len(pairs), dtype=bool)
    g = np.asarray(pd.Series(list(groups), dtype="object"))
    gi, gj = g[pairs["i"].to_numpy()], g[pairs["j"].to_numpy()]
    same = np.array([not _null(x) and not _null(y) and x == y for x, y in zip(gi, gj, strict=True)], dtype=bool)
    return same & (pairs["kind"] == "near").to_numpy()


def _null(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def cross_split_duplicates(
    texts: Sequence[str], other_texts: Sequence[str], threshold: float | None = 0.9
) -> pd.DataFrame:
    """Pairs (i in ``texts``, j in ``other_texts``) of duplicates between two splits; columns as
    :func:`find_duplicates`. The TF-IDF vocabulary and weights are fitted on both splits together."""
    return _pairs(texts, other_texts, threshold)


# --------------------------------------------------------------------------------------------- policy


def later_duplicates(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Keep-first, greedy in item order: item j is a later duplicate if it matches an earlier item that is kept."""
    dup = np.zeros(n, dtype=bool)
    if pairs.empty:
        return dup
    order = pairs.sort_values(["j", "i"], kind="stable")
    for i, j in zip(order["i"].to_numpy(), order["j"].to_numpy(), strict=True):
        if not dup[j] and not dup[i]:
            dup[j] = True
    return dup


def _conflicts(pairs: pd.DataFrame, gold_i: pd.Series, gold_j: pd.Series) -> int:
    """Pairs whose two gold labels are both known and differ (counted only; nothing is decided on gold)."""
    if pairs.empty:
        return 0
    a = pd.array(gold_i.to_numpy()[pairs["i"].to_numpy()], dtype="Int8")
    b = pd.array(gold_j.to_numpy()[pairs["j"].to_numpy()], dtype="Int8")
    differ = (a != b).fillna(False)
    return int(np.asarray(differ, dtype=bool).sum())


def _gold(frame: pd.DataFrame) -> pd.Series:
    if "gold" in frame.columns:
        return frame["gold"].astype("Int8").reset_index(drop=True)
    return pd.Series(pd.array([None] * len(frame), dtype="Int8"))


def apply_hygiene(
    items: pd.DataFrame,
    cfg: HygieneConfig,
    other_splits: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Find duplicates within ``items`` and with each other split (``name → frame`` with a ``text`` column and,
    optionally, ``gold``), apply ``cfg.action``, and return (items, report of counts).

    Run it on the whole dataset, before subsampling to ``n``, so a run's size stays what it asks for. With
    ``drop`` the rows left are renumbered ``item_id`` 0..N-1 (``source_row`` keeps provenance).
    """
    others = dict(other_splits or {})
    n = len(items)
    report: dict[str, Any] = {
        "action": cfg.action,
        "near_threshold": cfg.near_threshold,
        "rows_checked": n,
        "within": None,
        "other_splits": {},
        "other_split_items": None,
        "flagged": 0,
        "dropped": 0,
        "dropped_group_mates": 0,
        "rows_after": n,
    }
    if cfg.action == "none":
        report["other_splits"] = {name: None for name in others}
        return items, report

    texts = items["text"].astype(str).tolist()
    gold = _gold(items)
    groups = items["consistency_id"].tolist() if "consistency_id" in items.columns else None
    within = find_duplicates(texts, cfg.near_threshold)
    by_design = _same_group_near(within, groups)
    within = within.loc[~by_design].reset_index(drop=True)
    dup_within = later_duplicates(n, within)
    exact_later = np.zeros(n, dtype=bool)
    exact_later[within.loc[within["kind"] == "exact", "j"].to_numpy()] = True
    report["within"] = {
        "exact_pairs": int((within["kind"] == "exact").sum()),
        "near_pairs": int((within["kind"] != "exact").sum()),
        "exact_items": int(exact_later.sum()),
        "near_items": int((dup_within & ~exact_later).sum()),
        "conflicting_gold_pairs": _conflicts(within, gold, gold),
        "same_group_near_pairs": int(by_design.sum()),
    }

    dup_other = np.zeros(n, dtype=bool)
    for name, frame in others.items():
        pairs = cross_split_duplicates(texts, frame["text"].astype(str).tolist(), cfg.near_threshold)
        exact = np.zeros(n, dtype=bool)
        exact[pairs.loc[pairs["kind"] == "exact", "i"].to_numpy()] = True
        found = np.zeros(n, dtype=bool)
        found[pairs["i"].to_numpy()] = True
        dup_other |= found
        report["other_splits"][name] = {
            "rows": len(frame),
            "exact_items": int(exact.sum()),
            "near_items": int((found & ~exact).sum()),
            "conflicting_gold_pairs": _conflicts(pairs, gold, _gold(frame)),
        }
    report["other_split_items"] = int(dup_other.sum()) if others else 0
    flagged = dup_within | dup_other
    report["flagged"] = int(flagged.sum())

    out = items.copy()
    if cfg.action == "drop" and flagged.any():
        drop = flagged.copy()
        cid = out["consistency_id"] if "consistency_id" in out.columns else None
        if cid is not None and cid.notna().any():
            # a dropped member would leave its consistency group incomplete (e.g. a virtue block without its trait)
            hit = set(cid[flagged].dropna().tolist())
            drop |= cid.isin(hit).fillna(False).to_numpy(dtype=bool)
        report["dropped"] = int(drop.sum())
        report["dropped_group_mates"] = int((drop & ~flagged).sum())
        out = out.loc[~drop].reset_index(drop=True)
        if "item_id" in out.columns:
            out["item_id"] = np.arange(len(out), dtype=np.int64)
        dup_within = np.zeros(len(out), dtype=bool)
        dup_other = np.zeros(len(out), dtype=bool)
    out["dup_within"] = dup_within
    out["dup_other_split"] = dup_other
    out.attrs = dict(items.attrs)
    report["rows_after"] = len(out)
    return out, report


def sample_counts(items: pd.DataFrame) -> dict[str, int] | None:
    """Flagged items among the run's items (after subsampling to ``n``); None where nothing was checked."""
    if not set(FLAG_COLUMNS) <= set(items.columns):
        return None
    return {"items": len(items), **{c: int(items[c].astype(bool).sum()) for c in FLAG_COLUMNS}}


def summary_line(report: Mapping[str, Any]) -> str:
    """One line for the log: what was found and what was done."""
    if report.get("within") is None:
        return "hygiene: not checked (hygiene.action: none)"
    w = report["within"]
    parts = [
        f"{report['rows_checked']} rows",
        f"within: {w['exact_items']} exact + {w['near_items']} near duplicates"
        f" ({w['conflicting_gold_pairs']} pairs with conflicting gold)",
    ]
    for name, s in (report.get("other_splits") or {}).items():
        parts.append(
            f"in {name} ({s['rows']} rows): {s['exact_items']} exact + {s['near_items']} near"
            f" ({s['conflicting_gold_pairs']} pairs with conflicting gold)"
        )
    done = {"flag": f"flagged {report['flagged']}", "drop": f"dropped {report['dropped']}"}[str(report["action"])]
    return f"hygiene: {'; '.join(parts)}; {done}, {report['rows_after']} rows left"
