"""params.yaml: schema errors are one line naming the key; runs resolve with their overrides; dvc.yaml is current."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from elicit import dvc_yaml, tracking
from elicit.config import ParamsError, load_params, resolve_run, validate_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(REPO / "params.yaml")


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_and_tiny_params_are_valid(params: dict) -> None:
    load_params(REPO / "tests" / "fixtures" / "params.tiny.yaml")
    assert set(params["pipeline"]["default_runs"]) <= set(params["runs"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p["group"].update(size="ten"), r"group\.size: 'ten' is not of type 'integer'"),
        (lambda p: p["base"].update(rounds=0), r"base\.rounds"),
        (lambda p: p["embed"].update(modle="x"), r"embed\.modle: unknown key 'modle'; did you mean 'model'"),
        (lambda p: p["runs"]["ethics"].update(dataset="nope"), r"runs\.ethics\.dataset: unknown dataset 'nope'"),
        (lambda p: p["runs"]["ethics"].update(oracle="nope"), r"runs\.ethics\.oracle: unknown oracle 'nope'"),
        (lambda p: p["runs"]["ethics"].update(n=-3), r"runs\.ethics\.n"),
        (lambda p: p["pipeline"].update(default_runs=["ghost"]), r"unknown run 'ghost'"),
        (lambda p: p.pop("runs"), r"'runs' is a required property"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, params: dict, edit, match: str) -> None:
    bad = copy.deepcopy(params)
    edit(bad)
    with pytest.raises(ParamsError, match=match) as info:
        load_params(write(tmp_path, bad))
    assert "\n" not in str(info.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("base: [\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)


def test_unknown_run_lists_the_known_ones(params: dict) -> None:
    with pytest.raises(ParamsError, match="unknown run 'x'; use one of: .*ethics"):
        resolve_run(params, "x")


def test_run_overrides_merge_over_sections(params: dict) -> None:
    p = copy.deepcopy(params)
    p["runs"]["ethics"]["overrides"] = {"group": {"size": 8}}
    validate_params(p)
    run = resolve_run(p, "ethics")
    assert run.section("group")["size"] == 8
    assert run.section("group")["overlap"] == p["group"]["overlap"]
    assert resolve_run(p, "ethics__sim_strong").section("group")["size"] == p["group"]["size"]


def test_dvc_yaml_is_current() -> None:
    expected = dvc_yaml.render_dvc_yaml(load_params(REPO / "params.yaml"))
    assert (REPO / "dvc.yaml").read_text() == expected, "dvc.yaml is stale: run `python -m elicit.pipeline dvc`"


def test_tracked_params_follow_the_run(params: dict) -> None:
    """A job tracks the run's own fields, never its description or another run's entry."""
    tracked = tracking.tracked_params(params, "load", "ethics")
    dataset = params["runs"]["ethics"]["dataset"]
    assert tracked[f"datasets.{dataset}"] == params["datasets"][dataset]
    assert tracked["runs.ethics.dataset"] == dataset and tracked["runs.ethics.n"] == params["runs"]["ethics"]["n"]
    assert not any(k in ("runs.ethics", "runs.ethics.description") for k in tracked)
    assert not any(k.startswith("runs.ethics__sim_strong") for k in tracked)
    assert "base.seed" in tracked  # the run sets no seed of its own
