"""Reading a dataset: local files and folders (straight from their bytes), the Hugging Face hub, the column and
label mapping of ``source: file/hub``, and the entry points :func:`load_items` and :func:`load_other_splits`."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elicit.datasets.builtins import BUILTINS, MACHIAVELLI_HUB
from elicit.datasets.config import DEFAULT_NEGATIVE_VALUES, SUFFIX_FORMATS, DatasetConfig, resolve_path, shown_path
from elicit.datasets.diagnosis import read_error, read_errors
from elicit.datasets.items import (
    DataError,
    finish_items,
    first_appearance_ids,
    is_null,
    item_frame,
    plain,
    strict_gold,
    strip_nul,
    to_gold,
    truthy,
    validate_items,
)

log = logging.getLogger(__name__)


@contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import ``datasets`` lazily (slow import) with its progress bars off while we read, and its own error log
    lines muted (a failed read becomes one :class:`DataError` line that carries their content)."""
    import datasets
    import datasets.utils.logging as ds_logging

    was_enabled = datasets.is_progress_bar_enabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(logging.CRITICAL)
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(verbosity)
        if was_enabled:
            datasets.enable_progress_bars()


_FOLDER_IGNORE = frozenset({"config.json", "dataset_info.json", "dataset_infos.json", "dataset_dict.json"})
_SPLIT_WORDS = {
    "train": ("train", "training"),
    "other": ("validation", "valid", "dev", "val", "test", "testing", "eval", "evaluation"),
}


def _infer_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    found = SUFFIX_FORMATS.get(path.suffix.lower().lstrip("."))
    if found:
        return found
    raise DataError(f"cannot tell the format of {path} from its suffix; set format: csv|json|jsonl|parquet")


def _json_table(path: Path) -> Any:
    """A JSON Lines file, or a JSON array (of objects; other values become a ``text`` column), as an Arrow table
    (pyarrow's JSON reader: the types the ``datasets`` json builder gave before); a pandas frame where pyarrow
    cannot type a column (a label that is 1 in one row and "yes" in another) or the file is one JSON document."""
    import pyarrow as pa
    import pyarrow.json as paj

    data = path.read_bytes()
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
    if data.lstrip().startswith(b"["):  # pyarrow reads JSON Lines only
        rows = json.loads(data)
        if not all(isinstance(r, dict) for r in rows):
            rows = [{"text": r} for r in rows]
        data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    try:
        table = paj.read_json(io.BytesIO(data), read_options=paj.ReadOptions(block_size=len(data) + (1 << 16)))
        table.validate()
        return table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = data.decode("utf-8")
        try:
            return pd.DataFrame([json.loads(line) for line in text.splitlines() if line.strip()])
        except json.JSONDecodeError:
            return pd.read_json(io.StringIO(text))  # one document (e.g. column -> values); raises if not JSON


