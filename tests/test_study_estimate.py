"""The study's estimate-against-truth table: hand-built metrics tables whose shares are known, and the targets."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from elicit.study_estimate import EstimateRun, estimate_markdown, estimate_vs_truth, run_errors, with_run_results

P = 0.75
N_GOLD = 300
SE = math.sqrt(P * (1 - P) / N_GOLD)  # 0.025: 2 SE = 0.05, binomial width 2 * 1.96 * SE = 0.098


def _metrics(rows: dict[str, dict[str, tuple[float, float, float]]]) -> pd.DataFrame:
    """method -> metric -> (value, ci_low, ci_high), all at seed -1."""
    out = [
        {"method": method, "seed": -1, "metric": metric, "value": v, "ci_low": lo, "ci_high": hi}
        for method, metrics in rows.items()
        for metric, (v, lo, hi) in metrics.items()
    ]
    return pd.DataFrame(out).astype({"seed": "int64"})


def _run(
    name: str, preset: str, est: tuple[float, float, float], acc: float = P, zero_shot: bool = True
) -> EstimateRun:
    n = (N_GOLD, N_GOLD, N_GOLD)
    rows = {
        "selected": {"accuracy": (acc, acc, acc), "est_accuracy": est, "n_gold": n, "ece": (0.04, 0.04, 0.04)},
    }
    if zero_shot:  # an estimate 10 points too high, its interval missing the truth
        rows["zero_shot"] = {"accuracy": (0.6, 0.6, 0.6), "est_accuracy": (0.7, 0.68, 0.72), "n_gold": n}
    return EstimateRun(name, preset, 400, _metrics(rows))


# sim_strong, p = 0.75, n_gold = 300 (2 SE = 0.05):   error   within 2 SE   covered   width
STRONG = [
    (0.760, 0.70, 0.80),  # +0.010       yes         yes      0.10
    (0.720, 0.68, 0.74),  # -0.030       yes         no       0.06
    (0.799, 0.70, 0.90),  # +0.049       yes         yes      0.20
    (0.810, 0.74, 0.86),  # +0.060       no          yes      0.12
    (0.650, 0.60, 0.70),  # -0.100       no          no       0.10
]


def test_shares_of_hand_built_runs() -> None:
    runs = [_run(f"s{k}", "sim_strong", est) for k, est in enumerate(STRONG)]
    runs += [_run("m0", "sim_mild", (0.76, 0.72, 0.80)), _run("m1", "sim_mild", (0.74, 0.70, 0.79))]
    runs += [_run("b0", "sim_belief", (0.90, 0.88, 0.92))]
    runs += [EstimateRun("old", "sim_strong", 400, _metrics({"selected": {"accuracy": (P, P, P)}}))]
    runs += [EstimateRun("nogold", "sim_latent", 400, _metrics({"selected": {"est_accuracy": (0.8, 0.7, 0.9)}}))]
    check = estimate_vs_truth(runs)
    assert check.without_estimate == ["old"] and check.without_gold == ["nogold"]
    t = check.table.set_index(["preset", "method"])
    assert list(check.table["preset"].unique()) == ["sim_strong", "sim_mild", "sim_belief"]  # the runs' order
    assert check.table["method"].tolist()[:2] == ["selected", "zero_shot"]  # selected first

    s = t.loc[("sim_strong", "selected")]
    assert s["runs"] == 5 and s["n"] == 400
    assert s["mean_error"] == pytest.approx((0.01 - 0.03 + 0.049 + 0.06 - 0.10) / 5)
    assert s["error_sd"] == pytest.approx(pd.Series([0.01, -0.03, 0.049, 0.06, -0.10]).std())
    assert s["within_2se"] == pytest.approx(0.6) and s["coverage"] == pytest.approx(0.6)
    assert s["rel_width"] == pytest.approx((0.10 + 0.06 + 0.20 + 0.12 + 0.10) / 5 / (2 * 1.96 * SE))
    assert s["ece"] == pytest.approx(0.04)
    assert s["judged"] and not s["met"]
    assert s["target"] == "not met: within 2 SE 60 % < 80 %; coverage 60 % < 90 %"

    m = t.loc[("sim_mild", "selected")]
    assert m["within_2se"] == 1.0 and m["coverage"] == 1.0 and m["met"] and m["target"] == "met"
    z = t.loc[("sim_mild", "zero_shot")]
    assert z["mean_error"] == pytest.approx(0.1) and z["within_2se"] == 0.0 and z["coverage"] == 0.0
    assert math.isnan(z["ece"]) and not z["met"]

    b = t.loc[("sim_belief", "selected")]
    assert not b["judged"] and pd.isna(b["met"]) and "assumes the model's beliefs are right" in b["target"]
    assert b["mean_error"] == pytest.approx(0.15) and math.isnan(b["error_sd"])  # one run: no spread

    md = "\n".join(estimate_markdown(check))
    assert "## How good are the labels, without gold: the estimate against the truth" in md
    assert "| sim_strong | 400 | 5 | -0.2 ± 6.5 | 60 % (3/5) | 60 % (3/5) | 1.2× | 4.0 | not met:" in md
    assert "| sim_mild | 400 | zero_shot | 2 | +10.0 ± 0.0 | 0 % (0/2) | 0 % (0/2) |" in md
    assert "1 runs have no estimate" in md and "`old`" in md and "`nogold`" in md
    cells = {line.replace("\\|", "").count("|") for line in md.splitlines() if line.startswith("| preset | n | runs")}
    assert cells == {10}  # 9 columns: no stray pipe in a header


def test_a_wide_interval_misses_the_width_target_and_a_perfect_estimate_meets_all() -> None:
    wide = estimate_vs_truth([_run(f"w{k}", "sim_strong", (P, P - 0.15, P + 0.15)) for k in range(3)])
    row = wide.table.iloc[0]
    assert row["within_2se"] == 1.0 and row["coverage"] == 1.0
    assert row["rel_width"] == pytest.approx(0.30 / (2 * 1.96 * SE)) and row["rel_width"] > 2
    assert row["target"].startswith("not met: width 3.1x > 2x")
    # at p = 1 the binomial interval has no width: the ratio is undefined, not infinite
    errors = run_errors(_run("p1", "sim_strong", (1.0, 0.99, 1.0), acc=1.0, zero_shot=False))
    assert bool(errors["within_2se"].iloc[0]) and math.isnan(errors["rel_width"].iloc[0])


def test_no_estimates_anywhere_gives_only_the_note_and_nothing_gives_nothing() -> None:
    old = EstimateRun("old", "sim_strong", 400, _metrics({"selected": {"accuracy": (P, P, P)}}))
    check = estimate_vs_truth([old])
    assert check.table.empty and check.without_estimate == ["old"]
    assert any("re-run their evaluate stage" in line for line in estimate_markdown(check))
    assert estimate_markdown(estimate_vs_truth([])) == []


def test_summary_columns_carry_each_methods_estimate_and_the_runs_verdict() -> None:
    gold = _run("g", "sim_strong", (0.76, 0.7, 0.8))
    table = pd.DataFrame({"run": ["g", "g"], "method": ["selected", "zero_shot"], "accuracy": [P, 0.6]}).astype(
        {"run": "string", "method": "string", "accuracy": "Float64"}
    )
    nogold = _metrics({"selected": {"est_accuracy": (0.8, 0.7, 0.9)}})
    out = with_run_results(table, [({"run": "g", "n": 400}, gold.metrics, None), ({"run": "x"}, nogold, None)])
    by = out.set_index(["run", "method"])
    assert by.loc[("g", "selected"), "est_accuracy"] == 0.76 and by.loc[("g", "zero_shot"), "est_high"] == 0.72
    assert by.loc[("x", "selected"), "est_low"] == 0.7 and pd.isna(by.loc[("x", "selected"), "accuracy"])
    assert by.loc[("x", "selected"), "verdict"] == "no gold labels"
    assert by.loc[("g", "selected"), "verdict"] == by.loc[("g", "zero_shot"), "verdict"]
