"""Typed params: one model per section (elicit.params_model.Params composes them), the JSON schema generated from it,
one-line errors naming the key, and keys that moved failing with their new place."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from elicit.baselines import BootstrapConfig, FewShotConfig, ICMConfig
from elicit.config import MOVED_KEYS, SCHEMA_PATH, ParamsError, load_params, validate_params, with_includes
from elicit.datasets import DatasetConfig
from elicit.embed import EmbedConfig
from elicit.errors import ElicitError
from elicit.evaluate import EvaluateConfig
from elicit.group import GroupConfig, GroupError
from elicit.hygiene import HygieneConfig
from elicit.optimize import LossWeights, OptimizeConfig
from elicit.optimize.config import SelectConfig
from elicit.oracle import OracleConfig
from elicit.params_model import Params, main, render_schema
from elicit.params_types import name_pattern
from elicit.plan import BudgetConfig, PlanError
from elicit.report import ReportConfig
from helpers import REPO, TINY

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def tiny() -> dict[str, Any]:
    return yaml.safe_load(TINY.read_text())


def shipped() -> dict[str, Any]:
    return with_includes(yaml.safe_load((REPO / "params.yaml").read_text()), REPO)


# ----------------------------------------------------------------------------------------------------- the schema


def test_the_schema_file_is_generated_from_the_model() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "workflow/schemas/params.schema.yaml is stale: run `uv run python -m elicit.params_model schema`"
    )


def test_the_schema_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = tmp_path / "params.schema.yaml"
    assert main(["check", "--out", str(out)]) == 1 and "is stale" in capsys.readouterr().err
    assert main(["schema", "--out", str(out)]) == 0 and out.read_text() == SCHEMA_PATH.read_text()


def test_the_name_pattern_stays_where_snakemake_reads_it() -> None:
    assert SCHEMA["$defs"]["name"]["pattern"] == name_pattern() == "^[A-Za-z0-9][A-Za-z0-9_-]*$"
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["runs"]["propertyNames"] == {"$ref": "#/$defs/name"}


def test_sections_once_bare_now_have_full_schemas_with_descriptions() -> None:
    for section in ("budget", "optimize", "baselines", "evaluate", "report"):
        ref = SCHEMA["properties"][section]["$ref"].split("/")[-1]
        definition = SCHEMA["$defs"][ref]
        assert definition["additionalProperties"] is False and definition["properties"], section
        assert all("description" in p for p in definition["properties"].values()), section
    assert SCHEMA["$defs"]["BudgetConfig"]["properties"]["flip_fraction"]["exclusiveMaximum"] == 1


@pytest.mark.parametrize("params", [pytest.param(shipped, id="params.yaml"), pytest.param(tiny, id="tiny")])
def test_shipped_params_pass_the_schema_and_the_model(params: Any) -> None:
    p = params()
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(p)) == []
    validate_params(p)
    Params.model_validate(p)


BAD: list[tuple[str, Any, str]] = [
    ("unknown budget key", lambda p: p["budget"].update(k_contxt=3), r"budget\.k_contxt: unknown key 'k_contxt'"),
    (
        "bad enum",
        lambda p: p["embed"].update(device="tpu"),
        r"embed\.device: 'tpu' is not allowed; did you mean 'cpu'\? use one of: auto",
    ),
    ("bound", lambda p: p["evaluate"].update(ci=1.5), r"evaluate\.ci: 1\.5 is greater than or equal to the maximum"),
    (
        "weights typo",
        lambda p: p["optimize"]["configs"]["full"]["weights"].update(mutul=1.0),
        r"optimize\.configs\.full\.weights\.mutul: unknown loss name 'mutul'; did you mean 'mutual'\?",
    ),
    ("unsafe name", lambda p: p["runs"].update({"a.b": p["runs"]["tiny"]}), r"runs: 'a\.b' is not a safe name"),
    ("a string for a number", lambda p: p["group"].update(size="8"), r"group\.size: '8' is not of type 'integer'"),
    ("a key left out", lambda p: p["group"].pop("overlap"), r"group: 'overlap' is a required property"),
    (
        "an ICM framing twice",
        lambda p: p["baselines"]["icm_budget"].update(framings=["pos", "pos"]),
        r"baselines\.icm_budget\.framings: \['pos', 'pos'\] lists a framing twice",
    ),
]


@pytest.mark.parametrize(("edit", "match"), [pytest.param(e, m, id=i) for i, e, m in BAD])
def test_the_schema_and_the_model_refuse_the_same_params(edit: Any, match: str) -> None:
    p = tiny()
    edit(p)
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(p)), "the generated schema accepts it"
    with pytest.raises(ParamsError, match=match) as info:
        validate_params(p)
    assert str(info.value).startswith("params.yaml: ") and "\n" not in str(info.value)


def test_a_pasted_key_is_never_echoed() -> None:
    for value in ("sk-proj-SECRETxx81aQ4L", 918273645546372819, ""):
        p = tiny()
        p["oracle"]["api_key_env"] = value
        with pytest.raises(ParamsError, match=r"oracle\.api_key_env: must be the NAME") as info:
            validate_params(p)
        assert "SECRET" not in str(info.value) and "918273" not in str(info.value)


# ----------------------------------------------------------------------------------------------------- moved keys


@pytest.mark.parametrize("name", ["no_nuisance", "no_flip", "full_inverted_init"])
def test_an_ablation_config_in_the_sweep_names_the_ablate_stage(name: str, tmp_path: Path) -> None:
    p = tiny()
    p["optimize"]["configs"][name] = {"extends": "full", "weights": {"nuisance": 0.0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ParamsError, match=rf"optimize\.configs\.{name}: moved to the ablate stage") as info:
        load_params(tmp_path / "params.yaml")
    assert "results/<run>/ablation" in str(info.value) and "\n" not in str(info.value)
    p = tiny()
    p["runs"]["tiny"]["overrides"] = {"optimize": {"configs": {name: {"weights": {"mutual": 1.0}}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ParamsError, match=rf"runs\.tiny\.overrides\.optimize: optimize\.configs\.{name}: moved to"):
        load_params(tmp_path / "params.yaml")


def test_the_study_section_left_in_params_yaml_names_study_yaml(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"study": {"runs": ["a"], "ablate": []}}))
    main_file = {"include": ["study.yaml"], "study": {"runs": ["a"]}}
    with pytest.raises(ParamsError, match=r"^params\.yaml: study: moved to study\.yaml, which params\.yaml includes"):
        with_includes(main_file, tmp_path)
    load_params(TINY)  # a params file that includes nothing may hold its study itself


def test_study_runs_name_the_targets_that_replaced_them(tmp_path: Path) -> None:
    p = tiny()
    p["study"] = {"runs": ["tiny"], "ablate": []}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ParamsError, match=r"study\.runs: moved to study\.targets") as info:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(info.value)


def test_moved_keys_are_one_table() -> None:
    assert {"optimize.configs.no_nuisance", "optimize.configs.no_flip", "optimize.configs.full_inverted_init"} <= set(
        MOVED_KEYS
    )
    assert MOVED_KEYS["study"].file == "study.yaml"
    assert not {k.split(".")[-1] for k in MOVED_KEYS if k.startswith("optimize.configs.")} & set(
        load_params(REPO / "params.yaml")["optimize"]["configs"]
    )


# ----------------------------------------------------------------------------------------------------- section models

SECTIONS: list[tuple[Any, dict[str, Any]]] = [
    (EvaluateConfig, {}),
    (HygieneConfig, {}),
    (ReportConfig, {}),
    (BudgetConfig, {}),
    (EmbedConfig, {}),
    (GroupConfig, {}),
    (FewShotConfig, {}),
    (BootstrapConfig, {}),
    (ICMConfig, {}),
    (LossWeights, {}),
    (OptimizeConfig, {}),
    (SelectConfig, {}),
    (OracleConfig, {"name": "o", "kind": "embedded"}),
]


@pytest.mark.parametrize(("cls", "given"), [pytest.param(c, g, id=c.__name__) for c, g in SECTIONS])
def test_every_section_is_frozen_forbids_unknown_keys_and_documents_each_key(cls: Any, given: dict[str, Any]) -> None:
    cfg = cls(**given)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.__setattr__(dataclasses.fields(cfg)[0].name, None)
    with pytest.raises(ElicitError, match=r"unknown (key|loss name) 'bogus'") as info:
        cls(**given, bogus=1)
    assert "\n" not in str(info.value)
    assert all(f.description for f in cls.__pydantic_fields__.values())
    assert dataclasses.replace(cfg) == cfg


def test_a_value_given_in_code_is_checked_like_one_in_params() -> None:
    with pytest.raises(PlanError, match=r"^budget\.k_context: 0 is less than the minimum of 1$"):
        BudgetConfig(k_context=0)
    with pytest.raises(GroupError, match=r"^group\.size: 3 leaves no room"):
        dataclasses.replace(GroupConfig(), size=3)
    with pytest.raises(ValueError, match=r"^optimize\.configs\.x\.init: 'random' is not allowed"):
        OptimizeConfig(name="x", init="random")


def test_from_params_entry_points_keep_their_defaults() -> None:
    assert HygieneConfig.from_params(None) == HygieneConfig() and BudgetConfig.from_params(None) == BudgetConfig()
    assert EvaluateConfig.from_dict(None) == EvaluateConfig() and ReportConfig.from_dict(None) == ReportConfig()
    assert ICMConfig.from_params({"framings": ["pos"]}).framings == ("pos",)
    assert OptimizeConfig.from_params("c", {"weights": {"prior": 1}}).weights == LossWeights(mutual=0.0, prior=1.0)
    cfg = DatasetConfig.from_params("ethics", {"builtin": "ethics_commonsense"})
    assert cfg.name == "ethics" and cfg.consistency == "none" and cfg.label_meaning
    with pytest.raises(ValueError, match=r"^datasets\.x\.name: unknown key 'name'"):
        DatasetConfig.from_params("x", {"name": "y"})


def test_overrides_are_checked_against_the_run_s_own_oracle_only() -> None:
    """An override of the shared oracle: defaults meets only the run's own oracle, as the run sees it."""
    p = copy.deepcopy(tiny())
    p["oracles"]["remote"] = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    p["runs"]["tiny"]["overrides"] = {"oracle": {"truth_column": "nuisance"}}  # fine for the simulated sim_strong
    validate_params(p)
    from elicit.config import check_params

    check_params(p)
    p["runs"]["tiny"]["oracle"] = "remote"
    with pytest.raises(ParamsError, match=r"runs\.tiny\.overrides\.oracle: oracles\.remote\.truth_column: only for"):
        check_params(p)


def test_a_snapshot_is_trusted_only_while_its_content_matches_its_name(tmp_path: Path) -> None:
    """Snakemake's jobs read the snapshot it checked (no ~10 s typed check per job); an edited one is checked again."""
    from elicit.config import read_snapshot, snapshot_params

    params = load_params(TINY)
    path = snapshot_params(params, tmp_path)
    assert read_snapshot(path) == params
    edited = yaml.safe_load(path.read_text())
    edited["embed"]["modle"] = "x"  # a typo slipped into the file after it was written
    path.write_text(yaml.safe_dump(edited, sort_keys=True))
    with pytest.raises(ParamsError, match=r"embed\.modle: unknown key 'modle'"):
        read_snapshot(path)
