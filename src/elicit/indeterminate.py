"""Signals that the oracle's answers do not determine a run's selected labels (the INDETERMINATE verdict).

Why: a label set can beat, tie or lose to zero-shot on gold and still be an arbitrary pick -- the seed, the
selection's tie-break, a nuisance feature, the prompt's wording or a clipped prior chose it, not the answers.
Such labels must not be used, and a comparison with gold then measures luck. Every signal here reads only what
a run has without gold (the swept configs' label files, the select rule's scores, the priors' per-framing scores
and the items' declared ``nuisance`` column), so a gold-less run can be judged too.

The signals, each a pure function returning a :class:`Signal` (None where its inputs are absent):

* :func:`restart_agreement` -- restarts of the selected config disagree (several optima; the seed decides).
* :func:`tied_agreement` -- configs the selection cannot tell apart (within its tie tolerance) disagree.
* :func:`nuisance_match` -- the labels equal the items' declared nuisance feature (e.g. a liberal stance).
* :func:`one_class` -- (nearly) every item gets one label.
* :func:`framing_following` -- where the two framings of the zero-shot question disagree, the labels side with
  one wording's answer nearly always (acquiescence decides them).
* :func:`moved_without_gain` -- the labels move away from the model's own zero-shot answers (the ``prior_only``
  config) on many items with no held-out likelihood gain beyond the selection's tie tolerance.
* :func:`balance_pinned` -- the labels' class balance sits at the clip bound of the prior's balance estimate.

Position (recency) bias is a property of single calls, not of items, so no item-level label can "equal" it; the
optimizer fits it, and it is not a signal here.

Thresholds were frozen on 2026-12-02, before any study result was read; each constant says why its value.
Below :data:`MIN_ITEMS` items no signal is judged: an agreement share measured on fewer items has a 95 %
interval wider than +-15 points (the same bar as :func:`elicit.verdicts.min_items`).

The select stage computes the signals (:func:`assess`) and stores them in ``selection.json`` under
``indeterminate`` (:func:`to_json`); :func:`fired` reads the fired ones back for the verdict and the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from elicit.verdicts import min_items

FROZEN = "2026-12-02"
"""The date the thresholds below were fixed (before any study result was read)."""

MIN_ITEMS = min_items()
"""Fewest items (43) on which signals are judged: below it an agreement share is noise (+-15 points)."""

RESTART_AGREEMENT_MIN = 0.90
"""Restarts differ only by a 0.1 jitter on the start; past 10 % disagreement the seed, not the answers, decides."""

TIED_AGREEMENT_MIN = 0.90
"""Tied configs are equal to the selection rule; past 10 % disagreement the tie-break, not the answers, decides."""

NUISANCE_MATCH = 0.75
"""The report's nuisance warning bar (``describe.NUISANCE_WARN``): headline and warning never disagree."""

ONE_CLASS_SHARE = 0.98
"""Under 2 % in the minority class is a collapse: below the 5 % clip of any estimated class balance."""

FRAMING_CONTESTED_MIN = 0.25
"""Wording flips the zero-shot answer on a quarter of the items: enough for acquiescence to shape the label set."""

FRAMING_MATCH = 0.95
"""Siding with one wording on 95 % of contested items means the wording, not the item, set those labels."""

MOVED_SHARE = 0.10
"""Moving over 10 % of the model's own answers is a claim the few-shot answers must back with likelihood."""

BALANCE_PIN_TOL = 0.02
"""A share of label 1 within 2 points of the clipped balance estimate is that clip bound, not a measurement."""

OWN_ANSWERS = "prior_only"
"""The swept config that stays at the model's own (calibrated zero-shot) answers."""


@dataclass(frozen=True)
class Signal:
    """One measured signal: its number, the frozen threshold, whether it fired, and a sentence saying so."""

    name: str
    value: float
    threshold: float
    fired: bool
    detail: str


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def hard(p: np.ndarray) -> np.ndarray:
    """Hard labels (p >= 0.5), the same cut the report's diagnostics use."""
    return np.asarray(p, dtype=float) >= 0.5


def seed_mean(seeds: Sequence[np.ndarray]) -> np.ndarray:
    """The seed-averaged p_true (one array per seed, aligned on items)."""
    return np.mean(np.vstack([np.asarray(s, dtype=float) for s in seeds]), axis=0)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(hard(a) == hard(b)))


