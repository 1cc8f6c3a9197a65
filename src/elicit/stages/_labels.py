"""Reading and writing label folders: ``labels/<method>/seed<s>.parquet`` (item_id, p_true), one file per seed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from elicit.io import write_parquet

SEED_FILE = re.compile(r"^seed(\d+)\.parquet$")


def check_labels(df: pd.DataFrame, n_items: int, method: str) -> pd.DataFrame:
    """Every item once, p_true finite in [0, 1]: a method that breaks this is a bug, never a silent number."""
    df = df[["item_id", "p_true"]].sort_values("item_id", kind="stable").reset_index(drop=True)
    ids = df["item_id"].to_numpy()
    if len(df) != n_items or not np.array_equal(ids, np.arange(n_items)):
        raise RuntimeError(f"labels of '{method}' do not cover items 0..{n_items - 1} exactly once (bug)")
    p = df["p_true"].to_numpy(dtype=float)
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise RuntimeError(f"labels of '{method}' have p_true outside [0, 1] or NaN (bug)")
    return df.astype({"item_id": "int64", "p_true": "float64"})


def fresh_dir(path: Path) -> Path:
    """An empty output folder (DVC deletes outputs before a stage; Snakemake may leave an old one)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_labels(folder: Path, seed: int, df: pd.DataFrame, n_items: int, method: str) -> None:
    write_parquet(check_labels(df, n_items, method), folder / f"seed{seed}.parquet")


def read_labels(folder: Path) -> dict[int, pd.DataFrame]:
    """All seeds of one method folder; an empty dict when the folder has none."""
    out = {}
    for f in sorted(Path(folder).glob("seed*.parquet")):
        m = SEED_FILE.match(f.name)
        if m:
            out[int(m.group(1))] = pd.read_parquet(f, columns=["item_id", "p_true"])
    return out


def read_methods(folders: list[Path]) -> dict[str, dict[int, pd.DataFrame]]:
    """method name (the folder's name) → seed → labels, for every folder that has labels."""
    methods = {Path(f).name: read_labels(Path(f)) for f in folders}
    return {m: seeds for m, seeds in methods.items() if seeds}


ANSWER_COLUMNS = ("round", "target_id", "kind", "framing", "template_id", "score", "missing")
"""What evaluation and the report read of an oracle-calling baseline's ``calls.parquet`` (and of predictions)."""


def read_answers(path: Path) -> pd.DataFrame:
    """The :data:`ANSWER_COLUMNS` a query-row Parquet file has (the others are not read: context lists are large)."""
    import pyarrow.parquet as pq

    have = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in ANSWER_COLUMNS if c in have])


def read_calls(folders: list[Path]) -> dict[str, pd.DataFrame]:
    """method name → its own oracle calls (``labels/<method>/calls.parquet``), for every folder that has them."""
    return {
        Path(f).name: read_answers(Path(f) / "calls.parquet") for f in folders if (Path(f) / "calls.parquet").exists()
    }
