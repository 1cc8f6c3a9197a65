"""Ablations of the selected config and the study table: planted differences come out, verdicts follow the CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from elicit import indeterminate as ind
from elicit.ablation import SELECTED, ablation_table, describe, run_ablations, variants
from elicit.evaluate import evaluate
from elicit.optimize import OptimizeConfig
from elicit.optimize.config import LossWeights
from elicit.optimize.synthetic import SyntheticSpec, generate
from elicit.report_tables import gold_best_config
from elicit.study import (
    StudyRun,
    compact_rows,
    long_table,
    markdown,
    per_draw_accuracy,
    replicate_markdown,
    replicate_rows,
    verdict_cell,
    warnings,
)
from elicit.verdicts import RunVerdict

FULL = OptimizeConfig(
    name="full",
    weights=LossWeights(mutual=1.0, prior=0.3, balance=0.5, nuisance=1.0),
    max_epochs=200,
)


def test_variants_remove_each_active_term_and_add_start_and_rounds() -> None:
    names = [v.name for v in variants(FULL, rounds=3)]
    assert names == [SELECTED, "-mutual", "-prior", "-balance", "-nuisance", "inverted_init", "rounds<=1", "rounds<=2"]
    by_name = {v.name: v for v in variants(FULL, rounds=2)}
    assert by_name["-prior"].config.weights.prior == 0 and by_name["-prior"].config.weights.mutual == 1.0
    assert by_name["inverted_init"].config.init == "inverted" and by_name["rounds<=1"].max_round == 1
    lone = OptimizeConfig(name="m", weights=LossWeights(mutual=1.0))
    assert [v.name for v in variants(lone, rounds=1)] == [SELECTED, "inverted_init"]


@pytest.fixture(scope="module")
def ablated() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = generate(SyntheticSpec(n_items=300, n_tuples=6000, seed=5))
    tuples = data.tuples.copy()
    tuples["round"] = np.where(np.arange(len(tuples)) % 2 == 0, 1, 2)  # two rounds of answers
    todo = [v for v in variants(FULL, rounds=2) if v.name in (SELECTED, "-mutual", "rounds<=1")]
    labels = run_ablations(todo, tuples, data.priors, data.items, data.consistency_rule, seeds=[0, 1], device="cpu")
    items = data.items.assign(gold=pd.array(data.truth.astype(int), dtype="Int8"))
    metrics = evaluate(labels, items, seed=0, n_boot=200, references=[SELECTED])
    return metrics, ablation_table(metrics, "full")


def test_removing_mutual_predictability_costs_accuracy_on_informative_calls(ablated) -> None:
    metrics, table = ablated
    t = table.set_index("variant")
    assert set(t.index) == {SELECTED, "-mutual", "rounds<=1"}
    assert t.loc[SELECTED, "delta_vs_selected"] == 0.0
    assert t.loc["-mutual", "accuracy"] < t.loc[SELECTED, "accuracy"] - 0.03  # the prior alone is weaker
    assert t.loc["-mutual", "delta_high"] < 0  # the paired interval of the refit's difference excludes 0
    # paired: the difference's interval is narrower than the marginal intervals would suggest
    width = t.loc["-mutual", "delta_high"] - t.loc["-mutual", "delta_low"]
    assert width < (t.loc["-mutual", "ci_high"] - t.loc["-mutual", "ci_low"]) + (
        t.loc[SELECTED, "ci_high"] - t.loc[SELECTED, "ci_low"]
    )
    lines = describe(table)
    assert any(line.startswith("-mutual") and "this part matters" in line for line in lines)


def test_fits_never_read_gold() -> None:
    data = generate(SyntheticSpec(n_items=120, n_tuples=2000, seed=2))
    tuples = data.tuples.assign(round=1)
    todo = variants(FULL.with_(max_epochs=20), rounds=1)
    a = run_ablations(todo, tuples, data.priors, data.items, "none", seeds=[0], device="cpu")
    shuffled = data.items.assign(gold=np.random.default_rng(0).permutation(data.truth))
    b = run_ablations(todo, tuples, data.priors, shuffled, "none", seeds=[0], device="cpu")
    for name in a:
        assert a[name][0].equals(b[name][0])


def _metrics(acc: dict[str, float], n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    labels = {}
    for m, a in acc.items():
        right = rng.random(n) < a
        labels[m] = {0: pd.DataFrame({"item_id": np.arange(n), "p_true": np.where(right, gold, 1 - gold) * 0.8 + 0.1})}
    items = pd.DataFrame({"item_id": np.arange(n), "gold": pd.array(gold, dtype="Int8")})
    return evaluate(labels, items, seed=0, n_boot=300)


def test_study_table_verdicts_follow_the_paired_cis() -> None:
    good = _metrics({"zero_shot": 0.6, "few_shot_mean": 0.7, "selected": 0.9, "full": 0.9, "mutual_only": 0.95,
                     "golden_fewshot": 0.95})  # fmt: skip
    tie = _metrics({"zero_shot": 0.7, "few_shot_mean": 0.72, "selected": 0.71, "full": 0.71}, seed=1)
    card = {"run": "x", "n": 400}
    assert verdict_cell(good, None, card).startswith("beats the cheap baselines (vs zero_shot +")
    assert "few_shot_mean +" in verdict_cell(good, None, card) and "*" in verdict_cell(good, None, card)
    assert verdict_cell(tie, None, card).startswith("ties them (vs zero_shot ") and "*" not in verdict_cell(
        tie, None, card
    )
    assert gold_best_config(good, ["full", "mutual_only"]) == "mutual_only"

    runs = [
        StudyRun(card={"run": "a", "dataset": "d", "oracle": "o", "n": 400}, metrics=good,
                 costs={"selected": {"calls": 1234, "prompt_tokens": 10, "completion_tokens": 2}},
                 selection={"selected": "full", "scores": {"full": 1.0, "mutual_only": 0.5}},
                 metrics_json={"selected": {"nuisance_agreement": 0.9, "positive_rate": 0.5}}),
        StudyRun(card={"run": "b", "dataset": "d", "oracle": "o", "n": 400}, metrics=tie,
                 selection={"selected": "full", "scores": {"full": 1.0}}),
    ]  # fmt: skip
    rows = {r["run"]: r for r in compact_rows(runs)}
    assert rows["a"]["gold_best"].endswith("(mutual_only)") and rows["a"]["calls"] == "1,234"
    assert rows["a"]["verdict"].startswith(RunVerdict.BEATS.value) and rows["b"]["verdict"].startswith("ties them")
    assert rows["b"]["icm_budget"] == "–" and rows["b"]["pgr"] == "–"
    md = markdown(runs, "# Notes\n\nhand-written", {"command": "cmd", "wall_min": 3.0})
    assert md.startswith("# Notes") and "| a | 400 |" in md and "`cmd`" in md and "3 min" in md
    assert "equal the known nuisance feature on 90 %" in md
    table = long_table(runs)
    sel = table[(table["run"] == "a") & (table["method"] == "selected")].iloc[0]
    assert sel["oracle_calls"] == 1234 and sel["tokens"] == 12
    assert table.loc[table["gold_best_upper_bound"], "method"].tolist() == ["mutual_only", "full"]
    assert set(table.loc[table["run"] == "a", "verdict"]) == {RunVerdict.BEATS.value}


def test_an_indeterminate_selection_makes_the_study_row_indeterminate() -> None:
    """The study's verdict is the report's headline: the same gold evidence reads "beats" until the run's
    selection.json says a gold-free signal fired, then "indeterminate" in the page's row and the long table."""
    good = _metrics({"zero_shot": 0.6, "few_shot_mean": 0.7, "selected": 0.9, "golden_fewshot": 0.95})
    fired = ind.Signal("restart_agreement", 0.7, 0.9, True, "restarts agree on 70 % of items")
    calm = ind.Signal("one_class", 0.5, 0.98, False, "fine")
    card = {"run": "a", "dataset": "d", "oracle": "o", "n": 400}
    runs = [
        StudyRun(card=card, metrics=good, selection={"selected": "full", "indeterminate": ind.to_json([calm], 400)}),
        StudyRun(card={**card, "run": "b"}, metrics=good,
                 selection={"selected": "full", "indeterminate": ind.to_json([fired, calm], 400)}),
    ]  # fmt: skip
    rows = {r["run"]: r["verdict"] for r in compact_rows(runs)}
    assert rows["a"].startswith("beats the cheap baselines")
    assert rows["b"] == "indeterminate (restart_agreement)"
    table = long_table(runs)
    assert set(table.loc[table["run"] == "b", "verdict"]) == {"indeterminate"}
    assert "| b | 400 |" in markdown(runs) and "indeterminate (restart_agreement)" in markdown(runs)


