"""The whole params.yaml as one typed model, and the JSON schema generated from it.

:class:`Params` composes the sections, each the typed model of the module that uses it (``budget:`` is
:class:`elicit.plan.BudgetConfig`, ``optimize:`` :data:`elicit.optimize.config.OptimizeParams`, ...); the few
sections no stage reads as a whole (``base``, ``pipeline``, ``runs.<run>``, ``baselines``, ``study``, ``summary``)
are defined here. ``elicit.config.validate_params`` checks params with it (every stage, and Snakemake through
``workflow/rules/common.smk``), and ``workflow/schemas/params.schema.yaml`` is generated from it (JSON Schema draft
2020-12, for Snakemake's ``validate()`` and editors)::

    uv run python -m elicit.params_model schema   # write workflow/schemas/params.schema.yaml
    uv run python -m elicit.params_model check    # exit 1 when the committed file is stale

Why a module of its own: :mod:`elicit.config` is imported by every stage and by every section's module (for the
shared types and the one-line errors), while this model imports every section's module; here, nothing imports it
back, and a stage pays for it only where params are validated (``elicit.config._section_checks``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, model_validator
from pydantic_core import CoreSchema, core_schema

from elicit.baselines.fewshot import BootstrapConfig, FewShotConfig
from elicit.baselines.icm import ICMConfig
from elicit.baselines.icm_official_config import OfficialICMConfig
from elicit.config import SCHEMA_PATH, moved_key
from elicit.datasets.config import DatasetConfig
from elicit.embed import EmbedConfig
from elicit.evaluate.metrics import EvaluateConfig
from elicit.group import GroupConfig
from elicit.hygiene import HygieneConfig
from elicit.io import write_or_check
from elicit.optimize.config import OptimizeParams
from elicit.oracle.base import OracleConfig, OracleDefaults, settings_keys
from elicit.params_types import (
    NAME_DESCRIPTION,
    NAME_PATTERN,
    SECTION,
    Float,
    Int,
    Name,
    NonEmptyStr,
    Str,
    clean_schema,
    fail,
)
from elicit.plan import BudgetConfig
from elicit.protocol import ProtocolConfig
from elicit.report import ReportConfig

MODEL = ConfigDict(**SECTION, frozen=True)


def optional(description: str) -> Any:
    """A key params.yaml may leave out, but not set to null (absent is not null: a stage then uses the class
    defaults, where null would be a value)."""
    return Field(default=None, description=description)


Seed = Annotated[Int, Field(ge=0)]
Overridable = Literal[
    "base", "embed", "group", "hygiene", "budget", "optimize", "baselines", "evaluate", "report", "oracle", "protocol"
]
"""Sections a run may override for itself (``runs.<run>.overrides``)."""


class AllKeys:
    """In :class:`Params`, a section whose every key params.yaml must write (the class defaults serve code and
    tests; the pipeline reads no default of these sections). Checked after the section's own keys, so a typo is
    named as an unknown key first."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        keys = [name for name, info in source.__pydantic_fields__.items()]

        def written(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> Any:
            out = inner(value)
            if isinstance(value, Mapping):
                for key in keys:
                    if key not in value:
                        fail((), f"{key!r} is a required property")
            return out

        self.keys = keys
        return core_schema.no_info_wrap_validator_function(written, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "required": list(self.keys)}


class BaseSection(BaseModel):
    """``base:``: the seeds and rounds every run shares."""

    model_config = MODEL

    seed: Seed = Field(description="seed of every stochastic step unless a run sets its own")
    seeds: list[Seed] = Field(
        min_length=1, description="restarts of stochastic methods (optimize configs, ICM, random/bootstrap few-shot)"
    )
    rounds: Int = Field(ge=1, le=10, description="few-shot rounds after the zero-shot round 0")


class PipelineSection(BaseModel):
    """``pipeline:``: what a bare ``snakemake`` / ``dvc repro`` builds."""

    model_config = MODEL

    default_runs: list[Str] = Field(min_length=1, description="runs built by a bare `snakemake` / `dvc repro`")


class SummarySection(BaseModel):
    """``summary:``: the runs compared side by side."""

    model_config = MODEL

    runs: list[Str] = Field(min_length=1, description="runs compared in results/summary.{parquet,html}")


class StudySection(BaseModel):
    """``study:`` (in study.yaml, which params.yaml includes): the results study of docs/results.md."""

    model_config = MODEL

    targets: dict[Name, list[Str]] = Field(
        min_length=1,
        description=(
            "the study's runs by named target (`snakemake --cores 2 study_<target>` builds one target's runs, each "
            "sized to run in about 90 minutes here; `study` builds them all and the page), in the page's order"
        ),
    )
    ablate: list[Str] = Field(
        default_factory=list, description="study runs that also get the ablations of their selected config"
    )


class RunEntry(BaseModel):
    """``runs.<run>``: one experiment, a dataset + an oracle + a size (resolved by elicit.config.resolve_run)."""

    model_config = MODEL

    dataset: Str = Field(description="the dataset: a key of datasets:")
    oracle: Str = Field(description="the oracle: a key of oracles:")
    n: Int | None = Field(default=None, ge=1, description="items sampled from the dataset; null = all of them")
    seed: Seed = optional("the run's own seed of every stochastic step (default base.seed)")
    positive_fraction: Float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="share of label 1 the sample is drawn to (gold-stratified, in load only); null = as drawn",
    )
    gold_budget: Int = Field(
        default=0,
        ge=0,
        description=(
            "items whose gold the pipeline may read (a seeded random sample chosen without gold; elicit.gold_budget): "
            "PPI intervals and a gold-checked config choice; left out of every evaluation metric. 0 = none"
        ),
    )
    overrides: dict[Overridable, Any] = Field(
        default_factory=dict,
        description=(
            "the run's own values of sections, deep-merged over them (e.g. group: {size: 8}) and checked like the "
            "sections (elicit.config.check_overrides)"
        ),
    )
    description: Str = optional("what the run is for, in words (tracked by no stage)")
    replicates: Int | None = Field(
        default=None,
        ge=1,
        description=(
            "whole-pipeline draws of this run (subsample, grouping, plan, oracle noise, fit): the run itself and "
            "<run>__draw1 .. <run>__draw<N-1>, each with seed + k (elicit.replicates); tracked by no stage"
        ),
    )


