"""Atomic, deterministic writes: a killed stage never leaves a half-written output behind.

Every output goes to a temporary file in the same folder and is renamed into place, so readers (and DVC/Snakemake)
see either the old file or the complete new one. Parquet files are written without pandas metadata timestamps so
identical frames give byte-identical files.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from elicit.errors import ElicitError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once (os.umask can only be read by setting it)

_write_root: Path | None = None


class UnsafeOutputError(ElicitError, ValueError):
    """An output path that leaves the folder a stage may write (e.g. a name with ``..`` in it)."""


def confine_writes(root: Path | str | None) -> None:
    """Refuse, from now on in this process, atomic writes whose target is not inside ``root`` (None: no limit).

    A stage of one run confines itself to ``results/<run>/``: a name that smuggles ``..`` into a path can then never
    make ``atomic_dir`` delete or overwrite a folder elsewhere. Paths are compared as written (made absolute and
    normalised, symlinks not followed), so a results folder that is a symlink to scratch space still works.
    """
    global _write_root
    _write_root = None if root is None else Path(os.path.normpath(os.path.abspath(root)))


def _checked(path: Path) -> Path:
    target = Path(os.path.normpath(os.path.abspath(path)))
    if _write_root is not None and not target.is_relative_to(_write_root):
        raise UnsafeOutputError(
            f"refusing to write {path}: it resolves to {target}, outside this run's folder {_write_root}; "
            "outputs of a run stay under results/<run>/ (names must not contain '..' or '/')"
        )
    return path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only if the block succeeds."""
    path = _checked(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private; follow the umask instead
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a new, empty temporary folder next to ``path``; rename it to ``path`` only if the block succeeds.

    The old ``path`` is removed first (as DVC does before a stage), so a writer killed half-way leaves ``path``
    absent, never holding some of its files only. Temporary folders of earlier killed writers of ``path`` go too.
    """
    path = _checked(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    if path.exists():
        shutil.rmtree(path)
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
    tmp.mkdir()  # not mkdtemp: the folder keeps the umask's mode (mkdtemp's is 0o700)
    try:
        yield tmp
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: Path | str, schema: pa.Schema | None = None) -> None:
    """Write a frame as Parquet atomically and deterministically (no index); ``schema`` keeps types of empty frames."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)


def read_parquet(path: Path | str) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_npy(array: np.ndarray, path: Path | str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_json(obj: Any, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_text(text: str, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(data: bytes, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_or_check(out: Path | str, text: str, action: str, regenerate: str) -> int:
    """A generated file (dvc.yaml, the params schema): ``write`` it, or ``check`` that the committed one is current
    (exit status 1 naming the command that regenerates it)."""
    out = Path(out)
    if action == "check":
        if not out.exists() or out.read_text() != text:
            print(f"{out} is stale; run `{regenerate}`", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0
