"""The pure steps of faithful ICM (elicit.baselines.icm_official): the batches, the annealing temperature and
test, the energy of a labelling. Apart from the search loop because each is a plain function of its arguments,
which the cost plan (elicit.baselines.icm_official_config) and the tests call on their own; the module docstring of
elicit.baselines.icm_official says which part of the authors' script each one follows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from elicit.contracts import UNLABELLED, consistency_groups, violations

if TYPE_CHECKING:
    from elicit.baselines.icm_official_config import OfficialICMConfig

LOG_RATE = 2.0
"""The script's "log" schedule: T = t0 / (1 + 2 ln(1 + accepted))."""
_SALT = 2506_10139
"""Salt of the run's random draws: the batches (seeded by ``seed``) and each batch's search (``seed``, the batch)."""


def temperature(accepted: int, cfg: OfficialICMConfig) -> float:
    """The script's "log" schedule: max(t_min, t0 / (1 + 2 ln(1 + accepted)))."""
    return max(cfg.t_min, cfg.t0 / (1.0 + LOG_RATE * math.log1p(max(accepted, 0))))


def accept(delta: float, temp: float, u: float) -> bool:
    """Metropolis acceptance: ``u < exp(delta / temp)`` (u uniform in [0, 1)); never overflows, and a change
    that does not lower the energy is always accepted."""
    return u < math.exp(min(delta / temp, 0.0))


def energy(labels: np.ndarray, scores: np.ndarray, layout: Any, alpha: float) -> float:
    """U = alpha * mean over labelled items of the score signed by the label (missing score: 0) - the
    inconsistency count of ``layout`` (`elicit.contracts.violations`); 0 for P when nothing is labelled."""
    lab = labels != UNLABELLED
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64)[lab], nan=0.0)
    mp = float(np.where(labels[lab] == 1, s, -s).mean()) if lab.any() else 0.0
    return alpha * mp - int(violations(layout, labels).sum())


def make_batches(items: pd.DataFrame, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint batches of item ids covering every item: consistency groups (``consistency_id``, any rule) kept
    whole, in a random order, cut into the fewest batches of at most ``batch_size`` with balanced sizes (a group
    larger than ``batch_size`` is a batch of its own). Members of a group are adjacent, by item_id."""
    ids = np.sort(items["item_id"].astype(np.int64).to_numpy())
    in_group = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
    units: list[np.ndarray] = []
    for members in consistency_groups(items):
        in_group[members] = True
        units.append(np.asarray(members, dtype=np.int64))
    units += [np.array([i], dtype=np.int64) for i in ids if not in_group[i]]
    units.sort(key=lambda u: int(u[0]))
    units = [units[k] for k in rng.permutation(len(units))]
    out = [u for u in units if len(u) > batch_size]
    units = [u for u in units if len(u) <= batch_size]
    n = sum(len(u) for u in units)
    if n == 0:
        return out
    sizes = np.array([len(u) for u in units])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_batches = max(1, math.ceil(n / batch_size))
    while True:  # a unit goes to the batch its first item falls in; more batches until none is over the size
        which = np.minimum(starts * n_batches // n, n_batches - 1)
        totals = np.bincount(which, weights=sizes, minlength=n_batches)
        if totals.max() <= batch_size:
            break
        n_batches += 1
    out += [np.concatenate([units[k] for k in np.flatnonzero(which == b)]) for b in range(n_batches) if totals[b]]
    return out