class BaselinesSection(BaseModel):
    """``baselines:``: the methods the elicited labels are compared with (ICM and the few-shot prompts)."""

    model_config = MODEL

    seeds: list[Seed] | None = Field(
        default=None,
        min_length=1,
        description="restarts of icm, icm_budget, random / bootstrap few-shot; null = base.seeds",
    )
    icm: OfficialICMConfig | None = Field(
        default=None,
        description="Internal Coherence Maximization as its paper runs it (Wen et al. 2025); opt-in (enabled: true)",
    )
    icm_budget: ICMConfig | None = Field(
        default=None, description="the cheap ICM variant within a call budget, in every run; not the paper's algorithm"
    )
    fewshot: FewShotConfig | None = Field(
        default=None, description="golden_fewshot, random_fewshot and bootstrap_fewshot prompts"
    )
    bootstrap: BootstrapConfig | None = Field(
        default=None, description="bootstrap_fewshot: the model's own labels, re-prompted"
    )


class Params(BaseModel):
    """params.yaml of elicit: the one params file of both drivers (Snakemake and DVC). Generated from
    elicit.params_model.Params by `python -m elicit.params_model schema`; every stage checks the same model
    (elicit.config.load_params), the run overrides included."""

    model_config = ConfigDict(**MODEL, title="params.yaml")

    include: list[NonEmptyStr] = Field(
        default_factory=list,
        description="other params files whose runs, study, datasets and oracles join these (e.g. [study.yaml])",
    )
    base: BaseSection = Field(description="seeds and rounds every run shares")
    pipeline: PipelineSection = Field(description="what a bare `snakemake` / `dvc repro` builds")
    summary: SummarySection = Field(description="the runs compared in results/summary.html")
    runs: dict[Name, RunEntry] = Field(
        min_length=1, description="the experiments: a run = a dataset + an oracle + a size"
    )
    datasets: dict[Name, DatasetConfig] = Field(
        min_length=1, description="named datasets: a builtin by name, or your own file or hub dataset"
    )
    oracle: OracleDefaults = optional(
        "defaults shared by every oracle (any key of oracles.<name>) and the answer cache"
    )
    oracles: dict[Name, OracleConfig] = Field(min_length=1, description="named oracles, each over the oracle: defaults")
    embed: Annotated[EmbedConfig, AllKeys()] = Field(description="sentence embeddings of the item texts")
    group: Annotated[GroupConfig, AllKeys()] = Field(description="groups of similar items: the few-shot context")
    hygiene: Annotated[HygieneConfig, AllKeys()] = optional(
        "load: exact / near-duplicate texts within the dataset and with its other_splits (elicit.hygiene)"
    )
    budget: BudgetConfig = optional("oracle calls a few-shot round spends, and the switches that identify biases")
    optimize: OptimizeParams = optional("the soft-label fit and the gold-free config choice")
    baselines: BaselinesSection = optional("the methods the labels are compared with")
    evaluate: EvaluateConfig = optional("metrics against gold and their bootstrap intervals")
    report: ReportConfig = optional("the HTML report of a run")
    protocol: ProtocolConfig = optional(
        "the ICM paper's evaluation of every label set as many-shot demonstrations for a test half; opt-in"
    )
    study: StudySection = optional("the results study (study.yaml): its runs and the ones that get ablations")

    @model_validator(mode="before")
    @classmethod
    def _entries(cls, data: Any) -> Any:
        """Keys still at a place they moved from fail naming the new one; each dataset and oracle entry gets its
        key as its name, and each oracle the shared ``oracle:`` defaults it does not set itself."""
        if not isinstance(data, Mapping):
            return data
        moved = moved_key(data)
        if moved is not None:
            fail(*moved)
        data = dict(data)
        data["datasets"] = _named(data.get("datasets"), "datasets", DatasetConfig)
        defaults = data.get("oracle")
        known = settings_keys()
        shared = {k: v for k, v in defaults.items() if k in known} if isinstance(defaults, Mapping) else {}
        data["oracles"] = _named(data.get("oracles"), "oracles", OracleConfig, shared)
        return data


