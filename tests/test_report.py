"""Plots and the self-contained HTML report/summary of elicit.plots and elicit.report on synthetic inputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.config import load_params, resolve_run
from elicit.evaluate import diagnostics, evaluate
from elicit.group import GroupConfig, make_groups
from elicit.plots import (
    PLOT_TITLES,
    bias_tables,
    make_plots,
    plot_accuracy,
    plot_accuracy_vs_calls,
    plot_agreement,
    plot_bias,
    plot_loss_curves,
    plot_reliability,
    plot_zero_shot_hist,
)
from elicit.report import ReportConfig, render_report, render_summary
from elicit.report_tables import summary_table
from elicit.report_text import nuisance_summary
from elicit.stages.report import planned_costs
from helpers import TINY

PNG = b"\x89PNG\r\n\x1a\n"
CONFIGS = ("cfg_a", "cfg_b")


def synthetic_run(n: int = 60, with_gold: bool = True, seed: int = 0) -> dict[str, Any]:
    """Every input the report reads, small: items, labels for all methods, predictions, curves, telemetry."""
    rng = np.random.default_rng(seed)
    gold = rng.permutation(np.arange(n) % 2)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n),
            "text": [f"Scenario {i}: I did thing {i}." for i in range(n)],
            "gold": pd.array(gold if with_gold else [None] * n, dtype="Int8"),
            "consistency_id": pd.array([None] * n, dtype="Int64"),
        }
    )

    def labels_for(acc: float, s: int) -> pd.DataFrame:
        r = np.random.default_rng(100 + s + int(acc * 1000))
        right = r.random(n) < acc
        hard = np.where(right, gold, 1 - gold)
        return pd.DataFrame({"item_id": np.arange(n), "p_true": 0.5 + (hard - 0.5) * r.uniform(0.1, 0.9, n)})

    accs = {"zero_shot": 0.62, "zero_shot_calibrated": 0.64, "few_shot_mean": 0.66, "golden_fewshot": 0.9}
    labels: dict[str, dict[int, pd.DataFrame]] = {m: {0: labels_for(a, 0)} for m, a in accs.items()}
    for c, a in zip(CONFIGS, (0.8, 0.7), strict=True):
        labels[c] = {s: labels_for(a, s) for s in range(2)}
    labels["selected"] = labels["cfg_a"]

    rows = []
    qid = 0
    for i in range(n):
        for template, t_bias in (("t_a", 0.6), ("t_b", 0.0)):
            for framing in ("pos", "neg"):
                score = (2 * gold[i] - 1) * 1.0 + (0.4 if framing == "pos" else -0.4) + t_bias + rng.normal()
                rows.append((qid, 0, -1, i, "zero_shot", framing, template, [], [], -1, None, score))
                qid += 1
        for _ in range(3):
            ctx = rng.choice(n, 4, replace=False).tolist()
            shown = rng.integers(0, 2, 4).tolist()
            score = (2 * gold[i] - 1) + 0.8 * (np.mean(shown) - 0.5) + 0.3 * shown[-1] + rng.normal()
            framing = str(rng.choice(["pos", "neg"]))
            rows.append((qid, 1, i // 10, i, "few_shot", framing, "t_a", ctx, shown, -1, None, score))
            qid += 1
    predictions = pd.DataFrame(
        rows,
        columns=[
            "query_id",
            "round",
            "group_id",
            "target_id",
            "kind",
            "framing",
            "template_id",
            "context_ids",
            "context_shown",
            "flipped_pos",
            "flip_of",
            "score",
        ],
    )
    predictions.loc[5, "score"] = None  # a missing answer
    predictions["context_shown"] = predictions["context_shown"].map(lambda x: np.asarray(x, dtype=np.int8))

    curves = {
        c: {
            s: pd.DataFrame(
                {
                    "epoch": np.arange(20),
                    "mutual": np.exp(-np.arange(20) / 5) + s * 0.01,
                    "prior": 0.1 * np.ones(20),
                    "total": np.exp(-np.arange(20) / 5) + 0.1,
                }
            )
            for s in range(2)
        }
        for c in CONFIGS
    }
    nuisance = {
        c: {
            s: {
                "copy": 0.8 + 0.1 * s,
                "position": 0.3,
                "acquiescence_pos": 0.4,
                "acquiescence_neg": -0.1,
                "meaning": {"copy": "log-odds added per shown label of 1"},
            }
            for s in range(2)
        }
        for c in CONFIGS
    }
    telemetry = [
        {
            "job": "query.round0",
            "wall_s": 12.5,
            "calls": 2 * n,
            "cache_hits": 10,
            "prompt_tokens": 4000,
            "completion_tokens": 2 * n,
        },
        {
            "job": "query.round1",
            "wall_s": 40.0,
            "calls": 3 * n,
            "cache_hits": 0,
            "prompt_tokens": 20000,
            "completion_tokens": 3 * n,
        },
        {"job": "optimize.cfg_a", "wall_s": 3.0},
    ]
    calls = {
        "zero_shot": {"calls": 2 * n},
        "golden_fewshot": {"calls": 4 * n},
        "cfg_a": {"calls": 5 * n},
        "selected": {"calls": 5 * n},
    }
    selection = {
        "selected": "cfg_a",
        "method": "held-out tuple likelihood",
        "scores": {"cfg_a": -0.5, "cfg_b": -0.7},
        "gold_best": "cfg_a",
    }
    card = {
        "run": "tiny",
        "dataset": "ethics",
        "oracle": "sim_strong",
        "n": n,
        "seed": 0,
        "label_meaning": "the narrator's action is clearly morally wrong",
        "source": "https://github.com/hendrycks/ethics",
        "licence": "MIT",
        "citation": "Hendrycks et al. 2021",
        "class_balance": float(np.mean(gold)) if with_gold else None,
        "model": "simulated",
        "endpoint": "completions",
        "params": {
            "base": {"seed": 0},
            "optimize": {"configs": {c: {"mutual": 1.0} for c in CONFIGS}},
            "evaluate": {"n_boot": 50},
        },
    }
    return dict(
        items=items,
        labels=labels,
        predictions=predictions,
        curves=curves,
        nuisance=nuisance,
        telemetry=telemetry,
        calls=calls,
        selection=selection,
        card=card,
    )


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    r = synthetic_run()
    notes: list[str] = []
    r["metrics"] = evaluate(r["labels"], r["items"], seed=0, n_boot=50, notes=notes)
    r["diagnostics"] = diagnostics(r["labels"], r["items"])
    r["notes"] = notes
    return r


@pytest.fixture(scope="module")
def plots(run: dict[str, Any]) -> dict[str, bytes | None]:
    return make_plots(
        metrics=run["metrics"],
        diagnostics=run["diagnostics"],
        labels=run["labels"],
        items=run["items"],
        predictions=run["predictions"],
        curves=run["curves"],
        calls=run["calls"],
        selection=run["selection"],
    )


def assert_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    for src in re.findall(r"""<img[^>]*\ssrc\s*=\s*["']([^"']*)["']""", html, re.I):
        assert src.startswith("data:image/png;base64,")


# --------------------------------------------------------------------------------------------------- plots


def test_all_plots_render(plots: dict[str, bytes | None]) -> None:
    assert set(plots) == set(PLOT_TITLES)
    for name, png in plots.items():
        assert png is not None and png.startswith(PNG), name


def test_plots_return_none_on_missing_inputs() -> None:
    empty = pd.DataFrame(columns=["method", "seed", "metric", "value", "ci_low", "ci_high"])
    assert plot_accuracy(None) is None and plot_accuracy(empty) is None
    assert plot_reliability(None, None) is None
    assert plot_zero_shot_hist(None) is None
    assert plot_loss_curves(None) is None and plot_loss_curves({}) is None
    assert plot_bias(None) is None
    assert plot_agreement(None) is None and plot_agreement({"agreement": {"methods": ["a"], "matrix": [[1]]}}) is None
    assert plot_accuracy_vs_calls(empty, None) is None
    plots = make_plots()
    assert set(plots) == set(PLOT_TITLES) and all(v is None for v in plots.values())


def test_plots_without_gold() -> None:
    r = synthetic_run(n=30, with_gold=False)
    assert plot_reliability(r["labels"], r["items"]) is None
    png = plot_zero_shot_hist(r["predictions"], r["items"])
    assert png is not None and png.startswith(PNG)


def test_bias_tables_show_the_planted_biases(run: dict[str, Any]) -> None:
    t = bias_tables(run["predictions"])
    framing = t["framing"].set_index("framing")["mean"]
    assert framing["pos"] > framing["neg"]  # planted acquiescence +0.4 / -0.4
    template = t["template"].set_index("template")["mean"]
    assert template["t_a"] > template["t_b"] + 0.3  # planted template bias +0.6
    last = t["last_shown"].set_index("last_shown")["mean"]
    assert last[1] > last[0]  # planted pull towards the last shown label
    assert set(t["frac_shown"]["frac_shown"]).issubset({0.0, 0.25, 0.5, 0.75, 1.0})


# --------------------------------------------------------------------------------------------------- report


def test_report_is_self_contained_and_complete(run: dict[str, Any], plots: dict[str, bytes | None]) -> None:
    plots = dict(plots)
    plots["loss_curves"] = None  # one missing plot must read "not available"
    html = render_report(
        run["card"],
        run["metrics"],
        run["diagnostics"],
        plots,
        run["telemetry"],
        run["selection"],
        run["nuisance"],
        run["notes"],
    )
    assert_self_contained(html)
    assert html.count("<img ") == len(PLOT_TITLES) - 1
    assert "Not available (the inputs for this plot are missing" in html
    verdict_pos = html.index('id="verdict"')
    assert verdict_pos < html.index('id="dataset"') < html.index('id="metrics"') < html.index('id="params"')
    assert "The selected config cfg_a" in html
    assert "reads gold: reference only" in html
    assert "gold-best config: upper bound" in html
    assert "Your oracle copies shown labels with strength +0.85" in html
    assert "the narrator&#39;s action is clearly morally wrong" in html
    assert "https://github.com/hendrycks/ethics" in html  # as text, not as a link
    assert "n_boot: 50" in html  # the exact params as YAML
    assert "Not available in this run: majority_vote" in html  # absent baselines are named
    assert '<th>Oracle calls</th><td class="num">300</td>' in html  # summed over telemetry: 120 + 180 + none
    assert '<th>Prompt tokens</th><td class="num">24,000</td>' in html


def test_report_metrics_table_is_sorted_by_accuracy(run: dict[str, Any]) -> None:
    html = render_report(run["card"], run["metrics"], run["diagnostics"], {}, [], None, None, [])
    table = html[html.index('id="metrics"') : html.index('id="diagnostics"')]
    order = re.findall(r"<tr class=\"[^\"]*\">\s*<td>([a-z_]+)</td>", table)
    assert order[0] == "golden_fewshot" and order.index("cfg_a") < order.index("zero_shot")
    assert "No telemetry files" in html and "Not available: no fitted nuisance" in html
    assert_self_contained(html)


def test_gold_less_report() -> None:
    r = synthetic_run(n=30, with_gold=False)
    notes: list[str] = []
    metrics = evaluate(r["labels"], r["items"], seed=0, n_boot=20, notes=notes)
    diag = diagnostics(r["labels"], r["items"])
    plots = make_plots(
        metrics=metrics, diagnostics=diag, labels=r["labels"], items=r["items"], predictions=r["predictions"]
    )
    assert plots["accuracy"] is None and plots["reliability"] is None and plots["agreement"] is not None
    html = render_report(r["card"], metrics, diag, plots, r["telemetry"], r["selection"], r["nuisance"], notes)
    assert "No gold labels: only unsupervised diagnostics" in html
    assert "unknown (no gold)" in html
    assert_self_contained(html)


def test_nuisance_shapes() -> None:
    shapes = [
        {"copy": 0.5, "meaning": {"copy": "m"}},
        {"copy": {"value": 0.5, "meaning": "m"}},
        {"coefficients": {"copy": 0.5}, "meanings": {"copy": "m"}},
    ]
    for d in shapes:
        s = nuisance_summary({"cfg": {0: d}}, {"selected": "cfg"})
        assert s["sentences"] == ["Your oracle copies shown labels with strength +0.50 (m)."]


def test_summary_over_runs(run: dict[str, Any]) -> None:
    gl = synthetic_run(n=20, with_gold=False)
    gl["card"]["run"] = "nogold"
    empty = evaluate(gl["labels"], gl["items"], seed=0, n_boot=10)
    df, html = render_summary([(run["card"], run["metrics"]), (gl["card"], empty)])
    assert set(df["run"]) == {"tiny"}
    assert len(df) == run["metrics"]["method"].nunique()
    assert df["accuracy"].notna().all()
    assert df.iloc[0]["method"] == "golden_fewshot"  # sorted by accuracy within a run
    assert "nogold" in html and "No gold labels" in html
    assert_self_contained(html)
    assert summary_table([]).empty


def test_report_config() -> None:
    assert ReportConfig.from_dict(None).reliability_bins == 10
    with pytest.raises(ValueError, match="unknown key"):
        ReportConfig.from_dict({"title": "x"})


def test_report_with_nothing_at_all() -> None:
    html = render_report({}, pd.DataFrame(), None, {}, None, None, None, None)
    assert "No gold labels" in html and "Not available: no selection.json" in html
    assert html.count("Not available (the inputs for this plot are missing") == len(PLOT_TITLES)
    assert_self_contained(html)
    df, summary = render_summary([({"run": "r"}, pd.DataFrame())])
    assert df.empty and "No gold labels" in summary


def test_method_costs_charge_shared_rounds_and_own_jobs() -> None:
    from elicit.report_tables import method_costs

    telemetry = [
        {
            "job": "query.round0",
            "calls": 100,
            "cache_hits": 10,
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "wall_s": 2.0,
        },
        {
            "job": "query.round1",
            "calls": 50,
            "cache_hits": 0,
            "prompt_tokens": 2000,
            "completion_tokens": 50,
            "wall_s": 3.0,
        },
        {
            "job": "icm_budget",
            "calls": 30,
            "cache_hits": 0,
            "prompt_tokens": 900,
            "completion_tokens": 30,
            "wall_s": 1.5,
        },
        {"job": "embed", "wall_s": 9.0},
    ]
    costs = method_costs(["zero_shot", "full", "icm_budget", "selected"], telemetry)
    assert costs["zero_shot"]["calls"] == 100 and costs["zero_shot"]["jobs"] == ["query.round0"]
    assert costs["full"]["calls"] == 150 and costs["full"]["prompt_tokens"] == 3000 and costs["full"]["wall_s"] == 5.0
    assert costs["selected"] == costs["full"]
    assert costs["icm_budget"]["calls"] == 30 and costs["icm_budget"]["cache_hits"] == 0
    assert method_costs(["full"], [{"job": "embed", "wall_s": 1.0}]) == {}


# --------------------------------------------------------------------------------------------------- gold-free estimate


def with_goldfree(r: dict[str, Any], metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table as the evaluate stage writes it: gold metrics plus each method's gold-free estimate."""
    from elicit.evaluate import FEW_SHOT_ROUNDS, estimate_all, estimate_rows, with_estimates

    few_shot = r["predictions"][r["predictions"]["round"] >= 1]
    answers = {FEW_SHOT_ROUNDS: few_shot, "random_fewshot": few_shot}
    est = estimate_all(r["labels"], answers, r["items"]["item_id"].to_numpy(), seed=0, n_boot=20)
    return with_estimates(metrics, estimate_rows(est))


