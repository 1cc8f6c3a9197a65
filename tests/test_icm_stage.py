"""The two ICMs as methods: ``icm_budget`` (the cheap variant, in every run) and ``icm`` (the paper's algorithm,
opt-in with ``baselines.icm.enabled``): the registry, the jobs each driver gets, the keys that moved when the names
swapped, and the faithful stage on a tiny simulated run (labels for every item; a run over its cap refused before
any call).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from elicit import io, pipeline
from elicit.baselines import ICMConfig
from elicit.baselines.icm_official_config import OfficialICMConfig
from elicit.config import MOVED_KEYS, SNAPSHOT_ENV, ParamsError, load_params
from elicit.contracts.methods import BASELINES, BY_NAME, STUDY_COLUMNS, enabled
from elicit.dvc_yaml import render_dvc_yaml
from elicit.paths import EXPORT, LABELS, REPORT, RunPaths, fill
from elicit.stages import _cli
from elicit.stages import icm as icm_stage
from elicit.stages._labels import read_labels
from elicit.stages._oracle import OracleSession
from helpers import REPO, TINY, make_copy, sh


def tiny(icm: dict[str, Any] | None = None, shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tiny params, run ``tiny`` overriding ``baselines.icm`` with ``icm`` and the shared section with
    ``shared``."""
    params = yaml.safe_load(TINY.read_text())
    if icm is not None:
        params["runs"]["tiny"]["overrides"] = {"baselines": {"icm": icm}}
    if shared is not None:
        params["baselines"]["icm"] = shared
    return params


def job_names(params: dict[str, Any], run: str = "tiny") -> list[str]:
    return [j.name for j in pipeline.jobs_for_run(params, run)]


# ---------------------------------------------------------------------------------------------- registry and rules


def test_the_registry_has_both_icms() -> None:
    faithful, cheap = BY_NAME["icm"], BY_NAME["icm_budget"]
    assert (faithful.stage, faithful.oracle_calls, faithful.in_study, faithful.opt_in) == ("icm", "own", True, True)
    assert (cheap.stage, cheap.oracle_calls, cheap.opt_in) == ("icm_budget", "own", False)
    assert "not the paper's algorithm" in cheap.description
    assert {"icm", "icm_budget"} <= set(BASELINES) and {"icm", "icm_budget"} <= set(STUDY_COLUMNS)
    assert not enabled(faithful, None) and not enabled(faithful, {"icm": {"enabled": False}})
    assert enabled(faithful, {"icm": {"enabled": True}}) and enabled(cheap, None)


def test_a_run_gets_the_icm_job_only_where_it_enables_it() -> None:
    off = tiny()
    assert "icm_budget" in job_names(off) and "icm" not in job_names(off)
    methods = pipeline.label_methods(off, {"run": "tiny"})
    assert "icm_budget" in methods and "icm" not in methods
    assert "icm--tiny" not in render_dvc_yaml(off) and "icm_budget--tiny" in render_dvc_yaml(off)

    on = tiny({"enabled": True})
    (job,) = [j for j in pipeline.jobs_for_run(on, "tiny") if j.name == "icm"]
    assert job.outputs == [fill(LABELS, run="tiny", method="icm")] and job.rule.name == "icm"
    assert job.command.startswith("python -m elicit.stages.icm --run tiny --items ")
    assert "runs.tiny.overrides.baselines.icm" in job.param_keys(on)
    for reader in ("evaluate", "report"):
        (r,) = [j for j in pipeline.jobs_for_run(on, "tiny") if j.name == reader]
        assert fill(LABELS, run="tiny", method="icm") in r.deps["labels"]
    assert "icm--tiny:" in render_dvc_yaml(on)
    assert "icm" not in job_names(on, "other")  # another run keeps the shared section's default: off

    everywhere = tiny(shared={"enabled": True})
    assert "icm" in job_names(everywhere, "other")
    assert "icm" not in job_names(tiny({"enabled": False}, shared={"enabled": True}))  # a run may opt out


def test_the_default_runs_have_icm_budget_and_no_faithful_icm() -> None:
    """The committed dvc.yaml holds every job of the default runs (tests/test_config.py: it is current)."""
    jobs = [name.split("--")[0] for name in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]]
    assert "icm_budget" in jobs and "icm" not in jobs


def snakemake_jobs(repo: Path) -> Counter[str]:
    """Jobs per rule of a forced dry run of run tiny (its report and export need every job of the run)."""
    targets = f"{fill(REPORT, run='tiny')} {fill(EXPORT, run='tiny')}"
    out = sh(f"snakemake -n -F --cores 2 {targets}", repo).stdout
    table = out.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()]
    return Counter({r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "total"})


