"""The items table: its columns, the canonical frame loaders build, filters and numbering, and its schema check.

- ``ITEM_COLUMNS`` (required, in this order): ``item_id`` (0..N-1 in source order; a run's subsample keeps that
  order except within consistency groups, see :mod:`~elicit.datasets.sampling`), ``text`` (what the oracle
  reads), ``gold`` (nullable Int8, 0/1, all <NA> when the dataset has no truth), ``consistency_id`` (nullable
  Int64: rows sharing an id are one logical group) and ``source_row`` (row index in the source file, for
  provenance).
- ``OPTIONAL_COLUMNS``, always written by :func:`~elicit.datasets.readers.load_items` after the required ones:
  ``answer_key`` (str or <NA>: the item's final answer, e.g. GSM8K's, which the ``same_answer_same_label``
  consistency rule compares) and ``nuisance`` (nullable Int8: a known non-truth attribute, e.g. a stance being
  liberal, kept so reports can show whether labels track it).

Also the cell-value helpers that builtin converters and column mappings share (null cells, raw labels to 0/1).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from elicit.errors import ElicitError

if TYPE_CHECKING:
    from elicit.datasets.config import DatasetConfig

log = logging.getLogger(__name__)

ITEM_COLUMNS = ["item_id", "text", "gold", "consistency_id", "source_row"]
"""Required columns of an items table, in order (see the module docstring)."""
OPTIONAL_COLUMNS = ["answer_key", "nuisance"]
"""Extra columns that :func:`load_items` always adds after ``ITEM_COLUMNS`` (null where not applicable)."""


class DataError(ElicitError, ValueError):
    """One-line message naming the problem (dataset, file, key or row) and the fix."""


def is_null(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def to_gold(raw: pd.Series, positive: list[Any]) -> list[Any]:
    """Map raw label values to 1 (in ``positive``), 0 (other non-null) or None."""
    return [None if is_null(v) else int(any(v == p for p in positive)) for v in raw.tolist()]


def plain(v: Any) -> Any:
    """numpy scalars as Python values (so messages show 1, not np.int64(1))."""
    return v.item() if isinstance(v, np.generic) else v


def strict_gold(raw: pd.Series, positive: list[Any], negative: list[Any]) -> tuple[list[Any], list[int]]:
    """Map raw labels to 1 (in ``positive``), 0 (in ``negative``) or None (empty); also the rows in neither list."""
    gold: list[Any] = []
    stray: list[int] = []
    for i, v in enumerate(raw.tolist()):
        if is_null(v):
            gold.append(None)
        elif any(v == p for p in positive):
            gold.append(1)
        elif any(v == n for n in negative):
            gold.append(0)
        else:
            gold.append(None)
            stray.append(i)
    return gold, stray


def truthy(v: Any) -> bool:
    """``is_short``-style flags: True for true booleans/ones/'true' strings."""
    if is_null(v):
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def first_appearance_ids(values: pd.Series) -> list[Any]:
    """Number distinct non-null values 0, 1, ... in order of first appearance; nulls stay null."""
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return [None if c < 0 else int(c) for c in codes]


def item_frame(
    text: Any,
    gold: Any,
    source_row: Any,
    consistency_id: Any = None,
    answer_key: Any = None,
    nuisance: Any = None,
) -> pd.DataFrame:
    """Assemble a canonical (pre-numbering) frame; None columns become all-null."""
    n = len(text)
    null = [None] * n
    return pd.DataFrame(
        {
            "text": pd.Series(list(text), dtype="object"),
            "gold": pd.array(null if gold is None else list(gold), dtype="Int8"),
            "consistency_id": pd.array(null if consistency_id is None else list(consistency_id), dtype="Int64"),
            "source_row": np.asarray(source_row, dtype=np.int64),
            "answer_key": pd.Series(null if answer_key is None else list(answer_key), dtype="object"),
            "nuisance": pd.array(null if nuisance is None else list(nuisance), dtype="Int8"),
        }
    )


def strip_nul(texts: list[Any]) -> tuple[list[Any], int]:
    """Texts with NUL bytes (``\\x00``) removed, and how many texts had one (non-strings are left as they are)."""
    hit = [isinstance(t, str) and "\x00" in t for t in texts]
    return [t.replace("\x00", "") if h else t for t, h in zip(texts, hit, strict=True)], sum(hit)


def finish_items(raw: pd.DataFrame, cfg: DatasetConfig, counts: dict[str, int] | None = None) -> pd.DataFrame:
    """Apply filters (whole consistency groups go together), check texts, number items, fix dtypes.

    NUL bytes are removed from texts first (they mean nothing to an oracle and break tools that read the export
    as C strings); how many texts had one is logged and put in ``counts["nul_texts"]``. A row with an empty text
    (missing, NaN or blank, also after that) is an error naming its source row and the count, not a skip: it
    cannot be labelled, it usually means a wrong ``text_column`` or a broken export, and dropping it would change
    which rows become items without the user asking. Filters that leave nothing are an error too.
    """
    key = f"datasets.{cfg.name}"
    cleaned, nul = strip_nul(raw["text"].tolist())
    if nul:
        log.warning("dataset '%s': removed NUL bytes from %d of %d texts", cfg.name, nul, len(raw))
        raw = raw.assign(text=pd.Series(cleaned, index=raw.index, dtype="object"))
    if counts is not None:
        counts["nul_texts"] = nul
    text = raw["text"]
    bad = [i for i, t in enumerate(text) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"dataset '{cfg.name}': source row {int(raw['source_row'].iloc[bad[0]])} has an empty text "
            f"({len(bad)} such rows); fill or remove them, or fix {key}.text_column"
        )
    keep = np.ones(len(raw), dtype=bool)
    if cfg.short_only:
        if "is_short" not in raw.columns:
            raise DataError(
                f"dataset '{cfg.name}': short_only needs an is_short column, which this dataset lacks; "
                f"remove {key}.short_only"
            )
        keep &= raw["is_short"].to_numpy(dtype=bool)
    if cfg.max_chars is not None:
        keep &= np.array([len(t) <= cfg.max_chars for t in text], dtype=bool)
    cid = raw["consistency_id"]
    if not keep.all() and cid.notna().any():
        # a filtered-out member would leave its group incomplete (e.g. a virtue block without its true trait)
        dropped = set(cid[~keep].dropna().tolist())
        keep &= ~cid.isin(dropped).fillna(False).to_numpy(dtype=bool)
    out = raw.loc[keep].reset_index(drop=True)
    if len(out) == 0:
        raise DataError(f"dataset '{cfg.name}': no items left after filters; relax {key}.short_only / max_chars")
    items = pd.DataFrame(
        {
            "item_id": np.arange(len(out), dtype=np.int64),
            "text": pd.Series(out["text"].tolist(), dtype="str"),
            "gold": out["gold"].astype("Int8"),
            "consistency_id": out["consistency_id"].astype("Int64"),
            "source_row": out["source_row"].to_numpy(dtype=np.int64),
            "answer_key": pd.Series(out["answer_key"].tolist(), dtype="str"),
            "nuisance": out["nuisance"].astype("Int8"),
        }
    )
    items.attrs["dataset"] = cfg.name
    return items


def validate_items(items: pd.DataFrame) -> None:
    """Check the items schema; raise :class:`DataError` naming the first problem."""
    cols = list(items.columns)
    if cols[: len(ITEM_COLUMNS)] != ITEM_COLUMNS:
        raise DataError(f"items table must start with columns {ITEM_COLUMNS}, got {cols}")
    n = len(items)
    if n == 0:
        raise DataError("items table is empty; check the dataset's filters")
    item_id = items["item_id"]
    if not pd.api.types.is_integer_dtype(item_id) or item_id.isna().any():
        raise DataError(f"items.item_id must be integers without nulls, got dtype {item_id.dtype}")
    if not np.array_equal(item_id.to_numpy(dtype=np.int64), np.arange(n)):
        raise DataError("items.item_id must be 0..n-1 in row order (unique); renumber after filtering")
    text = items["text"]
    bad = [i for i, t in enumerate(text.tolist()) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"items.text is empty or not a string at item_id {bad[0]} ({len(bad)} rows)")
    gold = items["gold"]
    if not (gold.isna().all() or pd.api.types.is_integer_dtype(gold) or pd.api.types.is_bool_dtype(gold)):
        raise DataError(f"items.gold must be a nullable integer (Int8) column, got dtype {gold.dtype}")
    values = set(pd.Series(gold).dropna().astype(int).unique().tolist())
    if not values <= {0, 1}:
        raise DataError(f"items.gold must be 0, 1 or <NA>; found {sorted(values)}")
    cid = items["consistency_id"]
    if not (cid.isna().all() or pd.api.types.is_integer_dtype(cid)):
        raise DataError(f"items.consistency_id must be a nullable integer (Int64) column, got dtype {cid.dtype}")
    src = items["source_row"]
    if not pd.api.types.is_integer_dtype(src) or src.isna().any() or (src < 0).any():
        raise DataError(f"items.source_row must be non-negative integers without nulls, got dtype {src.dtype}")
    if "answer_key" in items.columns:
        ak = items["answer_key"].dropna().tolist()
        if any(not isinstance(a, str) for a in ak):
            raise DataError("items.answer_key must hold strings or <NA>")
    if "nuisance" in items.columns:
        nu = items["nuisance"]
        if not (nu.isna().all() or pd.api.types.is_integer_dtype(nu) or pd.api.types.is_bool_dtype(nu)):
            raise DataError(f"items.nuisance must be a nullable integer (Int8) column, got dtype {nu.dtype}")
