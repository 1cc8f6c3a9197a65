"""The run verdicts: one shared set of answers to "did the selected labels beat just asking the model?".

Why one module: the report's headline, the cross-run summary and later checks must never disagree about what a
run showed, so the possible answers (:class:`RunVerdict`) and the rule choosing one (:func:`decide`) live here
and nowhere else. :func:`decide` is pure: it takes the numbers the report already has (the number of gold
items, paired accuracy differences with their CIs, and whether a gold-free indeterminacy signal fired) and reads
no files. ``elicit.evaluate.headline``
extracts those numbers from a metrics table and calls it.

The order of the rule (first match wins):

1. :attr:`RunVerdict.INDETERMINATE` -- the oracle's answers do not determine the selected labels (a signal of
   :mod:`elicit.indeterminate` fired: restarts or tied configs disagree, the labels equal a nuisance feature or
   one class, follow one framing, leave the model's own answers without a likelihood gain, or sit at a clipped
   balance). First, because every later verdict describes labels the run chose: on labels the data did not
   choose, "beats" or "ties" measures the luck of the pick, and "oracle too weak" is then one reason among
   others (the lines below the headline still give that gold evidence, for the record). It needs no gold, so it
   comes before NO_GOLD too: "nothing to measure against" would hide that the labels are not fit to use; and
   before TOO_FEW_ITEMS, which is about the gold set, while the signals are judged on all items and carry their
   own size guard (no signal below :func:`min_items` items).
2. :attr:`RunVerdict.NO_GOLD` -- nothing to measure against.
3. :attr:`RunVerdict.TOO_FEW_ITEMS` -- the evaluation set is too small for any comparison to mean anything
   (see :func:`too_few_items`); checked before everything else that reads gold, because on three items every
   method can score 100 % with a bootstrap CI of width 0, which would otherwise read as a confident tie.
4. :attr:`RunVerdict.BEATS` -- selected beats every available cheap baseline (zero-shot and, when present,
   calibrated zero-shot and the few-shot mean), each paired 95 % CI excluding 0. This wins over a weak oracle:
   the labels beat them anyway.
5. :attr:`RunVerdict.ORACLE_TOO_WEAK` -- golden few-shot (which reads gold) does not beat zero-shot, so there is
   no gap that label-free methods could be expected to recover.
6. :attr:`RunVerdict.NOT_EVALUATED` -- no selected labels or no zero-shot labels to compare.
7. :attr:`RunVerdict.WORSE` -- selected is significantly worse than a cheap baseline.
8. :attr:`RunVerdict.TIES` -- otherwise: no difference beyond noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Protocol

MAX_HALF_WIDTH = 0.15
"""Largest acceptable half-width (accuracy points / 100) of zero-shot accuracy's 95 % interval."""


class RunVerdict(StrEnum):
    """What a run showed; the value is the short phrase, :attr:`sentence` the one line a user reads."""

    BEATS = "beats the cheap baselines"
    TIES = "ties them"
    WORSE = "worse than the cheap baselines"
    ORACLE_TOO_WEAK = "oracle too weak"
    TOO_FEW_ITEMS = "too few items to conclude"
    NO_GOLD = "no gold labels"
    NOT_EVALUATED = "not evaluated"
    INDETERMINATE = "indeterminate"

    @property
    def sentence(self) -> str:
        """The one-line, user-facing sentence for this verdict (details with numbers follow it in the report)."""
        return _SENTENCES[self]


_SENTENCES: dict[RunVerdict, str] = {
    RunVerdict.BEATS: (
        "The selected labels beat the cheap baselines (zero-shot, calibrated zero-shot, the few-shot mean) beyond "
        "noise."
    ),
    RunVerdict.TIES: "The selected labels tie the cheap baselines: no difference beyond noise.",
    RunVerdict.WORSE: "The selected labels are worse than a cheap baseline.",
    RunVerdict.ORACLE_TOO_WEAK: "The oracle is too weak for this task: even gold examples do not help it.",
    RunVerdict.TOO_FEW_ITEMS: "Too few items to conclude: at this sample size no comparison means anything.",
    RunVerdict.NO_GOLD: "No gold labels: nothing to measure the labels against.",
    RunVerdict.NOT_EVALUATED: "Not evaluated: the selected or the zero-shot labels are missing.",
    RunVerdict.INDETERMINATE: (
        "Indeterminate: the oracle's answers do not determine the selected labels, so they are not fit to use "
        "and no comparison of them means anything."
    ),
}


