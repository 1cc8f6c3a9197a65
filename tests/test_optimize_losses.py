"""Vectorized losses vs the plain-loop reference (values and gradients, float64), finiteness on adversarial
inputs, and the table -> tensor contract of build_problem."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elicit.contracts import CONSISTENCY_RULES
from elicit.optimize import LOSS_NAMES, OptimizeError, build_problem, calibrate_prior
from elicit.optimize import losses as L
from elicit.optimize import reference as R
from elicit.optimize.problem import sample_ranking_pairs

SCORES = st.one_of(
    st.none(),
    st.floats(-30, 30, allow_nan=False),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0]),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Small random tuples/priors/items: missing and infinite scores, empty contexts, flip twins, groups."""
    n = draw(st.integers(1, 6))
    n_base = draw(st.integers(1, 6))
    rows = []
    for t in range(n_base):
        k = draw(st.integers(0, 3))
        ctx = [draw(st.integers(0, n - 1)) for _ in range(k)]
        shown = [draw(st.integers(0, 1)) for _ in range(k)]
        rows.append(
            {
                "query_id": f"q{t}",
                "target_id": draw(st.integers(0, n - 1)),
                "kind": "few_shot",
                "framing": draw(st.sampled_from(["pos", "neg"])),
                "context_ids": ctx,
                "context_shown": shown,
                "flipped_pos": -1,
                "flip_of": None,
                "score": draw(SCORES),
            }
        )
    for f in range(draw(st.integers(0, 3))):
        twin = rows[draw(st.integers(0, n_base - 1))]
        if not twin["context_ids"]:
            continue
        pos = draw(st.integers(0, len(twin["context_ids"]) - 1))
        shown = list(twin["context_shown"])
        shown[pos] = 1 - shown[pos]
        rows.append(
            dict(
                twin,
                query_id=f"f{f}",
                kind="flip",
                context_shown=shown,
                flipped_pos=pos,
                flip_of=twin["query_id"],
                score=draw(SCORES),
            )
        )
    for r in rows:
        r["missing"] = r["score"] is None or (isinstance(r["score"], float) and math.isnan(r["score"]))
        r["context_ids"] = np.asarray(r["context_ids"], dtype=np.int64)
        r["context_shown"] = np.asarray(r["context_shown"], dtype=np.int8)
    tuples = pd.DataFrame(rows)
    tuples["score"] = tuples["score"].astype(float)
    priors = pd.DataFrame(
        {"item_id": np.arange(n), "score": [draw(st.one_of(st.none(), st.floats(-8, 8))) for _ in range(n)]}
    )
    priors["score"] = priors["score"].astype(float)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n),
            "consistency_id": pd.array([draw(st.sampled_from([None, 0, 1])) for _ in range(n)], "Int64"),
            "answer_key": pd.array([draw(st.sampled_from([None, "a", "b"])) for _ in range(n)], "string"),
        }
    )
    rule = draw(st.sampled_from(CONSISTENCY_RULES))
    return tuples, priors, items, rule


