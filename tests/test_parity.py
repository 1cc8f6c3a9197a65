"""Both drivers run exactly the jobs the stage registry declares (src/elicit/pipeline.py), and no path is spelled twice.

Read by the tools themselves, not by parsing their files: Snakemake's DAG is built in-process from the Snakefile (a
forced dry run of the default target and the study, on the tiny params; nothing runs), DVC's stages come from its
own index of the committed dvc.yaml. Each job must match the registry's: rule, outputs, inputs (flags' paths, data
files, source files), the whole command, tracked params, log and benchmark.
"""

from __future__ import annotations

import ast
import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from elicit import dvc_yaml, paths, pipeline, tracking
from elicit.config import SNAPSHOT_ENV, load_params
from helpers import REPO, make_copy

Jobs = dict[frozenset[str], pipeline.Job]


def registry_jobs(params: dict[str, Any], study: bool = False) -> Jobs:
    """Every job of a bare run (default runs and the summary), and with ``study`` the study's, keyed by outputs."""
    runs = list(params["pipeline"]["default_runs"])
    jobs = [j for run in runs for j in pipeline.jobs_for_run(params, run)] + [pipeline.summary_job(params)]
    if study:
        runs = [r for r in pipeline.listed_runs(params, "study") if r not in runs]
        jobs += [j for run in runs for j in pipeline.jobs_for_run(params, run)]
        jobs += [j for run in params["study"]["ablate"] for j in pipeline.RULES["ablate"].jobs(params, run)]
        jobs += pipeline.RULES["study"].jobs(params, None)
    return {frozenset(j.outputs): j for j in jobs}


@pytest.fixture(scope="module")
def snakemake_dag(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    """Snakemake's jobs for `snakemake all study` in a copy with the tiny params, built in-process."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

    repo = make_copy(tmp_path_factory.mktemp("parity") / "repo")
    saved_path, saved_snapshot = list(sys.path), os.environ.pop(SNAPSHOT_ENV, None)
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=repo / "Snakefile", workdir=repo)
            dag_api = wf.dag(DAGSettings(targets={"all", "study"}, forceall=True))
            workflow = dag_api.workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
            workflow._build_dag()
            jobs = [
                {
                    "rule": job.rule.name,
                    "wildcards": dict(job.wildcards.items()),
                    "outputs": [str(f) for f in job.output],
                    "inputs": [str(f) for f in job.input],
                    "shell": job.shellcmd,
                    "tracked": dict(job.params.items()).get("tracked"),
                    "log": [str(f) for f in job.log],
                    "benchmark": str(job.benchmark) if job.benchmark else None,
                }
                for job in workflow.dag.jobs
            ]
    finally:  # the Snakefile sets the params snapshot for its jobs: never for the commands of later tests
        sys.path[:] = saved_path
        os.environ.pop(SNAPSHOT_ENV, None)
        if saved_snapshot is not None:
            os.environ[SNAPSHOT_ENV] = saved_snapshot
    return load_params(repo / "params.yaml"), jobs


def test_snakemake_runs_exactly_the_registry_jobs(snakemake_dag: tuple[dict[str, Any], list[Any]]) -> None:
    params, dag = snakemake_dag
    expected = registry_jobs(params, study=True)
    smk = {frozenset(j["outputs"]): j for j in dag if j["rule"] != "all"}
    assert set(smk) == set(expected), "Snakemake and the registry build different files"
    for outs, job in expected.items():
        got, rule = smk[outs], job.rule
        wc = {"run": job.run, **got["wildcards"]} if rule.per_run else {}
        where = f"{rule.name} {sorted(outs)[0]}"
        assert got["rule"] == rule.name, where
        assert got["shell"] == f"{job.command} 2> {paths.fill(rule.log, **wc)}", where
        assert set(got["inputs"]) == set(job.inputs) and len(got["inputs"]) == len(job.inputs), where
        assert got["tracked"] == tracking.tracked_params(params, job.stage, job.run or None, job.config), where
        assert got["log"] == [paths.fill(rule.log, **wc)] and got["benchmark"] == paths.fill(rule.benchmark, **wc)
    (default,) = [j for j in dag if j["rule"] == "all"]
    assert set(default["inputs"]) == set(pipeline.default_targets(params))


def test_dvc_runs_exactly_the_registry_jobs() -> None:
    """The committed dvc.yaml as DVC reads it (tests/test_config.py checks it is current)."""
    from dvc.repo import Repo

    params = load_params(REPO / "params.yaml")
    expected = {
        (f"{j.name}--{j.run}" if j.run else j.name): j
        for j in registry_jobs(params).values()  # jobs of a bare run
    }
    with Repo(str(REPO)) as repo:
        stages = {s.name: s for s in repo.index.stages}
    assert set(stages) == set(expected)
    for name, job in expected.items():
        stage = stages[name]
        assert stage.cmd == job.command, name
        assert [str(d.def_path) for d in stage.deps if not hasattr(d, "params")] == job.inputs, name
        assert [k for d in stage.deps if hasattr(d, "params") for k in d.params] == job.param_keys(params), name
        assert [str(o.def_path) for o in stage.outs] == job.outputs, name


def test_every_rule_is_the_registrys() -> None:
    """Each Snakemake rule takes its inputs, outputs, params, log, benchmark and command from the registry entry of
    its own name, and the registry has no rule Snakemake lacks (the Slurm profile names rules)."""
    text = "".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    blocks = dict(
        (name, body)
        for name, body in (b.split(":\n", 1) for b in text.split("\nrule ")[1:])
        if not name.startswith("all")
    )
    assert set(blocks) == set(pipeline.RULES)
    for name, body in blocks.items():
        for helper in ("stage_inputs", "stage_outputs", "tracked", "stage_log", "stage_benchmark", "stage_command"):
            assert f'{helper}("{name}")' in body, f"rule {name} does not take {helper} from the registry"


def _code_strings(path: Path) -> list[str]:
    """String constants of a module that are code: not docstrings, not argparse help texts."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip.add(id(node.value))  # docstrings, of modules, functions and attributes
        if isinstance(node, ast.keyword) and node.arg == "help":
            skip.update(id(n) for n in ast.walk(node.value))
    strings = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return [n.value for n in strings if id(n) not in skip]


def test_every_path_is_spelled_once() -> None:
    """Outside elicit.paths no code spells a results path: not the rules, not the registry, not a stage."""
    templates = [v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str) and "/" in v]
    names = {t.rsplit("/", 1)[1] for t in templates if "." in t.rsplit("/", 1)[1]} - {"{job}.json", "{job}.log"}
    names -= {"metrics.parquet"}  # also a file of the ablation folder's own layout
    workflow = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    for f in workflow:
        text = f.read_text()
        assert not any(d in text for d in ("results/", "logs/", "benchmarks/")), f"{f.name} spells a path"
    registry = [REPO / "src" / "elicit" / f for f in ("pipeline.py", "tracking.py", "dvc_yaml.py")]
    modules = [*registry, *sorted((REPO / "src" / "elicit" / "stages").glob("*.py"))]
    for f in modules:
        for s in _code_strings(f):
            assert "results/" not in s and not any(s == n or s.endswith("/" + n) for n in names), (f.name, s)


