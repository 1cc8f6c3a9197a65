"""The method registry: every built-in label set, with what it is, which stage writes it and whether it reads gold.

Swept optimize configs are methods too (``labels/<config>/``), named in params; the names here are reserved for
the built-in ones (a config may not take one). The pipeline's stage lists, the evaluation's baselines, the
report's colours and the study's columns are all read from :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class MethodKind(StrEnum):
    """What kind of label set a method is."""

    VOTE = "vote"
    """from stored predictions, no oracle calls of its own (the ``votes`` stage)."""
    ICM = "icm"
    """Internal Coherence Maximization, with its own oracle calls."""
    FEW_SHOT = "few-shot"
    """few-shot prompts with their own oracle calls and shown labels of their own."""
    FITTED = "fitted"
    """labels fitted by the optimizer (every swept config is one; ``selected`` is the config chosen without gold)."""
    REFERENCE = "reference"
    """named by evaluation against gold: an upper bound, never a label set a user could pick."""


@dataclass(frozen=True)
class Method:
    """One built-in method."""

    name: str
    """its ``labels/<name>/`` folder and its name in metrics, reports and the study."""
    kind: MethodKind
    stage: str | None
    """the stage that writes its labels; None for a name no stage writes (reserved, or named only by evaluation)."""
    reads_gold: bool
    """reads gold labels: a reference point, never a candidate (DESIGN.md "Gold isolation")."""
    oracle_calls: Literal["round0", "shared", "own"]
    """what its labels cost: the zero-shot round, all shared query rounds, or its own oracle job."""
    in_study: bool
    """a column of the study's compact table."""
    description: str
    opt_in: bool = False
    """made only in a run whose ``baselines.<name>.enabled`` is true (:func:`enabled`): too costly for every run."""

    @property
    def upper_bound_rank(self) -> int:
        """0 for a candidate, 1 for the gold-chosen reference, 2 for what reads gold: where it goes in a listing."""
        return 2 if self.reads_gold else 1 if self.kind is MethodKind.REFERENCE else 0


METHODS: tuple[Method, ...] = (
    Method("zero_shot", MethodKind.VOTE, "votes", False, "round0", True,
           "sigmoid of the framing-averaged zero-shot score (the prior)"),
    Method("zero_shot_calibrated", MethodKind.VOTE, "votes", False, "round0", False,
           "the zero-shot score, thresholded at the class balance estimated without gold"),
    Method("few_shot_mean", MethodKind.VOTE, "votes", False, "shared", True,
           "sigmoid of the mean few-shot / flip score per target"),
    Method("majority_vote", MethodKind.VOTE, "votes", False, "shared", True,
           "prompt variants as crowd workers, aggregated by vote fraction"),
    Method("dawid_skene", MethodKind.VOTE, "votes", False, "shared", True,
           "the same workers, aggregated by Dawid-Skene's confusion-matrix EM"),
    Method("icm", MethodKind.ICM, "icm", False, "own", True,
           "Internal Coherence Maximization as its paper runs it (every item, whole batches in context); opt-in",
           opt_in=True),
    Method("icm_budget", MethodKind.ICM, "icm_budget", False, "own", True,
           "cheap variant: ICM within a call budget (<= max_items items, nearest labelled items as context); "
           "not the paper's algorithm"),
    Method("golden_fewshot", MethodKind.FEW_SHOT, "fewshot", True, "own", True,
           "few-shot prompts showing gold labels: the ceiling of PGR"),
    Method("random_fewshot", MethodKind.FEW_SHOT, "fewshot", False, "own", True,
           "the golden prompts showing a random labelling instead of gold"),
    Method("bootstrap_fewshot", MethodKind.FEW_SHOT, "fewshot", False, "own", True,
           "few-shot prompts showing the model's own labels, repaired each round"),
    Method("selected", MethodKind.FITTED, "select", False, "shared", True,
           "the optimize config chosen without gold"),
    Method("gold_best", MethodKind.REFERENCE, None, False, "shared", True,
           "the swept config with the best gold accuracy: an upper bound, not selectable"),
)  # fmt: skip
BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}


def enabled(method: Method, baselines: Mapping[str, Any] | None) -> bool:
    """Whether a run whose ``baselines`` section (its overrides merged) is ``baselines`` makes the method's labels:
    always, except an opt-in method, only where ``baselines.<name>.enabled`` is true."""
    if not method.opt_in:
        return True
    section = (baselines or {}).get(method.name)
    return isinstance(section, Mapping) and section.get("enabled") is True


def names(methods: Iterable[Method]) -> tuple[str, ...]:
    return tuple(m.name for m in methods)


def upper_bounds_last(methods: Iterable[Method]) -> tuple[str, ...]:
    """Names in registry order, candidates first, then the gold-chosen reference, then what reads gold."""
    return names(sorted(methods, key=lambda m: m.upper_bound_rank))


VOTE_METHODS: tuple[str, ...] = names(m for m in METHODS if m.kind is MethodKind.VOTE)
"""Written together by the ``votes`` stage."""
FEWSHOT_METHODS: tuple[str, ...] = names(m for m in METHODS if m.kind is MethodKind.FEW_SHOT)
"""One ``fewshot`` job each."""
BUILTIN_METHODS: tuple[str, ...] = names(METHODS)
"""Names of built-in methods and generated label sets: an optimize config may not take one (``labels/<name>/``)."""
BASELINES: tuple[str, ...] = upper_bounds_last(
    m for m in METHODS if m.stage is not None and m.kind in (MethodKind.VOTE, MethodKind.ICM, MethodKind.FEW_SHOT)
)
"""The same-run baselines every optimize config and ``selected`` is compared with (gold-reading last); a run has
an opt-in one only where it enables it (:func:`enabled`)."""
GOLD_READING: tuple[str, ...] = names(m for m in METHODS if m.reads_gold)
"""Methods that read gold labels: reference points, never candidates."""
ZERO_SHOT_ONLY: tuple[str, ...] = names(m for m in METHODS if m.oracle_calls == "round0")
"""Methods whose labels cost only the zero-shot round (``query.round0``)."""
STUDY_COLUMNS: tuple[str, ...] = upper_bounds_last(m for m in METHODS if m.in_study)
"""The study's compact table: one accuracy column per method."""
