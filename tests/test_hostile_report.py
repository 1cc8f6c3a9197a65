"""Hostile inputs for the metrics and the report: a tiny evaluation set must not get a confident verdict, and a
one-class gold set must show "n/a (one class)" (never NaN) in the report and a null in metrics.json.

The verdict module is imported inside the tests that need it, so the report tests also run (and fail on their
assertions) against code that predates it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.evaluate import diagnostics, evaluate, metrics_json, verdict
from elicit.report import render_report, render_summary
from elicit.study import warnings as study_warnings

METHODS = ("zero_shot", "few_shot_mean", "golden_fewshot", "cfg_a")


def make_items(gold: list[int]) -> pd.DataFrame:
    n = len(gold)
    return pd.DataFrame(
        {
            "item_id": np.arange(n),
            "text": [f"item {i}" for i in range(n)],
            "gold": pd.array(gold, dtype="Int8"),
            "consistency_id": pd.array([None] * n, dtype="Int64"),
        }
    )


def labels_right(gold: np.ndarray, acc: float, seed: int) -> pd.DataFrame:
    """Labels right on round(acc * n) items (which ones: drawn from seed)."""
    rng = np.random.default_rng(seed)
    right = rng.permutation(len(gold)) < round(acc * len(gold))
    hard = np.where(right, gold, 1 - gold)
    return pd.DataFrame(
        {"item_id": np.arange(len(gold)), "p_true": 0.5 + (hard - 0.5) * rng.uniform(0.2, 0.9, len(gold))}
    )


def run_inputs(gold: list[int], accs: dict[str, float]) -> dict[str, Any]:
    """Everything render_report reads, for a run with the given gold and per-method accuracies (2 seeds of cfg_a)."""
    g = np.asarray(gold)
    items = make_items(gold)
    labels = {m: {0: labels_right(g, accs[m], k)} for k, m in enumerate(METHODS) if m != "cfg_a"}
    labels["cfg_a"] = {s: labels_right(g, accs["cfg_a"], 10 + s) for s in range(2)}
    labels["selected"] = labels["cfg_a"]
    notes: list[str] = []
    metrics = evaluate(labels, items, seed=0, n_boot=50, notes=notes)
    diag = diagnostics(labels, items)
    # fitted biases that barely differ between seeds: printed today as a confident "± 0.00"
    nuisance = {"cfg_a": {s: {"copy": 0.8 + 0.001 * s, "position": 0.3} for s in range(2)}}
    card = {"run": "hostile", "dataset": "d", "n": len(gold), "class_balance": float(g.mean())}
    selection = {"selected": "cfg_a", "method": "held-out likelihood", "scores": {"cfg_a": -0.5}}
    html = render_report(card, metrics, diag, {}, None, selection, nuisance, notes)
    return {"items": items, "labels": labels, "metrics": metrics, "diag": diag, "card": card, "html": html}


def visible_text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


NAN = re.compile(r"\b(nan|NaN|NAN|inf|Infinity|None)\b")
"""What a non-number or a Python None looks like when it leaks into the page."""


# --------------------------------------------------------------------------------------------------- case 6


def test_too_few_items_threshold_is_the_15_point_interval() -> None:
    from elicit.verdicts import min_items, too_few_items, worst_case_half_width

    assert worst_case_half_width(42) > 0.15 > worst_case_half_width(43)  # 1.96 * sqrt(0.25 / n)
    assert too_few_items(3) and too_few_items(42) and not too_few_items(43) and not too_few_items(10_000)
    assert min_items() == 43
    assert not too_few_items(None)  # unknown size: not judged
    assert too_few_items(0)


def test_decide_is_one_pure_rule() -> None:
    from elicit.verdicts import Diff, RunVerdict, decide

    zero = Diff(0.0, 0.0, 0.0)  # what 3 of 3 items right for everyone gives: a CI of width 0
    win = Diff(0.2, 0.1, 0.3)
    loss = Diff(-0.2, -0.3, -0.1)
    tie = Diff(0.01, -0.05, 0.07)

    def d(n: int | None, golden: Diff | None, versus: list[Diff] | None, gold: bool = True) -> RunVerdict:
        return decide(has_gold=gold, n_gold=n, golden_vs_zero_shot=golden, selected_vs_baselines=versus)

    assert d(3, zero, [zero, zero]) is RunVerdict.TOO_FEW_ITEMS
    assert d(3, win, [win, win]) is RunVerdict.TOO_FEW_ITEMS  # even a "win" on 3 items means nothing
    assert d(300, zero, [zero, zero]) is RunVerdict.ORACLE_TOO_WEAK  # the old verdict at a normal size
    assert d(300, win, [win, win]) is RunVerdict.BEATS
    assert d(300, zero, [win, win]) is RunVerdict.BEATS  # beating the baselines wins over a weak oracle
    assert d(300, win, [win, tie]) is RunVerdict.TIES
    assert d(300, win, [loss, tie]) is RunVerdict.WORSE
    assert d(300, None, [tie]) is RunVerdict.TIES
    assert d(300, win, None) is RunVerdict.NOT_EVALUATED
    assert d(None, win, [win]) is RunVerdict.BEATS  # unknown size is not judged
    assert d(3, None, None, gold=False) is RunVerdict.NO_GOLD
    # str values and one sentence per verdict, INDETERMINATE included (its rule comes later)
    assert RunVerdict.TOO_FEW_ITEMS == "too few items to conclude" and RunVerdict.TIES.value == "ties them"
    assert all(v.sentence.endswith(".") and "\n" not in v.sentence for v in RunVerdict)
    assert RunVerdict("oracle too weak") is RunVerdict.ORACLE_TOO_WEAK


def test_tiny_run_report_says_too_few_items_not_weak_oracle() -> None:
    run = run_inputs([1, 0, 1], {m: 1.0 for m in METHODS})  # everyone 100 % on 3 items
    text = visible_text(run["html"])
    verdict_box = text[text.index("Verdict") : text.index("Notes")]
    assert "Too few items to conclude" in verdict_box
    assert "use a larger model" not in text and "too weak" not in text.lower()
    assert "95 % CI [+0.0, +0.0]" not in verdict_box  # no confident zero-width comparison
    assert "± 0.00" not in text  # no confident bias rows
    assert "not estimable at this size" in text
    assert "n/a (too few items)" in text  # the bias table's std column
    assert "Only 3 gold items" in text
    # the verdict text alone (the summary page shows it too) and the summary page agree
    assert "use a larger model" not in verdict(run["metrics"], {"selected": "cfg_a"})
    _, summary = render_summary([(run["card"], run["metrics"])])
    assert "Too few items to conclude" in summary and "too weak" not in summary.lower()


def test_normal_size_run_keeps_its_verdict() -> None:
    from elicit.evaluate import headline
    from elicit.verdicts import RunVerdict

    rng = np.random.default_rng(0)
    gold = rng.permutation(np.arange(300) % 2).tolist()
    weak = run_inputs(gold, {"zero_shot": 0.6, "few_shot_mean": 0.6, "golden_fewshot": 0.6, "cfg_a": 0.6})
    assert headline(weak["metrics"], {"selected": "cfg_a"}) is RunVerdict.ORACLE_TOO_WEAK
    text = visible_text(weak["html"])
    assert "This oracle is too weak for this task" in text and "use a larger model" in text
    assert "Too few items" not in text and "not estimable" not in text
    assert "Your oracle copies shown labels with strength +0.80 ± 0.00" in text  # as before at this size

    strong = run_inputs(gold, {"zero_shot": 0.6, "few_shot_mean": 0.62, "golden_fewshot": 0.9, "cfg_a": 0.85})
    assert headline(strong["metrics"], {"selected": "cfg_a"}) is RunVerdict.BEATS
    text = visible_text(strong["html"])
    assert RunVerdict.BEATS.sentence in text and "The selected config cfg_a" in text
    assert "too weak" not in text.lower() and "Too few items" not in text


# --------------------------------------------------------------------------------------------------- case 7


@pytest.mark.parametrize("cls", [0, 1])
def test_one_class_gold_shows_na_never_nan(cls: int) -> None:
    gold = [cls] * 60
    run = run_inputs(gold, {"zero_shot": 0.6, "few_shot_mean": 0.6, "golden_fewshot": 0.6, "cfg_a": 0.6})
    m = run["metrics"]
    assert np.isfinite(m[["value", "ci_low", "ci_high"]].to_numpy()).all()
    assert not m["metric"].isin(["auroc", "balanced_accuracy"]).any()

    out = metrics_json(m, run["diag"])
    text = json.dumps(out, allow_nan=False)  # raises on NaN / inf
    assert "NaN" not in text and "Infinity" not in text
    for method in ("selected", "zero_shot", "golden_fewshot"):
        assert out[method]["auroc"] is None and out[method]["auroc_na"] == "one class"
        assert out[method]["balanced_accuracy"] is None and out[method]["balanced_accuracy_na"] == "one class"
        assert out[method]["pgr"] is None and out[method]["pgr_na"]  # golden = zero-shot: no gap, with a reason
        assert out[method]["n_gold"] == 60
    assert isinstance(study_warnings(out), list)  # the study reads the nulls without tripping

    text = visible_text(run["html"])
    table = text[text.index("Metrics against gold") : text.index("Unsupervised diagnostics")]
    assert table.count("n/a (one class)") == 2 * m["method"].nunique()  # balanced accuracy and AUROC per row
    assert "n/a (golden few-shot does not beat zero-shot)" in table
    assert not NAN.search(text)


@pytest.mark.parametrize(
    "gold, p",
    [
        ([0] * 5, [0.5] * 5),  # one class, every p a coin flip
        ([0, 1, 0, 1, 1], [1.0] * 5),  # constant labels at the clip edge
        ([1], [0.3]),  # a single item
    ],
)
def test_no_nan_printed_for_degenerate_inputs(gold: list[int], p: list[float]) -> None:
    items = make_items(gold)
    frame = pd.DataFrame({"item_id": np.arange(len(gold)), "p_true": p})
    labels = {m: {0: frame} for m in ("zero_shot", "golden_fewshot", "few_shot_mean")}
    labels["selected"] = {0: frame, 1: frame}
    metrics = evaluate(labels, items, seed=0, n_boot=20)
    diag = diagnostics(labels, items)
    json.dumps(metrics_json(metrics, diag), allow_nan=False)
    card = {"run": "degenerate", "n": len(gold), "class_balance": float(np.mean(gold))}
    text = visible_text(render_report(card, metrics, diag, {}, None, {"selected": "cfg"}, None, None))
    assert not NAN.search(text)
    assert "Too few items to conclude" in text
    if len(set(gold)) == 1:
        assert "n/a (one class)" in text
