"""The stage registry: what each stage reads, writes, and which params and source files it depends on.

This is the one place the DAG is declared for DVC: ``dvc.yaml`` is written from it (``python -m elicit.pipeline
dvc``; a test fails when the committed file is stale). The Snakefile's rules are written by hand for readability,
take their tracked params and source-file inputs from here (``workflow/rules/common.smk``), and a test runs both
tools and checks they declare the same jobs, inputs, outputs and commands.

Path templates use ``{run}`` (and ``{round}`` / ``{config}`` for per-round and per-config stages); param keys may use
``{run}``, ``{dataset}`` and ``{oracle}``, resolved from ``runs.<run>``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHARED_SOURCES = (
    "src/elicit/config.py",
    "src/elicit/io.py",
    "src/elicit/paths.py",
    "src/elicit/stages/_cli.py",
)


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG, per run."""

    name: str
    deps: dict[str, str]
    """CLI flag (without --) → path template of an input file."""
    outs: dict[str, str]
    """CLI flag → path template of an output file."""
    params: tuple[str, ...]
    """params.yaml keys the stage reads (dotted; placeholders {run} {dataset} {oracle})."""
    sources: tuple[str, ...]
    """the stage's own source files (the shared ones are added)."""
    data_dep: bool = False
    """the stage also depends on the run's dataset file (``datasets.<dataset>.path``)."""
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cli(self) -> str:
        return self.module or f"elicit.stages.{self.name}"

    @property
    def all_sources(self) -> tuple[str, ...]:
        return self.sources + SHARED_SOURCES


STAGES: tuple[Stage, ...] = (
    Stage(
        name="load",
        deps={},
        outs={"out": "results/{run}/items.parquet"},
        params=("base.seed", "runs.{run}", "datasets.{dataset}"),
        sources=("src/elicit/stages/load.py", "src/elicit/datasets.py"),
        data_dep=True,
    ),
    Stage(
        name="embed",
        deps={"items": "results/{run}/items.parquet"},
        outs={"out": "results/{run}/embeddings.npy"},
        params=("embed", "runs.{run}"),
        sources=("src/elicit/stages/embed.py", "src/elicit/embed.py"),
    ),
    Stage(
        name="group",
        deps={"embeddings": "results/{run}/embeddings.npy"},
        outs={"out": "results/{run}/groups.parquet"},
        params=("group", "base.seed", "base.rounds", "runs.{run}"),
        sources=("src/elicit/stages/group.py", "src/elicit/group.py"),
    ),
)

STAGE_BY_NAME = {s.name: s for s in STAGES}


def run_keys(params: dict[str, Any], run: str) -> dict[str, str]:
    entry = params["runs"][run]
    return {"run": run, "dataset": entry["dataset"], "oracle": entry["oracle"]}


def lookup(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node


def tracked_params(params: dict[str, Any], stage: str, run: str) -> dict[str, Any]:
    """The values of the params a stage declares, for one run: Snakemake re-runs a job when these change."""
    keys = run_keys(params, run)
    out = {}
    for key in STAGE_BY_NAME[stage].params:
        resolved = key.format(**keys)
        out[resolved] = lookup(params, resolved)
    return out


def data_file(params: dict[str, Any], run: str) -> list[str]:
    """The dataset file a run's load stage reads (empty for hub sources)."""
    ds = params["datasets"][params["runs"][run]["dataset"]]
    path = ds.get("path")
    return [path] if path and ds.get("source", "builtin") != "hub" else []


def command(stage: Stage, run: str = "${key}") -> str:
    """The shell command both tools run (DVC's ${key} placeholder by default)."""
    parts = [f"python -m {stage.cli} --run {run}"]
    for flag, path in {**stage.deps, **stage.outs}.items():
        parts.append(f"--{flag.replace('_', '-')} {path.format(run=run)}")
    return " ".join(parts)


def dvc_yaml(params: dict[str, Any]) -> dict[str, Any]:
    """dvc.yaml as a dict: one foreach stage per registry stage over the default runs (listed once in ``vars``)."""
    runs = params["pipeline"]["default_runs"]
    foreach = {
        run: {
            "dataset": params["runs"][run]["dataset"],
            "oracle": params["runs"][run]["oracle"],
            "data": (data_file(params, run) or [""])[0],
        }
        for run in runs
    }
    stages: dict[str, Any] = {}
    for stage in STAGES:
        deps = [p.format(run="${key}") for p in stage.deps.values()] + list(stage.all_sources)
        if stage.data_dep:
            deps = ["${item.data}", *deps] if all(v["data"] for v in foreach.values()) else deps
        do: dict[str, Any] = {
            "cmd": command(stage),
            "deps": deps,
            "params": [k.format(run="${key}", dataset="${item.dataset}", oracle="${item.oracle}") for k in stage.params],
            "outs": [p.format(run="${key}") for p in stage.outs.values()],
        }
        stages[stage.name] = {"foreach": "${default_runs}", "do": do}
    return {"vars": [{"default_runs": foreach}], "stages": stages}


HEADER = (
    "# Written by `python -m elicit.pipeline dvc` from src/elicit/pipeline.py and params.yaml; do not edit by hand.\n"
    "# Re-write it after adding a stage or changing pipeline.default_runs (a test fails while it is stale).\n"
)


def render_dvc_yaml(params: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(dvc_yaml(params), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    from elicit.config import ParamsError, load_params

    p = argparse.ArgumentParser(description="write or check dvc.yaml from the stage registry")
    p.add_argument("action", choices=["dvc", "check"])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="dvc.yaml")
    args = p.parse_args(argv)
    try:
        text = render_dvc_yaml(load_params(args.params))
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.action == "check":
        if not out.exists() or out.read_text() != text:
            print(f"{out} is stale; run `python -m elicit.pipeline dvc`", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