def test_report_opens_with_the_gold_free_estimate(run: dict[str, Any]) -> None:
    from elicit.evaluate import EXPORT_ECE, metric_row

    metrics = with_goldfree(run, run["metrics"])
    html = render_report(run["card"], metrics, run["diagnostics"], {}, [], run["selection"], None, [])
    assert html.index('id="estimate"') < html.index('id="verdict"') < html.index('id="metrics"')
    block = html[html.index('id="estimate"') : html.index('id="verdict"')]
    assert re.search(
        r"Estimated accuracy of the selected labels without gold: \d+ % \(95 % interval \d+–\d+ %\); "
        r"it assumes the model&#39;s calibrated beliefs are right\.",
        block,
    )
    assert "Calibrated on the oracle&#39;s answers in random_fewshot&#39;s own calls (60 items)" in block
    assert "Against gold they score" in block
    assert '<td>random_fewshot</td><td class="num">60</td>' in block  # selected's row of every method's estimate
    assert '<td>few-shot rounds</td><td class="num">60</td>' in block  # zero_shot's: answers it never read
    ece = metric_row(metrics, "selected", EXPORT_ECE)
    assert ece is not None
    poor = "The exported p_true is poorly calibrated against gold: ECE" in block
    assert poor == (ece.value > 0.05)
    assert "10 equal-width bins" in block
    assert_self_contained(html)


