"""The gold-free accuracy estimate (elicit.evaluate.goldfree), the exported labels' ECE and the answer bookkeeping
(elicit.evaluate.answers), on synthetic draws whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elicit.evaluate import (
    ASSUMPTION,
    ESTIMATE,
    EXPORT_ECE,
    FEW_SHOT_ROUNDS,
    HELDOUT_SOURCES,
    MEAN_SEED,
    UNCALIBRATED,
    ece_equal_width,
    estimate_accuracy,
    estimate_all,
    estimate_rows,
    evaluate,
    heldout_sources,
    item_means,
    metric_row,
    metrics_json,
    missing_answers,
    missing_warnings,
    source_name,
    verdict,
    with_estimates,
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def draw(
    rng: np.random.Generator, n: int = 200, confidence: float = 1.0, wrong_belief: float = 0.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(method's p, per-item mean held-out score, true accuracy of the labels p >= 0.5).

    The model's belief b_i ~ Bernoulli(sigmoid(z_i)); the truth is the belief except on a share ``wrong_belief`` of
    items. The method's p = sigmoid(confidence * z): calibrated at 1, overconfident above. The held-out answers'
    item means follow the belief: N(+1, 1.2) for belief 1, N(-1, 1.2) for belief 0.
    """
    z = rng.normal(0.0, 2.0, n)
    belief = rng.random(n) < sigmoid(z)
    truth = np.where(rng.random(n) < wrong_belief, ~belief, belief)
    heldout = np.where(belief, 1.0, -1.0) + rng.normal(0.0, 1.2, n)
    p = sigmoid(confidence * z)
    return p, heldout, float(np.mean((p >= 0.5) == truth))


def in_unit(e: object) -> bool:
    v, lo, hi = e.value, e.low, e.high  # type: ignore[attr-defined]
    return all(np.isfinite([v, lo, hi])) and 0.0 <= lo <= v <= hi <= 1.0


# --------------------------------------------------------------------------------------------------- estimator


def test_recovers_the_true_accuracy_of_calibrated_probabilities() -> None:
    rng = np.random.default_rng(0)
    covered, errors = 0, []
    for i in range(200):
        p, heldout, truth = draw(rng)
        e = estimate_accuracy(p, heldout, seed=i, n_boot=30, source="random_fewshot")
        assert in_unit(e) and e.calibrated
        covered += e.low <= truth <= e.high
        errors.append(e.value - truth)
    assert covered / 200 >= 0.9  # the interval's empirical coverage
    assert abs(float(np.mean(errors))) < 0.02  # unbiased on calibrated input


def test_calibration_shrinks_overconfident_labels_and_the_uncalibrated_estimate_is_too_high() -> None:
    rng = np.random.default_rng(1)
    covered, calibrated, uncalibrated, slopes = 0, [], [], []
    for i in range(40):
        p, heldout, truth = draw(rng, confidence=3.0)
        e = estimate_accuracy(p, heldout, seed=i, n_boot=30)
        covered += e.low <= truth <= e.high
        calibrated.append(e.value - truth)
        slopes.append(e.slope)
        raw = estimate_accuracy(p, None, seed=i, n_boot=30)
        assert raw.source == UNCALIBRATED and raw.value == pytest.approx(np.mean(np.maximum(p, 1 - p)))
        uncalibrated.append(raw.value - truth)
    assert covered / 40 >= 0.85
    assert abs(float(np.mean(calibrated))) < 0.03
    assert 0.2 < float(np.median(slopes)) < 0.5  # the fitted slope undoes the planted x3
    assert float(np.mean(uncalibrated)) > 0.08  # documented: overconfident labels, no held-out answers -> too high


def test_biased_up_when_the_models_beliefs_are_wrong() -> None:
    """Documented: the held-out answers share the model's misconceptions, so labels that follow the model look right."""
    rng = np.random.default_rng(2)
    gaps, missed = [], 0
    for i in range(20):
        p, heldout, truth = draw(rng, n=400, wrong_belief=0.2)
        e = estimate_accuracy(p, heldout, seed=i, n_boot=30)
        gaps.append(e.value - truth)
        missed += truth < e.low
    assert float(np.mean(gaps)) > 0.08
    assert missed >= 12  # and its interval misses the truth in most draws


