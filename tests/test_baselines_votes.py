"""Baselines from stored predictions: zero-shot, calibrated, few-shot mean, majority vote, Dawid-Skene.

Synthetic predictions with planted structure (a truth, per-item noise, per-template noise, acquiescence) check
that each baseline does what it is for, not only that it runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elicit.baselines.votes import (
    calibrated_threshold,
    dawid_skene,
    estimate_class_balance,
    few_shot_mean,
    majority_vote,
    sigmoid,
    worker_votes,
    zero_shot,
    zero_shot_calibrated,
)


def _rows(kind: str, framing: str, template: str, round_: int, scores: np.ndarray) -> list[dict[str, object]]:
    return [
        {
            "query_id": f"{kind}-{framing}-{template}-r{round_}-t{i}",
            "round": round_,
            "group_id": -1,
            "target_id": i,
            "kind": kind,
            "framing": framing,
            "template_id": template,
            "score": None if np.isnan(s) else float(s),
            "missing": bool(np.isnan(s)),
        }
        for i, s in enumerate(scores)
    ]


def _predictions(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["score"] = df["score"].astype("Float64")  # nullable, as the query stage writes it
    return df


def _priors(pred: pd.DataFrame, kind: str = "zero_shot") -> pd.DataFrame:
    """Framing-averaged zero-shot score per item (what the priors stage computes)."""
    zs = pred[pred["kind"] == kind].copy()
    zs["score"] = zs["score"].astype(float)
    per_framing = zs.groupby(["target_id", "framing"])["score"].mean().unstack()
    out = per_framing.mean(axis=1).rename("score").reset_index().rename(columns={"target_id": "item_id"})
    out["score"] = out["score"].astype("Float64")
    return out


def _acc(labels: pd.DataFrame, truth: np.ndarray) -> float:
    """Accuracy at threshold 0.5; an exact tie (0.5) counts as half right (it is a coin flip)."""
    p = labels.sort_values("item_id")["p_true"].to_numpy()
    return float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == truth)))


def _check_frame(labels: pd.DataFrame, n: int) -> None:
    assert list(labels.columns) == ["item_id", "p_true"]
    assert labels["item_id"].tolist() == list(range(n))
    p = labels["p_true"].to_numpy(dtype=float)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()


@pytest.fixture(scope="module")
def acquiescent() -> tuple[pd.DataFrame, np.ndarray]:
    """Zero-shot answers of 3 templates x 2 framings; the model says "True" too often (+1.5 log-odds)."""
    rng = np.random.default_rng(0)
    n = 600
    truth = rng.integers(0, 2, n)
    latent = (2 * truth - 1) * 1.0 + rng.normal(0, 1.0, n)
    rows: list[dict[str, object]] = []
    for template in ("t0", "t1", "t2"):
        template_noise = rng.normal(0, 0.7, n)
        for framing in ("pos", "neg"):
            # acquiescence: +1.5 on lp_true - lp_false; with the framing undone it pushes pos up, neg down.
            bias = 1.5 if framing == "pos" else -1.5
            rows += _rows("zero_shot", framing, template, 0, latent + template_noise + rng.normal(0, 0.3, n) + bias)
    return _predictions(rows), truth


def test_zero_shot_is_sigmoid_of_prior_and_fills_missing() -> None:
    priors = pd.DataFrame({"item_id": [0, 1, 2, 3], "score": pd.array([2.0, None, -1.0, 0.0], dtype="Float64")})
    labels = zero_shot(priors)
    _check_frame(labels, 4)
    np.testing.assert_allclose(labels["p_true"], [sigmoid(np.array(2.0)), 0.5, sigmoid(np.array(-1.0)), 0.5])
    # an item absent from the priors is still present, at 0.5
    _check_frame(zero_shot(priors, n_items=6), 6)
    assert zero_shot(priors, n_items=6)["p_true"].iloc[5] == 0.5


def test_majority_vote_of_single_framing_workers_is_hurt_by_acquiescence(
    acquiescent: tuple[pd.DataFrame, np.ndarray],
) -> None:
    pred, truth = acquiescent
    zs, mv, ds = (
        _acc(f(x), truth) for f, x in ((zero_shot, _priors(pred)), (majority_vote, pred), (dawid_skene, pred))
    )
    # pos workers vote 1, neg workers vote 0 far too often: votes split where averaged scores still decide.
    assert mv <= zs - 0.05, (mv, zs)
    assert ds >= mv - 0.01, (ds, mv)


def test_dawid_skene_discounts_a_lopsided_worker_pool(acquiescent: tuple[pd.DataFrame, np.ndarray]) -> None:
    """3 acquiescent pos-framing workers against 1 neg: majority follows the bias, Dawid-Skene learns it."""
    pred, truth = acquiescent
    lopsided = pred[(pred["framing"] == "pos") | (pred["template_id"] == "t0")]
    mv, ds = _acc(majority_vote(lopsided), truth), _acc(dawid_skene(lopsided), truth)
    assert mv < 0.76 and (majority_vote(lopsided)["p_true"] > 0.5).mean() > truth.mean() + 0.15
    assert ds >= mv + 0.03, (ds, mv)


def test_worker_votes_one_vote_per_worker_and_task() -> None:
    rows = _rows("few_shot", "pos", "t0", 1, np.array([1.0, -2.0, np.nan]))
    rows += _rows("few_shot", "pos", "t0", 1, np.array([-3.0, -1.0, np.nan]))  # same worker, other contexts
    rows += _rows("zero_shot", "neg", "t0", 0, np.array([0.5, 0.2, -0.1]))
    votes = worker_votes(_predictions(rows))
    assert set(votes.columns) == {"task", "worker", "label"}
    assert not votes.duplicated(["task", "worker"]).any()
    fs = votes[votes["worker"] == "pos|t0|few_shot|r1"].set_index("task")["label"]
    assert fs.to_dict() == {0: 0, 1: 0}  # mean(1, -3) < 0; item 2 missing twice: no vote
    assert len(votes[votes["worker"] == "neg|t0|zero_shot|r0"]) == 3


def test_vote_baselines_without_votes_give_half() -> None:
    pred = _predictions(_rows("zero_shot", "pos", "t0", 0, np.array([np.nan, np.nan])))
    for fn in (majority_vote, dawid_skene):
        labels = fn(pred, n_items=3)
        _check_frame(labels, 3)
        assert (labels["p_true"] == 0.5).all()


def test_few_shot_mean_beats_zero_shot_when_few_shot_evidence_is_better() -> None:
    rng = np.random.default_rng(1)
    n = 500
    truth = rng.integers(0, 2, n)
    sign = 2 * truth - 1
    rows: list[dict[str, object]] = []
    for framing in ("pos", "neg"):
        rows += _rows("zero_shot", framing, "t0", 0, sign * 0.8 + rng.normal(0, 1.5, n))
    for r in (1, 2):
        for framing in ("pos", "neg"):
            scores = sign * 1.5 + rng.normal(0, 1.0, n)
            scores[:40] = np.nan  # items 0..39 have no few-shot evidence at all
            rows += _rows("few_shot" if r == 1 else "flip", framing, "t0", r, scores)
    pred = _predictions(rows)
    priors = _priors(pred)
    fsm = few_shot_mean(pred, priors)
    _check_frame(fsm, n)
    assert _acc(fsm, truth) >= _acc(zero_shot(priors), truth) + 0.08
    # no few-shot evidence: the prior, or 0.5 without priors
    np.testing.assert_allclose(fsm["p_true"].iloc[:40], zero_shot(priors)["p_true"].iloc[:40])
    assert (few_shot_mean(pred)["p_true"].iloc[:40] == 0.5).all()


@pytest.mark.parametrize("offset", [1.5, -2.0])
def test_calibrated_threshold_recovers_a_planted_class_balance(offset: float) -> None:
    """20 % positives, scores shifted by a constant lean: threshold 0 mislabels, the estimated balance not."""
    rng = np.random.default_rng(2)
    n = 1000
    truth = (rng.random(n) < 0.2).astype(int)
    scores = (2 * truth - 1) * 2.0 + rng.normal(0, 1.0, n) + offset
    scores[:25] = np.nan
    priors = pd.DataFrame({"item_id": np.arange(n), "score": pd.array(scores, dtype="Float64")})
    balance = estimate_class_balance(scores)
    assert abs(balance - 0.2) < 0.05
    t, _ = calibrated_threshold(scores)
    assert (offset > 0) == (t > 0)
    cal, raw = zero_shot_calibrated(priors), zero_shot(priors)
    _check_frame(cal, n)
    rate_cal, rate_raw = (cal["p_true"] > 0.5).mean(), (raw["p_true"] > 0.5).mean()
    assert abs(rate_cal - 0.2) < abs(rate_raw - 0.2)
    assert _acc(cal, truth) > _acc(raw, truth) + 0.05
    assert (cal["p_true"].iloc[:25] == 0.5).all()


def test_class_balance_of_uninformative_scores_is_near_half() -> None:
    rng = np.random.default_rng(3)
    assert abs(estimate_class_balance(rng.normal(0, 1, 400)) - 0.5) < 0.15
    assert estimate_class_balance(np.array([np.nan, np.nan])) == 0.5
    assert 0.02 <= estimate_class_balance(np.array([5.0, 5.0, 5.0])) <= 0.98
