"""The INDETERMINATE verdict: each gold-free signal fires on a constructed case and not on its clean twin, the
rule puts INDETERMINATE first, and a run without gold can get it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elicit import indeterminate as ind
from elicit.evaluate import evaluate, headline, verdict
from elicit.evaluate.describe import NUISANCE_WARN
from elicit.verdicts import Diff, RunVerdict, decide

N = 200


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def soft(hard: np.ndarray, seed: int = 0) -> np.ndarray:
    """p_true on the side of ``hard`` (never exactly 0.5)."""
    return np.where(hard.astype(bool), 0.6, 0.4) + rng(seed).uniform(-0.05, 0.05, len(hard))


def flip(hard: np.ndarray, share: float, seed: int = 1) -> np.ndarray:
    """``hard`` with a share of its items flipped."""
    out = hard.copy()
    idx = rng(seed).permutation(len(hard))[: round(share * len(hard))]
    out[idx] = 1 - out[idx]
    return out


BASE = (rng(7).random(N) < 0.4).astype(int)


# ------------------------------------------------------------------------------------------------ each signal


def test_restart_agreement() -> None:
    clean = ind.restart_agreement([soft(BASE, s) for s in range(3)])
    bad = ind.restart_agreement([soft(BASE), soft(flip(BASE, 0.2, 1)), soft(flip(BASE, 0.2, 2))])
    assert clean is not None and clean.value == 1.0 and not clean.fired
    assert bad is not None and bad.fired and bad.value < ind.RESTART_AGREEMENT_MIN
    assert ind.restart_agreement([soft(BASE)]) is None  # one seed: nothing to compare


def test_tied_agreement() -> None:
    p = soft(BASE)
    assert not ind.tied_agreement(p, {"twin": soft(flip(BASE, 0.05))}, "a", 1e-3).fired  # type: ignore[union-attr]
    bad = ind.tied_agreement(p, {"twin": soft(BASE), "other": soft(flip(BASE, 0.2))}, "a", 1e-3)
    assert bad is not None and bad.fired and "other" in bad.detail  # the least agreeing tied config is named
    assert ind.tied_agreement(p, {}, "a", 1e-3) is None  # nothing tied: the data chose


def test_nuisance_match_either_direction() -> None:
    nu = (rng(3).random(N) < 0.5).astype(float)
    assert ind.nuisance_match(soft(nu.astype(int)), nu).fired  # type: ignore[union-attr]
    assert ind.nuisance_match(soft(1 - nu.astype(int)), nu).fired  # type: ignore[union-attr]
    assert not ind.nuisance_match(soft(BASE), nu).fired  # type: ignore[union-attr]  # independent of it
    assert ind.nuisance_match(soft(BASE), np.full(N, np.nan)) is None
    assert ind.nuisance_match(soft(BASE), None) is None
    assert ind.NUISANCE_MATCH == NUISANCE_WARN  # the report's warning and the verdict use one bar


def test_one_class() -> None:
    assert ind.one_class(soft(np.ones(N, dtype=int))).fired
    assert ind.one_class(soft(np.zeros(N, dtype=int))).fired
    assert not ind.one_class(soft(BASE)).fired


def framings(contested: float, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-shot scores per framing that agree with BASE except on a share of items, where the positive framing
    says 1 and the negated one 0 (acquiescence); returns (pos, neg, contested mask)."""
    pos = np.where(BASE == 1, 2.0, -2.0)
    neg = pos.copy()
    mask = rng(seed).random(N) < contested
    pos[mask], neg[mask] = 1.0, -1.0
    return pos, neg, mask


def test_framing_following() -> None:
    pos, neg, mask = framings(0.4)
    follows = np.where(mask, 1, BASE)  # every contested item takes the positive framing's answer
    assert ind.framing_following(soft(follows), pos, neg).fired  # type: ignore[union-attr]
    assert not ind.framing_following(soft(BASE), pos, neg).fired  # type: ignore[union-attr]  # split by the item
    pos, neg, mask = framings(0.1)
    rare = ind.framing_following(soft(np.where(mask, 1, BASE)), pos, neg)
    assert rare is not None and not rare.fired  # too few contested items for the wording to matter
    assert ind.framing_following(soft(BASE), None, neg) is None


