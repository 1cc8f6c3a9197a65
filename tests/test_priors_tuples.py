"""Priors (framing-averaged zero-shot), the interim loop fit, and tuples (checked few-shot rows)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from elicit.plan import BudgetConfig, plan_round, zero_shot_queries
from elicit.priors import (
    PRIORS_COLUMNS,
    PriorsError,
    fit_loop_average,
    priors_from_predictions,
    shown_from_priors,
    sigmoid,
)
from elicit.tuples import TUPLE_COLUMNS, TUPLES_SCHEMA, TupleError, tuples_from_predictions

TEMPLATES = ["a", "b"]


def make_items(n: int, seed: int = 0) -> pd.DataFrame:
    gold = np.random.default_rng(seed).integers(0, 2, n)
    return pd.DataFrame({"item_id": np.arange(n), "text": [f"x{i}" for i in range(n)], "gold": gold})


def make_groups(n: int, size: int = 6) -> pd.DataFrame:
    frames = []
    for r in (1, 2):
        perm = np.random.default_rng(r).permutation(n)
        frames.append(pd.DataFrame({"round": r, "group_id": np.arange(n) // size, "item_id": perm}))
    return pd.concat(frames, ignore_index=True).assign(is_anchor=False)


def answer(queries: pd.DataFrame, truth: np.ndarray, acq: float = 0.0, p_missing: float = 0.0, seed: int = 0):
    """Fake oracle: score = truth + acquiescence under pos, truth - acquiescence under neg (undone)."""
    rng = np.random.default_rng(seed)
    s = truth[queries["target_id"].to_numpy()] + np.where(queries["framing"] == "pos", acq, -acq)
    missing = rng.random(len(queries)) < p_missing
    return queries.assign(
        lp_true=np.where(missing, np.nan, s / 2),
        lp_false=np.where(missing, np.nan, -s / 2),
        score=pd.array(np.where(missing, np.nan, s), dtype="Float64"),
        missing=missing,
        model="fake",
        oracle="fake",
    )


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- priors


def test_priors_cancel_planted_acquiescence() -> None:
    n = 50
    truth = np.random.default_rng(0).normal(0, 2, n)
    z = zero_shot_queries(make_items(n), ["a", "b", "c"])
    pred = answer(z, truth, acq=1.5)
    # drop some variants of one framing only: a plain mean would now be biased, the framing mean is not
    drop = (pred["framing"] == "pos") & (pred["template_id"] != "a") & (pred["target_id"] % 3 == 0)
    pred = pred.assign(missing=pred["missing"] | drop)
    pred = pred.assign(score=pred["score"].mask(drop))
    pri = priors_from_predictions(pred, n)
    assert list(pri.columns) == list(PRIORS_COLUMNS)
    np.testing.assert_allclose(pri["score"].to_numpy(dtype=float), truth, atol=1e-9)
    np.testing.assert_allclose(pri["score_pos"].to_numpy(dtype=float), truth + 1.5, atol=1e-9)
    np.testing.assert_allclose(pri["score_neg"].to_numpy(dtype=float), truth - 1.5, atol=1e-9)
    np.testing.assert_allclose(pri["spread"].to_numpy(dtype=float)[1], 1.5, atol=1e-9)  # std of +-1.5
    assert pri["n_missing"].tolist() == [2 if i % 3 == 0 else 0 for i in range(n)]
    # a single framing (the biased one) would not have cancelled it
    assert np.abs(pri["score_pos"].to_numpy(dtype=float) - truth).min() > 1


def test_priors_nulls_not_nan() -> None:
    n = 4
    z = zero_shot_queries(make_items(3), TEMPLATES)  # rows 4i..4i+3: (a,pos) (a,neg) (b,pos) (b,neg); item 3 none
    pred = answer(z, np.array([1.0, -2.0, 0.5]))
    missing = pred["target_id"].isin([1]) | pred.index.isin([8, 9, 10])  # item 1 all, item 2 all but (b,neg)
    pred = pred.assign(missing=missing, score=pred["score"].mask(missing))
    pred.loc[0, "score"] = np.inf  # a non-finite score counts as missing although missing is False
    pri = priors_from_predictions(pred, n)
    assert pri["item_id"].tolist() == [0, 1, 2, 3]
    for c in ("score", "score_pos", "score_neg", "spread"):
        assert pri[c].dtype == "Float64"
        assert not np.isnan(pri[c].to_numpy(dtype=float, na_value=0.0)).any()
    assert pri["score"].isna().tolist() == [False, True, False, True]
    assert pri["n_missing"].tolist() == [1, 4, 3, 0]
    assert pri.loc[0, "score"] == 1.0 and pri.loc[0, "spread"] == 0.0
    assert pri.loc[2, "score"] == pri.loc[2, "score_neg"] == 0.5 and pd.isna(pri.loc[2, "score_pos"])
    assert pri.loc[2, "spread"] == 0.0
    table = pa.Table.from_pandas(pri, preserve_index=False)
    assert table.column("score").null_count == 2 and table.column("score_pos").null_count == 3


def test_priors_reject_bad_input() -> None:
    z = answer(zero_shot_queries(make_items(3), TEMPLATES), np.zeros(3))
    with pytest.raises(PriorsError, match="target_id outside"):
        priors_from_predictions(z, 2)
    with pytest.raises(PriorsError, match="columns"):
        priors_from_predictions(z.drop(columns="score"), 3)


def test_shown_from_priors() -> None:
    pri = pd.DataFrame({"item_id": [0, 1, 2], "score": pd.array([0.0, 2.0, None], dtype="Float64")})
    sh = shown_from_priors(pri)
    np.testing.assert_allclose(sh["p_true"], [0.5, sigmoid(np.array(2.0)), 0.5])
    assert list(sh.columns) == ["item_id", "p_true"] and sh["p_true"].dtype == np.float64


def test_sigmoid_is_stable() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(got, [0.0, 0.5, 1.0])


def test_fit_loop_average() -> None:
    pri = pd.DataFrame({"item_id": [0, 1, 2, 3], "score": pd.array([1.0, None, -1.0, None], dtype="Float64")})
    rows = pd.DataFrame(
        {
            "target_id": [0, 0, 1, 2, 2, 0],
            "kind": ["few_shot", "flip", "few_shot", "few_shot", "few_shot", "zero_shot"],
            "framing": ["pos", "neg", "pos", "pos", "pos", "pos"],
            "score": pd.array([3.0, 1.0, -2.0, None, 5.0, 100.0], dtype="Float64"),
            "missing": [False, False, False, True, False, False],
        }
    )
    fit = fit_loop_average(pri, rows)
    assert fit["item_id"].tolist() == [0, 1, 2, 3]
    expected = [sigmoid(np.array((1.0 + 2.0) / 2)), sigmoid(np.array(-2.0)), sigmoid(np.array(2.0)), 0.5]
    np.testing.assert_allclose(fit["p_true"], expected)
    assert not fit["p_true"].isna().any()
    # no few-shot evidence at all: the prior, or 0.5
    only = fit_loop_average(pri, rows.iloc[:0])
    np.testing.assert_allclose(only["p_true"], [sigmoid(np.array(1.0)), 0.5, sigmoid(np.array(-1.0)), 0.5])


# --------------------------------------------------------------------------------------------- tuples


@pytest.fixture(scope="module")
def pipeline():
    """zero-shot -> priors -> plan r1 -> fit -> plan r2, on a fake oracle."""
    n = 36
    items = make_items(n)
    truth = np.random.default_rng(1).normal(0, 2, n)
    groups = make_groups(n)
    p0 = answer(zero_shot_queries(items, TEMPLATES), truth, acq=0.7, p_missing=0.05)
    pri = priors_from_predictions(p0, n)
    p1 = answer(plan_round(items, groups, shown_from_priors(pri), 1, BudgetConfig(), 0, TEMPLATES), truth, 0, 0.1)
    fit1 = fit_loop_average(pri, p1)
    p2 = answer(plan_round(items, groups, fit1, 2, BudgetConfig(), 0, TEMPLATES), truth, 0, 0.1, seed=2)
    return items, p0, p1, p2


def test_tuples_from_predictions(pipeline) -> None:
    _, p0, p1, p2 = pipeline
    t = tuples_from_predictions([p0, p1, p2])
    assert list(t.columns) == list(TUPLE_COLUMNS)
    assert len(t) == len(p1) + len(p2)
    assert set(t["kind"]) == {"few_shot", "flip"} and (t["round"] >= 1).all()
    assert t[["round", "query_id"]].apply(tuple, axis=1).is_monotonic_increasing
    assert t["score"].dtype == "Float64"
    assert (t["score"].isna() == t["missing"]).all()
    merged = t.merge(pd.concat([p1, p2])[["query_id", "score"]], on="query_id", suffixes=("", "_in"))
    np.testing.assert_array_equal(
        merged["score"].to_numpy(float, na_value=np.nan), merged["score_in"].to_numpy(float, na_value=np.nan)
    )
    schema = pa.Table.from_pandas(t, preserve_index=False).schema.remove_metadata()
    assert schema.equals(TUPLES_SCHEMA)
    # order of the input frames and their rows does not matter; a Parquet round trip neither
    shuffled = [p2.sample(frac=1, random_state=0), p1.sample(frac=1, random_state=1)]
    assert parquet_bytes(t) == parquet_bytes(tuples_from_predictions(shuffled))
    round_trip = [pd.read_parquet(io.BytesIO(parquet_bytes(p))) for p in (p1, p2)]
    assert parquet_bytes(t) == parquet_bytes(tuples_from_predictions(round_trip))


def test_tuples_accept_plain_lists(pipeline) -> None:
    _, _, p1, _ = pipeline
    as_lists = p1.assign(
        context_ids=[list(map(int, c)) for c in p1["context_ids"]],
        context_shown=[list(map(int, c)) for c in p1["context_shown"]],
        score=p1["score"].astype(float),
    )
    assert parquet_bytes(tuples_from_predictions([as_lists])) == parquet_bytes(tuples_from_predictions([p1]))


def _flip_row(p1: pd.DataFrame) -> int:
    return int(np.flatnonzero(p1["kind"].to_numpy() == "flip")[0])


def test_tuples_raise_on_dangling_flip(pipeline) -> None:
    _, _, p1, _ = pipeline
    i = _flip_row(p1)
    bad = p1.copy()
    bad.loc[i, "flip_of"] = "r1-g99-t99-q0"
    with pytest.raises(TupleError, match="names no few_shot query"):
        tuples_from_predictions([bad])
    base = p1.loc[i, "flip_of"]
    with pytest.raises(TupleError, match="names no few_shot query"):
        tuples_from_predictions([p1[p1["query_id"] != base]])


def test_tuples_raise_on_length_mismatch(pipeline) -> None:
    _, _, p1, _ = pipeline
    bad = p1.copy()
    bad["context_shown"] = [np.asarray(c)[:-1] if k == 0 else c for k, c in enumerate(bad["context_shown"])]
    with pytest.raises(TupleError, match="differ in length"):
        tuples_from_predictions([bad])


def test_tuples_raise_on_broken_twin(pipeline) -> None:
    _, _, p1, _ = pipeline
    i = _flip_row(p1)
    bad = p1.copy()
    shown = np.asarray(bad.loc[i, "context_shown"]).copy()
    shown[int(bad.loc[i, "flipped_pos"])] ^= 1  # now identical to its twin
    bad["context_shown"] = [shown if k == i else c for k, c in enumerate(bad["context_shown"])]
    with pytest.raises(TupleError, match="is not its twin"):
        tuples_from_predictions([bad])
    bad = p1.copy()
    bad.loc[i, "target_id"] = int(bad.loc[i, "target_id"]) + 1
    with pytest.raises(TupleError, match="is not its twin"):
        tuples_from_predictions([bad])


def test_tuples_raise_on_duplicates_and_bad_labels(pipeline) -> None:
    _, _, p1, _ = pipeline
    with pytest.raises(TupleError, match="appears twice"):
        tuples_from_predictions([p1, p1])
    bad = p1.copy()
    bad["context_shown"] = [
        np.full(len(c), 2, dtype=np.int8) if k == 0 else c for k, c in enumerate(bad["context_shown"])
    ]
    with pytest.raises(TupleError, match="0 or 1"):
        tuples_from_predictions([bad])


def test_tuples_empty() -> None:
    t = tuples_from_predictions([])
    assert list(t.columns) == list(TUPLE_COLUMNS) and len(t) == 0
    assert TUPLES_SCHEMA.names == list(TUPLE_COLUMNS)
    pa.Table.from_pandas(t, schema=TUPLES_SCHEMA, preserve_index=False)  # an empty frame still writes typed


def test_gold_shuffle_pipeline_identical(pipeline) -> None:
    """plan/priors/tuples never see gold: shuffling it leaves every output byte-identical."""
    items, p0, _, _ = pipeline
    n = len(items)
    truth = np.random.default_rng(1).normal(0, 2, n)
    groups = make_groups(n)

    def run(it: pd.DataFrame) -> list[bytes]:
        z = answer(zero_shot_queries(it, TEMPLATES), truth, acq=0.7, p_missing=0.05)
        pri = priors_from_predictions(z, n)
        p1 = answer(plan_round(it, groups, shown_from_priors(pri), 1, BudgetConfig(), 3, TEMPLATES), truth)
        fit = fit_loop_average(pri, p1)
        p2 = answer(plan_round(it, groups, fit, 2, BudgetConfig(), 3, TEMPLATES), truth)
        return [parquet_bytes(x) for x in (z, pri, p1, fit, p2, tuples_from_predictions([z, p1, p2]))]

    shuffled = items.assign(gold=items["gold"].sample(frac=1, random_state=9).to_numpy())
    assert run(items) == run(shuffled) == run(items.drop(columns="gold"))