def test_warnings_name_collapse_and_nuisance_tracking() -> None:
    assert warnings({"selected": {"positive_rate": 0.99}}) == ["selected labels 99 % of items as 1 (collapse)"]
    assert warnings({"zero_shot": {"nuisance_agreement": 0.2}})[0].startswith("zero_shot labels equal")
    assert warnings({"selected": {"nuisance_agreement": 0.6, "positive_rate": 0.4}}) == []
    (mirror,) = warnings({"selected": {"flip_rate_vs_zero_shot": 0.8, "positive_rate": 0.4}})
    assert "disagrees with zero_shot on 80 %" in mirror and "mirror image" in mirror
    assert warnings({"selected": {"flip_rate_vs_zero_shot": 0.5}}) == []
    one_sided = {"selected": {"flip_rate_vs_zero_shot": 0.8}, "zero_shot": {"positive_rate": 1.0}}
    assert warnings(one_sided) == ["zero_shot labels 100 % of items as 1 (collapse)"]  # no mirror note then


def test_a_partial_study_lists_the_missing_runs() -> None:
    run = StudyRun(card={"run": "a", "n": 10}, metrics=_metrics({"zero_shot": 0.6, "selected": 0.7}))
    md = markdown([run], "", {"missing": ["b", "c"]})
    assert "**Partial study:** 2 listed runs had no results" in md and "`b`, `c`" in md


