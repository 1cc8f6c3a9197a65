"""Hostile input, tried as a new user would (issue 20): names that build paths, typos and overrides that skipped every
check, and params.yaml edited while a run is going. Each row failed on the code before the fix.

The oracle cases (a trickling server, a pasted key) are in test_hostile_oracle.py, the data cases (file swaps,
one-class data, paths outside the repository, NUL bytes) in test_hostile_data.py, and the report's verdict on tiny
samples in test_hostile_report.py.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from elicit import io
from elicit.config import SNAPSHOT_ENV, ParamsError, load_params, snapshot_params
from elicit.stages import _cli
from helpers import REPO, TINY, copy_env, make_copy, sh

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def _unconfined() -> Iterator[None]:
    """setup() confines writes and remembers the params it read: process-wide state, reset for the other tests."""
    yield
    io.confine_writes(None)
    _cli._planned.clear()


def tiny() -> dict[str, Any]:
    return yaml.safe_load(TINY.read_text())


def add_config(name: str) -> Edit:
    return lambda p: p["optimize"]["configs"].update({name: {"weights": {"mutual": 1.0}}})


def override(run: str, overrides: dict[str, Any]) -> Edit:
    return lambda p: p["runs"][run].update(overrides=overrides)


REMOTE = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
# (id, edit of the tiny params, the one line it must give). Each edit was accepted before.
REFUSED: list[tuple[str, Edit, str]] = [
    (
        "1 config name climbs out of results/",
        add_config("../../../victim"),
        r"optimize\.configs: '\.\./\.\./\.\./victim' is not a safe name",
    ),
    ("1 config name with a dot", add_config("full.v2"), r"optimize\.configs: 'full\.v2' is not a safe name"),
    ("1 config called like a method", add_config("zero_shot"), r"optimize\.configs\.zero_shot: .*built-in method"),
    ("1 config called selected", add_config("selected"), r"optimize\.configs\.selected: .*built-in method"),
    (
        "1 run name with a dot",
        lambda p: p["runs"].update({"tiny.v2": p["runs"]["tiny"]}),
        r"runs: 'tiny\.v2' is not a safe name",
    ),
    ("1 run called study", lambda p: p["runs"].update(study=p["runs"]["tiny"]), r"runs\.study: 'study' is reserved"),
    (
        "1 dataset name with a slash",
        lambda p: p["datasets"].update({"my/data": p["datasets"]["ethics"]}),
        r"datasets: 'my/data' is not a safe name",
    ),
    (
        "1 oracle name with a dot",
        lambda p: p["oracles"].update({"sim.v2": p["oracles"]["sim_strong"]}),
        r"oracles: 'sim\.v2' is not a safe name",
    ),
    (
        "5 a pasted key as api_key_env",
        lambda p: p["oracles"].update(remote={**REMOTE, "api_key_env": "sk-proj-SECRETxx81aQ4L"}),
        r"oracles\.remote\.api_key_env: must be the NAME of an environment variable",
    ),
    (
        "5 a pasted all-digit key as api_key_env",
        lambda p: p["oracles"].update(remote={**REMOTE, "api_key_env": 918273645546372819}),
        r"oracles\.remote\.api_key_env: must be the NAME of an environment variable",
    ),
    (
        "5 a pasted key through an override",
        override("tiny", {"oracle": {"api_key_env": "sk-proj-SECRETxx81aQ4L"}}),
        r"runs\.tiny\.overrides\.oracle: .*api_key_env: must be the NAME",
    ),
    (
        "4 empty seeds through an override",
        override("tiny", {"base": {"seeds": []}}),
        r"runs\.tiny\.overrides\.base: base\.seeds: \[\] should be non-empty",
    ),
    (
        "4 typo section at the top level",
        lambda p: p.update(optimise={}),
        r"unknown key 'optimise'; did you mean 'optimize'",
    ),
    (
        "4 typo section in overrides",
        override("tiny", {"optimise": {"lr": 0.5}}),
        r"runs\.tiny\.overrides: 'optimise' is not allowed; did you mean 'optimize'",
    ),
    (
        "4 overrides of a section that a run cannot override",
        override("tiny", {"datasets": {"ethics": {"n": 3}}}),
        r"runs\.tiny\.overrides: 'datasets' is not allowed",
    ),
    (
        "4 typo key in an overridden schema section",
        override("tiny", {"group": {"sise": 3}}),
        r"runs\.tiny\.overrides\.group: group\.sise: unknown key 'sise'; did you mean 'size'",
    ),
    (
        "4 typo key in an overridden budget",
        override("tiny", {"budget": {"k_contxt": 3}}),
        r"runs\.tiny\.overrides\.budget: budget\.k_contxt: unknown key",
    ),
    (
        "4 bad value in an overridden optimize config",
        override("tiny", {"optimize": {"configs": {"full": {"weights": {"mutul": 1.0}}}}}),
        r"runs\.tiny\.overrides\.optimize: .*mutul.*did you mean 'mutual'",
    ),
    (
        "4 empty baseline seeds through an override",
        override("tiny", {"baselines": {"seeds": []}}),
        r"runs\.tiny\.overrides\.baselines: baselines\.seeds: \[\] should be non-empty",
    ),
    (
        "4 bad ICM setting through an override",
        override("tiny", {"baselines": {"icm_budget": {"calls_per_item": 0}}}),
        r"runs\.tiny\.overrides\.baselines: .*calls_per_item",
    ),
]


@pytest.mark.parametrize(("edit", "match"), [pytest.param(e, m, id=i) for i, e, m in REFUSED])
def test_bad_names_and_overrides_are_one_line(tmp_path: Path, edit: Edit, match: str) -> None:
    params = tiny()
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamsError, match=match) as info:
        load_params(path)
    assert "\n" not in str(info.value)
    assert "SECRET" not in str(info.value) and "918273" not in str(info.value)


def test_valid_overrides_still_pass() -> None:
    """The shipped params and the tiny ones (overrides of budget, baselines, group and base) stay valid."""
    load_params(REPO / "params.yaml")
    load_params(TINY)


def test_atomic_writers_refuse_targets_outside_the_run(tmp_path: Path) -> None:
    """Case 1's data loss: atomic_dir rmtree'd results/<run>/labels/../../../victim. The writers now refuse it."""
    run_dir = tmp_path / "results" / "tiny"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    io.confine_writes(run_dir)
    with (
        pytest.raises(io.UnsafeOutputError, match="outside this run's folder"),
        io.atomic_dir(run_dir / "labels" / ".." / ".." / ".." / "victim"),
    ):
        pass
    with pytest.raises(io.UnsafeOutputError):
        io.write_json({}, run_dir / ".." / "other" / "metrics.json")
    assert (victim / "thesis.tex").read_text() == "years of work"
    with io.atomic_dir(run_dir / "labels" / "full") as out:  # inside: fine
        (out / "seed0.parquet").write_text("x")
    assert (run_dir / "labels" / "full" / "seed0.parquet").exists()


def test_stage_setup_confines_writes_to_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    Path("params.yaml").write_text(TINY.read_text())
    _cli.setup(argparse.Namespace(run="tiny", params="params.yaml"))
    with pytest.raises(io.UnsafeOutputError):
        io.write_json({}, "results/other/metrics.json")
    io.write_json({}, "results/tiny/metrics.json")


# --- case 8: params.yaml edited while a run is going -------------------------------------------------------------


@pytest.fixture
def by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder with the tiny params, no Snakemake snapshot, and the guard acting as the group stage."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    monkeypatch.setattr(_cli, "_stage_name", lambda: "group")
    Path("params.yaml").write_text(TINY.read_text())


def test_stage_reads_the_snapshot_its_driver_planned_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under Snakemake a job reads the params Snakemake started with, not the file as edited since."""
    monkeypatch.chdir(tmp_path)
    planned = tiny()
    Path("params.yaml").write_text(yaml.safe_dump(planned))
    monkeypatch.setenv(SNAPSHOT_ENV, str(snapshot_params(planned, tmp_path / "snap").resolve()))
    edited = copy.deepcopy(planned)
    edited["runs"]["renamed"] = edited["runs"].pop("tiny")
    edited["pipeline"]["default_runs"] = edited["summary"]["runs"] = ["renamed"]
    Path("params.yaml").write_text(yaml.safe_dump(edited))
    run, _ = _cli.setup(argparse.Namespace(run="tiny", params="params.yaml"))
    assert run.name == "tiny" and run.n == planned["runs"]["tiny"]["n"]


