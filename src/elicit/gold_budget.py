"""A few gold labels, if the user has them: ``runs.<run>.gold_budget: k``.

Why: a user with no gold gets the gold-free estimate (:mod:`elicit.evaluate.goldfree`), which assumes the model's
calibrated beliefs are right and has measured too high where they are not. Most users can label a few items by
hand. k of them buy an estimate with a valid interval (prediction-powered inference, :mod:`elicit.evaluate.ppi`)
and a config choice checked against gold (:func:`choose_with_gold`).

DESIGN.md's gold rule, the one exception a user opts into:

- **Which items.** :func:`choose` draws k item ids by the run's seed alone: a simple random sample of the run's
  items, stratified by nothing. PPI's interval is valid for a random sample; a sample stratified by the oracle's
  answers would need the answers first and a weighted estimator after. Shuffling every gold label leaves the choice
  unchanged.
- **Whose gold.** The ``gold_budget`` stage writes the chosen items' ids and gold to ``gold_budget.parquet``
  (:data:`elicit.paths.GOLD_BUDGET`; empty when k = 0). ``select`` reads that file and never the items' gold column,
  so the gold of every other item stays unread (tested by shuffling it).
- **Not evaluated.** ``evaluate`` leaves the budget items out of every metric against gold (accuracy, PGR, ECE,
  the comparisons): the labels were chosen with their gold, so scoring on them would flatter the labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elicit.errors import ElicitError

COLUMNS: tuple[str, ...] = ("item_id", "gold")
"""``gold_budget.parquet``: the k budget items and their gold (0/1)."""

SWITCH_Z = 2.0
"""The gold-assisted choice leaves the gold-free one only when another config's mean log-likelihood of the budget's
gold is higher by more than SWITCH_Z paired standard errors: k = 25 labels are noisy, and a switch on noise would
throw away the held-out likelihood's evidence from every item."""

P_CLIP = 0.01
"""p_true is clipped to [P_CLIP, 1 - P_CLIP] in the log-likelihood, so one confident mistake costs log(100), not
infinity."""

MIN_EVALUATED = 1
"""Items the run must keep outside the budget: the labels are evaluated on them."""


class BudgetError(ElicitError, ValueError):
    """A gold budget that cannot be honoured (larger than the run, or its items lack gold); one line with the fix."""

    def __init__(self, message: str, unlabelled: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.unlabelled = unlabelled
        """the chosen items without gold (source_row, text), for the user to label; None for other errors."""


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x601D]))


def choose(item_ids: Sequence[int] | np.ndarray, k: int, seed: int, run: str = "<run>") -> np.ndarray:
    """k item ids drawn without replacement by ``seed`` alone (sorted); k = 0 gives none.

    A function of the ids and the seed: nothing an item holds (its gold, its text) moves the choice.
    """
    ids = np.sort(np.asarray(item_ids, dtype=np.int64))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k > ids.size - MIN_EVALUATED:
        raise BudgetError(
            f"gold_budget {k} leaves fewer than {MIN_EVALUATED} of the run's {ids.size} items to evaluate on; "
            f"set runs.{run}.gold_budget below {ids.size - MIN_EVALUATED + 1} (or raise the run's n)"
        )
    return np.sort(_rng(seed).choice(ids, size=k, replace=False))


def budget_table(items: pd.DataFrame, k: int, seed: int, run: str = "<run>") -> pd.DataFrame:
    """``gold_budget.parquet`` for a run's items: the :func:`choose` ids with their gold (load only).

    Reads the gold of the chosen items and of no other; a chosen item without gold is an error naming the fix,
    since PPI needs every budget label.
    """
    chosen = choose(items["item_id"].to_numpy(), k, seed, run)
    rows = items.set_index("item_id").loc[chosen, "gold"] if chosen.size else pd.Series([], dtype="Int8")
    if rows.isna().any():
        missing = items.set_index("item_id").loc[rows.index[rows.isna()]]
        raise BudgetError(
            f"run '{run}': {int(rows.isna().sum())} of the {k} gold_budget items have no gold label; label them in "
            "the dataset file (or set gold_budget: 0)",
            unlabelled=missing[[c for c in ("source_row", "text") if c in missing.columns]],
        )
    return pd.DataFrame(
        {"item_id": chosen.astype(np.int64), "gold": pd.array(rows.to_numpy(dtype=np.int64), dtype="int8")}
    )


