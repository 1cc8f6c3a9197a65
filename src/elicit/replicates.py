"""Replicates: whole-pipeline draws of one run, and verdicts that compare methods across those draws.

Why: a run's bootstrap intervals resample its scored items only. Between two whole-pipeline draws the subsample,
the grouping, the plan, the oracle's prompt noise and the fit all change, and that spread is larger (ETHICS under
sim_strong: SD 3.1 points for ``selected`` and 5.2 for few_shot_mean across draws, against an item-bootstrap SE of
~1.2). So a claim that one method beats another is made on the draws: at least :data:`MIN_DRAWS` of them, a
t-interval over the per-draw *paired* differences (both methods scored on the same draw), and "beats" only when
that interval excludes 0.

A run entry says ``replicates: N``; :func:`expand_replicates` turns it into N ordinary runs named
``<run>`` (draw 0, the entry as written) and ``<run>__draw<k>`` (k = 1..N-1) whose seed is the entry's seed plus k,
so nothing else in the pipeline needs to know about replicates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from elicit.params_types import ParamsError

MIN_DRAWS = 5
"""Draws needed before a between-method verdict is written (fewer: "too few draws", never a verdict)."""

DRAW_SUFFIX = "__draw"
_DRAW_RE = re.compile(rf"^(?P<run>.+){DRAW_SUFFIX}(?P<k>[1-9][0-9]*)$")


def draw_name(run: str, k: int) -> str:
    """The name of draw ``k`` of ``run``: draw 0 keeps the run's own name, so one draw is just the run."""
    return run if k == 0 else f"{run}{DRAW_SUFFIX}{k}"


def draw_of(name: str) -> tuple[str, int]:
    """``(run, k)`` for a draw's name (``(name, 0)`` for a run that is not a derived draw)."""
    m = _DRAW_RE.match(name)
    return (m["run"], int(m["k"])) if m else (name, 0)


def draws(runs: Mapping[str, Mapping[str, Any]], run: str) -> list[str]:
    """The names of every draw of ``run`` (``[run]`` when it has no ``replicates``)."""
    n = int((runs.get(run) or {}).get("replicates") or 1)
    return [draw_name(run, k) for k in range(n)]


def expand_replicates(runs: Mapping[str, Mapping[str, Any]], base_seed: int) -> dict[str, dict[str, Any]]:
    """Every entry with ``replicates: N`` becomes N runs; draw k's seed is the entry's seed (default ``base_seed``)
    plus k. Derived names must not collide with a run written by hand (one line naming both)."""
    out: dict[str, dict[str, Any]] = {name: dict(entry) for name, entry in runs.items()}
    for name, entry in runs.items():
        n = int(entry.get("replicates") or 1)
        seed = int(entry["seed"]) if entry.get("seed") is not None else int(base_seed)
        for k in range(1, n):
            derived = draw_name(name, k)
            own = {key: v for key, v in entry.items() if key != "replicates"}  # a draw is a plain run
            drawn = {**own, "seed": seed + k, "description": _draw_description(entry, name, k, n)}
            if runs.get(derived) == drawn:  # expanded before (a snapshot of expanded params)
                continue
            if derived in runs:
                raise ParamsError(
                    f"params.yaml: runs.{derived}: this name is draw {k} of runs.{name} (replicates: {n}); "
                    "rename the hand-written run or lower replicates"
                )
            out[derived] = drawn
    return out


def _draw_description(entry: Mapping[str, Any], run: str, k: int, n: int) -> str:
    base = str(entry.get("description") or run)
    return f"{base} (draw {k + 1} of {n}: seed +{k})"


# --------------------------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class DrawComparison:
    """``a - b`` over whole-pipeline draws: the mean of the per-draw paired differences and its t-interval."""

    a: str
    b: str
    n_draws: int
    diff: float
    low: float
    high: float
    sd: float

    @property
    def verdict(self) -> str:
        """beats / worse / ties, or ``too few draws`` below :data:`MIN_DRAWS`."""
        if self.n_draws < MIN_DRAWS:
            return "too few draws"
        if self.low > 0:
            return "beats"
        if self.high < 0:
            return "worse"
        return "ties"

    def text(self) -> str:
        """e.g. ``+4.1 [+1.2, +7.0] (5 draws)``: points, with what the interval is over."""
        if self.n_draws < 2:
            return f"{100 * self.diff:+.1f} (1 draw: no interval)"
        return f"{100 * self.diff:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}] ({self.n_draws} draws)"


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, t-interval and SD of per-draw values (an interval of ±inf for a single draw)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, -math.inf, math.inf, 0.0
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return mean, mean - half, mean + half, sd


def accuracy_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of per-draw accuracies, the interval kept within [0, 1] (with 3 draws a t-interval can
    pass 0 or 100 %; a single draw's is unbounded, so it becomes [0, 1])."""
    mean, low, high, _ = t_interval(values, level)
    return mean, max(low, 0.0), min(high, 1.0)


def compare_draws(per_draw: pd.DataFrame, a: str, b: str, level: float = 0.95) -> DrawComparison | None:
    """``a`` against ``b`` on the draws where both have a value. ``per_draw``: one row per draw, one column per
    method (accuracy as a fraction). None when no draw has both."""
    if a not in per_draw or b not in per_draw:
        return None
    both = per_draw[[a, b]].dropna()
    if both.empty:
        return None
    mean, low, high, sd = t_interval((both[a] - both[b]).to_numpy(), level)
    return DrawComparison(a, b, len(both), mean, low, high, sd)


@dataclass(frozen=True)
class DrawPGR:
    """PGR of a method over draws, or why it is not reported."""

    value: float | None
    low: float | None
    high: float | None
    reason: str | None = None

    def text(self) -> str:
        if self.value is None:
            return f"n/a ({self.reason})"
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def pgr_over_draws(
    per_draw: pd.DataFrame,
    method: str,
    *,
    zero: str = "zero_shot",
    golden: str = "golden_fewshot",
    level: float = 0.95,
    n_boot: int = 4000,
    seed: int = 0,
) -> DrawPGR:
    """(method − zero) / (golden − zero) on the draw means, with a percentile bootstrap over draws.

    Reported only where golden few-shot beats zero-shot across draws (the t-interval of their paired difference
    above 0): below it, a "recovered share" of a negative gap would read as a gain."""
    cols = [method, zero, golden]
    if any(c not in per_draw for c in cols):
        return DrawPGR(None, None, None, "no " + " or ".join(c for c in cols if c not in per_draw) + " labels")
    d = per_draw[cols].dropna()
    if len(d) < MIN_DRAWS:
        return DrawPGR(None, None, None, f"{len(d)} draws, {MIN_DRAWS} needed")
    gap = compare_draws(d, golden, zero, level)
    assert gap is not None
    if not gap.low > 0:
        return DrawPGR(None, None, None, f"golden few-shot does not beat zero-shot ({gap.text()})")
    x = d.to_numpy(dtype=np.float64)
    point = float((x[:, 0] - x[:, 1]).mean() / (x[:, 2] - x[:, 1]).mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    num = (x[idx, 0] - x[idx, 1]).mean(axis=1)
    den = (x[idx, 2] - x[idx, 1]).mean(axis=1)
    ok = den > 0
    ratios = num[ok] / den[ok]
    lo, hi = np.quantile(ratios, [0.5 - level / 2, 0.5 + level / 2])
    return DrawPGR(point, float(lo), float(hi))