def _values_and_grads(fn, z0: torch.Tensor, th0: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    z = z0.clone().requires_grad_(True)
    th = th0.clone().requires_grad_(True)
    value = fn(z, th)
    value.backward()
    gz = torch.zeros_like(z) if z.grad is None else z.grad
    gt = torch.zeros_like(th) if th.grad is None else th.grad
    return float(value.detach()), gz, gt


def _assert_same(fast, ref, z0: torch.Tensor, th0: torch.Tensor, name: str) -> None:
    v1, gz1, gt1 = _values_and_grads(fast, z0, th0)
    v2, gz2, gt2 = _values_and_grads(ref, z0, th0)
    assert math.isfinite(v1), name
    assert v1 == pytest.approx(v2, rel=1e-9, abs=1e-9), name
    torch.testing.assert_close(gz1, gz2, rtol=1e-7, atol=1e-9, msg=f"{name}: dL/dz")
    torch.testing.assert_close(gt1, gt2, rtol=1e-7, atol=1e-9, msg=f"{name}: dL/dtheta")


@settings(
    max_examples=int(os.environ.get("ELICIT_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=tables(),
    z_list=st.lists(st.floats(-6, 6), min_size=6, max_size=6),
    theta_noise=st.lists(st.floats(-1, 1), min_size=7, max_size=7),
    threshold=st.sampled_from([0.5, 0.6, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_vectorized_losses_match_reference(data, z_list, theta_noise, threshold, seed) -> None:
    tuples, priors, items, rule = data
    p = build_problem(tuples, priors, items, rule, dtype=torch.float64)
    rows = R.rows_from_table(tuples)
    z0 = torch.tensor(z_list[: p.n_items], dtype=torch.float64)
    th0 = L.init_nuisance(p) + torch.tensor(theta_noise, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    hi, lo = sample_ranking_pairs(p, 3.0, 0.1, gen)
    groups = R.consistency_groups(items, rule)

    checks = {
        "mutual": (lambda z, t: L.mutual(z, t, p), lambda z, t: R.mutual(z, t, rows)),
        "mutual_raw": (lambda z, t: L.mutual(z, None, p), lambda z, t: R.mutual(z, None, rows)),
        "nuisance": (lambda z, t: L.nuisance(z, t, p), lambda z, t: R.nuisance(z, t, rows)),
        "flip": (
            lambda z, t: L.flip(z, t, p, threshold, 1.3),
            lambda z, t: R.flip(z, t, rows, threshold, 1.3),
        ),
        "flip_raw": (
            lambda z, t: L.flip(z, None, p, threshold, 1.0),
            lambda z, t: R.flip(z, None, rows, threshold, 1.0),
        ),
        "prior": (lambda z, t: L.prior(z, p), lambda z, t: R.prior(z, p.prior_logit)),
        "ranking": (
            lambda z, t: L.ranking(z, hi, lo, 0.5),
            lambda z, t: R.ranking(z, R.pairs_to_list(hi, lo), 0.5),
        ),
        "consistency": (lambda z, t: L.consistency(z, p), lambda z, t: R.consistency(z, groups, rule)),
        "balance": (lambda z, t: L.balance(z, 0.3), lambda z, t: R.balance(z, 0.3)),
        "entropy": (lambda z, t: L.entropy(z), lambda z, t: R.entropy(z)),
    }
    for name, (fast, ref) in checks.items():
        _assert_same(fast, ref, z0, th0, name)


def _table(rows: list[dict], n: int, prior_scores: list[float | None] | None = None):
    base = {"kind": "few_shot", "framing": "pos", "flipped_pos": -1, "flip_of": None}
    recs = []
    for i, r in enumerate(rows):
        rec = {**base, "query_id": f"q{i}", **r}
        rec["context_ids"] = np.asarray(rec.get("context_ids", []), dtype=np.int64)
        rec["context_shown"] = np.asarray(rec.get("context_shown", []), dtype=np.int8)
        rec["missing"] = rec["score"] is None or math.isnan(rec["score"])
        recs.append(rec)
    tuples = pd.DataFrame(recs)
    tuples["score"] = tuples["score"].astype(float)
    scores = prior_scores if prior_scores is not None else [0.5] * n
    priors = pd.DataFrame({"item_id": np.arange(n), "score": pd.array(scores, dtype="Float64").astype(float)})
    return tuples, priors


ADVERSARIAL = {
    "all_missing": ([{"target_id": 0, "score": None, "context_ids": [1], "context_shown": [1]}] * 2, 2),
    "plus_minus_inf": (
        [
            {"target_id": 0, "score": math.inf, "context_ids": [1], "context_shown": [0]},
            {"target_id": 1, "score": -math.inf, "context_ids": [0], "context_shown": [1]},
        ],
        2,
    ),
    "one_item_no_context": ([{"target_id": 0, "score": 2.0}], 1),
    "no_context_anywhere": ([{"target_id": 0, "score": 1.0}, {"target_id": 1, "score": -3.0}], 3),
}


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("z_scale", [0.0, 1.0, 80.0])
def test_every_term_finite_on_adversarial_inputs(case: str, dtype: torch.dtype, z_scale: float) -> None:
    rows, n = ADVERSARIAL[case]
    tuples, priors = _table(rows, n, prior_scores=[None] * n if case == "all_missing" else None)
    items = pd.DataFrame({"item_id": np.arange(n), "consistency_id": pd.array([7] * n, dtype="Int64")})
    p = build_problem(tuples, priors, items, "exactly_one_true" if n > 1 else "none", dtype=dtype)
    z = (torch.linspace(-1, 1, n, dtype=dtype) * z_scale).requires_grad_(True)
    theta = L.init_nuisance(p).requires_grad_(True)
    weights = dict.fromkeys(LOSS_NAMES, 1.0)
    hi, lo = sample_ranking_pairs(p, 4.0, 0.0, torch.Generator().manual_seed(0))
    terms = L.compute_losses(z, theta, p, weights, pairs=(hi, lo))
    for name, value in terms.items():
        assert torch.isfinite(value), f"{case}: {name} = {value}"
        gz, gt = torch.autograd.grad(value, [z, theta], allow_unused=True)
        for g in (gz, gt):
            assert g is None or torch.isfinite(g).all(), f"{case}: d{name} not finite"


def test_zero_sized_terms_return_zero_with_grad() -> None:
    tuples, priors = _table([{"target_id": 0, "score": 1.0}], 2)
    p = build_problem(tuples, priors)  # no flips, no groups, no context
    z = torch.zeros(2, requires_grad=True)
    empty = torch.zeros(0, dtype=torch.long)
    for value in (L.flip(z, None, p), L.consistency(z, p), L.ranking(z, empty, empty)):
        assert float(value.detach()) == 0.0
        value.backward()
        assert z.grad is not None and torch.isfinite(z.grad).all()
    empty_problem = p.subset(np.zeros(0, dtype=np.int64))
    assert empty_problem.n_tuples == 0
    theta = L.init_nuisance(p).requires_grad_(True)
    for value in (L.mutual(z, theta, empty_problem), L.nuisance(z, theta, empty_problem)):
        assert float(value.detach()) == 0.0
        value.backward()


def test_mutual_weight_uses_shown_labels_and_flows_gradient() -> None:
    """Context items agreeing with the shown labels raise w_t; d loss/d z_context is non-zero (flips
    inform)."""
    tuples, priors = _table(
        [
            {"target_id": 0, "score": 4.0, "context_ids": [1], "context_shown": [1]},
            {"target_id": 0, "score": -4.0, "context_ids": [1], "context_shown": [0]},
        ],
        2,
    )
    p = build_problem(tuples, priors, dtype=torch.float64)
    z = torch.tensor([3.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss = L.mutual(z, None, p)
    loss.backward()
    # Target believed 1: the tuple that showed item 1 as 1 predicted 1 (low CE), so item 1 is pushed towards
    # 1.
    assert z.grad is not None and float(z.grad[1]) < 0
    log_w = L.context_log_weight(torch.tensor([0.0, 5.0], dtype=torch.float64), p)
    assert float(log_w[0]) > float(log_w[1])


def test_bias_signs_follow_the_contract() -> None:
    """Acquiescence adds under pos and subtracts under neg; copy/position use shown labels coded +-1."""
    tuples, priors = _table(
        [
            {"target_id": 0, "score": 0.0, "framing": "pos", "context_ids": [1, 2], "context_shown": [1, 1]},
            {"target_id": 0, "score": 0.0, "framing": "neg", "context_ids": [1, 2], "context_shown": [1, 0]},
        ],
        3,
    )
    p = build_problem(tuples, priors, dtype=torch.float64)
    theta = torch.tensor([1.0, 0.0, 0.5, 0.25, 0.0, 1.0, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(L.bias(theta, p).numpy(), [1.0 + 0.5, 0.0 - 0.25])
    theta = torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(L.bias(theta, p).numpy(), [2.0, -2.0])


def test_flip_pairs_are_found_and_gated() -> None:
    tuples, priors = _table(
        [
            {"target_id": 0, "score": 1.0, "context_ids": [1, 2], "context_shown": [0, 1]},
            {
                "target_id": 0,
                "score": 3.0,
                "kind": "flip",
                "context_ids": [1, 2],
                "context_shown": [1, 1],
                "flipped_pos": 0,
                "flip_of": "q0",
            },
        ],
        3,
    )
    p = build_problem(tuples, priors, dtype=torch.float64)
    assert p.n_flips == 1 and int(p.flip_item[0]) == 1 and float(p.flip_dir[0]) == 1.0
    confident = torch.tensor([3.0, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    loss = L.flip(confident, None, p, threshold=0.6)
    loss.backward()
    assert float(loss.detach()) < 0 and confident.grad is not None and float(confident.grad[1]) < 0  # j pulled to agree
    unsure = torch.tensor([0.1, 0.5, 0.0], dtype=torch.float64)
    assert float(L.flip(unsure, None, p, threshold=0.6)) == 0.0


def test_consistency_rules_prefer_consistent_labels() -> None:
    tuples, priors = _table([{"target_id": 0, "score": 1.0}], 4)
    items = pd.DataFrame(
        {
            "item_id": np.arange(4),
            "consistency_id": pd.array([0, 0, 0, 0], dtype="Int64"),
            "answer_key": pd.array(["a", "a", "b", "b"], dtype="string"),
        }
    )
    good = torch.tensor([4.0, -4.0, -4.0, -4.0])
    both = torch.tensor([4.0, 4.0, -4.0, -4.0])
    none = torch.full((4,), -4.0)
    p1 = build_problem(tuples, priors, items, "exactly_one_true")
    assert float(L.consistency(good, p1)) < float(L.consistency(both, p1))
    assert float(L.consistency(good, p1)) < float(L.consistency(none, p1))
    p2 = build_problem(tuples, priors, items, "same_answer_same_label")
    assert float(L.consistency(both, p2)) < float(L.consistency(good, p2))  # same answer "a" -> same label
    assert float(L.consistency(none, p2)) < 0.1


def _valid_tables():
    return _table([{"target_id": 0, "score": 1.0, "context_ids": [1], "context_shown": [1]}], 2)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, p: (t.iloc[0:0], p), "empty"),
        (lambda t, p: (t.assign(target_id=[5]), p), "not a known item id"),
        (lambda t, p: (t.assign(context_ids=[np.array([9])]), p), "not a known item id"),
        (lambda t, p: (t.assign(context_shown=[np.array([1, 0], dtype=np.int8)]), p), "differ in length"),
        (lambda t, p: (t.assign(kind=["zero_shot"]), p), "few_shot or flip"),
        (lambda t, p: (t, p.assign(item_id=[0, 3])), "0..N-1"),
        (lambda t, p: (t.drop(columns=["flip_of"]), p), "lacks columns"),
    ],
)
def test_bad_input_raises_one_clear_line(mutate, message: str) -> None:
    tuples, priors = mutate(*_valid_tables())
    with pytest.raises(OptimizeError, match=message) as err:
        build_problem(tuples, priors)
    assert "\n" not in str(err.value)


def test_unknown_consistency_rule_raises() -> None:
    with pytest.raises(OptimizeError, match="unknown consistency rule"):
        build_problem(*_valid_tables(), consistency_rule="most_true")


def test_gold_column_is_never_read() -> None:
    tuples, priors = _valid_tables()
    items = pd.DataFrame({"item_id": [0, 1], "consistency_id": pd.array([0, 0], dtype="Int64"), "gold": [1, 0]})
    a = build_problem(tuples, priors, items, "exactly_one_true")
    b = build_problem(tuples, priors, items.assign(gold=[0, 1]), "exactly_one_true")
    c = build_problem(tuples, priors, items.drop(columns=["gold"]), "exactly_one_true")
    for other in (b, c):
        for name in ("prior_logit", "cons_item", "cons_sub", "sub_group", "score", "ctx_ids"):
            assert torch.equal(getattr(a, name), getattr(other, name))


def test_calibrate_prior_recovers_balance_and_orders_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.3
    s = np.where(y, 2.0, -1.0) + rng.normal(0, 0.8, y.size)
    logit, info = calibrate_prior(s)
    assert info["class_balance"] == pytest.approx(0.3, abs=0.03)  # EM on a well-specified mixture
    assert np.mean(logit > 0) == pytest.approx(info["class_balance"], abs=0.01)  # centre at the quantile
    assert np.all(np.diff(logit[np.argsort(s)]) >= 0)  # calibration keeps the order of the scores
    acc = np.mean((logit > 0) == y)
    assert acc > 0.9
    given_logit, given = calibrate_prior(s, class_balance=0.5)
    assert given["class_balance"] == 0.5 and np.mean(given_logit > 0) == pytest.approx(0.5, abs=0.01)


def test_calibrate_prior_degenerate_inputs_are_finite() -> None:
    for s in (np.full(5, np.nan), np.array([1.0]), np.full(4, 2.0), np.array([np.nan, 3.0, -3.0, 3.0])):
        logit, info = calibrate_prior(s)
        assert np.isfinite(logit).all()
        assert 0.0 < info["class_balance"] < 1.0