def test_a_description_is_tracked_by_no_job() -> None:
    """Editing a run's description re-runs nothing: no job tracks it, and dvc.yaml stays the same."""
    params = load_params(REPO / "tests" / "fixtures" / "params.tiny.yaml")
    edited = copy.deepcopy(params)
    edited["runs"]["tiny"]["description"] = "another description"
    for job in registry_jobs(params, study=True).values():
        before = tracking.tracked_params(params, job.stage, job.run or None, job.config)
        assert tracking.tracked_params(edited, job.stage, job.run or None, job.config) == before, job.name
    assert dvc_yaml.render_dvc_yaml(edited) == dvc_yaml.render_dvc_yaml(params)


def test_an_override_is_tracked_by_the_jobs_that_read_its_section() -> None:
    params = load_params(REPO / "tests" / "fixtures" / "params.tiny.yaml")
    params["runs"]["tiny"]["overrides"] = {"baselines": {"icm_budget": {"max_items": 12}}}
    readers = {
        j.name
        for j in pipeline.jobs_for_run(params, "tiny")
        if "runs.tiny.overrides.baselines.icm_budget" in j.param_keys(params)
    }
    assert readers == {"icm_budget"}  # and the report, which shows every resolved value
    report = next(j for j in pipeline.jobs_for_run(params, "tiny") if j.name == "report")
    assert "runs.tiny.overrides" in report.param_keys(params)


def test_a_config_tracks_the_configs_it_extends() -> None:
    params = load_params(REPO / "tests" / "fixtures" / "params.tiny.yaml")
    params["optimize"]["configs"]["strict"] = {"extends": "full", "weights": {"flip": 0.0}}
    keys = tracking.expand_keys(params, "optimize", "tiny", "strict")
    assert "optimize.configs.strict" in keys and "optimize.configs.full" in keys
    assert "optimize.configs.prior_only" not in keys


def test_resolved_params_hold_the_runs_view_and_no_description() -> None:
    params = load_params(REPO / "tests" / "fixtures" / "params.tiny.yaml")
    resolved = tracking.resolved_params(params, "tiny_embedded")
    assert resolved["run"]["name"] == "tiny_embedded" and "description" not in yaml.safe_dump(resolved)
    assert resolved["base"]["seeds"] == [0] and resolved["budget"]["k_context"] == 2  # its overrides, merged
    assert set(resolved["datasets"]) == {"ethics_tiny"} and set(resolved["oracles"]) == {"smollm2"}
    assert "runs" not in resolved and "summary" not in resolved