def _read_table(path: Path, fmt: str) -> pd.DataFrame:
    """One local file, read straight from its bytes (never through a cache, so what is read always follows the
    file's content): CSV with pandas, JSON / JSON Lines and Parquet with pyarrow. Columns come out as the
    ``datasets`` builders gave them before (through Arrow: missing strings are None, dictionary columns plain)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "csv":
        table = pa.Table.from_pandas(pd.read_csv(path), preserve_index=False)
    elif fmt == "parquet":
        with path.open("rb") as fh:  # an open file: pyarrow's messages then do not carry the path
            table = pq.ParquetFile(fh).read()
    else:
        found = _json_table(path)
        if isinstance(found, pd.DataFrame):
            return found.reset_index(drop=True)
        table = found
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    table = pa.Table.from_arrays(columns, names=table.column_names)  # no pandas metadata: a plain frame
    return table.to_pandas().reset_index(drop=True)


def _split_words(rel: Path) -> set[str]:
    return {w for part in rel.with_suffix("").parts for w in re.split(r"[-._ 0-9]+", part.lower()) if w}


def _folder_files(path: Path, fmt: str | None, where: str) -> tuple[list[Path], str]:
    """The data files of a folder (e.g. a Hugging Face dataset download) that form its train split, and their
    format: files with a data suffix (or of ``fmt``), hidden files and dataset metadata left out; where some file
    names a split (``train``, ``test``, ``validation``, ...), only the train files; sorted by path."""
    found: list[tuple[Path, str]] = []
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if any(part.startswith((".", "__")) for part in rel.parts) or f.name in _FOLDER_IGNORE or not f.is_file():
            continue
        kind = SUFFIX_FORMATS.get(f.suffix.lower().lstrip("."))
        if kind and (fmt is None or kind == {"jsonl": "json"}.get(fmt, fmt)):
            found.append((rel, kind))
    if not found:
        raise DataError(f"{where} is a folder without {'/'.join(sorted(SUFFIX_FORMATS))} data files; add them there")
    named = [(rel, kind) for rel, kind in found if _split_words(rel) & {*_SPLIT_WORDS["train"], *_SPLIT_WORDS["other"]}]
    if named:
        found = [(rel, kind) for rel, kind in named if _split_words(rel) & set(_SPLIT_WORDS["train"])]
        if not found:
            raise DataError(f"{where} is a folder without a train split (no file name says train); point at a file")
    kinds = sorted({kind for _, kind in found})
    if len(kinds) > 1:
        raise DataError(f"{where} is a folder that mixes {' and '.join(kinds)} files; point at one file or set format")
    return [path / rel for rel, _ in found], kinds[0]


def _read_file(path: Path, fmt: str | None, where: str = "", key: str = "datasets.<name>.path") -> pd.DataFrame:
    """Read a local table (or a folder of them, concatenated) directly with pandas / pyarrow; row order is kept.

    No cache stands between the file and the rows (the ``datasets`` builders' cache was keyed on path and mtime,
    so a file replaced with the same mtime gave the old rows). A file that cannot be read (not UTF-8, a malformed
    CSV row or JSON line, no rows, not the stated format) raises one :class:`DataError` naming it (``where``), the
    cause (with the line where the parser says) and the fix (``key`` is the params key that names the file).
    """
    where = where or str(path)
    if path.is_dir():
        files, fmt = _folder_files(path, fmt, where)
    else:
        files, fmt = [path], _infer_format(path, fmt)
    frames = []
    for file in files:
        if file.stat().st_size == 0:
            which = "the file is empty" if file == path else f"{file.name} is empty"
            raise DataError(f"{where} has no rows ({which}); add data rows or fix {key}")
        try:
            frames.append(_read_table(file, fmt))
        except read_errors() as e:
            raise read_error(e, file, fmt, where, key) from e
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(frame) == 0:
        raise DataError(f"{where} has no rows (empty, or a header only); add data rows or fix {key}")
    return frame


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'the hub or the dataset could not be reached / found'."""
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, TimeoutError, FileNotFoundError
    try:
        from datasets.exceptions import DatasetNotFoundError

        errors.append(DatasetNotFoundError)
    except ImportError:  # pragma: no cover - older datasets
        pass
    try:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        errors += [HfHubHTTPError, LocalEntryNotFoundError]
    except ImportError:  # pragma: no cover
        pass
    for mod, name in (("httpx", "HTTPError"), ("requests", "RequestException")):
        with suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(mod), name))
    return tuple(errors)


def _read_hub(cfg: DatasetConfig) -> pd.DataFrame:
    split = cfg.split or "train"
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_dataset(cfg.hub_path, cfg.hub_name, split=split)
        except _hub_errors() as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            raise DataError(
                f"dataset '{cfg.name}': could not reach the Hugging Face hub for '{cfg.hub_path}' "
                f"({reason}); download it and use source: file with path: data/<file>"
            ) from None
        return ds.to_pandas().reset_index(drop=True)