@pytest.mark.slow  # two Snakemake dry runs and a DVC index in a copy (~1 min)
def test_both_drivers_build_the_icm_job_only_where_enabled(tmp_path: Path) -> None:
    on = tmp_path / "on.yaml"
    on.write_text(yaml.safe_dump(tiny({"enabled": True}), sort_keys=False))
    repo = make_copy(tmp_path / "repo", on)
    expected = Counter(j.rule.name for j in pipeline.jobs_for_run(load_params(on), "tiny"))
    assert expected["icm"] == 1 and snakemake_jobs(repo) == expected
    stages = sh("dvc stage list", repo).stdout
    assert "icm--tiny" in stages and "icm_budget--tiny" in stages

    (repo / "params.yaml").write_text(yaml.safe_dump(tiny(), sort_keys=False))
    sh("python -m elicit.pipeline dvc", repo)
    got = snakemake_jobs(repo)
    assert "icm" not in got and got["icm_budget"] == 1
    stages = sh("dvc stage list", repo).stdout
    assert "icm--tiny" not in stages and "icm_budget--tiny" in stages


# ---------------------------------------------------------------------------------------------- moved keys


def test_the_cheap_variants_moved_keys_are_exactly_its_own() -> None:
    own = {f.name for f in dataclasses.fields(ICMConfig)} - {f.name for f in dataclasses.fields(OfficialICMConfig)}
    assert {k.rsplit(".", 1)[1] for k in MOVED_KEYS if k.startswith("baselines.icm.")} == own


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda p: p["baselines"].update(icm_official={"batch_size": 64}),
            r"params\.yaml: baselines\.icm_official: moved to baselines\.icm\b",
        ),
        (
            lambda p: p["baselines"].update(icm={"max_items": 60, "calls_per_item": 2}),
            r"params\.yaml: baselines\.icm\.(max_items|calls_per_item): moved to baselines\.icm_budget\b",
        ),
        (
            lambda p: p["runs"]["tiny"].update(overrides={"baselines": {"icm": {"calls_per_item": 2}}}),
            r"params\.yaml: runs\.tiny\.overrides\.baselines: baselines\.icm\.calls_per_item: moved to "
            r"baselines\.icm_budget\b",
        ),
    ],
    ids=["icm_official", "cheap keys under icm", "cheap keys in an override"],
)
def test_old_icm_keys_name_their_new_place(tmp_path: Path, edit: Any, match: str) -> None:
    params = tiny()
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=match) as info:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- the stage


@pytest.fixture
def stage_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the icm stage in-process for run ``tiny`` (12 items on the simulated oracle) in ``tmp_path``, with the
    given ``baselines.icm`` override; returns (exit code, the batch sizes asked, the run's paths)."""
    (tmp_path / "data").symlink_to(REPO / "data")
    rows = pd.read_csv(REPO / "tests" / "fixtures" / "ethics_tiny.csv")
    items = pd.DataFrame(
        {
            "item_id": range(len(rows)),
            "text": rows["input"].astype(str),
            "gold": rows["label"].astype("Int8"),
            "consistency_id": pd.array([None] * len(rows), dtype="Int64"),
            "source_row": range(len(rows)),
        }
    )
    paths = RunPaths("tiny")
    (tmp_path / paths.items).parent.mkdir(parents=True)
    items.to_parquet(tmp_path / paths.items)
    asked: list[int] = []
    real_ask = OracleSession.ask

    def counting(self: OracleSession, queries: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
        asked.append(len(queries))
        return real_ask(self, queries, progress)

    monkeypatch.setattr(OracleSession, "ask", counting)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    monkeypatch.setattr(_cli, "_planned", {})

    def run(icm: dict[str, Any]) -> tuple[int, list[int], RunPaths]:
        params = tiny({"enabled": True, **icm})
        params["runs"]["tiny"]["overrides"]["baselines"]["seeds"] = [0, 1]
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        monkeypatch.setattr(sys, "argv", ["icm", "--run", "tiny"])
        try:
            _cli.main(icm_stage.run)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            io.confine_writes(None)
        return code, asked, paths

    return run


def test_the_stage_labels_every_item_and_records_every_call(stage_run: Any) -> None:
    code, asked, paths = stage_run({"batch_size": 8, "iterations": 6})
    assert code == 0 and sum(asked) > 0
    out = paths.labels_dir("icm")
    labels = read_labels(out)
    assert set(labels) == {0, 1}
    for df in labels.values():
        assert df["item_id"].tolist() == list(range(12)) and df["p_true"].between(0, 1).all()
    calls = pd.read_parquet(out / "calls.parquet")
    assert len(calls) == sum(asked) and set(calls["seed"]) == {0, 1} and (calls["kind"] == "icm").all()
    assert all((out / f"seed{s}.energy.parquet").is_file() for s in (0, 1))
    telemetry = json.loads(paths.telemetry("icm").read_text())
    assert telemetry["planned_calls"] > 0 and telemetry["seeds"] == 2


def test_the_stage_refuses_a_run_over_its_cap_before_any_call(
    stage_run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, asked, paths = stage_run({"batch_size": 8, "iterations": 6, "max_calls": 5})
    assert code == 2 and asked == []
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: baselines.icm: the run needs at least ")
    assert "over max_calls = 5" in line and "raise baselines.icm.max_calls" in line
    assert not paths.labels_dir("icm").exists() and not paths.telemetry("icm").exists()
