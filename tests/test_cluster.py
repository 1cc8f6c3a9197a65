"""Scaling up: the Slurm workflow profile (dry runs) and a DVC experiment with `dvc exp run -S`.

The Slurm checks are dry runs: Snakemake parses workflow/profiles/slurm (executor, limits, per-rule resources) and
prints each job's resources without submitting anything, so they need neither Slurm nor sbatch. A fake `sbatch` first
on PATH proves that nothing is submitted.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import REPO, TINY, make_copy, sh

PROFILE = "workflow/profiles/slurm"
ORACLE_RULES = {"query_zero_shot", "query", "icm_budget", "icm", "fewshot", "protocol"}
OPT_IN_RULES = {"icm", "protocol"}
"""Oracle rules with no job in the tiny params: faithful ICM and the paper's protocol are opt-in."""
SITE_VARS = (
    "ELICIT_SLURM_PARTITION",
    "ELICIT_SLURM_ACCOUNT",
    "ELICIT_ORACLE_JOBS",
    "ELICIT_OPTIMIZE_GPUS",
    "ELICIT_GPU_PARTITION",
)


@pytest.fixture(scope="module")
def cluster_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_copy(tmp_path_factory.mktemp("cluster") / "repo")
    fake = repo / "fakebin"
    fake.mkdir()
    (fake / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {repo / "sbatch_called"}\nexit 1\n')
    (fake / "sbatch").chmod(0o755)
    return repo


@pytest.fixture(autouse=True)
def no_site_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile reads these; a test sets what it needs on its command line."""
    for var in SITE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)


def dry_run(repo: Path, args: str = f"--workflow-profile {PROFILE}", env: str = "") -> dict[str, list[dict[str, str]]]:
    """Resources of every job a dry run would submit, by rule."""
    proc = sh(f"{env} PATH={repo / 'fakebin'}:$PATH snakemake -n {args}", repo)
    assert not (repo / "sbatch_called").exists(), "a dry run submitted a job"
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", proc.stdout):
        head = re.match(r"(local)?rule (\w+):\n", block)
        found = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if head and found and not head.group(1):
            res = dict(item.split("=", 1) for item in found.group(1).split(", "))
            jobs.setdefault(head.group(2), []).append(res)
    assert jobs, proc.stdout[-3000:]
    if "--workflow-profile" in args:
        assert f"Using workflow specific profile {PROFILE} " in proc.stderr
    return jobs


def global_args(repo: Path, args: str, env: str = "") -> dict[str, object]:
    """What Snakemake's own argument parser makes of the profile(s): executor, jobs, global resource limits."""
    script = textwrap.dedent(
        """
        import json, sys
        from snakemake.cli import parse_args
        _, a = parse_args(sys.argv[1:])
        limits = {k: v.value for k, v in (a.resources or {}).items()}
        print(json.dumps({"executor": a.executor, "jobs": a.jobs, "resources": limits}))
        """
    )
    (repo / "parse_args.py").write_text(script)
    out = sh(f"{env} python parse_args.py -n {args}", repo).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_slurm_profile_names_the_workflows_rules() -> None:
    """Snakemake ignores set-resources for a rule that does not exist: every name must be a rule, and every rule that
    calls the oracle (declares the `oracle` resource) must get the oracle settings."""
    from snakemake.profiles import ProfileConfigFileParser

    with open(REPO / PROFILE / "config.yaml") as fh:
        parsed = ProfileConfigFileParser().parse(fh)
    smk = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    blocks = dict(re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", smk, flags=re.M | re.S))
    assert {rule for rule, body in blocks.items() if "oracle=" in body} == ORACLE_RULES
    settings = {item.split(":", 1)[0]: item for item in parsed["set-resources"]}
    assert set(settings) <= set(blocks)
    assert {f"{rule}:oracle=1" for rule in ORACLE_RULES} <= set(parsed["set-resources"])
    assert parsed["executor"] == "slurm" and parsed["resources"] == ["oracle=1"]


@pytest.mark.slow  # Snakemake dry runs: ~5 s of CPU each
def test_slurm_profile_assigns_resources_per_rule(cluster_copy: Path) -> None:
    jobs = dry_run(cluster_copy)
    assert {"load", "embed", "optimize", "evaluate", "report"} | (ORACLE_RULES - OPT_IN_RULES) <= set(jobs)
    for rule, rule_jobs in jobs.items():
        for res in rule_jobs:
            assert {"mem_mb", "runtime", "cpus_per_task"} <= set(res), (rule, res)
            assert "slurm_partition" not in res and "slurm_account" not in res  # unset: the cluster's defaults
            if rule in ORACLE_RULES:  # few CPUs, long, and counted against the oracle limit
                assert (res["cpus_per_task"], res["runtime"], res["mem_mb"], res["oracle"]) == (
                    "2",
                    "1440",
                    "8000",
                    "1",
                )
            else:
                assert "oracle" not in res or res["oracle"] == "0", (rule, res)
            if rule == "optimize":  # no GPU unless asked for
                assert (res["cpus_per_task"], res["runtime"]) == ("4", "240") and "gpu" not in res
    load = jobs["load"][0]
    assert (load["cpus_per_task"], load["runtime"], load["mem_mb"]) == ("1", "60", "4000")
    assert jobs["embed"][0]["mem_mb"] == "8000" and jobs["evaluate"][0]["runtime"] == "120"
    assert global_args(cluster_copy, f"--workflow-profile {PROFILE}") == {
        "executor": "slurm",
        "jobs": 100,
        "resources": {"oracle": 1},
    }


@pytest.mark.slow  # Snakemake dry runs: ~5 s of CPU each
def test_slurm_profile_site_settings_and_gpu_switch(cluster_copy: Path) -> None:
    env = "ELICIT_OPTIMIZE_GPUS=1 ELICIT_GPU_PARTITION=gpu ELICIT_SLURM_PARTITION=cpu ELICIT_SLURM_ACCOUNT=lab"
    jobs = dry_run(cluster_copy, env=env)
    for rule, rule_jobs in jobs.items():
        for res in rule_jobs:
            assert res["slurm_account"] == "lab"
            if rule == "optimize":
                assert (res["gpu"], res["slurm_partition"], res["runtime"]) == ("1", "gpu", "240")
            else:
                assert "gpu" not in res and res["slurm_partition"] == "cpu", (rule, res)
    limits = global_args(cluster_copy, f"--workflow-profile {PROFILE}", env="ELICIT_ORACLE_JOBS=9")
    assert limits["resources"] == {"oracle": 9}


@pytest.mark.slow  # Snakemake dry runs: ~5 s of CPU each
def test_slurm_profile_pitfalls(cluster_copy: Path) -> None:
    """Why the README says `--workflow-profile` and switches the GPU on with an environment variable."""
    # --profile also loads profiles/default as the workflow profile, whose `resources: oracle=1` wins.
    assert global_args(cluster_copy, f"--profile {PROFILE}", env="ELICIT_ORACLE_JOBS=9")["resources"] == {"oracle": 1}
    # --set-resources on the command line replaces the profile's whole set-resources: oracle jobs lose theirs.
    jobs = dry_run(cluster_copy, f"--workflow-profile {PROFILE} --set-resources optimize:gpu=1")
    assert jobs["optimize"][0]["gpu"] == "1"
    assert jobs["query"][0]["runtime"] == "60" and jobs["query"][0].get("oracle") != "1"


@pytest.mark.slow
def test_dvc_experiment_sets_a_param(tmp_path: Path) -> None:
    """`dvc exp run -S`: the experiment records the changed param and the metrics; the workspace keeps both."""
    params = yaml.safe_load(TINY.read_text())
    params["base"]["rounds"] = 1  # a smaller DAG than the tiny run: one few-shot round, one weight config
    params["optimize"]["configs"] = {"full": params["optimize"]["configs"]["full"]}
    small = tmp_path / "params.small.yaml"
    small.write_text(yaml.safe_dump(params, sort_keys=False))
    repo = make_copy(tmp_path / "repo", small)
    key = "optimize.configs.full.weights.prior"

    sh(f"dvc exp run -n prior-half -S '{key}=0.5'", repo)
    workspace = yaml.safe_load((repo / "params.yaml").read_text())
    assert workspace["optimize"]["configs"]["full"]["weights"]["prior"] == 0.5  # applied to the workspace
    assert "params.yaml" in sh("git status --porcelain", repo).stdout  # ... and not committed to the branch

    shown = json.loads(sh("dvc exp show --json", repo).stdout)
    exps = [e for row in shown for run in row.get("experiments") or [] for e in run.get("revs", [])]
    (exp,) = [e for e in exps if e.get("name") == "prior-half"]
    data = exp["data"]
    assert data["params"]["params.yaml"]["data"]["optimize"]["configs"]["full"]["weights"]["prior"] == 0.5
    metrics = data["metrics"]["results/tiny/metrics.json"]["data"]
    assert metrics, "the experiment recorded no metrics"
    baseline = next(row for row in shown if row.get("rev") != "workspace")
    assert baseline["data"]["params"]["params.yaml"]["data"]["optimize"]["configs"]["full"]["weights"]["prior"] == 0.3

    # A queued grid is one experiment per value; queueing runs nothing.
    sh(f"dvc exp run --queue -S '{key}=0.1,0.9'", repo)
    queued = sh("dvc queue status", repo).stdout
    assert queued.count("Queued") == 2, queued
    sh("dvc queue remove --all", repo)
