"""params.yaml: loading, schema check, and resolving one run's view of it.

Snakemake validates ``params.yaml`` against ``workflow/schemas/params.schema.yaml``; DVC never does, so every stage
checks the same schema here before it reads a key. A run (``runs.<run>``) names a dataset, an oracle, a size and a
seed, and may override any section for itself (``runs.<run>.overrides.<section>``), so one experiment never needs a
second params file.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from elicit.errors import ElicitError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ElicitError, ValueError):
    """A params.yaml problem, stated in one line with the key and the fix."""


@cache
def _schema() -> dict[str, Any]:
    if not SCHEMA_PATH.exists():  # installed without the repo: fall back to the packaged copy
        raise ParamsError(f"params schema not found at {SCHEMA_PATH}; run elicit from a checkout of the repo")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def name_pattern() -> str:
    """The one pattern of run, dataset, oracle and config names (``$defs.name`` of the schema): no dots or slashes,
    because names build paths (``results/<run>/labels/<config>/``, ``telemetry/optimize.<config>.json``)."""
    return str(_schema()["$defs"]["name"]["pattern"])


def _nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _schema_message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message, made to name the offending key and the nearest valid one where it can."""
    schema = err.schema if isinstance(err.schema, dict) else {}
    if err.absolute_path and err.absolute_path[-1] == "api_key_env":  # the value may be a pasted key: never echo it
        return "must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = list(schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        if extra:
            return f"unknown key '{extra[0]}'; {_nearest(str(extra[0]), known)}known keys: {', '.join(known)}"
    if err.validator == "pattern" and err.validator_value == name_pattern():
        return (
            f"{err.instance!r} is not a safe name: use letters, digits, '_' and '-' only, starting with a letter "
            "or digit (no dots or slashes: names become folder and file names)"
        )
    if err.validator == "enum" and isinstance(err.instance, str):
        options = [str(v) for v in schema.get("enum", [])]
        return f"'{err.instance}' is not allowed; {_nearest(err.instance, options)}use one of: {', '.join(options)}"
    return str(err.message)


def validate_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check params against the JSON schema; raise one line naming the key, the problem and the fix."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ParamsError(f"{source}: {key}: {_schema_message(err)}; fix this key (schema: {SCHEMA_PATH.name})")


SNAPSHOT_ENV = "ELICIT_PARAMS_SNAPSHOT"
"""Set by the Snakefile to the params it planned the run with; stages read these instead of a params.yaml that may
have been edited since the run started (elicit.stages._cli)."""


def snapshot_params(params: dict[str, Any], folder: Path | str = ".snakemake/elicit") -> Path:
    """Write the params a driver planned with to ``<folder>/params-<sha>.yaml`` (named by content, written once)."""
    text = yaml.safe_dump(params, sort_keys=True)
    path = Path(folder) / f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(
            f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None


INCLUDABLE = ("runs", "study", "datasets", "oracles")
"""Sections an included params file (``include:``) may hold; their entries join the main file's."""


def with_includes(params: dict[str, Any], base_dir: Path | str = ".", source: str = "params.yaml") -> dict[str, Any]:
    """The params with the files listed under ``include:`` merged in (the study's runs live in ``study.yaml``).

    An included file may hold only :data:`INCLUDABLE` sections; a name defined twice is an error, so a run means
    the same thing wherever it is read. Paths are relative to the main file's folder.
    """
    includes = params.get("include") or []
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ParamsError(f"{source}: include: must be a list of params file paths, e.g. [study.yaml]")
    merged = copy.deepcopy(params)
    merged.pop("include", None)
    for name in includes:
        path = Path(base_dir) / name
        extra = _read_yaml(path)
        if not isinstance(extra, dict):
            raise ParamsError(f"{path} must be a mapping of sections ({', '.join(INCLUDABLE)})")
        for section, entries in extra.items():
            if section not in INCLUDABLE:
                raise ParamsError(
                    f"{path}: {section}: an included file may hold only {', '.join(INCLUDABLE)}; "
                    f"{_nearest(str(section), list(INCLUDABLE))}move it to {source}"
                )
            if not isinstance(entries, dict):
                raise ParamsError(f"{path}: {section}: must be a mapping")
            target = merged.setdefault(section, {})
            for key, value in entries.items():
                if key in target:
                    raise ParamsError(f"{path}: {section}.{key} is also defined in {source}; keep one of them")
                target[key] = value
    return merged


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read params.yaml (with the files it includes) and validate it."""
    path = Path(path)
    params = _read_yaml(path)
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections (datasets, oracles, runs, ...)")
    params = with_includes(params, path.parent, str(path))
    validate_params(params, str(path))
    check_params(params, str(path))
    return params


def check_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """What the schema cannot say: references between sections, reserved names, and each run's overrides checked
    like the sections they override. Snakemake calls it too (``workflow/rules/common.smk``)."""
    for run, entry in params["runs"].items():
        if entry["dataset"] not in params["datasets"]:
            known = ", ".join(sorted(params["datasets"]))
            raise ParamsError(
                f"{source}: runs.{run}.dataset: unknown dataset '{entry['dataset']}'; use one of: {known}"
            )
        if entry["oracle"] not in params["oracles"]:
            known = ", ".join(sorted(params["oracles"]))
            raise ParamsError(f"{source}: runs.{run}.oracle: unknown oracle '{entry['oracle']}'; use one of: {known}")
    for run in params["pipeline"]["default_runs"]:
        if run not in params["runs"]:
            raise ParamsError(f"{source}: pipeline.default_runs names unknown run '{run}'; add it under runs:")
    check_reserved_names(params, source)
    from elicit.oracle.base import OracleError, check_oracle_params

    for name, settings in params["oracles"].items():
        try:
            check_oracle_params(name, settings, params.get("oracle"))
        except OracleError as exc:
            raise ParamsError(f"{source}: {exc}") from None
    for run, entry in params["runs"].items():
        if entry.get("overrides"):
            check_overrides(params, run, source)


RESERVED_RUN_NAMES = ("study", "summary")
"""``results/study/`` and ``results/summary.*`` are the study's and the summary's own outputs."""


def check_reserved_names(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Names that would collide with a built-in output: an optimize config called like a method (its labels folder
    would be the method's), or a run called like a folder the study or summary writes."""
    from elicit.pipeline import BUILTIN_METHODS

    for name in params.get("optimize", {}).get("configs", {}) or {}:
        if name in BUILTIN_METHODS:
            raise ParamsError(
                f"{source}: optimize.configs.{name}: '{name}' is a built-in method's name (its labels live in "
                f"labels/{name}/); rename the config (reserved: {', '.join(BUILTIN_METHODS)})"
            )
    for name in params["runs"]:
        if name in RESERVED_RUN_NAMES:
            raise ParamsError(
                f"{source}: runs.{name}: '{name}' is reserved (results/{name}* is written by the {name} stage); "
                "rename the run"
            )


def _section_checks() -> dict[str, Callable[[Any], object]]:
    """Each overridable section's own validator (the one its stage applies); imported on use, since some pull in
    torch."""
    from elicit.baselines.fewshot import BootstrapConfig, FewShotConfig
    from elicit.baselines.icm import ICMConfig
    from elicit.embed import EmbedConfig
    from elicit.evaluate import EvaluateConfig
    from elicit.group import GroupConfig
    from elicit.hygiene import HygieneConfig
    from elicit.optimize import OptimizeSection
    from elicit.plan import BudgetConfig
    from elicit.report import ReportConfig

    def baselines(d: Any) -> None:
        known = ["seeds", "icm", "fewshot", "bootstrap"]
        for key in d:
            if key not in known:
                raise ParamsError(f"baselines.{key}: unknown key; {_nearest(key, known)}known keys: {', '.join(known)}")
        seeds = d.get("seeds")
        if seeds is not None and (
            not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds)
        ):
            raise ParamsError("baselines.seeds: must be null (= base.seeds) or a non-empty list of seeds >= 0")
        ICMConfig.from_params(d.get("icm"))
        FewShotConfig.from_params(d.get("fewshot"))
        BootstrapConfig.from_params(d.get("bootstrap"))

    return {
        "embed": EmbedConfig.from_params,
        "group": GroupConfig.from_params,
        "hygiene": HygieneConfig.from_params,
        "budget": BudgetConfig.from_params,
        "optimize": OptimizeSection.from_params,
        "baselines": baselines,
        "evaluate": EvaluateConfig.from_dict,
        "report": ReportConfig.from_dict,
    }