def test_replicate_table_verdicts_come_from_the_draws() -> None:
    """Across five draws `selected` is +10 over zero-shot each time (beats) and ±1 around few_shot_mean (ties);
    with two draws the same numbers give no verdict at all."""
    draws = []
    for k in range(5):
        fsm = 0.80 + (0.02 if k % 2 else -0.02)
        acc = {"zero_shot": 0.62 + 0.01 * k, "few_shot_mean": fsm, "selected": 0.72 + 0.01 * k,
               "golden_fewshot": 0.90}  # fmt: skip
        draws.append(StudyRun(card={"run": "r", "dataset": "d", "oracle": "o", "n": 2000},
                              metrics=_metrics(acc, n=2000, seed=k), belief_ceiling=0.8))  # fmt: skip
    acc = per_draw_accuracy(draws)
    assert list(acc.columns) == ["few_shot_mean", "golden_fewshot", "selected", "zero_shot"] and len(acc) == 5
    row = replicate_rows({"r": draws})[0]
    assert row["zero_shot"].endswith("beats") and "(5 draws)" in row["zero_shot"]
    assert row["few_shot_mean"].endswith("ties") or row["few_shot_mean"].endswith("worse")
    assert row["random_fewshot"] == "–" and row["belief_ceiling"] == "80.0"
    assert row["pgr"].startswith("0.")
    assert replicate_rows({"r": draws[:2]})[0]["zero_shot"].endswith("too few draws")
    md = "\n".join(replicate_markdown({"r": draws}))
    assert "## Verdicts over whole-pipeline draws" in md and "| r | 2000 | 5 |" in md


def test_the_ablations_of_a_replicated_run_are_on_the_page(ablated) -> None:
    """A replicated run has no single-draw row, but its first draw's ablations (paired CIs) still show."""
    _, table = ablated
    acc = {"zero_shot": 0.6, "few_shot_mean": 0.7, "selected": 0.75}
    card = {"run": "r", "dataset": "d", "oracle": "o", "n": 300}
    draws = [StudyRun(card=card, metrics=_metrics(acc, n=300, seed=k)) for k in range(5)]
    draws[0] = StudyRun(card=card, metrics=draws[0].metrics, ablation=table)
    md = markdown(draws, "", {}, groups={"r": draws})
    assert "## Verdicts over whole-pipeline draws" in md and "## Single draws" not in md
    assert "## Ablations of the selected config" in md and "-mutual" in md


def test_ablations_over_draws_apply_the_keep_rule() -> None:
    from elicit.study import ablations_over_draws, ablations_over_draws_markdown

    def draws(oracle: str, deltas: list[float]) -> list[StudyRun]:
        return [
            StudyRun(
                card={"run": f"r_{oracle}_{k}", "oracle": oracle, "n": 500},
                metrics=pd.DataFrame(),
                ablation=pd.DataFrame(
                    {"variant": ["selected", "-prior"], "config": "full", "delta_vs_selected": [0.0, d]}
                ),
            )
            for k, d in enumerate(deltas)
        ]

    good = {o: draws(o, [0.02, 0.025, 0.03]) for o in ("sim_latent", "sim_mixed", "sim_belief")}
    rows = ablations_over_draws({**good, "strong": draws("sim_strong", [-0.1, -0.1, -0.1])})
    (prior,) = rows
    assert prior.variant == "-prior" and prior.keep == "**passes**"  # the in-family loss is shown, not counted
    assert prior.cells["sim_latent"][3] == 3 and prior.cells["sim_latent"][0] == pytest.approx(0.025)
    mixed = {**good, "sim_belief": draws("sim_belief", [0.01, -0.03, 0.0])}
    (prior,) = ablations_over_draws(mixed)
    assert prior.keep.startswith("fails (lowest bound")
    single = {"sim_latent": draws("sim_latent", [0.02])}
    assert ablations_over_draws(single) == [] and ablations_over_draws_markdown(single) == []
    assert "keep rule" in "\n".join(ablations_over_draws_markdown(good))