@pytest.mark.parametrize(
    ("p", "heldout"),
    [
        ([], None),
        ([0.7], [1.0]),  # n = 1
        ([0.0, 1.0, 1.0, 0.0], [-2.0, 2.0, 1.0, -1.0]),  # p exactly 0 and 1
        ([0.0, 1.0, 0.5, 0.5], None),
        ([0.9, np.nan, 0.2], [np.nan, np.nan, np.nan]),  # all held-out answers missing, an unlabelled item
        ([0.8, 0.3, 0.6], [3.0, 3.0, 3.0]),  # answers that do not vary
        (np.full(50, 1.0), np.linspace(-3, 3, 50)),  # one label everywhere
    ],
)
def test_never_nan(p: list[float], heldout: list[float] | None) -> None:
    e = estimate_accuracy(np.asarray(p, dtype=float), None if heldout is None else np.asarray(heldout), n_boot=20)
    assert in_unit(e)
    assert np.isfinite([e.slope, e.shift]).all()


def test_all_missing_answers_leave_the_estimate_uncalibrated_with_a_note() -> None:
    items = np.arange(6)
    labels = {"selected": {0: pd.DataFrame({"item_id": items, "p_true": [0.9, 0.8, 0.2, 0.1, 0.6, 0.4]})}}
    calls = pd.DataFrame({"target_id": items, "framing": "pos", "score": [None] * 6, "missing": [True] * 6}).astype(
        {"score": "Float64"}
    )
    notes: list[str] = []
    est = estimate_all(labels, {"random_fewshot": calls}, items, seed=0, n_boot=10, notes=notes)
    assert est["selected"].source == UNCALIBRATED and est["selected"].heldout_items == 0
    assert "uncalibrated confidence" in notes[0]


# --------------------------------------------------------------------------------------------------- sources


def test_each_method_is_calibrated_on_answers_it_never_read() -> None:
    assert heldout_sources("zero_shot")[0] == FEW_SHOT_ROUNDS
    assert heldout_sources("random_fewshot")[0] == FEW_SHOT_ROUNDS and "random_fewshot" not in heldout_sources(
        "random_fewshot"
    )
    for fitted in ("selected", "few_shot_mean", "dawid_skene", "my_config"):
        assert FEW_SHOT_ROUNDS not in heldout_sources(fitted)
        assert heldout_sources(fitted)[0] == "random_fewshot"
    assert all("golden_fewshot" not in heldout_sources(m) for m in ("zero_shot", "selected", "golden_fewshot"))
    assert source_name(0) == UNCALIBRATED and source_name(2) == HELDOUT_SOURCES[1] and source_name(None) == UNCALIBRATED


def test_item_means_balance_the_framings_and_skip_missing_answers() -> None:
    calls = pd.DataFrame(
        {
            "target_id": [0, 0, 0, 1, 1, 2],
            "framing": ["pos", "pos", "neg", "neg", "neg", "pos"],
            "score": [1.0, 3.0, 0.0, 5.0, None, None],
            "missing": [False, False, False, False, True, True],
        }
    )
    m = item_means(calls, 4)
    assert m[0] == pytest.approx(1.0)  # (mean(1, 3) + 0) / 2, not mean(1, 3, 0)
    assert m[1] == pytest.approx(5.0)
    assert np.isnan(m[2]) and np.isnan(m[3])


def test_estimates_of_a_run_without_gold() -> None:
    rng = np.random.default_rng(3)
    n = 120
    p, heldout, _ = draw(rng, n=n)
    items = pd.DataFrame({"item_id": np.arange(n), "text": [f"t{i}" for i in range(n)]})  # no gold column at all
    labels = {
        "selected": {0: pd.DataFrame({"item_id": np.arange(n), "p_true": p})},
        "zero_shot": {0: pd.DataFrame({"item_id": np.arange(n), "p_true": np.clip(p + 0.1, 0, 1)})},
    }
    calls = pd.DataFrame({"target_id": np.arange(n), "framing": "pos", "score": heldout, "missing": False})
    answers = {"random_fewshot": calls, FEW_SHOT_ROUNDS: calls}
    est = estimate_all(labels, answers, items["item_id"].to_numpy(), seed=0, n_boot=20)
    assert est["selected"].source == "random_fewshot" and est["zero_shot"].source == FEW_SHOT_ROUNDS
    metrics = with_estimates(evaluate(labels, items, seed=0, n_boot=10), estimate_rows(est))
    assert set(metrics["metric"]) == {"est_accuracy", "est_source", "est_heldout_items"}
    assert (metrics["seed"] == MEAN_SEED).all() and np.isfinite(metrics[["value", "ci_low", "ci_high"]]).all().all()
    out = metrics_json(metrics)
    assert out["selected"]["est_source"] == "random_fewshot"
    assert out["selected"]["est_low"] <= out["selected"]["est_accuracy"] <= out["selected"]["est_high"]
    assert out["selected"]["est_heldout_items"] == n
    json.dumps(out, allow_nan=False)
    assert verdict(metrics).startswith("No gold labels")  # estimates are not gold metrics
    assert "calibrated beliefs are right" in ASSUMPTION