class Evidence(Protocol):
    """A paired difference ``a - b`` in accuracy; ``elicit.evaluate.Comparison`` is one."""

    @property
    def diff(self) -> float: ...

    @property
    def significant(self) -> bool: ...


@dataclass(frozen=True)
class Diff:
    """A paired difference with its CI, for callers (and tests) that have plain numbers."""

    diff: float
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        """The CI excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0


def worst_case_half_width(n: int, ci: float = 0.95) -> float:
    """Half-width of the normal-approximation binomial interval at p = 0.5 (its widest) for n items.

    ``z * sqrt(0.25 / n)`` with z the two-sided normal quantile of ``ci`` (1.96 at 95 %). It depends on n
    only: the observed accuracy and the bootstrap CI are no guide on tiny sets, because 3 of 3 items right
    gives a bootstrap CI of [100 %, 100 %] -- width 0 -- although 3 items say almost nothing.
    """
    if n <= 0:
        return math.inf
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    return z * math.sqrt(0.25 / n)


def too_few_items(n: int | None, ci: float = 0.95, max_half_width: float = MAX_HALF_WIDTH) -> bool:
    """Whether n gold items are too few to conclude anything: zero-shot accuracy's 95 % interval could be
    wider than +-15 points.

    With the worst case of :func:`worst_case_half_width`, ``1.96 * sqrt(0.25 / n) > 0.15`` holds for
    n <= 42, so 43 gold items is the smallest evaluation set that gets a verdict (:func:`min_items`). Unknown
    n (None) is not judged here.
    """
    return n is not None and worst_case_half_width(n, ci) > max_half_width


def min_items(ci: float = 0.95, max_half_width: float = MAX_HALF_WIDTH) -> int:
    """The smallest number of gold items for which :func:`too_few_items` is False (43 at the defaults)."""
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    n = max(1, math.ceil(0.25 * (z / max_half_width) ** 2))
    while too_few_items(n, ci, max_half_width):
        n += 1
    return n


def decide(
    *,
    has_gold: bool,
    n_gold: int | None,
    golden_vs_zero_shot: Evidence | None,
    selected_vs_baselines: Sequence[Evidence] | None,
    ci: float = 0.95,
    undetermined: bool = False,
) -> RunVerdict:
    """The run's verdict from the numbers (the rule and its order are in the module docstring).

    ``n_gold``: gold items evaluated (None: unknown, the size check is skipped). ``golden_vs_zero_shot``:
    golden few-shot minus zero-shot (None: not available, the oracle is not judged).
    ``selected_vs_baselines``: selected minus each available cheap baseline, zero-shot first (None or empty:
    nothing to compare). ``undetermined``: a signal of :mod:`elicit.indeterminate` fired (needs no gold).
    """
    if undetermined:
        return RunVerdict.INDETERMINATE
    if not has_gold:
        return RunVerdict.NO_GOLD
    if too_few_items(n_gold, ci):
        return RunVerdict.TOO_FEW_ITEMS
    if selected_vs_baselines and all(c.significant and c.diff > 0 for c in selected_vs_baselines):
        return RunVerdict.BEATS
    if golden_vs_zero_shot is not None and not (golden_vs_zero_shot.significant and golden_vs_zero_shot.diff > 0):
        return RunVerdict.ORACLE_TOO_WEAK
    if not selected_vs_baselines:
        return RunVerdict.NOT_EVALUATED
    if any(c.significant and c.diff < 0 for c in selected_vs_baselines):
        return RunVerdict.WORSE
    return RunVerdict.TIES