def read_budget(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, gold as 0/1 ints) of a ``gold_budget.parquet`` file; none when it does not exist (a run built
    before the budget existed). The one reader every stage that leaves the budget out uses."""
    if not path.exists():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    df = pd.read_parquet(path)
    return df["item_id"].to_numpy(dtype=np.int64), df["gold"].to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class GoldChoice:
    """What the budget's gold said about the swept configs (``selection.json``'s ``gold_budget``)."""

    k: int
    gold_free: str
    """the config the gold-free rule chose."""
    chosen: str
    """the config the run uses: ``gold_free`` unless another beat it on the budget beyond :data:`SWITCH_Z`."""
    loglik: dict[str, float] = field(default_factory=dict)
    """mean log-likelihood of the budget's gold under each config's seed-mean p_true."""
    accuracy: dict[str, float] = field(default_factory=dict)
    """each config's accuracy on the budget items (shown, not used: accuracy on k items is too coarse)."""
    z: dict[str, float] = field(default_factory=dict)
    """paired z of each config's log-likelihood gain over ``gold_free``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "gold_free": self.gold_free,
            "chosen": self.chosen,
            "switched": self.chosen != self.gold_free,
            "switch_z": SWITCH_Z,
            "loglik": self.loglik,
            "accuracy": self.accuracy,
            "z": self.z,
        }


def is_right(p: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """1.0 where the hard label [p >= 0.5] equals gold, else 0.0 (an unlabelled item, NaN, counts as p = 0.5)."""
    p = np.asarray(p, dtype=float)
    return ((np.where(np.isfinite(p), p, 0.5) >= 0.5) == np.asarray(gold)).astype(float)


def _loglik(p: np.ndarray, gold: np.ndarray) -> np.ndarray:
    p = np.clip(np.where(np.isfinite(p), p, 0.5), P_CLIP, 1.0 - P_CLIP)
    return np.where(gold == 1, np.log(p), np.log1p(-p))


def choose_with_gold(gold_free: str, p_budget: Mapping[str, np.ndarray], gold: np.ndarray) -> GoldChoice:
    """The config to use given the budget's gold: the gold-free choice, unless another config's per-item
    log-likelihood of the budget's gold beats it by more than :data:`SWITCH_Z` paired standard errors (then the
    one with the highest z).

    ``p_budget``: config -> seed-mean p_true on the budget items (aligned with ``gold``).
    """
    gold = np.asarray(gold, dtype=np.int64)
    k = int(gold.size)
    ll = {c: _loglik(np.asarray(p, dtype=float), gold) for c, p in p_budget.items()}
    acc = {c: float(is_right(p, gold).mean()) for c, p in p_budget.items()} if k else {}
    z: dict[str, float] = {}
    base = ll.get(gold_free)
    for c, v in ll.items():
        if base is None or c == gold_free or k < 2:
            z[c] = 0.0
            continue
        d = v - base
        sd = float(np.std(d, ddof=1))
        z[c] = float(d.mean() / (sd / np.sqrt(k))) if sd > 0 else 0.0
    best = max((c for c in z if c != gold_free), key=lambda c: (z[c], c), default=None)
    chosen = best if best is not None and z[best] > SWITCH_Z else gold_free
    return GoldChoice(
        k=k,
        gold_free=gold_free,
        chosen=chosen,
        loglik={c: float(v.mean()) if k else 0.0 for c, v in ll.items()},
        accuracy=acc,
        z=z,
    )
