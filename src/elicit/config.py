"""params.yaml: loading, schema check, and resolving one run's view of it.

Snakemake validates ``params.yaml`` against ``workflow/schemas/params.schema.yaml``; DVC never does, so every stage
checks the same schema here before it reads a key. A run (``runs.<run>``) names a dataset, an oracle, a size and a
seed, and may override any section for itself (``runs.<run>.overrides.<section>``), so one experiment never needs a
second params file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ValueError):
    """A params.yaml problem, stated in one line with the key and the fix."""


@cache
def _schema() -> dict[str, Any]:
    if not SCHEMA_PATH.exists():  # installed without the repo: fall back to the packaged copy
        raise ParamsError(f"params schema not found at {SCHEMA_PATH}; run elicit from a checkout of the repo")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check params against the JSON schema; raise one line naming the key, the problem and the fix."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ParamsError(f"{source}: {key}: {err.message}; fix this key (schema: {SCHEMA_PATH.name})")


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(
            f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections (datasets, oracles, runs, ...)")
    validate_params(params, str(path))
    for run, entry in params["runs"].items():
        if entry["dataset"] not in params["datasets"]:
            known = ", ".join(sorted(params["datasets"]))
            raise ParamsError(f"{path}: runs.{run}.dataset: unknown dataset '{entry['dataset']}'; use one of: {known}")
        if entry["oracle"] not in params["oracles"]:
            known = ", ".join(sorted(params["oracles"]))
            raise ParamsError(f"{path}: runs.{run}.oracle: unknown oracle '{entry['oracle']}'; use one of: {known}")
    for run in params["pipeline"]["default_runs"]:
        if run not in params["runs"]:
            raise ParamsError(f"{path}: pipeline.default_runs names unknown run '{run}'; add it under runs:")
    return params


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
