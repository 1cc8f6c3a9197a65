"""Metrics, CIs, PGR, diagnostics and the verdict of elicit.evaluate, on tiny hand-checkable inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

from elicit.evaluate import (
    COLUMNS,
    MEAN_SEED,
    EvaluateConfig,
    compare,
    consistency_violations,
    diagnostics,
    evaluate,
    metric_row,
    metrics_json,
    verdict,
)
from elicit.evaluate.metrics import _batch_metrics


def make_items(gold: list[int | None], consistency: list[int | None] | None = None) -> pd.DataFrame:
    n = len(gold)
    return pd.DataFrame(
        {
            "item_id": np.arange(n),
            "text": [f"item {i}" for i in range(n)],
            "gold": pd.array(gold, dtype="Int8"),
            "consistency_id": pd.array(consistency or [None] * n, dtype="Int64"),
        }
    )


def lab(p: list[float] | np.ndarray, ids: np.ndarray | None = None) -> pd.DataFrame:
    p = np.asarray(p, dtype=float)
    return pd.DataFrame({"item_id": np.arange(len(p)) if ids is None else ids, "p_true": p})


def value(df: pd.DataFrame, method: str, metric: str, seed: int = 0) -> float:
    row = metric_row(df, method, metric, seed)
    assert row is not None, (method, metric, seed)
    return row.value


def synthetic(n: int, accs: dict[str, float | list[float]], seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Balanced gold and, per method, labels right with the given accuracy (a list = one entry per seed)."""
    rng = np.random.default_rng(seed)
    gold = rng.permutation(np.arange(n) % 2)
    items = make_items(gold.tolist())
    labels: dict[str, dict[int, pd.DataFrame]] = {}
    for k, (method, acc) in enumerate(sorted(accs.items())):
        per_seed = acc if isinstance(acc, list) else [acc]
        labels[method] = {}
        for s, a in enumerate(per_seed):
            r = np.random.default_rng(1000 * k + s)
            right = r.permutation(n) < round(a * n)
            hard = np.where(right, gold, 1 - gold)
            labels[method][s] = lab(np.clip(0.5 + (hard - 0.5) * r.uniform(0.2, 0.9, n), 0, 1))
    return labels, items


# --------------------------------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computed_values() -> None:
    p = np.array([0.1, 0.4, 0.6, 0.9])
    y = np.array([0, 1, 1, 1])
    m = _batch_metrics(p, y, np.ones((1, 4)), ece_bins=2, auroc=True)
    assert m["accuracy"][0] == pytest.approx(0.75)  # item 1 (p=0.4, gold 1) is wrong
    assert m["balanced_accuracy"][0] == pytest.approx((1.0 + 2 / 3) / 2)
    # equal-mass bins {0.1, 0.4} and {0.6, 0.9}: 2/4*|0.25-0.5| + 2/4*|0.75-1| = 0.25
    assert m["ece"][0] == pytest.approx(0.25)
    expected_ll = -(np.log(0.9) + np.log(0.4) + np.log(0.6) + np.log(0.9)) / 4
    assert m["log_loss"][0] == pytest.approx(expected_ll)
    assert m["auroc"][0] == pytest.approx(1.0)


def test_weighted_metrics_equal_metrics_on_the_resampled_data() -> None:
    rng = np.random.default_rng(3)
    n = 60
    y = rng.integers(0, 2, n)
    p = np.round(rng.random(n), 1)  # ties on purpose
    w = rng.multinomial(n, np.full(n, 1 / n), size=4).astype(float)
    got = _batch_metrics(p, y, w, ece_bins=10, auroc=True)
    for i in range(4):
        idx = np.repeat(np.arange(n), w[i].astype(int))
        assert got["auroc"][i] == pytest.approx(roc_auc_score(y[idx], p[idx]))
        assert got["balanced_accuracy"][i] == pytest.approx(balanced_accuracy_score(y[idx], p[idx] >= 0.5))
        assert got["log_loss"][i] == pytest.approx(log_loss(y[idx], np.clip(p[idx], 1e-6, 1 - 1e-6)))


def test_evaluate_columns_and_points() -> None:
    items = make_items([0, 1, 1, 1])
    labels = {"zero_shot": {0: lab([0.1, 0.4, 0.6, 0.9])}}
    df = evaluate(labels, items, seed=0, n_boot=50, ece_bins=2)
    assert list(df.columns) == COLUMNS
    assert value(df, "zero_shot", "accuracy") == pytest.approx(0.75)
    assert value(df, "zero_shot", "ece") == pytest.approx(0.25)
    assert value(df, "zero_shot", "accuracy", MEAN_SEED) == pytest.approx(0.75)