def test_moved_without_gain() -> None:
    own, moved = soft(BASE), soft(flip(BASE, 0.3))
    assert ind.moved_without_gain(moved, own, gain=0.0005, tolerance=1e-3).fired  # type: ignore[union-attr]
    assert not ind.moved_without_gain(moved, own, gain=0.05, tolerance=1e-3).fired  # type: ignore[union-attr]
    close = soft(flip(BASE, 0.05))
    assert not ind.moved_without_gain(close, own, gain=0.0, tolerance=1e-3).fired  # type: ignore[union-attr]
    assert ind.moved_without_gain(moved, None, gain=0.0, tolerance=1e-3) is None


def test_balance_pinned() -> None:
    bounds = (0.05, 0.95)
    few = (np.arange(N) < round(0.05 * N)).astype(int)
    assert ind.balance_pinned(soft(few), 0.05, bounds).fired  # type: ignore[union-attr]
    assert not ind.balance_pinned(soft(few), 0.05 + 1e-3, bounds).fired  # type: ignore[union-attr]  # no clip
    assert not ind.balance_pinned(soft(BASE), 0.05, bounds).fired  # type: ignore[union-attr]  # data moved off
    assert ind.balance_pinned(soft(few), None, bounds) is None  # a balance the user gave is not judged


# ------------------------------------------------------------------------------------------------ assess + json


def clean_run() -> dict[str, object]:
    labels = {
        "best": [soft(BASE, s) for s in range(3)],
        "twin": [soft(BASE, 10 + s) for s in range(3)],
        "prior_only": [soft(flip(BASE, 0.05), s) for s in range(3)],
    }
    details = {
        "best": {"heldout_loglik": -1.0, "tied_with_best": True},
        "twin": {"heldout_loglik": -1.0005, "tied_with_best": True},
        "prior_only": {"heldout_loglik": -1.2, "tied_with_best": False},
    }
    pos, neg, _ = framings(0.3)
    return {
        "selected": "best",
        "labels": labels,
        "details": details,
        "tie_tolerance": 1e-3,
        "score_pos": pos,
        "score_neg": neg,
        "nuisance": (rng(9).random(N) < 0.5).astype(float),
        "balance": 0.4,
    }


def test_assess_clean_run_fires_nothing() -> None:
    found = ind.assess(**clean_run())  # type: ignore[arg-type]
    assert {s.name for s in found} == {
        "restart_agreement",
        "tied_agreement",
        "nuisance_match",
        "one_class",
        "framing_following",
        "moved_without_gain",
        "balance_pinned",
    }
    assert not [s for s in found if s.fired]


@pytest.mark.parametrize(
    ("case", "name"),
    [
        ("restart", "restart_agreement"),
        ("tied", "tied_agreement"),
        ("nuisance", "nuisance_match"),
        ("moved", "moved_without_gain"),
    ],
)
def test_assess_fires_the_planted_signal(case: str, name: str) -> None:
    run = clean_run()
    labels: dict[str, list[np.ndarray]] = run["labels"]  # type: ignore[assignment]
    if case == "restart":
        labels["best"] = [soft(flip(BASE, 0.15, s)) for s in range(3)]
    elif case == "tied":
        labels["twin"] = [soft(flip(BASE, 0.2), s) for s in range(3)]
    elif case == "nuisance":
        run["nuisance"] = BASE.astype(float)
    else:
        labels["prior_only"] = [soft(flip(BASE, 0.3), s) for s in range(3)]
        run["details"]["prior_only"]["heldout_loglik"] = -1.0002  # type: ignore[index]
    fired = [s.name for s in ind.assess(**run) if s.fired]  # type: ignore[arg-type]
    assert name in fired and (case == "restart" or fired == [name])  # restarts that scatter also leave the twin


def test_assess_needs_enough_items() -> None:
    small = {"best": [soft(np.ones(ind.MIN_ITEMS - 1, dtype=int), s) for s in range(2)]}
    assert ind.assess(selected="best", labels=small, details={}, tie_tolerance=1e-3) == []
    enough = {"best": [soft(np.ones(ind.MIN_ITEMS, dtype=int), s) for s in range(2)]}
    assert "one_class" in [
        s.name for s in ind.assess(selected="best", labels=enough, details={}, tie_tolerance=1e-3) if s.fired
    ]


