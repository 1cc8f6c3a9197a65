"""A few gold labels (``gold_budget``): which items, whose gold, and what PPI makes of them.

The end-to-end check that gold outside the budget stays unread (shuffled, every gold-free output byte-identical,
``selected`` included) is in tests/test_e2e.py, with the real embedded oracle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elicit.evaluate.goldfree import Estimate
from elicit.evaluate.ppi import (
    BUDGET_ACCURACY,
    BUDGET_ITEMS,
    PPI_ACCURACY,
    PPI_BALANCE,
    calibrated,
    ppi_mean,
    ppi_rows,
    right_probability,
)
from elicit.gold_budget import SWITCH_Z, BudgetError, budget_table, choose, choose_with_gold


def items(n: int, seed: int = 0) -> pd.DataFrame:
    gold = np.random.default_rng(seed).integers(0, 2, n)
    return pd.DataFrame(
        {"item_id": np.arange(n, dtype=np.int64), "text": [f"t{i}" for i in range(n)], "gold": pd.array(gold, "Int8")}
    )


def test_choice_is_the_seeds_alone_and_reads_only_the_budgets_gold() -> None:
    base = items(200)
    table = budget_table(base, 25, seed=7)
    assert len(table) == 25 and table["item_id"].is_unique and table["item_id"].is_monotonic_increasing
    assert list(table.columns) == ["item_id", "gold"]
    assert table["gold"].tolist() == base.set_index("item_id").loc[table["item_id"], "gold"].tolist()
    # shuffle the gold of every item outside the budget: the table is unchanged
    outside = ~base["item_id"].isin(table["item_id"])
    shuffled = base.copy()
    shuffled.loc[outside, "gold"] = np.random.default_rng(1).permutation(base.loc[outside, "gold"].to_numpy())
    assert (shuffled["gold"] != base["gold"]).any()
    pd.testing.assert_frame_equal(budget_table(shuffled, 25, seed=7), table)
    # another seed, another sample; the ids of the run alone decide
    assert not np.array_equal(choose(base["item_id"], 25, 8), table["item_id"].to_numpy())
    assert np.array_equal(choose(base["item_id"][::-1], 25, 7), table["item_id"].to_numpy())


def test_no_budget_is_an_empty_table() -> None:
    table = budget_table(items(10), 0, seed=0)
    assert table.empty and list(table.columns) == ["item_id", "gold"]


def test_a_budget_as_large_as_the_run_is_one_clear_error() -> None:
    with pytest.raises(BudgetError, match="gold_budget 10 leaves fewer than 1 of the run's 10 items.*below 10"):
        budget_table(items(10), 10, seed=0)


def test_a_budget_item_without_gold_names_the_fix() -> None:
    df = items(20).assign(gold=pd.array([None] * 20, "Int8"))
    with pytest.raises(BudgetError, match="have no gold label.*gold_budget: 0") as err:
        budget_table(df, 3, seed=0, run="dd")
    assert list(err.value.unlabelled.index) == choose(df["item_id"], 3, 0).tolist()  # the rows to label


def synthetic(n: int, rng: np.random.Generator, informative: bool) -> tuple[np.ndarray, np.ndarray]:
    """(outcome Y, prediction f): f is P(Y = 1) exactly when informative, else unrelated noise."""
    f = rng.beta(2, 1, n)
    y = (rng.random(n) < f).astype(float)
    return y, (f if informative else rng.random(n))


@pytest.mark.parametrize(("n", "k"), [(500, 25), (500, 100), (256, 100), (256, 200)])
def test_ppi_covers_the_accuracy_outside_the_budget_and_is_narrower_than_the_labels_alone(n: int, k: int) -> None:
    """The target is the items outside the budget (a fixed set): PPI++'s population variance covered 0.88 at
    n = 256, k = 100 and 0.65 at k = 200; this target's variance covers ~0.95 everywhere."""
    rng = np.random.default_rng(0)
    covered, widths, classical = [], [], []
    for _ in range(600):
        y, f = synthetic(n, rng, informative=True)
        budget = rng.choice(n, k, replace=False)
        rest = np.setdiff1d(np.arange(n), budget)
        est = ppi_mean(f[rest], f[budget], y[budget])
        truth = y[rest].mean()
        covered.append(est.low <= truth <= est.high)
        widths.append(est.high - est.low)
        q = y[budget].mean()
        classical.append(2 * 1.96 * np.sqrt(q * (1 - q) * (1 / k + 1 / (n - k))))
    assert np.mean(covered) >= 0.925
    assert np.mean(widths) < 0.95 * np.mean(classical)


def test_a_useless_prediction_falls_back_to_the_labels_alone() -> None:
    rng = np.random.default_rng(1)
    y, f = synthetic(500, rng, informative=False)
    budget = rng.choice(500, 50, replace=False)
    rest = np.setdiff1d(np.arange(500), budget)
    est = ppi_mean(f[rest], f[budget], y[budget])
    assert est.lam < 0.3
    assert abs(est.value - y[budget].mean()) < 0.05


