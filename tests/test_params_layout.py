"""A params.yaml a user can read: short, the study's runs in their own included file, configs that extend others."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from elicit.config import ParamsError, load_params, with_includes
from elicit.optimize import OptimizeError, OptimizeSection
from elicit.optimize.config import resolve_extends
from elicit.pipeline import listed_runs

REPO = Path(__file__).resolve().parents[1]


def test_params_yaml_is_short_and_the_study_lives_in_its_own_file() -> None:
    text = (REPO / "params.yaml").read_text()
    assert len(text.splitlines()) <= 200
    raw = yaml.safe_load(text)
    assert raw["include"] == ["study.yaml"] and "study" not in raw
    assert set(raw["runs"]) == set(raw["pipeline"]["default_runs"])
    params = load_params(REPO / "params.yaml")
    assert set(listed_runs(params, "study")) <= set(params["runs"])  # the study's runs resolve like any other


def test_builtin_datasets_are_one_line_each() -> None:
    text = (REPO / "params.yaml").read_text()
    block = text.split("\ndatasets:\n")[1].split("\n\n")[0]
    entries = [line for line in block.splitlines() if line.startswith("  ") and not line.lstrip().startswith("#")]
    assert entries and all(line.count("{") >= 1 for line in entries), "a builtin entry spans several lines"


def test_include_merges_runs_and_refuses_a_name_twice(tmp_path: Path) -> None:
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"runs": {"b": {"dataset": "d", "oracle": "o"}}}))
    merged = with_includes({"include": ["extra.yaml"], "runs": {"a": {}}}, tmp_path)
    assert set(merged["runs"]) == {"a", "b"} and "include" not in merged
    with pytest.raises(ParamsError, match=r"runs\.b is also defined in params\.yaml; keep one of them"):
        with_includes({"include": ["extra.yaml"], "runs": {"b": {}}}, tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"optimize": {}}))
    with pytest.raises(ParamsError, match=r"optimize: an included file may hold only runs, study, datasets, oracles"):
        with_includes({"include": ["bad.yaml"]}, tmp_path)
    with pytest.raises(ParamsError, match="not found"):
        with_includes({"include": ["missing.yaml"]}, tmp_path)


def test_extends_merges_weights_term_by_term() -> None:
    raw = {
        "full": {"weights": {"mutual": 1.0, "prior": 0.3, "nuisance": 1.0}, "init": "prior"},
        "no_nuisance": {"extends": "full", "weights": {"nuisance": 0.0}},
        "deeper": {"extends": "no_nuisance", "init": "inverted"},
    }
    assert resolve_extends(raw, "deeper") == {
        "weights": {"mutual": 1.0, "prior": 0.3, "nuisance": 0.0},
        "init": "inverted",
    }
    section = OptimizeSection.from_params({"configs": raw, "loop_config": {"weights": {"mutual": 1.0}}})
    assert section.configs["deeper"].weights.nuisance == 0.0 and section.configs["deeper"].init == "inverted"
    assert section.configs["full"].weights.nuisance == 1.0


@pytest.mark.parametrize(
    ("configs", "match"),
    [
        ({"a": {"extends": "fulll"}, "full": {"weights": {"mutual": 1}}}, r"a\.extends: no config named 'fulll'.*full"),
        ({"a": {"extends": "b"}, "b": {"extends": "a"}}, r"extends itself through a -> b"),
    ],
)
def test_bad_extends_is_one_line(configs: dict, match: str) -> None:
    with pytest.raises(OptimizeError, match=match):
        OptimizeSection.from_params({"configs": configs, "loop_config": {"weights": {"mutual": 1.0}}})


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from elicit.errors import ElicitError
    from elicit.stages import _cli

    def user_error() -> None:
        raise ParamsError("params.yaml: group.size: fix it")

    with pytest.raises(SystemExit) as info:
        _cli.main(user_error)
    assert info.value.code == 2 and capsys.readouterr().err == "error: params.yaml: group.size: fix it\n"
    assert issubclass(ParamsError, ElicitError) and issubclass(OptimizeError, ElicitError)

    def bug() -> None:
        raise ValueError("shapes disagree (a bug)")

    with pytest.raises(ValueError, match="shapes disagree"):
        _cli.main(bug)


def test_the_default_sweep_holds_no_ablation() -> None:
    """An ablation config in the sweep costs every run an optimize job and lets the gold-free select pick it (it
    picked the adversarial full_inverted_init on Gemma); ablations are the ablate stage's."""
    configs = load_params(REPO / "params.yaml")["optimize"]["configs"]
    section = OptimizeSection.from_params(load_params(REPO / "params.yaml")["optimize"])
    assert not {"no_nuisance", "no_flip", "full_inverted_init"} & set(configs)
    assert all(c.init == "prior" for c in section.configs.values())
