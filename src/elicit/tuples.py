"""``tuples.parquet``: every few-shot and flip call of rounds >= 1, checked and normalised for the optimizer.

The score is already framing-undone by the oracle (log-odds that the target has label 1), so this stage only
selects, types and checks: a broken twin or a ragged context would silently corrupt the optimizer's padded
``[T, K]`` tensors, so it fails loudly here instead. Pure; reads no gold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from elicit.errors import ElicitError
from elicit.plan import QUERY_PLAN_COLUMNS, QUERY_PLAN_SCHEMA

TUPLE_COLUMNS: tuple[str, ...] = (*QUERY_PLAN_COLUMNS, "score", "missing")
TUPLES_SCHEMA = QUERY_PLAN_SCHEMA.append(pa.field("score", pa.float64())).append(pa.field("missing", pa.bool_()))
"""Arrow types ``pa.Table.from_pandas`` infers for a non-empty tuples frame; pass it for an empty one."""
TUPLE_KINDS: tuple[str, ...] = ("few_shot", "flip")
_INT_COLUMNS = ("round", "group_id", "target_id", "perm_seed", "flipped_pos")
_STR_COLUMNS = ("query_id", "kind", "framing", "template_id")


class TupleError(ElicitError, ValueError):
    """Predictions that cannot form tuples; one line naming the first bad query and the likely cause."""


def _list_array(values: pd.Series, typ: pa.DataType, name: str) -> pa.ListArray:
    """A list column as an Arrow list array of ``typ`` (from lists, numpy arrays or Arrow-backed)."""
    try:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.list_(typ), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise TupleError(f"{name} must hold lists of integers: {exc}") from exc
    if arr.null_count:
        raise TupleError(f"{name} is null in some rows; every few-shot row needs a (possibly empty) list")
    return arr


def _first(qids: np.ndarray, bad: np.ndarray) -> str:
    return str(qids[np.flatnonzero(bad)[0]])


def tuples_from_predictions(predictions: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-round predictions and keep the few_shot / flip rows of rounds >= 1.

    Columns ``TUPLE_COLUMNS``: ints are int64, strings str, flip_of nullable str, context_ids
    list<int64>, context_shown list<int8> (as numpy arrays per row), score nullable Float64 (pd.NA
    exactly where ``missing``; a non-finite score counts as missing), missing bool. Sorted by (round,
    query_id). Raises ``TupleError`` on a duplicate query_id, context_ids/context_shown length mismatch,
    a shown label not 0/1, a flip whose flip_of names no few_shot query of its round, or a flip twin that
    is not its base query with exactly the label at ``flipped_pos`` flipped.
    """
    frames = [p for p in predictions if len(p)]
    need = set(TUPLE_COLUMNS)
    for i, p in enumerate(frames):
        lacking = sorted(need - set(p.columns))
        if lacking:
            raise TupleError(f"predictions frame {i} lacks columns {lacking}; pass the query stage's output")
    if not frames:
        df = pd.DataFrame({c: pd.Series([], dtype=object) for c in TUPLE_COLUMNS})
    else:
        df = pd.concat([p.loc[:, list(TUPLE_COLUMNS)] for p in frames], ignore_index=True)
    kind = np.asarray(df["kind"].astype("str"), dtype=object)
    rnd = pd.to_numeric(df["round"])
    df = df[np.isin(kind, TUPLE_KINDS) & (rnd.to_numpy() >= 1)]

    for c in _INT_COLUMNS:
        col = pd.to_numeric(df[c])
        if col.isna().any():
            raise TupleError(f"{c} is null in some few-shot rows; fix the query stage")
        df = df.assign(**{c: col.astype(np.int64)})
    for c in _STR_COLUMNS:
        col = df[c].astype("str")
        if col.isna().any():
            raise TupleError(f"{c} is null in some few-shot rows; fix the query stage")
        df = df.assign(**{c: col})
    df = df.assign(flip_of=df["flip_of"].astype("str"))
    df = df.sort_values(["round", "query_id"], kind="stable").reset_index(drop=True)
    qid = df["query_id"].to_numpy(dtype=object)
    n = len(df)

    dup = df["query_id"].duplicated().to_numpy()
    if dup.any():
        raise TupleError(f"query_id {_first(qid, dup)} appears twice; predictions of a round were concatenated twice")
    if not np.isin(df["framing"].to_numpy(dtype=object), ("pos", "neg")).all():
        raise TupleError("framing must be 'pos' or 'neg'; fix the query stage")

    ids_arr = _list_array(df["context_ids"], pa.int64(), "context_ids")
    shown_arr = _list_array(df["context_shown"], pa.int8(), "context_shown")
    ids_len = pc.list_value_length(ids_arr).to_numpy(zero_copy_only=False).astype(np.int64)
    shown_len = pc.list_value_length(shown_arr).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = ids_len != shown_len
    if bad.any():
        raise TupleError(
            f"query {_first(qid, bad)}: context_ids and context_shown differ in length; the plan was corrupted"
        )
    ids_flat = ids_arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    shown_flat = shown_arr.flatten().to_numpy(zero_copy_only=False).astype(np.int8)
    row_of = np.repeat(np.arange(n), ids_len)
    bad_val = (shown_flat != 0) & (shown_flat != 1)
    if bad_val.any():
        raise TupleError(f"query {qid[row_of[np.flatnonzero(bad_val)[0]]]}: context_shown values must be 0 or 1")

    # flip twins
    is_flip = df["kind"].to_numpy(dtype=object) == "flip"
    flip_of = np.asarray(df["flip_of"], dtype=object)
    fpos = df["flipped_pos"].to_numpy()
    bad = ~is_flip & ((fpos != -1) | pd.notna(flip_of))
    if bad.any():
        raise TupleError(f"few_shot query {_first(qid, bad)} has a flip_of or flipped_pos; only flips may")
    bad = is_flip & pd.isna(flip_of)
    if bad.any():
        raise TupleError(f"flip query {_first(qid, bad)} has no flip_of; it must name its unflipped twin")
    f_rows = np.flatnonzero(is_flip)
    base = pd.Index(qid).get_indexer(flip_of[f_rows].astype(object))
    rounds = df["round"].to_numpy()
    kinds = df["kind"].to_numpy(dtype=object)
    bad = base < 0
    bad[~bad] = (kinds[base[~bad]] != "few_shot") | (rounds[base[~bad]] != rounds[f_rows[~bad]])
    if bad.any():
        r = f_rows[np.flatnonzero(bad)[0]]
        raise TupleError(
            f"flip query {qid[r]}: flip_of {flip_of[r]!r} names no few_shot query of round {rounds[r]}; "
            "its twin is missing from the predictions"
        )
    same = np.ones(len(f_rows), dtype=bool)
    for c in ("target_id", "group_id", "framing", "template_id", "perm_seed"):
        v = df[c].to_numpy(dtype=object if c in _STR_COLUMNS else np.int64)
        same &= v[f_rows] == v[base]
    f_len = ids_len[f_rows]
    same &= (f_len == ids_len[base]) & (fpos[f_rows] >= 0) & (fpos[f_rows] < f_len)
    offsets = np.concatenate([[0], np.cumsum(ids_len)])
    ok_f = f_rows[same]
    ok_b = base[same]
    seg_len = ids_len[ok_f]
    within = np.arange(int(seg_len.sum())) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)  # position in context
    f_flat = np.repeat(offsets[ok_f], seg_len) + within
    b_flat = np.repeat(offsets[ok_b], seg_len) + within
    seg = np.repeat(np.arange(len(ok_f)), seg_len)
    id_diff = np.bincount(seg, weights=ids_flat[f_flat] != ids_flat[b_flat], minlength=len(ok_f))
    lab_diff = shown_flat[f_flat] != shown_flat[b_flat]
    n_diff = np.bincount(seg, weights=lab_diff, minlength=len(ok_f))
    at_pos = np.bincount(seg, weights=lab_diff & (within == fpos[ok_f][seg]), minlength=len(ok_f))
    same[same] = (id_diff == 0) & (n_diff == 1) & (at_pos == 1)
    if not same.all():
        r = f_rows[np.flatnonzero(~same)[0]]
        raise TupleError(
            f"flip query {qid[r]} is not its twin {flip_of[r]} with exactly the label at flipped_pos "
            f"{fpos[r]} flipped (same target, framing, template, context and order)"
        )

    score = pd.to_numeric(df["score"]).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = df["missing"].astype("boolean").fillna(True).to_numpy(dtype=bool) | ~np.isfinite(score)
    offsets32 = pa.array(offsets.astype(np.int32))
    return pd.DataFrame(
        {
            "query_id": df["query_id"],
            "round": df["round"],
            "group_id": df["group_id"],
            "target_id": df["target_id"],
            "kind": df["kind"],
            "framing": df["framing"],
            "template_id": df["template_id"],
            "context_ids": pd.Series(
                np.asarray(pa.ListArray.from_arrays(offsets32, pa.array(ids_flat)).to_pandas(), dtype=object),
                dtype=object,
            ),
            "context_shown": pd.Series(
                np.asarray(pa.ListArray.from_arrays(offsets32, pa.array(shown_flat)).to_pandas(), dtype=object),
                dtype=object,
            ),
            "perm_seed": df["perm_seed"],
            "flipped_pos": df["flipped_pos"],
            "flip_of": df["flip_of"],
            "score": pd.arrays.FloatingArray(np.where(missing, 0.0, score), missing),
            "missing": missing,
        }
    )
