"""elicit.contracts: one consistency rule enum with one count and one repair, used by evaluate, export, the
baselines and the optimizer's layout; and the method registry the pipeline, report and study read.

The gsm8k tests plant the bug this module fixed: evaluate and export did not know ``same_answer_same_label``, so
gsm8k runs had no consistency-violation counts and DPO pairs rejected solutions with the chosen one's answer.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from elicit.baselines import bootstrap_fewshot
from elicit.baselines.fewshot import FewShotConfig
from elicit.contracts import (
    BASELINES,
    BUILTIN_METHODS,
    CONSISTENCY_RULES,
    FEWSHOT_METHODS,
    GOLD_READING,
    METHODS,
    STUDY_COLUMNS,
    UNLABELLED,
    VOTE_METHODS,
    ConsistencyRule,
    MethodKind,
    answer_keys,
    consistency_groups,
    count_violations,
    repair,
    violations,
)
from elicit.evaluate import CHEAP_BASELINES, COLUMNS, REFERENCES, diagnostics, metrics_json
from elicit.export import dpo_pairs
from elicit.optimize import OptimizeError, build_problem
from elicit.optimize.losses import consistency
from elicit.plots import RELIABILITY_METHODS

ROOT = Path(__file__).resolve().parents[1]
SAME_ANSWER = "same_answer_same_label"


def gsm8k_like() -> pd.DataFrame:
    """Three questions x four candidate solutions, each ending in a final answer (the answer_key)."""
    keys = [["18", "18", "20", "7"], ["5", "7", "5", "9"], ["3", "4", "3", "3"]]
    rows = []
    for q, group in enumerate(keys):
        for s, k in enumerate(group):
            rows.append(
                {
                    "item_id": 4 * q + s,
                    "text": f"Question: question {q}?\nSolution: steps {s}\nFinal answer: {k}",
                    "consistency_id": q,
                    "answer_key": k,
                }
            )
    items = pd.DataFrame(rows)
    items["consistency_id"] = items["consistency_id"].astype("Int64")
    return items


def labels(p: list[float]) -> dict[int, pd.DataFrame]:
    return {0: pd.DataFrame({"item_id": np.arange(len(p)), "p_true": p})}


# ----------------------------------------------------------------------------------------- the gsm8k bug


def test_evaluate_counts_gsm8k_style_violations() -> None:
    items = gsm8k_like()
    p = [
        *(0.9, 0.2, 0.1, 0.1),  # q0: the same answer "18" labelled 1 and 0 -> a violation
        *(0.8, 0.7, 0.6, 0.1),  # q1: answers "5" and "7" both labelled 1 -> a violation
        *(0.1, 0.9, 0.2, 0.3),  # q2: one answer true, the others false -> consistent
    ]
    diag = diagnostics({"m": labels(p)}, items, SAME_ANSWER)
    assert diag["consistency_rule"] == SAME_ANSWER
    assert diag["consistency_violations"]["m"] == {"groups": 3, "violations": 2, "rate": pytest.approx(2 / 3)}
    assert not any("unknown" in note for note in diag["notes"])
    no_gold = pd.DataFrame(columns=COLUMNS)
    assert metrics_json(no_gold, diag)["m"]["consistency_violation_rate"] == pytest.approx(0.666667)


def test_dpo_pairs_never_reject_the_chosen_answer() -> None:
    items = gsm8k_like()
    p = [
        *(0.9, 0.3, 0.2, 0.1),  # chosen 0 ("18"); 1 has the same answer: never its rejected
        *(0.9, 0.1, 0.2, 0.1),  # chosen 4 ("5"); 6 has the same answer
        *(0.2, 0.9, 0.1, 0.1),  # chosen 5 ("4"): 8, 10, 11 ("3") may all be rejected
    ]
    pairs = dpo_pairs(items, labels(p)[0], SAME_ANSWER)
    key = dict(zip(items["item_id"], items["answer_key"], strict=True))
    assert pairs and all(key[pr["rejected_id"]] != key[pr["chosen_id"]] for pr in pairs)
    assert sorted((pr["chosen_id"], pr["rejected_id"]) for pr in pairs) == [
        (0, 2),
        (0, 3),
        (4, 5),
        (4, 7),
        (9, 8),
        (9, 10),
        (9, 11),
    ]
    # the other rules have no answers: every claim labelled false is rejected
    assert len(dpo_pairs(items, labels(p)[0], "at_most_one_true")) == 9


# ----------------------------------------------------------------------------------------- count and repair


def random_items(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    cid = pd.array([None if rng.random() < 0.15 else int(rng.integers(0, 8)) for _ in range(n)], dtype="Int64")
    keys = [None if rng.random() < 0.1 else str(rng.integers(0, 3)) for _ in range(n)]
    return pd.DataFrame({"item_id": np.arange(n), "consistency_id": cid, "answer_key": keys})


def problem_of(items: pd.DataFrame, rule: str):  # type: ignore[no-untyped-def]
    n = len(items)
    tuples = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(n)],
            "target_id": np.arange(n),
            "kind": "few_shot",
            "framing": "pos",
            "context_ids": [np.array([(i + 1) % n]) for i in range(n)],
            "context_shown": [np.array([1], dtype=np.int8) for _ in range(n)],
            "flipped_pos": -1,
            "flip_of": None,
            "score": 0.5,
            "missing": False,
        }
    )
    priors = pd.DataFrame({"item_id": np.arange(n), "score": np.linspace(-1, 1, n)})
    return build_problem(tuples, priors, items, rule, dtype=torch.float64)


@pytest.mark.parametrize("rule", CONSISTENCY_RULES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_and_repair_agree_with_the_optimizer_layout(rule: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = random_items(rng)
    n = len(items)
    groups, keys = consistency_groups(items), answer_keys(items, n)
    layout = problem_of(items, rule).consistency_layout()
    scores = rng.normal(size=n)
    for with_unlabelled in (False, True):
        lab = rng.integers(0, 2, n).astype(np.int8)
        if with_unlabelled:
            lab[rng.random(n) < 0.2] = UNLABELLED
        # the baselines' groups and the optimizer's layout count the same violations
        assert count_violations(lab, groups, keys, rule) == int(violations(layout, lab).sum())
        fixed = repair(lab, scores, groups, keys, rule)
        assert count_violations(fixed, groups, keys, rule) == 0
        assert int(violations(layout, fixed).sum()) == 0
        assert np.array_equal(fixed == UNLABELLED, lab == UNLABELLED)  # repair labels nothing new
    # the soft loss is 0 at a repaired hard labelling, and not at one with violations
    problem = problem_of(items, rule)
    full = rng.integers(0, 2, n).astype(np.int8)
    for lab in (full, repair(full, scores, groups, keys, rule)):
        z = torch.as_tensor(np.where(lab == 1, 30.0, -30.0), dtype=torch.float64)
        loss = float(consistency(z, problem))
        assert (loss < 1e-6) == (count_violations(lab, groups, keys, rule) == 0)


def test_one_count_for_evaluate_and_the_baselines() -> None:
    items = gsm8k_like()
    hard = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=np.int8)
    groups, keys = consistency_groups(items), answer_keys(items, len(items))
    # q0: "18" mixed (1 pair); q1: "5" mixed (item 6 vs 4) and "5"/"7" both true (1 pair) -> 2; q2: fine
    assert [count_violations(hard, [g], keys, SAME_ANSWER) for g in groups] == [1, 2, 0]
    diag = diagnostics({"m": labels(hard.astype(float).tolist())}, items, SAME_ANSWER)
    assert diag["consistency_violations"]["m"]["violations"] == 2  # groups with a violation


def test_bootstrap_repairs_gsm8k_style_groups() -> None:
    items = gsm8k_like()
    n = len(items)
    priors = pd.DataFrame({"item_id": np.arange(n), "score": [2.0, -1.0, 1.5, -2.0] * 3})

    def ask(q: pd.DataFrame) -> pd.DataFrame:
        return q.assign(score=[1.0 if t % 2 == 0 else -1.0 for t in q["target_id"]])

    groups = pd.DataFrame({"round": 1, "group_id": 0, "item_id": np.arange(n), "is_anchor": False})
    cfg = FewShotConfig(template_id="t0", k_context=3)
    out, _ = bootstrap_fewshot(items, groups, priors, ask, cfg, rounds=1, consistency_rule=SAME_ANSWER)
    hard = (out["p_true"].to_numpy() >= 0.5).astype(np.int8)
    assert count_violations(hard, consistency_groups(items), answer_keys(items, n), SAME_ANSWER) == 0


# ----------------------------------------------------------------------------------------- the rule names


def test_rules_round_trip_from_params_strings() -> None:
    assert CONSISTENCY_RULES == ("none", "at_most_one_true", "exactly_one_true", SAME_ANSWER)
    for rule in ConsistencyRule:
        assert ConsistencyRule.parse(rule.value) is rule and ConsistencyRule.parse(rule) is rule
        assert str(rule) == rule.value and json.loads(json.dumps(rule)) == rule.value
        assert yaml.safe_load(yaml.safe_dump(str(rule))) == rule.value
        assert rule.description and "\n" not in rule.description
    assert ConsistencyRule.parse(None) is ConsistencyRule.NONE
    shipped = [yaml.safe_load((ROOT / f).read_text()) for f in ("params.yaml", "tests/fixtures/params.tiny.yaml")]
    used = {d.get("consistency", "none") for p in shipped for d in (p.get("datasets") or {}).values()}
    assert used and all(ConsistencyRule.parse(r) in ConsistencyRule for r in used)  # no aliases needed
    datasets = importlib.import_module("elicit.datasets")
    assert set(getattr(datasets, "CONSISTENCY_RULES", CONSISTENCY_RULES)) == set(CONSISTENCY_RULES)


def _bootstrap(rule: str) -> None:
    items = gsm8k_like()
    priors = pd.DataFrame({"item_id": np.arange(12), "score": 0.0})
    groups = pd.DataFrame({"round": 1, "group_id": 0, "item_id": np.arange(12), "is_anchor": False})
    bootstrap_fewshot(items, groups, priors, lambda q: q, FewShotConfig(template_id="t0"), consistency_rule=rule)


@pytest.mark.parametrize(
    "call",
    [
        lambda rule: ConsistencyRule.parse(rule),
        lambda rule: diagnostics({"m": labels([0.5] * 12)}, gsm8k_like(), rule),
        lambda rule: dpo_pairs(gsm8k_like(), labels([0.5] * 12)[0], rule),
        lambda rule: problem_of(gsm8k_like(), rule),
        _bootstrap,
    ],
)
def test_an_unknown_rule_is_one_line_naming_the_valid_ones(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unknown consistency rule 'paraphrases'; use one of: ") as err:
        call("paraphrases")
    assert "\n" not in str(err.value) and all(r in str(err.value) for r in CONSISTENCY_RULES)


def test_the_optimizer_says_which_column_a_rule_needs() -> None:
    items = gsm8k_like()
    with pytest.raises(OptimizeError, match="needs an answer_key column"):
        problem_of(items.drop(columns="answer_key"), SAME_ANSWER)
    with pytest.raises(OptimizeError, match="needs items with a consistency_id column"):
        problem_of(items.drop(columns="consistency_id"), "at_most_one_true")


# ----------------------------------------------------------------------------------------- the method registry


def test_the_registry_declares_every_method_once() -> None:
    assert len(set(BUILTIN_METHODS)) == len(METHODS)
    assert VOTE_METHODS == ("zero_shot", "zero_shot_calibrated", "few_shot_mean", "majority_vote", "dawid_skene")
    assert FEWSHOT_METHODS == ("golden_fewshot", "random_fewshot", "bootstrap_fewshot")
    assert GOLD_READING == ("golden_fewshot",) and BASELINES[-1] == "golden_fewshot"
    kinds = {m.name: m.kind for m in METHODS}
    assert kinds["gold_best"] is MethodKind.REFERENCE and kinds["selected"] is MethodKind.FITTED
    for m in METHODS:
        if m.stage is not None:
            importlib.import_module(f"elicit.stages.{m.stage}")
    assert STUDY_COLUMNS[-2:] == ("gold_best", "golden_fewshot")  # upper bounds last
    # the lists that pick methods for a figure or a comparison name registered methods only
    for chosen in (RELIABILITY_METHODS, REFERENCES, CHEAP_BASELINES, STUDY_COLUMNS):
        assert set(chosen) <= set(BUILTIN_METHODS)


def test_the_pipeline_uses_the_registry_names() -> None:
    pipeline = importlib.import_module("elicit.pipeline")
    assert pipeline.VOTE_METHODS == VOTE_METHODS
    assert pipeline.FEWSHOT_METHODS == FEWSHOT_METHODS
    assert pipeline.BUILTIN_METHODS == BUILTIN_METHODS
