"""``dvc.yaml``, written from the stage registry: ``python -m elicit.pipeline dvc`` writes it, ``... check`` fails
while the committed file is stale (a test does too).

Apart from :mod:`elicit.pipeline` because the registry is what both drivers read — Snakemake expands it in-process, DVC
reads this file — and the file is only one rendering of it: one explicit stage per job of every default run, plus the
summary, with the job's command, inputs (source files included), tracked params keys and outputs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from elicit.errors import ElicitError
from elicit.io import write_or_check
from elicit.paths import METRICS_JSON, fill
from elicit.pipeline import Job, jobs_for_run, summary_job


def _dvc_stage(params: dict[str, Any], j: Job) -> dict[str, Any]:
    return {"cmd": j.command, "deps": j.inputs, "params": j.param_keys(params), "outs": j.outputs}


def dvc_yaml(params: dict[str, Any]) -> dict[str, Any]:
    """dvc.yaml as a dict: one explicit stage per job of every default run (``<job>--<run>``), the summary over
    ``summary.runs``, and each default run's metrics.json as a DVC metrics file (``dvc metrics show``)."""
    stages: dict[str, Any] = {}
    for run in params["pipeline"]["default_runs"]:
        for j in jobs_for_run(params, run):
            stages[f"{j.name}--{run}"] = _dvc_stage(params, j)
    stages["summary"] = _dvc_stage(params, summary_job(params))
    metrics = [fill(METRICS_JSON, run=run) for run in params["pipeline"]["default_runs"]]
    return {"stages": stages, "metrics": metrics}


HEADER = (
    "# Written by `python -m elicit.pipeline dvc` from src/elicit/pipeline.py and params.yaml; do not edit by hand.\n"
    "# Re-write it after changing pipeline.default_runs, base.rounds, baselines.icm.enabled or the names of\n"
    "# optimize.configs, or after adding a key that was not there (a run's seed or overrides); `python -m\n"
    "# elicit.pipeline check` and a test fail while it is stale. Editing a value needs no re-write: `dvc repro`\n"
    "# tracks it.\n"
)


def render_dvc_yaml(params: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(dvc_yaml(params), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    from elicit.config import load_params

    p = argparse.ArgumentParser(description="write or check dvc.yaml from the stage registry")
    p.add_argument("action", choices=["dvc", "check"])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="dvc.yaml")
    args = p.parse_args(argv)
    try:
        text = render_dvc_yaml(load_params(args.params))
    except ElicitError as exc:  # bad params, or a dataset entry the load rule cannot read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return write_or_check(args.out, text, args.action, "python -m elicit.pipeline dvc")