def _labels(raw: pd.DataFrame, cfg: DatasetConfig, where: str) -> list[Any]:
    """Gold from the label column: 1 = in ``positive_values``, 0 = in ``negative_values`` (or, without that list,
    any other value of a column with at most 2 distinct values), None = an empty cell (counted in the log).

    Never a silent 0 for an unexpected value: a value in neither list, or a third distinct value, is an error.

    One class is a valid dataset (rare events: every row a negative), loaded with a warning, when no label is in
    ``positive_values`` and either every label is in ``negative_values`` or, without that list, every label is
    one of ``DEFAULT_NEGATIVE_VALUES`` (0 / false). Other labels that match no positive value are an error that
    names both fixes: the positive values are misspelt (set ``positive_values``), or the labels are all
    negatives (list them in ``negative_values``). All labels 1 needs no exception: it always loads.
    """
    col = str(cfg.label_column)
    key = f"datasets.{cfg.name}"
    series = raw[col]
    values = series.tolist()
    odd = next((i for i, v in enumerate(values) if isinstance(v, list | dict | np.ndarray)), None)
    if odd is not None:
        raise DataError(
            f"dataset '{cfg.name}': label column '{col}' of {where} holds a {type(values[odd]).__name__} in source "
            f"row {odd}; labels must be single values (1/0, true/false, yes/no); fix {key}.label_column"
        )
    positive, negative = cfg.positive_values, cfg.negative_values
    if negative is not None:
        gold, stray = strict_gold(series, positive, negative)
        if stray:
            raise DataError(
                f"dataset '{cfg.name}': label {plain(values[stray[0]])!r} in source row {stray[0]} of {where} "
                f"(column '{col}', {len(stray)} such rows) is in neither {key}.positive_values {positive!r} nor "
                f"{key}.negative_values {negative!r}; add it to one of them, or empty the cell for unknown gold"
            )
    else:
        distinct = list(dict.fromkeys(plain(v) for v in values if not is_null(v)))
        if len(distinct) > 2:
            shown = sorted(distinct, key=lambda v: (type(v).__name__, str(v)))
            more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
            raise DataError(
                f"dataset '{cfg.name}': label column '{col}' has {len(distinct)} distinct values "
                f"{shown[:10]!r}{more}; list the ones that mean 1 in {key}.positive_values and the ones that "
                f"mean 0 in {key}.negative_values"
            )
        gold = to_gold(series, positive)
    labelled = sum(g is not None for g in gold)
    if labelled and not any(g == 1 for g in gold):
        zeros = all(is_null(v) or any(v == z for z in DEFAULT_NEGATIVE_VALUES) for v in values)
        if negative is None and not zeros:
            seen = sorted({repr(plain(v)) for v in series.dropna().unique()[:10]})
            raise DataError(
                f"dataset '{cfg.name}': no value of column '{col}' is in positive_values "
                f"{positive!r} (seen: {', '.join(seen)}); set {key}.positive_values to the values that mean 1, "
                f"or, if every row is a negative, list these values in {key}.negative_values"
            )
        log.warning(
            "dataset '%s': all %d labelled rows of column '%s' are label 0 (one class: no positives)",
            cfg.name,
            labelled,
            col,
        )
    unknown = sum(g is None for g in gold)
    if unknown:
        level = logging.WARNING if unknown == len(gold) else logging.INFO
        log.log(
            level,
            "dataset '%s': %d of %d rows have an empty label in column '%s' (gold unknown, items kept)",
            cfg.name,
            unknown,
            len(gold),
            col,
        )
    return gold