def test_all_labels_right_still_gives_an_interval_of_positive_width() -> None:
    est = ppi_mean(np.full(100, 0.9), np.full(25, 0.9), np.ones(25))
    assert est.high - est.low > 0.05 and 0 <= est.low < est.high <= 1
    empty = ppi_mean(np.full(10, 0.7), np.empty(0), np.empty(0))
    assert (empty.low, empty.high) == (0.0, 1.0)


def test_gold_overrules_the_gold_free_choice_only_beyond_noise() -> None:
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 2, 60)
    good = np.where(gold == 1, 0.9, 0.1)
    bad = np.where(rng.random(60) < 0.5, 0.8, 0.2)
    switched = choose_with_gold("bad", {"bad": bad, "good": good}, gold)
    assert switched.chosen == "good" and switched.z["good"] > SWITCH_Z and switched.to_json()["switched"]
    near = np.clip(good + rng.normal(0, 0.02, 60), 0.01, 0.99)
    kept = choose_with_gold("good", {"good": good, "near": near}, gold)
    assert kept.chosen == "good" and not kept.to_json()["switched"]
    assert kept.accuracy["good"] == 1.0


def labelled(p: np.ndarray) -> dict[int, pd.DataFrame]:
    return {0: pd.DataFrame({"item_id": np.arange(p.size, dtype=np.int64), "p_true": p})}


def test_ppi_rows_of_a_run() -> None:
    rng = np.random.default_rng(3)
    n = 300
    gold = rng.integers(0, 2, n)
    p = np.clip(np.where(gold == 1, 0.8, 0.2) + rng.normal(0, 0.1, n), 0.01, 0.99)
    labels = {"selected": labelled(p), "zero_shot": labelled(np.full(n, 0.6))}
    est = {
        "selected": Estimate(0.8, 0.75, 0.85, "few-shot rounds", n, 1.0, 0.0),
        "zero_shot": Estimate(0.5, 0.4, 0.6, "uncalibrated", 0, 1.0, 0.0),
    }
    budget = choose(np.arange(n), 50, seed=0)
    rest = np.setdiff1d(np.arange(n), budget)
    rows = ppi_rows(labels, est, budget, gold[budget], rest)
    got = {(r.method, r.metric) for r in rows.itertuples()}
    assert {("selected", PPI_ACCURACY), ("selected", PPI_BALANCE), ("selected", BUDGET_ITEMS)} <= got
    assert ("zero_shot", BUDGET_ACCURACY) in got and ("zero_shot", PPI_ACCURACY) not in got  # uncalibrated
    assert rows[["value", "ci_low", "ci_high"]].notna().all().all()
    acc = rows[(rows.method == "selected") & (rows.metric == PPI_ACCURACY)].iloc[0]
    truth = ((p[rest] >= 0.5) == gold[rest]).mean()
    assert acc.ci_low <= truth <= acc.ci_high
    assert ppi_rows(labels, est, np.empty(0, np.int64), np.empty(0, np.int64), np.arange(n)).empty


def test_calibration_map_is_the_estimates() -> None:
    e = Estimate(0.8, 0.7, 0.9, "few-shot rounds", 10, 2.0, 0.5)
    p = np.array([0.5, 0.8, np.nan])
    c = calibrated(p, e)
    assert c[0] == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert c[2] == c[0]
    r = right_probability(np.array([0.2]), Estimate(0.8, 0.7, 0.9, "x", 1, 1.0, 0.0))
    assert r[0] == pytest.approx(0.8)


def test_the_study_table_of_what_k_labels_buy() -> None:
    from elicit.study_budget import markdown, summarize

    rows = pd.DataFrame(
        [
            {
                "run": r,
                "oracle": "sim_x",
                "n": 500,
                "k": 25,
                "repeat": 0,
                "truth": 0.8,
                "free": 0.9,
                "free_low": 0.85,
                "free_high": 0.95,
                "ppi": ppi,
                "ppi_low": ppi - 0.1,
                "ppi_high": ppi + 0.1,
                "lam": 0.5,
                "switched": r == "a",
                "acc_gold_free_choice": 0.8,
                "acc_gold_checked_choice": 0.82 if r == "a" else 0.8,
            }
            for r, ppi in (("a", 0.78), ("b", 0.95))
        ]
    )
    table = summarize(rows).iloc[0]
    assert table["free_err"] == pytest.approx(0.1) and table["free_cov"] == 0.0
    assert table["ppi_cov"] == 0.5 and table["ppi_abs_err"] == pytest.approx((0.02 + 0.15) / 2)
    assert table["switched"] == 0.5 and table["gain"] == pytest.approx(0.01)
    text = markdown(summarize(rows))
    assert "| sim_x | 500 | 25 | 2 | +10.0 | 0 % |" in text and text.count("\n") == 3
