"""The simulator's random draws, derived from sha256 of strings (never Python's hash()), and the strings that key a
query's draws. Apart from the simulator (elicit.oracle.simulated) because both families of mechanisms draw from
them: the in-family model there and the out-of-family suite (elicit.oracle.sim_suite). A draw's string is part of
the answer: changing one changes the simulator's answers, and leaves its cached ones stale.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _hash_u64(strings: Sequence[str]) -> np.ndarray:
    """Two independent 64-bit integers per string, from sha256."""
    out = np.empty((len(strings), 2), dtype=np.uint64)
    for i, s in enumerate(strings):
        d = hashlib.sha256(s.encode("utf-8")).digest()
        out[i, 0] = int.from_bytes(d[:8], "little")
        out[i, 1] = int.from_bytes(d[8:16], "little")
    return out


def _uniforms(bits: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1) from 64-bit integers (top 53 bits)."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hash_normal(strings: Sequence[str]) -> np.ndarray:
    """One standard normal per string (Box-Muller on two hash uniforms)."""
    u = _uniforms(_hash_u64(strings))
    return np.sqrt(-2.0 * np.log(u[:, 0])) * np.cos(2.0 * math.pi * u[:, 1])


def hash_uniform(strings: Sequence[str]) -> np.ndarray:
    return _uniforms(_hash_u64(strings))[:, 0]


def _query_string(seed: int, row: Mapping[Any, Any]) -> str:
    ctx = ",".join(str(int(c)) for c in row["context_ids"])
    shown = ",".join(str(int(c)) for c in row["context_shown"])
    return f"{seed}|q|{int(row['target_id'])}|{row['framing']}|{row['template_id']}|{ctx}|{shown}"


def _texts(values: np.ndarray) -> list[str]:
    """``str`` of each integer, each distinct value converted once."""
    if not len(values):
        return []
    uniq, inverse = np.unique(values, return_inverse=True)
    return np.array(list(map(str, uniq.tolist())), dtype=object)[inverse.reshape(-1)].tolist()  # type: ignore[no-any-return]