def check_overrides(params: dict[str, Any], run: str, source: str = "params.yaml") -> None:
    """A run's overrides are checked exactly like the sections they override: the schema over the merged params,
    then the section's own validator. Without this, ``overrides: {base: {seeds: []}}`` reached the stages."""
    entry = params["runs"][run]
    view = resolve_run(params, run)
    merged = dict(params)
    for section in entry["overrides"]:
        merged[section] = view.section(section)
    try:
        validate_params(merged, source)
    except ParamsError as exc:
        raise ParamsError(str(exc).replace(f"{source}: ", f"{source}: runs.{run}.overrides: ", 1)) from None
    if "oracle" in entry["overrides"]:
        from elicit.oracle.base import check_oracle_params

        try:
            check_oracle_params(view.oracle, view.oracle_params, merged["oracle"])
        except RuntimeError as exc:  # OracleError
            raise ParamsError(f"{source}: runs.{run}.overrides.oracle: {exc}") from None
    checks = _section_checks()
    for section in entry["overrides"]:
        check = checks.get(section)
        if check is None:
            continue
        try:
            check(merged[section])
        except ValueError as exc:
            raise ParamsError(f"{source}: runs.{run}.overrides.{section}: {exc}") from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class RunConfig:
    """One experiment: a dataset + an oracle + a size, and its per-run overrides."""

    name: str
    dataset: str
    oracle: str
    n: int | None
    seed: int
    positive_fraction: float | None
    overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict, repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A params section as this run sees it (the run's overrides merged over the shared section)."""
        base = self.params.get(name, {})
        over = self.overrides.get(name)
        if over is None:
            return copy.deepcopy(base)
        if not isinstance(base, dict) or not isinstance(over, dict):
            return copy.deepcopy(over)
        return _deep_merge(base, over)

    @property
    def dataset_params(self) -> dict[str, Any]:
        return copy.deepcopy(self.params["datasets"][self.dataset])

    @property
    def oracle_params(self) -> dict[str, Any]:
        return copy.deepcopy(self.params["oracles"][self.oracle])


def resolve_run(params: dict[str, Any], run: str) -> RunConfig:
    """Look a run up by name; an unknown name is one line listing the known ones."""
    runs = params["runs"]
    if run not in runs:
        known = ", ".join(sorted(runs))
        raise ParamsError(f"unknown run '{run}'; use one of: {known} (or add runs.{run} to params.yaml)")
    entry = runs[run]
    base = params.get("base", {})
    return RunConfig(
        name=run,
        dataset=entry["dataset"],
        oracle=entry["oracle"],
        n=entry.get("n"),
        seed=int(entry.get("seed", base.get("seed", 0))),
        positive_fraction=entry.get("positive_fraction"),
        overrides=entry.get("overrides", {}) or {},
        params=params,
    )