def restart_agreement(seeds: Sequence[np.ndarray], name: str = "the selected config") -> Signal | None:
    """Mean pairwise hard-label agreement between restarts (seeds) of one config; None with fewer than 2."""
    if len(seeds) < 2:
        return None
    pairs = [(i, j) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
    a = float(np.mean([_agreement(seeds[i], seeds[j]) for i, j in pairs]))
    fired = a < RESTART_AGREEMENT_MIN
    return Signal(
        "restart_agreement",
        a,
        RESTART_AGREEMENT_MIN,
        fired,
        f"Restarts of {name} agree on only {_pct(a)} of items (at least {_pct(RESTART_AGREEMENT_MIN)} expected): "
        "the start, not the oracle's answers, picks the labels."
        if fired
        else f"Restarts of {name} agree on {_pct(a)} of items.",
    )


def tied_agreement(selected: np.ndarray, tied: Mapping[str, np.ndarray], name: str, tolerance: float) -> Signal | None:
    """Lowest hard-label agreement of the selected labels with any other config tied with it; None if none is."""
    if not tied:
        return None
    other, a = min(((n, _agreement(selected, p)) for n, p in sorted(tied.items())), key=lambda kv: kv[1])
    fired = a < TIED_AGREEMENT_MIN
    head = f"{name} and {other}, tied under the selection rule (held-out likelihood within {tolerance:g} nats),"
    return Signal(
        "tied_agreement",
        a,
        TIED_AGREEMENT_MIN,
        fired,
        f"{head} agree on only {_pct(a)} of items (at least {_pct(TIED_AGREEMENT_MIN)} expected): the tie-break, "
        "not the oracle's answers, picks the labels."
        if fired
        else f"{head} agree on {_pct(a)} of items.",
    )


def nuisance_match(labels: np.ndarray, nuisance: np.ndarray | None) -> Signal | None:
    """Agreement, in either direction, of the labels with the items' declared nuisance feature (NaN: unknown);
    None when no item has a known nuisance value."""
    if nuisance is None:
        return None
    nu = np.asarray(nuisance, dtype=float)
    known = np.isfinite(nu)
    if not known.any():
        return None
    a = float(np.mean(hard(labels)[known] == (nu[known] >= 0.5)))
    value = max(a, 1.0 - a)
    fired = value >= NUISANCE_MATCH
    side = "label 1" if a >= 0.5 else "label 0"
    return Signal(
        "nuisance_match",
        value,
        NUISANCE_MATCH,
        fired,
        f"The labels follow the known nuisance feature (nuisance = 1 gets {side}) on {_pct(value)} of "
        f"{int(known.sum())} items (from {_pct(NUISANCE_MATCH)}): they track that feature, not the task."
        if fired
        else f"The labels match the known nuisance feature on {_pct(value)} of {int(known.sum())} items.",
    )


def one_class(labels: np.ndarray) -> Signal:
    """The share of the labels' majority class."""
    rate = float(np.mean(hard(labels)))
    value = max(rate, 1.0 - rate)
    fired = value >= ONE_CLASS_SHARE
    cls = 1 if rate >= 0.5 else 0
    return Signal(
        "one_class",
        value,
        ONE_CLASS_SHARE,
        fired,
        f"The labels are (almost) all one class: {_pct(value)} get label {cls} (from {_pct(ONE_CLASS_SHARE)}), "
        "so they carry nothing the answers chose."
        if fired
        else f"The labels' majority class (label {cls}) has {_pct(value)} of items.",
    )


def framing_following(labels: np.ndarray, score_pos: np.ndarray | None, score_neg: np.ndarray | None) -> Signal | None:
    """Where the zero-shot answers under the two framings disagree in sign (framing already undone), the share of
    labels that take one framing's answer (the larger of the two shares); None without both framings.

    It fires only when such contested items are at least :data:`FRAMING_CONTESTED_MIN` of the items."""
    if score_pos is None or score_neg is None:
        return None
    pos, neg = np.asarray(score_pos, dtype=float), np.asarray(score_neg, dtype=float)
    ok = np.isfinite(pos) & np.isfinite(neg)
    if not ok.any():
        return None
    contested = ok & ((pos > 0) != (neg > 0))
    share = float(contested.sum() / ok.sum())
    if not contested.any():
        return Signal("framing_following", 0.0, FRAMING_MATCH, False, "The two framings never disagree in sign.")
    y = hard(labels)[contested]
    with_pos = float(np.mean(y == (pos[contested] > 0)))
    value = max(with_pos, 1.0 - with_pos)
    fired = share >= FRAMING_CONTESTED_MIN and value >= FRAMING_MATCH
    side = "positive" if with_pos >= 0.5 else "negated"
    return Signal(
        "framing_following",
        value,
        FRAMING_MATCH,
        fired,
        f"The two framings of the question disagree on {_pct(share)} of items, and the labels take the {side} "
        f"framing's answer on {_pct(value)} of them (from {_pct(FRAMING_MATCH)}): the wording, not the item, decides."
        if fired
        else f"The framings disagree on {_pct(share)} of items; the labels take the {side} framing's answer on "
        f"{_pct(value)} of them.",
    )


def moved_without_gain(
    labels: np.ndarray, own: np.ndarray | None, gain: float | None, tolerance: float, name: str = "selected"
) -> Signal | None:
    """Share of items whose label differs from the model's own answers (``own``: the prior_only labels); it
    fires when that share reaches :data:`MOVED_SHARE` and the held-out likelihood ``gain`` over those answers
    (nats per held-out answer) is within the selection's tie ``tolerance``. None without both."""
    if own is None or gain is None or not math.isfinite(gain):
        return None
    moved = 1.0 - _agreement(labels, own)
    fired = moved >= MOVED_SHARE and gain <= tolerance
    return Signal(
        "moved_without_gain",
        moved,
        MOVED_SHARE,
        fired,
        f"The labels move {_pct(moved)} of the model's own zero-shot answers ({OWN_ANSWERS}; from "
        f"{_pct(MOVED_SHARE)}) for a held-out likelihood gain of {gain:+.4f} nats per answer, within the tie "
        f"tolerance {tolerance:g}: the oracle's answers do not back the move."
        if fired
        else f"The labels differ from the model's own zero-shot answers ({OWN_ANSWERS}) on {_pct(moved)} of items, "
        f"held-out likelihood gain {gain:+.4f} nats per answer.",
    )


def balance_pinned(labels: np.ndarray, balance: float | None, bounds: tuple[float, float]) -> Signal | None:
    """Whether the labels' share of label 1 sits at the clip bound where the prior's class-balance estimate
    stopped. None when the balance was given rather than estimated (``balance`` None): the user set it."""
    if balance is None or not math.isfinite(balance):
        return None
    rate = float(np.mean(hard(labels)))
    at_bound = any(abs(balance - b) < 1e-9 for b in bounds)
    gap = abs(rate - balance)
    fired = at_bound and gap <= BALANCE_PIN_TOL
    return Signal(
        "balance_pinned",
        gap,
        BALANCE_PIN_TOL,
        fired,
        f"The labels' share of label 1 ({_pct(rate)}) sits at the clip bound {balance:g} of the prior's "
        "class-balance estimate: the clip, not the answers, set the balance."
        if fired
        else f"The labels' share of label 1 is {_pct(rate)}; the prior's estimated balance is {balance:.2f}"
        + (" (at its clip bound)." if at_bound else "."),
    )


def assess(
    *,
    selected: str,
    labels: Mapping[str, Sequence[np.ndarray]],
    details: Mapping[str, Mapping[str, Any]],
    tie_tolerance: float,
    score_pos: np.ndarray | None = None,
    score_neg: np.ndarray | None = None,
    nuisance: np.ndarray | None = None,
    balance: float | None = None,
    balance_bounds: tuple[float, float] = (0.05, 0.95),
) -> list[Signal]:
    """Every signal for the selected config (an empty list below :data:`MIN_ITEMS` items).

    ``labels``: config -> per-seed p_true arrays aligned on items 0..N-1. ``details``: the select rule's
    per-config scores (``heldout_loglik``, ``tied_with_best``). ``balance``: the prior's estimated share of
    label 1 (None when a config fixed it).
    """
    seeds = list(labels.get(selected) or [])
    if not seeds or len(seeds[0]) < MIN_ITEMS:
        return []
    p = seed_mean(seeds)
    tied = {
        n: seed_mean(s)
        for n, s in labels.items()
        if n != selected and s and (details.get(n) or {}).get("tied_with_best")
    }
    own = seed_mean(labels[OWN_ANSWERS]) if labels.get(OWN_ANSWERS) and selected != OWN_ANSWERS else None
    mine, theirs = ((details.get(n) or {}).get("heldout_loglik") for n in (selected, OWN_ANSWERS))
    gain = float(mine) - float(theirs) if isinstance(mine, int | float) and isinstance(theirs, int | float) else None
    found = [
        restart_agreement(seeds, selected),
        tied_agreement(p, tied, selected, tie_tolerance),
        nuisance_match(p, nuisance),
        one_class(p),
        framing_following(p, score_pos, score_neg),
        moved_without_gain(p, own, gain, tie_tolerance, selected),
        balance_pinned(p, balance, balance_bounds),
    ]
    return [s for s in found if s is not None]


def to_json(signals: Sequence[Signal], n_items: int) -> dict[str, Any]:
    """``selection.json``'s ``indeterminate`` entry: every signal measured, whether it fired, and when the
    thresholds were frozen."""
    return {
        "frozen": FROZEN,
        "n_items": int(n_items),
        "min_items": MIN_ITEMS,
        "fired": [s.name for s in signals if s.fired],
        "signals": [{**asdict(s), "value": round(float(s.value), 6)} for s in signals],
    }


def signals_of(selection: Mapping[str, Any] | None) -> list[Signal]:
    """The signals stored in a ``selection.json`` (entries that do not parse are skipped: a hand-edited or old
    file gives fewer signals, never an error)."""
    entry = (selection or {}).get("indeterminate")
    raw = entry.get("signals") if isinstance(entry, Mapping) else None
    out = []
    for s in raw if isinstance(raw, list) else []:
        if not isinstance(s, Mapping):
            continue
        try:
            out.append(
                Signal(str(s["name"]), float(s["value"]), float(s["threshold"]), s["fired"] is True, str(s["detail"]))
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def fired(selection: Mapping[str, Any] | None) -> list[Signal]:
    """The fired signals of a ``selection.json``, in the order they were measured: why a run is INDETERMINATE."""
    return [s for s in signals_of(selection) if s.fired]
