"""Label export, JSON Lines and DPO pairs of elicit.export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elicit.export import dpo_pairs, estimate_record, export_labels, to_jsonl


def claims() -> pd.DataFrame:
    """Two questions with three candidate answers each, one question with a single answer, one loose item."""
    q1, q2, q3 = "Question: What is 2+2?\n", "Question: Capital of France?\n", "Question: Alone?\n"
    texts = [
        q1 + "Answer: 4",
        q1 + "Answer: 5",
        q1 + "Answer: four",
        q2 + "Answer: Paris",
        q2 + "Answer: Lyon",
        q2 + "Answer: Nice",
        q3 + "Answer: yes",
        "A claim without a group.",
    ]
    return pd.DataFrame(
        {
            "item_id": np.arange(8),
            "text": texts,
            "gold": pd.array([1, 0, 1, 1, 0, 0, 1, None], dtype="Int8"),
            "consistency_id": pd.array([1, 1, 1, 2, 2, 2, 3, None], dtype="Int64"),
        }
    )


def test_export_labels_drops_gold_and_averages_seeds() -> None:
    items = claims()
    per_seed = {
        0: pd.DataFrame({"item_id": [0, 1, 2], "p_true": [0.9, 0.2, 0.4]}),
        1: pd.DataFrame({"item_id": [0, 1, 2], "p_true": [0.7, 0.4, 0.8]}),
    }
    out = export_labels(per_seed, items)
    assert list(out.columns) == ["item_id", "text", "p_true", "label"]
    assert out["item_id"].tolist() == [0, 1, 2]  # only labelled items
    assert np.allclose(out["p_true"], [0.8, 0.3, 0.6])
    assert out["label"].tolist() == [1, 0, 1]
    single = export_labels(per_seed[0], items)
    assert single["label"].tolist() == [1, 0, 0]


def test_to_jsonl_round_trips() -> None:
    df = pd.DataFrame(
        {"item_id": [1, 2], "text": ['é "quoted"', "x"], "p_true": [0.25, float("nan")], "ids": [[1, 2], []]}
    )
    df["ids"] = df["ids"].map(lambda x: np.asarray(x, dtype=np.int64))
    text = to_jsonl(df)
    lines = text.splitlines()
    assert len(lines) == 2 and text.endswith("\n")
    first, second = (json.loads(line) for line in lines)
    assert first == {"item_id": 1, "text": 'é "quoted"', "p_true": 0.25, "ids": [1, 2]}
    assert second["p_true"] is None and second["ids"] == []
    assert to_jsonl(df.iloc[0:0]) == ""


def test_dpo_pairs_on_a_grouped_example() -> None:
    items = claims()
    labels = pd.DataFrame({"item_id": np.arange(8), "p_true": [0.7, 0.1, 0.9, 0.8, 0.3, 0.2, 0.9, 0.9]})
    pairs = dpo_pairs(items, labels, "at_most_one_true")
    assert len(pairs) == 3  # group 1: one false claim; group 2: two; group 3 has one item; loose item skipped
    g1 = [p for p in pairs if p["consistency_id"] == 1]
    assert g1 == [
        {
            "prompt": "Question: What is 2+2?",
            "chosen": "Answer: four",  # the true claim with the highest p_true
            "rejected": "Answer: 5",
            "consistency_id": 1,
            "chosen_id": 2,
            "rejected_id": 1,
            "chosen_p_true": 0.9,
            "rejected_p_true": 0.1,
        }
    ]
    g2 = [p for p in pairs if p["consistency_id"] == 2]
    assert [p["rejected"] for p in g2] == ["Answer: Lyon", "Answer: Nice"]
    assert all(p["chosen"] == "Answer: Paris" for p in g2)
    assert all(json.loads(line) for line in to_jsonl(pairs).splitlines())


def test_dpo_pairs_use_a_question_column_and_answer_keys() -> None:
    items = pd.DataFrame(
        {
            "item_id": [0, 1, 2],
            "text": ["sol A: 600", "sol B: 600", "sol C: 75"],
            "question": ["How many thorns?"] * 3,
            "answer_key": ["600", "600", "75"],
            "consistency_id": [9, 9, 9],
        }
    )
    labels = pd.DataFrame({"item_id": [0, 1, 2], "p_true": [0.9, 0.2, 0.1]})
    pairs = dpo_pairs(items, labels, "same_answer_same_label")
    # item 1 has the chosen answer_key: rejecting it would contradict the rule, so only item 2 is rejected
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("How many thorns?", "sol A: 600", "sol C: 75")
    ]


def test_no_pairs_without_groups() -> None:
    items = claims()
    labels = pd.DataFrame({"item_id": np.arange(8), "p_true": np.linspace(0, 1, 8)})
    assert dpo_pairs(items.assign(consistency_id=pd.array([None] * 8, dtype="Int64")), labels, "at_most_one_true") == []
    assert dpo_pairs(items.drop(columns="consistency_id"), labels, "at_most_one_true") == []
    assert dpo_pairs(items, labels, None) == []
    with pytest.raises(ValueError, match="unknown consistency rule 'all_equal'"):
        dpo_pairs(items, labels, "all_equal")
    all_true = pd.DataFrame({"item_id": np.arange(8), "p_true": np.full(8, 0.9)})
    assert dpo_pairs(items, all_true, "at_most_one_true") == []


def test_estimate_record_carries_the_gold_free_estimate_and_no_gold_number() -> None:
    from elicit.evaluate import Estimate, estimate_rows, evaluate, with_estimates

    items = claims()
    labels = {"selected": {0: pd.DataFrame({"item_id": np.arange(8), "p_true": np.linspace(0.05, 0.95, 8)})}}
    est = {"selected": Estimate(0.78, 0.74, 0.82, "random_fewshot", 8, 0.9, 0.1)}
    metrics = with_estimates(evaluate(labels, items, seed=0, n_boot=10), estimate_rows(est))
    record = estimate_record(metrics)
    assert record["est_accuracy"] == 0.78 and (record["est_low"], record["est_high"]) == (0.74, 0.82)
    assert record["calibrated_on"] == "random_fewshot" and record["heldout_items"] == 8
    assert "calibrated beliefs are right" in record["assumption"]
    assert not {"accuracy", "ece_export", "gold"} & set(record)  # the export carries no gold number
    json.dumps(record, allow_nan=False)
    old = estimate_record(evaluate(labels, items, seed=0, n_boot=10))
    assert old["est_accuracy"] is None and "re-run evaluate" in old["note"]


def test_estimate_record_carries_the_ppi_estimates_of_a_gold_budget() -> None:
    from elicit.evaluate import Estimate, estimate_rows, with_estimates
    from elicit.evaluate.ppi import ppi_rows

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 60)
    p = np.where(gold == 1, 0.8, 0.2)
    labels = {"selected": {0: pd.DataFrame({"item_id": np.arange(60), "p_true": p})}}
    est = {"selected": Estimate(0.8, 0.7, 0.9, "few-shot rounds", 60, 1.0, 0.0)}
    budget = np.arange(0, 60, 6)
    rest = np.setdiff1d(np.arange(60), budget)
    metrics = with_estimates(estimate_rows(est), ppi_rows(labels, est, budget, gold[budget], rest))
    record = estimate_record(metrics)
    assert record["gold_budget"] == 10
    assert record["ppi_accuracy_low"] <= record["ppi_accuracy"] <= record["ppi_accuracy_high"]
    assert {"ppi_balance", "ppi_balance_low", "ppi_balance_high"} <= set(record)
    json.dumps(record, allow_nan=False)
