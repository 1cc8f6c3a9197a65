"""params.yaml: loading, the typed checks every section shares, and resolving one run's view of it.

Each section of params.yaml is a typed model (a frozen pydantic dataclass) in the module that uses it: ``budget:``
is :class:`elicit.plan.BudgetConfig`, ``optimize:`` :class:`elicit.optimize.OptimizeSection`, and so on.
:class:`elicit.params_model.Params` composes them, and ``workflow/schemas/params.schema.yaml`` (what Snakemake and
editors read) is generated from it: ``python -m elicit.params_model schema``. Every stage checks the whole params
with that model before it reads a key (DVC never validates), and a failed check is one line naming the key, the
problem and, for a typo, the nearest valid key.

This module holds what the sections share (the safe-name pattern, strict scalar types, the one-line error, moved
keys), the loading (``include:``, references between sections, run overrides) and :class:`RunConfig`. A run
(``runs.<run>``) names a dataset, an oracle, a size and a seed, and may override any section for itself
(``runs.<run>.overrides.<section>``), so one experiment never needs a second params file.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    NamedTuple,
)

import yaml
from pydantic import Field, SkipValidation, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.params_types import (
    SECTION,
    Float,
    Int,
    Name,
    ParamsError,
    Str,
    _nearest,
    key_path,
    problem,
    typed,
)

if TYPE_CHECKING:
    from elicit.params_model import Params

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
"""The JSON schema generated from :class:`elicit.params_model.Params` (Snakemake, editors); never edited by hand."""

# ---------------------------------------------------------------------------------------------- moved keys


class Moved(NamedTuple):
    """Where a key of an older params.yaml lives now."""

    now: str
    """where it lives now, in words (completes "moved to ...")"""
    file: str | None = None
    """moved to this file: an error only where a params file includes that file and still holds the key (a file
    that includes nothing may hold it itself, as tests/fixtures/params.tiny.yaml does)"""


_ABLATE = (
    "the ablate stage, which refits the selected config without each loss term and from the inverted start "
    "(`uv run snakemake --cores 2 results/<run>/ablation`; study.ablate names the study's runs); delete this config"
)
MOVED_KEYS: dict[str, Moved] = {
    "optimize.configs.no_nuisance": Moved(_ABLATE),
    "optimize.configs.no_flip": Moved(_ABLATE),
    "optimize.configs.full_inverted_init": Moved(_ABLATE),
    "study": Moved("study.yaml, which params.yaml includes (include: [study.yaml])", file="study.yaml"),
    "study.runs": Moved("study.targets, which lists the study's runs by named target (target: [run, ...])"),
    "baselines.icm_official": Moved("baselines.icm (faithful ICM, the method icm; enabled: true runs it)"),
    **{
        f"baselines.icm.{key}": Moved("baselines.icm_budget (the cheap ICM variant; baselines.icm is the paper's)")
        for key in ("beta", "k_context", "max_items", "calls_per_item", "n_rescore")
    },
}
"""Keys that lived at another path before (params.yaml of 572e4d8, and the ICM keys of cfb373a), and where they live
now: found at the old path, each is one line naming the new place. The study's runs moved to study.yaml with the
``study`` section; a run defined in both files is refused by :func:`with_includes`. The cheap ICM variant's section
``baselines.icm`` became ``baselines.icm_budget`` and faithful ICM took its name: the keys only the cheap variant
has name the new section (those both have, n_init, alpha, t0, t_min, max_calls, framings and template_id, are
the faithful section's now)."""


def moved_key(params: Any) -> tuple[tuple[str, ...], str] | None:
    """The first key of ``params`` still at a place it moved away from (not to a file), with the message."""
    for path, moved in MOVED_KEYS.items():
        if moved.file is not None:
            continue
        node = params
        parts = tuple(path.split("."))
        for part in parts:
            node = node.get(part) if isinstance(node, Mapping) else None
            if node is None:
                break
        else:
            return parts, f"moved to {moved.now}"
    return None


# ---------------------------------------------------------------------------------------------- loading


def validate_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check params against the typed model of every section; raise one line naming the key, the problem and the
    fix (for a typo, the nearest valid key)."""
    found = _first_problem(params)
    if found is not None:
        loc, message = found
        raise ParamsError(f"{source}: {key_path(*loc)}: {message}; fix this key (schema: {SCHEMA_PATH.name})")


def _first_problem(params: dict[str, Any]) -> tuple[tuple[str | int, ...], str] | None:
    """The typed model's first problem with ``params`` (its key path and message), or None when they pass."""
    model = _section_checks()
    try:
        model.model_validate(params)
    except ValidationError as exc:
        return problem(exc, model)
    return None


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


def read_snapshot(path: Path | str) -> dict[str, Any]:
    """The params a driver planned with (:func:`snapshot_params`): checked and expanded before they were written, so
    a snapshot whose content still matches the hash in its name is used as it is — a job then skips the typed
    check, which imports every section's module (~10 s of torch, sklearn and plotting imports per job). Anything
    else is loaded and checked like params.yaml."""
    path = Path(path)
    params = _read_yaml(path)
    if isinstance(params, dict):
        text = yaml.safe_dump(params, sort_keys=True)
        if path.name == f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml":
            return params
    return load_params(path)


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
    the same thing wherever it is read, and a section that moved to an included file (:data:`MOVED_KEYS`) may not
    stay in the main one. Paths are relative to the main file's folder.
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
            moved = MOVED_KEYS.get(section)
            if moved is not None and moved.file == Path(name).name and section in params:
                raise ParamsError(f"{source}: {section}: moved to {moved.now}; delete it from {source}")
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
    return with_replicates(params)


def with_replicates(params: dict[str, Any]) -> dict[str, Any]:
    """The params with each run's ``replicates`` drawn out as runs of their own (:mod:`elicit.replicates`), so no
    driver or stage needs to know about them; applied after the checks, and a no-op on params already expanded (a
    Snakemake run's snapshot)."""
    from elicit.replicates import expand_replicates

    return {**params, "runs": expand_replicates(params["runs"], int(params["base"]["seed"]))}


def check_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """What the typed model cannot say: references between sections, reserved names, and each run's overrides
    checked like the sections they override. Snakemake calls it too (``workflow/rules/common.smk``)."""
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


def _section_checks() -> type[Params]:
    """The typed model of the whole params, every section's own (:class:`elicit.params_model.Params`). Imported on
    use: it imports every section's module, some of which pull in torch, and it never changes a value a stage
    reads (tests/test_stage_sources.py does not follow imports from here)."""
    from elicit.params_model import Params

    return Params


def check_overrides(params: dict[str, Any], run: str, source: str = "params.yaml") -> None:
    """A run's overrides are checked exactly like the sections they override: the typed model over the params as
    the run sees them. Without this, ``overrides: {base: {seeds: []}}`` reached the stages. The line names the
    override (``runs.<run>.overrides.<section>``), then the key as the section's own check names it."""
    entry = params["runs"][run]
    view = resolve_run(params, run)
    merged = dict(params)
    for section in entry["overrides"]:
        merged[section] = view.section(section)
    if "oracle" in entry["overrides"] and view.oracle in params["oracles"]:
        merged["oracles"] = {view.oracle: params["oracles"][view.oracle]}  # only the run's own oracle meets them
    found = _first_problem(merged)
    if found is None:
        return
    loc, message = found
    section = "oracle" if loc[:1] == ("oracles",) else key_path(*loc[:1])
    raise ParamsError(
        f"{source}: runs.{run}.overrides.{section}: {key_path(*loc)}: {message}; fix this key "
        f"(schema: {SCHEMA_PATH.name})"
    )


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@typed(lambda given: f"runs.{given.get('name')}")
@pydantic_dataclass(frozen=True, config=SECTION)
class RunConfig:
    """One experiment as its stages see it: a dataset + an oracle + a size, and its per-run overrides (built by
    :func:`resolve_run` from ``runs.<run>``, see :class:`elicit.params_model.RunEntry`)."""

    name: Name = Field(description="the run's key under runs: (it names the folder results/<run>/)")
    dataset: Str = Field(description="the dataset: a key of datasets:")
    oracle: Str = Field(description="the oracle: a key of oracles:")
    n: Int | None = Field(ge=1, description="items sampled from the dataset; None = all of them")
    seed: Int = Field(ge=0, description="seed of every stochastic step of the run (runs.<run>.seed, else base.seed)")
    positive_fraction: Float | None = Field(
        gt=0, lt=1, description="share of label 1 the sample is drawn to (gold-stratified in load); None = as drawn"
    )
    gold_budget: Int = Field(
        default=0, ge=0, description="items whose gold select and evaluate may read (elicit.gold_budget); 0 = none"
    )
    overrides: SkipValidation[dict[str, Any]] = Field(
        default_factory=dict, description="the run's own values of sections, deep-merged over them (section())"
    )
    params: SkipValidation[dict[str, Any]] = Field(
        default_factory=dict, repr=False, description="the whole (validated) params the run was resolved from"
    )

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

    @property
    def baseline_seeds(self) -> list[int]:
        """Restarts of the stochastic baselines (ICM, random / bootstrap few-shot): ``baselines.seeds``, else
        ``base.seeds``."""
        return [int(s) for s in self.section("baselines").get("seeds") or self.section("base")["seeds"]]


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
        gold_budget=int(entry.get("gold_budget") or 0),
        overrides=entry.get("overrides", {}) or {},
        params=params,
    )