def _from_columns(raw: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
    """``source: file/hub``: map the configured columns onto the item schema."""
    wanted = [c for c in (cfg.text_column, cfg.label_column, cfg.consistency_column) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise DataError(
            f"dataset '{cfg.name}': {where} has no column {', '.join(map(repr, missing))} "
            f"(has: {', '.join(map(str, raw.columns))}); fix datasets.{cfg.name}.*_column"
        )
    gold = _labels(raw, cfg, where) if cfg.label_column else None
    cid = None
    if cfg.consistency_column:
        col = raw[cfg.consistency_column]
        cid = col.tolist() if pd.api.types.is_integer_dtype(col) else first_appearance_ids(col)
    text = [t if isinstance(t, str) or is_null(t) else str(t) for t in raw[cfg.text_column].tolist()]
    out = item_frame(text, gold, raw.index, cid)
    if "is_short" in raw.columns:
        out["is_short"] = [truthy(v) for v in raw["is_short"]]
    return out


def raw_items(cfg: DatasetConfig, root: Path) -> pd.DataFrame:
    """Read the source and convert it to canonical (un-numbered, unfiltered) item rows."""
    key = f"datasets.{cfg.name}"
    if cfg.source == "hub":
        return _from_columns(_read_hub(cfg), cfg, f"hub dataset '{cfg.hub_path}'")
    if cfg.source == "file":
        path = resolve_path(root, cfg.path or "", cfg.name, f"{key}.path")
        if not path.exists():
            raise DataError(f"dataset '{cfg.name}': data file {cfg.path} not found under {root}; fix {key}.path")
        raw = _read_file(path, cfg.format, f"dataset '{cfg.name}': {cfg.path}", f"{key}.path")
        return _from_columns(raw, cfg, str(cfg.path))
    name = cfg.builtin or cfg.name
    if name not in BUILTINS:
        raise DataError(f"dataset '{cfg.name}': unknown builtin {name!r}; known builtins: {', '.join(BUILTINS)}")
    spec = BUILTINS[name]
    rel = cfg.path or spec.path
    path = resolve_path(root, rel, cfg.name, f"{key}.path")
    if not path.exists():
        if name == "machiavelli":
            raise DataError(
                f"dataset '{cfg.name}': {rel.rstrip('/')}/ is absent (the data is on the Hugging Face hub as "
                f"{MACHIAVELLI_HUB}, unreachable offline); download it there and set {key}.path"
            )
        raise DataError(
            f"dataset '{cfg.name}': data file {rel} not found under {root}; restore it "
            f"(see data/SOURCES.md) or set {key}.path"
        )
    where = f"dataset '{cfg.name}': {rel}"
    return spec.convert(_read_file(path, cfg.format, where, f"{key}.path"), where)


def load_other_splits(cfg: DatasetConfig, root: Path) -> dict[str, pd.DataFrame]:
    """``other_splits`` as ``path → frame`` (``text``, ``gold``, ``source_row``), read and converted like the
    dataset's own file but without its filters (an overlap with a long or filtered-out row is still an overlap);
    rows without text are left out. Keys are :func:`shown_path` (the file name of an absolute path, made unique),
    since they end up in ``hygiene.json`` and the report."""
    out: dict[str, pd.DataFrame] = {}
    key = f"datasets.{cfg.name}.other_splits"
    for rel in cfg.other_splits:
        path = resolve_path(Path(root), rel, cfg.name, key)
        if not path.exists():
            raise DataError(
                f"dataset '{cfg.name}': other split {rel} not found under {root}; fix or remove it in {key}"
            )
        where = f"dataset '{cfg.name}': {rel}"
        raw = _read_file(path, cfg.format, where, key)
        if cfg.source == "builtin":
            frame = BUILTINS[cfg.builtin or cfg.name].convert(raw, where)
        else:
            frame = _from_columns(raw, cfg, rel)
        frame["text"] = strip_nul(frame["text"].tolist())[0]
        ok = [isinstance(t, str) and bool(t.strip()) for t in frame["text"]]
        shown, n = shown_path(rel), 2
        while shown in out:  # two absolute paths with one file name
            shown, n = f"{shown_path(rel)} ({n})", n + 1
        out[shown] = frame.loc[ok, ["text", "gold", "source_row"]].reset_index(drop=True)
    return out


def load_items(cfg: DatasetConfig, root: Path, counts: dict[str, int] | None = None) -> pd.DataFrame:
    """The full dataset after filters: ``ITEM_COLUMNS`` + ``OPTIONAL_COLUMNS``, item_id 0..N-1 in file order.

    Local files (and folders of them) are read directly with pandas / pyarrow (:func:`_read_file`), so the rows
    always follow the file's bytes; data paths follow the rule in the package docstring. ``source: hub`` calls
    ``datasets.load_dataset(hub_path, hub_name, split=split)`` and turns a connection or not-found failure into
    one :class:`DataError` line. ``counts``, when given, receives what loading cleaned (``nul_texts``: texts whose
    NUL bytes were removed), for the load stage's ``hygiene.json``.

    Bad input never yields a silently wrong table; each case is one :class:`DataError` line naming the file (or
    key) and the fix: a file that is not UTF-8, has a malformed CSV row or JSON line, has no rows or is not the
    stated format (:func:`_read_file`); a row with an empty text (:func:`finish_items`); a label value in neither
    ``positive_values`` nor ``negative_values``, or a third distinct label value when ``negative_values`` is not
    set, or a builtin label that is not 0/1; no items left after filters. The one counted skip-like case: an
    empty label cell means unknown gold (the item is kept; the count is logged). Duplicate rows are kept here and
    counted (flagged or dropped) by ``elicit.hygiene`` in the load stage; file datasets have no id column, so
    ``item_id``/``source_row`` are always unique.
    """
    items = finish_items(raw_items(cfg, Path(root)), cfg, counts)
    validate_items(items)
    return items