def test_gold_less_report_shows_the_estimate() -> None:
    r = synthetic_run(n=30, with_gold=False)
    metrics = with_goldfree(r, evaluate(r["labels"], r["items"], seed=0, n_boot=10))
    html = render_report(r["card"], metrics, None, {}, [], r["selection"], None, [])
    assert html.index("Estimated accuracy of the selected labels without gold") < html.index('id="verdict"')
    assert "No gold labels: only unsupervised diagnostics" in html and "Against gold" not in html
    df, summary = render_summary([(r["card"], metrics)])
    assert df.empty and "Estimated accuracy of the selected labels without gold" in summary
    old = render_report(r["card"], pd.DataFrame(), None, {}, [], None, None, [])
    assert "No gold-free estimate of the selected labels" in old


def test_report_counts_missing_answers_per_stage_and_template(run: dict[str, Any]) -> None:
    predictions = run["predictions"].copy()
    few_shot = np.flatnonzero(predictions["round"].to_numpy() == 1)
    predictions.loc[few_shot[:10], "score"] = None  # planted: 10 of round 1's 180 answers (all template t_a)
    predictions.loc[2, "score"] = None  # and 1 of round 0's 120 under template t_b (item 0, positive framing)
    calls = {"random_fewshot": pd.DataFrame({"template_id": ["t_r"] * 4, "score": [1.0, None, 0.5, 0.2]})}
    html = render_report(
        run["card"], run["metrics"], None, {}, [], None, None, [], predictions=predictions, calls=calls
    )
    table = html[html.index('id="missing-answers"') :]

    def cells(stage: str, template: str) -> tuple[str, str]:
        num = r"<td class=\"num\">(\d+)</td>"
        m = re.search(rf"<td>{re.escape(stage)}</td><td>{template}</td>{num}\s*{num}", table)
        assert m is not None, (stage, template)
        return m.group(1), m.group(2)

    assert cells("round 0 (zero-shot)", "t_a") == ("0", "120")
    assert cells("round 0 (zero-shot)", "t_b") == ("1", "120")
    assert cells("round 1 (few-shot)", "t_a") == ("10", "180")
    assert cells("random_fewshot (own calls)", "t_r") == ("1", "4")
    notes = html[html.index('class="notes"') :]
    assert "5.6 % of the oracle&#39;s answers in round 1 (few-shot) under template t_a are missing (10 of 180)" in notes
    assert "round 0 (zero-shot) under template t_b" not in notes  # 0.8 %: below the threshold


