# Helpers shared by all rules: schema validation, wildcard constraints, and the stage registry (src/elicit/pipeline.py,
# with what each job tracks in src/elicit/tracking.py) handed to Snakemake: each rule's inputs, outputs, tracked params,
# log, benchmark and command, as dvc.yaml has them.
import os
import re
import sys
from pathlib import Path

from snakemake.iocontainers import Namedlist

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from elicit import config as params_rules  # noqa: E402
from elicit import pipeline, tracking  # noqa: E402
from elicit.params_types import NAME_PATTERN  # noqa: E402
from elicit.paths import is_folder  # noqa: E402

# The files params.yaml includes (the study's runs: study.yaml), then the schema (workflow/schemas/) and the checks
# it cannot express, as every stage runs them: one line naming the key (Snakemake's validate() prints the schema).
try:
    _merged = params_rules.with_includes(config, Path(workflow.basedir))
    config.clear()
    config.update(_merged)
    params_rules.validate_params(config)
    params_rules.check_params(config)
    _expanded = params_rules.with_replicates(config)  # a run's replicates: runs of their own
    config.clear()
    config.update(_expanded)
except params_rules.ParamsError as exc:
    sys.exit(f"error: {exc}")

# Every job reads the params this run was planned with, even if params.yaml is edited while it runs. A Snakemake
# re-started for one job (a cluster node) keeps the snapshot of the run that submitted it.
if not Path(os.environ.get(params_rules.SNAPSHOT_ENV, "")).is_file():
    os.environ[params_rules.SNAPSHOT_ENV] = str(params_rules.snapshot_params(config).resolve())


ALL_CONFIGS = sorted({c for run in config["runs"] for c in pipeline.configs(config, run)})


wildcard_constraints:
    run=NAME_PATTERN.strip("^$"),
    r="[1-9][0-9]*",
    config="|".join(ALL_CONFIGS) or "NO_CONFIGS",
    method="|".join(pipeline.FEWSHOT_METHODS),


def _key(flag):
    """A flag's name in input/output (`metrics-json` -> metrics_json); a name Snakemake keeps for itself (items,
    keys, ...) gets `_path`."""
    key = flag.replace("-", "_")
    return f"{key}_path" if hasattr(Namedlist, key) else key


def _wildcards(wildcards):
    return dict(wildcards.items())


def stage_inputs(name):
    """The inputs the registry declares, one entry per flag; then what the stage reads without a flag (data, the
    dataset files of load), what it waits for (after) and its source files (src, so editing one re-runs it)."""
    spec = pipeline.RULES[name]
    out = {_key(flag): _input(spec, flag) for flag in spec.inputs}
    if spec.reads:
        out["data"] = lambda wildcards: spec.reads(config, _wildcards(wildcards))
    if spec.after:
        out["after"] = lambda wildcards: spec.after(config, _wildcards(wildcards))
    out["src"] = tracking.sources(spec.stage)
    return out


def _input(spec, flag):
    return lambda wildcards: spec.input(flag, config, _wildcards(wildcards))


def stage_outputs(name):
    """The outputs the registry declares, folders as directory()."""
    out = {}
    for flag, templates in pipeline.RULES[name].outputs_for({}).items():
        paths = [directory(t) if is_folder(t) else t for t in templates]
        out[_key(flag)] = paths[0] if len(paths) == 1 else paths
    return out


def tracked(name):
    """The params keys the job tracks (the run's own fields, the sections its stage reads and the run's overrides of
    them; never a description) with their values: a changed value re-runs the job, as under DVC."""
    spec = pipeline.RULES[name]
    if not spec.per_run:
        return tracking.tracked_params(config, spec.stage)
    return lambda wildcards: tracking.tracked_params(config, spec.stage, wildcards.run, wildcards.get("config"))


def stage_log(name):
    return pipeline.RULES[name].log


def stage_benchmark(name):
    return pipeline.RULES[name].benchmark


def stage_command(name):
    """The command, as in dvc.yaml: `python -m elicit.stages.<stage>` with every path a flag; stderr to the log."""
    spec = pipeline.RULES[name]
    flags = {
        flag: value(config) if callable(value) else re.sub(r"\{(\w+)\}", r"{wildcards.\1}", value)
        for flag, value in spec.args.items()
    }
    flags.update({flag: f"{{input.{_key(flag)}}}" for flag in spec.inputs})
    flags.update({flag: f"{{output.{_key(flag)}}}" for flag in spec.outputs})
    run = "{wildcards.run}" if spec.per_run else None
    return pipeline.command_line(spec.stage, run, flags) + " 2> {log}"


def default_targets():
    """What a bare `snakemake` builds, as a bare `dvc repro` does: the outputs of the default runs and the summary
    that no other job reads."""
    return pipeline.default_targets(config)


def oracle_slots(wildcards):
    """1 for a run whose oracle is an embedded llama.cpp server: the profile allows one such job at a time."""
    oracle = config["oracles"][config["runs"][wildcards.run]["oracle"]]
    return 1 if oracle["kind"] == "embedded" else 0