def test_cis_contain_the_point_and_shrink_with_n() -> None:
    widths = []
    for n in (40, 400, 4000):
        labels, items = synthetic(n, {"zero_shot": 0.7})
        df = evaluate(labels, items, seed=1, n_boot=200)
        per_seed = df[df["seed"] >= 0]
        assert (per_seed["ci_low"] <= per_seed["value"] + 1e-12).all()
        assert (per_seed["ci_high"] >= per_seed["value"] - 1e-12).all()
        row = metric_row(df, "zero_shot", "accuracy", 0)
        assert row is not None
        widths.append(row.ci_high - row.ci_low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_is_seeded_and_paired() -> None:
    labels, items = synthetic(300, {"zero_shot": 0.7, "selected": 0.8})
    a = evaluate(labels, items, seed=5, n_boot=100)
    b = evaluate(labels, items, seed=5, n_boot=100)
    pd.testing.assert_frame_equal(a, b)
    # the same labels under another name give a paired difference of exactly 0 (shared resamples)
    same = {"zero_shot": labels["zero_shot"], "selected": labels["zero_shot"]}
    d = metric_row(evaluate(same, items, seed=5, n_boot=100), "selected", "delta_accuracy_vs_zero_shot")
    assert d is not None and d.value == d.ci_low == d.ci_high == 0.0


def test_mean_over_seeds_rows() -> None:
    labels, items = synthetic(200, {"selected": [0.7, 0.8, 0.9]})
    df = evaluate(labels, items, seed=0, n_boot=50)
    accs = [value(df, "selected", "accuracy", s) for s in range(3)]
    row = metric_row(df, "selected", "accuracy", MEAN_SEED)
    assert row is not None
    assert row.value == pytest.approx(np.mean(accs))
    assert row.ci_high - row.value == pytest.approx(np.std(accs, ddof=1))
    seed_mean = metric_row(df, "selected", "accuracy_seed_mean")
    assert seed_mean is not None and seed_mean.value == pytest.approx(np.mean(accs))


def test_pgr_written_when_golden_clearly_beats_zero_shot() -> None:
    labels, items = synthetic(600, {"zero_shot": 0.6, "golden_fewshot": 0.9, "selected": 0.75})
    notes: list[str] = []
    df = evaluate(labels, items, seed=0, n_boot=200, notes=notes)
    pgr = metric_row(df, "selected", "pgr")
    assert pgr is not None
    assert pgr.value == pytest.approx((0.75 - 0.6) / (0.9 - 0.6), abs=0.01)
    assert pgr.ci_low <= pgr.value <= pgr.ci_high
    assert not any("PGR" in n for n in notes)


def test_pgr_omitted_when_golden_equals_zero_shot() -> None:
    labels, items = synthetic(200, {"zero_shot": 0.7, "selected": 0.8})
    labels["golden_fewshot"] = labels["zero_shot"]
    notes: list[str] = []
    df = evaluate(labels, items, seed=0, n_boot=100, notes=notes)
    assert not (df["metric"] == "pgr").any()
    assert any("PGR not reported" in n for n in notes)


def test_pgr_omitted_when_golden_is_below_zero_shot() -> None:
    """A negative gap makes "recovers x % of the gap" read as a gain for a method worse than zero-shot."""
    labels, items = synthetic(600, {"zero_shot": 0.85, "golden_fewshot": 0.6, "selected": 0.8})
    notes: list[str] = []
    df = evaluate(labels, items, seed=0, n_boot=200, notes=notes)
    assert not (df["metric"] == "pgr").any()
    assert any("PGR not reported" in n and "no gap to recover" in n for n in notes)


@pytest.mark.parametrize(
    "gold, p",
    [
        ([1, 1, 1, 1, 1], [0.9, 0.2, 0.7, 0.6, 0.5]),  # one class
        ([0, 1, 0, 1, 1], [0.5] * 5),  # all p = 0.5
        ([0, 1, 0, 1, 1], [1.0] * 5),  # constant labels, p at the clip edge
        ([0, 0, 0, 0, 0], [0.0] * 5),  # one class, p = 0
        ([1], [0.3]),  # a single item
    ],
)
def test_no_nan_on_degenerate_inputs(gold: list[int], p: list[float]) -> None:
    items = make_items(gold)
    labels = {m: {0: lab(p)} for m in ("zero_shot", "golden_fewshot", "few_shot_mean")}
    labels["selected"] = {0: lab(p), 1: lab(p)}
    df = evaluate(labels, items, seed=0, n_boot=30)
    assert not df.empty
    assert np.isfinite(df[["value", "ci_low", "ci_high"]].to_numpy()).all()
    if len(set(gold)) == 1:
        assert not (df["metric"] == "auroc").any()
    out = metrics_json(df, diagnostics(labels, items))
    json.dumps(out, allow_nan=False)
    assert isinstance(verdict(df, {"selected": "cfg"}), str)


def test_unlabeled_items_count_as_coin_flips() -> None:
    items = make_items([1, 1, 0, 0])
    labels = {"zero_shot": {0: lab([0.9, 0.8], ids=np.array([0, 1]))}}
    notes: list[str] = []
    df = evaluate(labels, items, seed=0, n_boot=10, notes=notes)
    assert value(df, "zero_shot", "accuracy") == pytest.approx(0.5)  # p=0.5 -> label 1 -> wrong on gold 0
    assert any("unlabeled" in n for n in notes)


# --------------------------------------------------------------------------------------------------- no gold


def test_gold_less_run_gives_diagnostics_only() -> None:
    items = make_items([None] * 6, consistency=[1, 1, 2, 2, 3, 3])
    labels = {
        "zero_shot": {0: lab([0.9, 0.8, 0.2, 0.1, 0.6, 0.4])},
        "selected": {0: lab([0.9, 0.1, 0.2, 0.1, 0.6, 0.7]), 1: lab([0.9, 0.1, 0.3, 0.1, 0.4, 0.7])},
    }
    notes: list[str] = []
    df = evaluate(labels, items, seed=0, n_boot=10, notes=notes)
    assert df.empty and list(df.columns) == COLUMNS
    assert "no gold" in notes[0]
    d = diagnostics(labels, items, rule="at_most_one_true")
    assert d["has_gold"] is False
    assert d["flip_rate_vs_zero_shot"]["selected"] == pytest.approx(2 / 6)  # items 1 and 5 (mean p)
    assert d["seed_agreement"]["selected"] == pytest.approx(5 / 6)
    assert d["consistency_violations"]["zero_shot"] == {
        "groups": 3,
        "violations": 1,
        "rate": pytest.approx(1 / 3),
    }
    assert d["consistency_violations"]["selected"]["violations"] == 1
    m = d["agreement"]["methods"]
    assert m == ["selected", "zero_shot"]
    assert d["agreement"]["matrix"][0][1] == pytest.approx(4 / 6)
    assert verdict(df).startswith("No gold labels: only unsupervised diagnostics")
    out = metrics_json(df, d)
    assert out["selected"]["flip_rate_vs_zero_shot"] == pytest.approx(0.333333)
    json.dumps(out, allow_nan=False)


def test_labels_that_flip_most_of_zero_shot_get_a_mirror_image_note() -> None:
    """The loss without a prior barely tells a labelling from its flip; a gold-free note says when selected
    disagrees with zero-shot on most items, and stays silent at half or less."""
    items = make_items([None] * 6)
    zero = lab([0.9, 0.8, 0.2, 0.1, 0.6, 0.4])
    mirror = {"zero_shot": {0: zero}, "selected": {0: lab([0.1, 0.2, 0.8, 0.9, 0.6, 0.4])}}
    (note,) = [n for n in diagnostics(mirror, items)["notes"] if "mirror image" in n]
    assert note.startswith("selected disagrees with zero_shot on 67 % of items")
    half = {"zero_shot": {0: zero}, "selected": {0: lab([0.1, 0.2, 0.8, 0.1, 0.6, 0.4])}}
    assert not [n for n in diagnostics(half, items)["notes"] if "mirror image" in n]


def test_consistency_rules() -> None:
    items = make_items([None] * 6, consistency=[1, 1, 1, 2, 2, None])
    items["answer_key"] = ["7", "7", "8", "3", "4", None]
    hard = pd.Series([1, 0, 0, 1, 1, 1], index=np.arange(6))
    with pytest.raises(ValueError, match="unknown consistency rule 'all_equal'; use one of: none, "):
        consistency_violations(hard, items, "all_equal")  # the rule names are elicit.contracts.ConsistencyRule
    assert consistency_violations(hard, items, "at_most_one_true") == {"groups": 2, "violations": 1, "rate": 0.5}
    assert consistency_violations(hard, items, "exactly_one_true")["violations"] == 1  # type: ignore[index]
    # group 1: same key "7" labelled 1 and 0 -> violation; group 2: two true keys -> violation
    assert consistency_violations(hard, items, "same_answer_same_label")["violations"] == 2  # type: ignore[index]
    assert consistency_violations(hard, items, None) is None


# --------------------------------------------------------------------------------------------------- verdict


def test_verdict_says_who_beats_whom() -> None:
    labels, items = synthetic(
        800,
        {"zero_shot": 0.6, "few_shot_mean": 0.62, "golden_fewshot": 0.85, "selected": [0.78, 0.8], "b": 0.8},
    )
    df = evaluate(labels, items, seed=0, n_boot=200)
    c = compare(df, "selected", "zero_shot")
    assert c is not None and c.paired and c.significant and c.diff > 0.15
    assert not c.overlap
    text = verdict(df, {"selected": "b", "method": "held-out likelihood", "gold_best": "b"})
    first = text.split("\n")[0]
    assert first.startswith("The selected config b, chosen without gold by held-out likelihood, beats zero-shot")
    assert "95 % CI" in first and "do not overlap" in first
    assert "beats the few-shot mean" in text
    assert "too weak" not in text


def test_verdict_flags_a_weak_oracle() -> None:
    labels, items = synthetic(300, {"zero_shot": 0.55, "selected": 0.56})
    labels["golden_fewshot"] = labels["zero_shot"]
    df = evaluate(labels, items, seed=0, n_boot=100)
    text = verdict(df, {"selected": "cfg"})
    assert "this oracle is too weak for this task" in text.lower()
    assert "use a larger model" in text
    assert "does not clearly beat zero-shot" in text
    # ... and points to a run where a packaged model does use examples, one the study defines
    from elicit.config import load_params, resolve_run
    from elicit.evaluate.describe import REAL_SIGNAL_RUN

    assert f"see the real-signal run {REAL_SIGNAL_RUN}" in text
    assert resolve_run(load_params(Path(__file__).parents[1] / "params.yaml"), REAL_SIGNAL_RUN).n >= 300


def test_a_one_sided_oracle_needs_calibrated_zero_shot_beaten_too() -> None:
    """An oracle that answers "Yes" to everything makes zero-shot and the few-shot mean label every item 1 (50 %
    here); labels at 64 % beat those, but not the same zero-shot score thresholded at the class balance (66 %)."""
    from elicit.evaluate import headline
    from elicit.verdicts import RunVerdict

    labels, items = synthetic(
        320,
        {"zero_shot_calibrated": 0.66, "selected": 0.64, "golden_fewshot": 0.8, "bootstrap_fewshot": 0.79},
    )
    labels["zero_shot"] = labels["few_shot_mean"] = {0: lab(np.full(320, 0.9))}
    df = evaluate(labels, items, seed=0, n_boot=200)
    assert compare(df, "selected", "zero_shot").significant  # type: ignore[union-attr]
    assert headline(df, {"selected": "selected"}) is not RunVerdict.BEATS
    text = verdict(df, {"selected": "cfg"})
    assert "calibrated zero-shot" in text
    assert "Beside the verdict (own oracle calls): it is worse than bootstrapped few-shot" in text


def test_config_rejects_unknown_keys() -> None:
    assert EvaluateConfig.from_dict({"n_boot": 10}).n_boot == 10
    with pytest.raises(ValueError, match="unknown key"):
        EvaluateConfig.from_dict({"nboot": 10})
    with pytest.raises(ValueError, match="evaluate.ci"):
        EvaluateConfig(ci=1.5)


def test_adversarial_start_note_says_whether_the_wrong_basin_persists() -> None:
    from elicit.evaluate import adversarial_start_notes

    methods = ["full", "full_inverted_init", "zero_shot"]
    stuck = np.array([[1.0, 0.2, 0.9], [0.2, 1.0, 0.1], [0.9, 0.1, 1.0]])
    (note,) = adversarial_start_notes(methods, stuck)
    assert "full_inverted_init" in note and "wrong basin persists" in note and "20 %" in note
    escaped = np.array([[1.0, 0.95, 0.9], [0.95, 1.0, 0.88], [0.9, 0.88, 1.0]])
    assert "escaped" in adversarial_start_notes(methods, escaped)[0]
    assert adversarial_start_notes(["full", "zero_shot"], stuck[:2, :2]) == []


def test_labels_tracking_a_known_nuisance_feature_are_warned_about() -> None:
    from elicit.evaluate import nuisance_agreement

    ids = np.arange(8)
    items = pd.DataFrame({"item_id": ids, "nuisance": pd.array([1, 1, 1, 1, 0, 0, 0, None], dtype="Int8")})
    hard = np.array([[1, 1, 1, 1, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 1, 0], [0, 0, 0, 0, 1, 1, 1, np.nan]], dtype=float)
    agree, notes = nuisance_agreement(["ideology", "mixed", "inverse"], hard, items, ids)
    assert agree == {"ideology": 1.0, "mixed": pytest.approx(3 / 7), "inverse": 0.0}
    assert len(notes) == 2 and "ideology" in notes[0] and "label 1" in notes[0] and "label 0" in notes[1]
    assert nuisance_agreement(["m"], hard[:1], items.drop(columns="nuisance"), ids) == ({}, [])
