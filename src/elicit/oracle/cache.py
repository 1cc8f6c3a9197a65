"""On-disk answer cache: SQLite in WAL mode, one committed row per answer.

Why SQLite: several stage processes (Snakemake runs jobs in parallel) read and write the same cache;
WAL mode lets readers and one writer work at once, and a busy timeout makes writers wait instead of
failing. Every answer is committed the moment it arrives, so a run killed with SIGKILL resumes without
asking any answered prompt again, and an unchanged re-run makes no call at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CACHE_FILE = "oracle.sqlite"
BUSY_TIMEOUT_MS = 60_000
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(
    kind: str,
    model_identity: Mapping[str, Any],
    endpoint: str,
    prompt: Any,
    sampling: Mapping[str, Any],
) -> str:
    """sha256 of canonical JSON of (oracle kind, model identity, endpoint kind, prompt, sampling params)."""
    return sha256_text(
        canonical_json(
            {
                "kind": kind,
                "model": dict(model_identity),
                "endpoint": endpoint,
                "prompt": prompt,
                "sampling": dict(sampling),
            },
        ),
    )


def _file_sha256_uncached(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AnswerCache:
    """Key → JSON answer store at `<cache_dir>/oracle.sqlite`."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CACHE_FILE
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (not a power cut), and is fast.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)",
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS file_hashes "
            "(path TEXT, mtime_ns INTEGER, size INTEGER, sha256 TEXT, PRIMARY KEY (path, mtime_ns, size))",
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cached answers among `keys` (chunked: SQLite limits the number of parameters)."""
        out: dict[str, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk)
            for key, value in rows:
                out[key] = json.loads(value)
        return out

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store and commit one answer now (autocommit), so a kill right after loses nothing."""
        self._conn.execute(
            "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
            (key, canonical_json(dict(value)), time.time()),
        )

    def put_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Store many answers in one transaction (for the simulator: thousands of answers at once)."""
        now = time.time()
        rows = [(k, canonical_json(dict(v)), now) for k, v in items]
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def file_sha256(self, path: str | Path) -> str:
        """sha256 of a (model) file, memoised by path + mtime + size, in this process and on disk."""
        return file_sha256(path, self)


def file_sha256(path: str | Path, cache: AnswerCache | None = None) -> str:
    """sha256 of a file; memoised by (path, mtime, size) so a 100 MB GGUF is hashed once."""
    p = Path(path).resolve()
    st = p.stat()
    memo_key = (str(p), st.st_mtime_ns, st.st_size)
    if memo_key in _HASH_MEMO:
        return _HASH_MEMO[memo_key]
    digest: str | None = None
    if cache is not None:
        row = cache._conn.execute(
            "SELECT sha256 FROM file_hashes WHERE path=? AND mtime_ns=? AND size=?",
            memo_key,
        ).fetchone()
        digest = row[0] if row else None
    if digest is None:
        digest = _file_sha256_uncached(p)
        if cache is not None:
            cache._conn.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (*memo_key, digest))
    _HASH_MEMO[memo_key] = digest
    return digest


def default_cache_dir() -> Path:
    """`$ELICIT_CACHE_DIR` or `.cache/elicit` (params' `oracle.cache_dir` normally decides)."""
    return Path(os.environ.get("ELICIT_CACHE_DIR", ".cache/elicit"))