def _named(entries: Any, section: str, tp: Any, shared: Mapping[str, Any] | None = None) -> Any:
    if not isinstance(entries, Mapping):
        return entries
    out: dict[Any, Any] = {}
    for key, entry in entries.items():
        if isinstance(entry, Mapping):
            if "name" in entry:
                known = ", ".join(k for k in tp.__pydantic_fields__ if k != "name")
                fail((section, key, "name"), f"unknown key 'name' (the entry's name is its key); known keys: {known}")
            entry = {**(shared or {}), **entry, "name": key}
        out[key] = entry
    return out


# ---------------------------------------------------------------------------------------------- the schema file

HEADER = (
    "# Generated by `uv run python -m elicit.params_model schema` from elicit.params_model.Params (the sections'\n"
    "# typed models); do not edit by hand. tests/test_params_model.py fails while it is stale.\n"
)


def json_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of params.yaml, as workflow/schemas/params.schema.yaml holds it."""
    schema = clean_schema(Params.model_json_schema())
    defs = schema.pop("$defs", {})
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": schema.pop("description"),
        "type": schema.pop("type"),
        "required": schema.pop("required"),
        "additionalProperties": schema.pop("additionalProperties"),
    }
    name = {"type": "string", "pattern": NAME_PATTERN, "description": NAME_DESCRIPTION}
    return {**head, "$defs": {"name": name, **dict(sorted(defs.items()))}, **schema}


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars and small mappings of scalars without a description (one line each)."""


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=all(_scalar(v) for v in data))


def _dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flat = "description" not in data and all(
        _scalar(v) or (isinstance(v, list) and all(map(_scalar, v))) for v in data.values()
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flat)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def render_schema() -> str:
    """workflow/schemas/params.schema.yaml as :func:`json_schema` makes it (a header, then YAML)."""
    body = yaml.dump(json_schema(), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="write or check workflow/schemas/params.schema.yaml from the typed model")
    p.add_argument("action", choices=["schema", "check"])
    p.add_argument("--out", default=str(SCHEMA_PATH))
    args = p.parse_args(argv)
    return write_or_check(args.out, render_schema(), args.action, "uv run python -m elicit.params_model schema")


if __name__ == "__main__":
    sys.exit(main())