def test_a_tracked_value_edited_during_a_job_stops_it(by_hand: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a snapshot (DVC, by hand) the job checks at its end that what it tracks did not change."""

    def job(edit: Edit) -> None:
        _cli.setup(argparse.Namespace(run="tiny", params="params.yaml"))
        params = tiny()
        edit(params)
        Path("params.yaml").write_text(yaml.safe_dump(params))

    _cli.main(lambda: job(lambda p: p["runs"]["other"].update(n=7)))  # not tracked by group of tiny: fine
    with pytest.raises(SystemExit) as info:
        _cli.main(lambda: job(lambda p: p["group"].update(size=5)))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: params.yaml changed during the run; re-run the command"


@pytest.mark.slow
def test_snakemake_run_survives_a_mid_run_edit(tmp_path: Path) -> None:
    """Rename the run in params.yaml once `load` is done: before, `group` failed with "unknown run 'tiny'"."""
    repo = make_copy(tmp_path / "repo")
    proc = subprocess.Popen(
        "snakemake --cores 1 results/tiny/groups.parquet",
        shell=True,
        cwd=repo,
        env=copy_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    items = repo / "results" / "tiny" / "items.parquet"
    deadline = time.monotonic() + 300
    while not items.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert items.exists(), proc.communicate()[0]
    assert not (repo / "results" / "tiny" / "groups.parquet").exists(), "embed and group ran before the edit"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["runs"]["renamed"] = params["runs"].pop("tiny")
    params["pipeline"]["default_runs"] = params["summary"]["runs"] = ["renamed"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert (repo / "results" / "tiny" / "groups.parquet").exists()


# --- case 1 through Snakemake: one line, no AmbiguousRuleException, nothing deleted -------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "match"),
    [("zero_shot", "optimize.configs.zero_shot: 'zero_shot' is a built-in"), ("../../../victim", "not a safe name")],
)
def test_snakemake_refuses_bad_config_names_in_one_line(tmp_path: Path, name: str, match: str) -> None:
    repo = make_copy(tmp_path / "repo")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    add_config(name)(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh("snakemake --cores 1 results/tiny/report.html", repo, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Using workflow")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], proc.stderr
    assert "AmbiguousRuleException" not in proc.stderr + proc.stdout
    assert (victim / "keep.txt").read_text() == "mine"


def test_unknown_run_is_one_line_before_the_params_guard(by_hand: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _cli.main(lambda: _cli.setup(argparse.Namespace(run="nosuchrun", params="params.yaml")) and None)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: unknown run 'nosuchrun'")