def test_estimate_rows_keep_the_table_contract() -> None:
    est = estimate_all(
        {"a": {0: pd.DataFrame({"item_id": [0, 1], "p_true": [0.9, 0.2]})}}, {}, np.arange(2), seed=0, n_boot=5
    )
    rows = estimate_rows(est)
    r = metric_row(rows, "a", ESTIMATE)
    assert r is not None and r.value == pytest.approx(0.85)
    assert metric_row(rows, "a", "est_source").value == 0  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------------- ECE


def test_ece_is_zero_for_perfectly_calibrated_bins() -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert ece_equal_width(p, y, np.ones((1, 8)))[0] == pytest.approx(0.0)


def test_ece_on_a_hand_example() -> None:
    p = np.array([0.05, 0.15, 0.95, 0.85, 1.0])
    y = np.array([0, 1, 1, 1, 1])
    # bins [0, .1), [.1, .2), [.8, .9), [.9, 1]: |.05| + |.15 - 1| + |.85 - 1| + |.95 + 1 - 2| = 1.1, over 5 items
    assert ece_equal_width(p, y, np.ones((1, 5)))[0] == pytest.approx(1.1 / 5)
    w = np.array([[2.0, 0, 1, 1, 1]])  # a resample: item 0 twice, item 1 left out
    assert ece_equal_width(p, y, w)[0] == pytest.approx((0.1 + 0.15 + 0.05) / 5)


def test_evaluate_writes_the_exported_labels_ece() -> None:
    items = pd.DataFrame({"item_id": np.arange(5), "gold": pd.array([0, 1, 1, 1, 1], dtype="Int8")})
    seeds = {  # the export averages seeds: (0.0 + 0.1) / 2 = 0.05, ...
        0: pd.DataFrame({"item_id": np.arange(5), "p_true": [0.0, 0.1, 0.9, 0.8, 1.0]}),
        1: pd.DataFrame({"item_id": np.arange(5), "p_true": [0.1, 0.2, 1.0, 0.9, 1.0]}),
    }
    metrics = evaluate({"selected": seeds, "zero_shot": {0: seeds[0]}}, items, seed=0, n_boot=50)
    r = metric_row(metrics, "selected", EXPORT_ECE)
    assert r is not None and r.value == pytest.approx(1.1 / 5) and r.ci_low <= r.value <= r.ci_high
    assert metric_row(metrics, "zero_shot", EXPORT_ECE) is None  # only the exported label set


# --------------------------------------------------------------------------------------------------- missing answers


def test_missing_answers_are_counted_per_stage_and_template() -> None:
    predictions = pd.DataFrame(
        {
            "round": [0] * 4 + [1] * 40,
            "template_id": ["t_a", "t_b"] * 2 + ["t_a"] * 40,
            "score": [0.1, None, 0.3, 0.4] + [0.5] * 37 + [None, np.nan, 0.2],
            "missing": [False, True, False, False] + [False] * 39 + [True],
        }
    )
    calls = {"icm_budget": pd.DataFrame({"template_id": ["t_a"] * 10, "score": [1.0] * 10, "missing": [False] * 10})}
    rows = {(r["stage"], r["template"]): r for r in missing_answers(predictions, calls)}
    assert rows[("round 0 (zero-shot)", "t_b")]["missing"] == 1 and rows[("round 0 (zero-shot)", "t_b")]["total"] == 2
    assert rows[("round 0 (zero-shot)", "t_a")]["missing"] == 0
    r1 = rows[("round 1 (few-shot)", "t_a")]
    assert (r1["missing"], r1["total"]) == (3, 40) and r1["warn"]  # None, NaN, and a flagged one: 7.5 % > 5 %
    assert rows[("icm_budget (own calls)", "t_a")]["missing"] == 0
    warnings = missing_warnings(list(rows.values()))
    assert len(warnings) == 2 and any("round 1 (few-shot) under template t_a" in w for w in warnings)
    assert missing_answers(None, None) == []
