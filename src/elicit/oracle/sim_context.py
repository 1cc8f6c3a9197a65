"""What the simulator reads from the query rows besides the target: the gold labels of the items (a 0/1 label for
every target and context item, else an OracleError naming it) and the shown items of every row as flat arrays,
with the in-family few-shot terms computed from them at once (`_Contexts`). Apart from the simulator
(elicit.oracle.simulated) to keep it short; the out-of-family suite (elicit.oracle.sim_suite) reads the same gold
and context columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from elicit.oracle.base import OracleError
from elicit.oracle.sim_hash import _query_string, _texts


class _Contexts:
    """The shown items of every query row as flat arrays, and the in-family few-shot terms computed from them at
    once (long contexts: ICM shows up to a whole batch): per row the mean agreement of shown labels with gold
    (icl), the mean shown label as +-1 (copy) and the last shown label as +-1 (recency); 0 without context.
    Bit-identical to a per-row mean: the sums are of +-1 values, exact in any order, divided once by the count.
    """

    def __init__(self, records: Sequence[Mapping[Any, Any]], gold: Mapping[int, int], max_items: int) -> None:
        n = len(records)
        ids = [_as_ints(r["context_ids"]) for r in records]
        shown = [_as_ints(r["context_shown"]) for r in records]
        self.lens = np.array([len(c) for c in shown], dtype=np.int64)
        self.odd = np.zeros(n, dtype=bool)  # ids without shown labels: no few-shot terms (as before), own string
        for j in range(n):
            if len(ids[j]) != len(shown[j]):
                if len(shown[j]):
                    raise ValueError(f"query row {j}: context_ids and context_shown differ in length")
                ids[j] = ids[j][:0]
                self.odd[j] = True
        too_long = np.flatnonzero(self.lens > max_items)
        if len(too_long):
            j = int(too_long[0])
            raise OracleError(
                f"simulated oracle: a query shows {int(self.lens[j])} context items, over sim.max_context_items = "
                f"{max_items}; raise sim.max_context_items or show fewer items"
            )
        total = int(self.lens.sum())
        self.ids = np.concatenate(ids) if total else np.zeros(0, dtype=np.int64)
        self.shown = np.concatenate(shown) if total else np.zeros(0, dtype=np.int64)
        self.ends = np.cumsum(self.lens)
        row = np.repeat(np.arange(n), self.lens)
        has = self.lens > 0
        count = np.where(has, self.lens, 1).astype(np.float64)
        g = _gold_array(self.ids, gold)
        agree = np.where(self.shown == g, 1.0, -1.0)
        self.icl = np.where(has, np.bincount(row, weights=agree, minlength=n) / count, 0.0)
        self.copy = np.where(has, np.bincount(row, weights=2.0 * self.shown - 1.0, minlength=n) / count, 0.0)
        self.last = np.zeros(n)
        self.last[has] = 2.0 * self.shown[self.ends[has] - 1] - 1.0

    def query_strings(self, seed: int, records: Sequence[Mapping[Any, Any]]) -> list[str]:
        """`_query_string` of every row (the key of its hash draws), joining each id's text once."""
        id_text = _texts(self.ids)
        shown_text = _texts(self.shown)
        out = []
        start = 0
        for r, end, odd in zip(records, self.ends.tolist(), self.odd.tolist(), strict=True):
            if odd:
                out.append(_query_string(seed, r))
            else:
                ctx = ",".join(id_text[start:end])
                shown = ",".join(shown_text[start:end])
                out.append(f"{seed}|q|{int(r['target_id'])}|{r['framing']}|{r['template_id']}|{ctx}|{shown}")
            start = end
        return out


def _as_ints(values: Any) -> np.ndarray:
    """A context column entry (list or array) as int64, as ``int(c)`` reads each value."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False).reshape(-1)
    return np.array([int(c) for c in arr.reshape(-1).tolist()], dtype=np.int64)


def _gold_array(ids: np.ndarray, gold: Mapping[int, int]) -> np.ndarray:
    """Gold of each id (OracleError naming the first id, in order, without a 0/1 gold label)."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    values = np.empty(len(uniq), dtype=np.int64)
    for k, i in enumerate(uniq.tolist()):
        try:
            values[k] = _gold_of(gold, i)
        except OracleError:
            bad = [int(u) for u in uniq if not _has_gold(gold, int(u))]
            first = int(ids[np.isin(ids, bad)][0]) if bad else i
            _gold_of(gold, first)
            raise
    return values[inverse]


def _has_gold(gold: Mapping[int, int], item_id: int) -> bool:
    try:
        _gold_of(gold, item_id)
    except OracleError:
        return False
    return True


def _gold_of(gold: Mapping[int, int], item_id: int) -> int:
    try:
        g = gold[item_id]
    except KeyError:
        raise OracleError(
            f"simulated oracle: no gold label for item {item_id}; the simulator needs gold for every "
            "target and context item (pass gold=... to ask)",
        ) from None
    if g is None or (isinstance(g, float) and math.isnan(g)) or int(g) not in (0, 1):
        raise OracleError(f"simulated oracle: gold of item {item_id} is {g!r}, not 0/1; filter such items")
    return int(g)