def test_json_round_trip_and_hostile_entries() -> None:
    run = clean_run()
    run["nuisance"] = BASE.astype(float)
    found = ind.assess(**run)  # type: ignore[arg-type]
    entry = json.loads(json.dumps(ind.to_json(found, N)))
    assert entry["frozen"] == ind.FROZEN == "2026-12-02" and entry["fired"] == ["nuisance_match"]
    assert [s.name for s in ind.fired({"indeterminate": entry})] == ["nuisance_match"]
    assert ind.fired(None) == [] and ind.fired({}) == [] and ind.fired({"indeterminate": "junk"}) == []
    junk = {"indeterminate": {"signals": [1, {"name": "x"}, {**entry["signals"][0], "value": "nan?"}]}}
    assert ind.fired(junk) == []  # unreadable entries are skipped, never an error


# ------------------------------------------------------------------------------------------------ the verdict


def test_decide_puts_indeterminate_first() -> None:
    win, tie, loss = Diff(0.2, 0.1, 0.3), Diff(0.0, -0.05, 0.05), Diff(-0.2, -0.3, -0.1)
    cases = [
        (False, None, None, None, RunVerdict.NO_GOLD),
        (True, 3, win, [win, win], RunVerdict.TOO_FEW_ITEMS),
        (True, 300, win, [win, win], RunVerdict.BEATS),
        (True, 300, tie, [tie], RunVerdict.ORACLE_TOO_WEAK),
        (True, 300, win, None, RunVerdict.NOT_EVALUATED),
        (True, 300, win, [loss], RunVerdict.WORSE),
        (True, 300, win, [tie], RunVerdict.TIES),
    ]
    for gold, n, golden, versus, without in cases:
        kw = {"has_gold": gold, "n_gold": n, "golden_vs_zero_shot": golden, "selected_vs_baselines": versus}
        assert decide(**kw) is without  # type: ignore[arg-type]
        assert decide(**kw, undetermined=True) is RunVerdict.INDETERMINATE  # type: ignore[arg-type]
    assert RunVerdict.INDETERMINATE.sentence.startswith("Indeterminate: the oracle's answers do not determine")


def selection_with(fired: bool) -> dict[str, object]:
    run = clean_run()
    if fired:
        run["nuisance"] = BASE.astype(float)
    return {"selected": "cfg_a", "indeterminate": ind.to_json(ind.assess(**run), N)}  # type: ignore[arg-type]


def test_no_gold_run_can_be_indeterminate() -> None:
    empty = pd.DataFrame(columns=["method", "seed", "metric", "value", "ci_low", "ci_high"])
    assert headline(empty, selection_with(False)) is RunVerdict.NO_GOLD
    assert headline(empty, selection_with(True)) is RunVerdict.INDETERMINATE
    text = verdict(empty, selection_with(True))
    assert "follow the known nuisance feature" in text and "No gold labels" in text
    assert "For the record" not in text  # nothing to put on record without gold


def test_gold_beats_is_overruled_and_kept_for_the_record() -> None:
    gold = rng(5).permutation(np.arange(300) % 2)
    items = pd.DataFrame(
        {
            "item_id": np.arange(300),
            "text": [f"item {i}" for i in range(300)],
            "gold": pd.array(gold, dtype="Int8"),
            "consistency_id": pd.array([None] * 300, dtype="Int64"),
        }
    )
    accs = {"zero_shot": 0.6, "few_shot_mean": 0.6, "golden_fewshot": 0.8, "cfg_a": 0.9}
    labels = {
        m: {0: pd.DataFrame({"item_id": np.arange(300), "p_true": soft(flip(gold, 1 - a, k), k)})}
        for k, (m, a) in enumerate(accs.items())
    }
    labels["selected"] = labels["cfg_a"]
    metrics = evaluate(labels, items, seed=0, n_boot=50, notes=[])
    assert headline(metrics, selection_with(False)) is RunVerdict.BEATS
    assert headline(metrics, selection_with(True)) is RunVerdict.INDETERMINATE
    lines = verdict(metrics, selection_with(True)).split("\n")
    assert "do not use them" in lines[0] and "nuisance" in lines[1]  # why first, with its numbers
    assert "For the record only, the gold comparisons:" in lines and any("beats zero-shot" in x for x in lines)


def test_select_stage_reads_one_column_by_item_id(tmp_path: Path) -> None:
    from elicit.stages.select import _column

    path = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": [2, 0, 1], "nuisance": [1.0, None, 0.0], "gold": [1, 0, 1]}).to_parquet(path)
    got = _column(path, "nuisance", 3)
    assert got is not None and np.isnan(got[0]) and got[1] == 0.0 and got[2] == 1.0
    assert _column(path, "score_pos", 3) is None