# --------------------------------------------------------------------------------------------------- planned vs actual


def _plan_pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plan (round 0 exact, round 2 a range) and a run whose round 2 asked more than its range allowed."""
    planned = pd.DataFrame(
        {
            "stage": ["query.round0", "query.round2", "golden_fewshot"],
            "kind": ["exact", "range", "exact"],
            "calls": [240.0, 100.0, 60.0],
            "calls_low": [240, 90, 60],
            "calls_high": [240, 120, 60],
            "prompt_tokens": [9000.0, 30000.0, 4000.0],
            "seconds": [0.1, 0.1, 0.1],
        }
    )
    actual = pd.DataFrame(
        {
            "stage": ["query.round0", "query.round2"],
            "queries": [240.0, 130.0],
            "calls": [200.0, 130.0],
            "cache_hits": [40.0, 0.0],
            "prompt_tokens": [float("nan"), 31000.0],
            "wall_s": [1.0, 2.0],
        }
    )
    return planned, actual


def test_report_shows_planned_vs_actual_after_the_costs(run: dict[str, Any]) -> None:
    planned, actual = _plan_pair()
    html = render_report(
        run["card"], run["metrics"], None, {}, run["telemetry"], None, None, [], planned=planned, actual=actual
    )
    assert html.index('id="costs"') < html.index('id="planned-vs-actual"') < html.index("Fitted oracle biases")
    section = html[html.index('id="planned-vs-actual"') : html.index("Fitted oracle biases")]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", section, re.S)]
    rows = [cells[i : i + 9] for i in range(0, len(cells), 9)]
    assert rows == [
        ["query.round0", "exact", "240", "–", "240", "1.00", "yes", "~9,000", "–"],
        ["query.round2", "range", "100", "90–120", "130", "1.30", "no", "~30,000", "31,000"],
        ["golden_fewshot", "exact", "60", "–", "–", "–", "no record", "~4,000", "–"],
    ]
    assert '<tr class="warn"><td>query.round2</td>' in section  # outside its range: marked
    total = (
        "Total: 400 queries planned (390–420), 370 asked; 1 of 3 planned jobs within their plan; no record of "
        "golden_fewshot; prompt tokens ~43,000 planned; for the 1 of 3 jobs that reported them, ~30,000 planned, "
        "31,000 reported."
    )
    assert f"<p>{total}</p>" in section
    assert "python -m elicit.cost --run tiny" in section
    assert "nan" not in section.lower()
    assert_self_contained(html)


def test_report_says_in_one_line_why_planned_vs_actual_is_missing(run: dict[str, Any]) -> None:
    planned, actual = _plan_pair()
    why = "results/tiny/groups.parquet is missing; run the group stage of run tiny"
    cases = {
        "no plan was passed to the report": {},
        why: {"unplanned_why": why, "actual": actual},
        "no record of what the run&#39;s oracle jobs did": {"planned": planned, "actual": actual.iloc[:0]},
    }
    for expected, kwargs in cases.items():
        html = render_report(run["card"], run["metrics"], None, {}, [], None, None, [], **kwargs)
        section = html[html.index('id="planned-vs-actual"') : html.index("Fitted oracle biases")]
        assert f"Planned vs actual oracle calls not available: {expected}" in section, section
        assert "<table>" not in section


def test_report_stage_plans_without_failing(tmp_path: Path) -> None:
    """The stage's plan: the run's own files or one line why not; a missing input never fails the report."""
    cfg = resolve_run(load_params(TINY), "tiny")
    items, emb, groups = tmp_path / "items.parquet", tmp_path / "embeddings.npy", tmp_path / "groups.parquet"
    r = synthetic_run(n=40)
    r["items"].to_parquet(items)
    np.save(emb, np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32))
    planned, why = planned_costs(cfg, items, emb, groups)
    assert planned is None and why == f"{groups} is missing; run the group stage of run tiny"
    make_groups(np.load(emb), GroupConfig.from_params(cfg.section("group")), 2, cfg.seed).to_parquet(groups)
    planned, why = planned_costs(cfg, items, emb, groups)
    assert why is None and planned is not None
    assert planned.loc[planned["stage"] == "query.round0", "calls"].item() == 40 * 2 * 2  # 2 framings x 2 templates
