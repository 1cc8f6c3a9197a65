"""Both drivers for real: Snakemake and DVC on the tiny params in a temporary git copy of the repo.

The caching contract of DESIGN.md: both drivers write byte-identical outputs; nothing to do when nothing changed; a
grouping edit re-runs group and what follows (not load or embed); editing one swept config re-runs only its optimize
job, select, evaluate, report and export with no oracle call; editing another run's entry, or this run's description,
re-runs nothing of this run; a source edit re-runs its stage.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import make_copy, sh

pytestmark = pytest.mark.slow

RUN = "results/tiny"
AFTER_CONFIG_EDIT = {"optimize", "select", "evaluate", "report", "export", "summary"}


def parquet_digests(repo: Path) -> dict[str, str]:
    """Every Parquet/NumPy output of the run (telemetry excluded by design)."""
    files = sorted((repo / RUN).rglob("*.parquet")) + sorted((repo / RUN).rglob("*.npy"))
    return {str(f.relative_to(repo)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def snakemake_plan(repo: Path, target: str = "") -> set[str]:
    """Rules a dry run would execute."""
    out = sh(f"snakemake -n --cores 2 {target}", repo).stdout
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()]
    return {r[0] for r in rows if len(r) == 2 and r[1].isdigit() and r[0] not in ("total", "all")}


def dvc_stale(repo: Path, target: str = "") -> set[str]:
    """Jobs of run tiny that `dvc status` reports as changed (``optimize_full--tiny`` → ``optimize_full``)."""
    return set(re.findall(r"^(\S+)--tiny:$", sh(f"dvc status {target}", repo).stdout, flags=re.M))


def edit_params(repo: Path, fn) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    fn(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def oracle_calls(repo: Path) -> int:
    return sum(json.loads(f.read_text()).get("calls", 0) for f in (repo / RUN / "telemetry").glob("*.json"))


def test_both_drivers_same_outputs_and_exact_reruns(tmp_path: Path) -> None:
    """Each driver in its own copy (each keeps its own provenance: .snakemake/ vs dvc.lock)."""
    smk, dvc = make_copy(tmp_path / "smk"), make_copy(tmp_path / "dvc")
    sh("snakemake --cores 2", smk)
    assert (smk / RUN / "report.html").exists() and (smk / RUN / "export" / "labels.jsonl").exists()
    for stage in ("load", "embed", "group", "query_r0", "optimize_full", "report"):
        assert (smk / "logs" / "tiny" / f"{stage}.log").exists()
    assert snakemake_plan(smk) == set()
    sh("dvc repro", dvc)
    assert parquet_digests(dvc) == parquet_digests(smk), "Snakemake and DVC disagree on the outputs"
    assert dvc_stale(dvc) == set()

    resolved = yaml.safe_load((smk / RUN / "params.resolved.yaml").read_text())
    assert resolved["run"]["name"] == "tiny" and "description" not in (smk / RUN / "params.resolved.yaml").read_text()

    for repo in (smk, dvc):  # another run's entry: nothing of `tiny` re-runs
        edit_params(repo, lambda p: p["runs"]["other"].update(n=20))
    assert snakemake_plan(smk) == set()
    assert dvc_stale(dvc) == set()

    for repo in (smk, dvc):  # the run's own description: a comment, nothing re-runs
        sh("git checkout params.yaml", repo)
        edit_params(repo, lambda p: p["runs"]["tiny"].update(description="renamed"))
    assert snakemake_plan(smk) == set()
    assert dvc_stale(dvc) == set()

    for repo in (smk, dvc):  # a grouping parameter: group and what follows, never load, embed or zero-shot
        sh("git checkout params.yaml", repo)
        edit_params(repo, lambda p: p["group"].update(size=7))
    plan = snakemake_plan(smk)
    assert "group" in plan and not plan & {"load", "embed", "query_zero_shot", "priors"}
    stale = dvc_stale(dvc)
    assert "group" in stale and not stale & {"load", "embed", "query_r0", "priors"}

    for repo in (smk, dvc):  # one swept config: its optimize job and what follows, and no oracle call
        sh("git checkout params.yaml", repo)
        edit_params(repo, lambda p: p["optimize"]["configs"]["full"]["weights"].update(prior=0.5))
    assert snakemake_plan(smk) == AFTER_CONFIG_EDIT
    # `dvc status` lists the jobs whose own params changed: the config's, select's, and the report's (it shows them)
    assert dvc_stale(dvc) == {"optimize_full", "select", "report"}
    calls_before = oracle_calls(smk)
    sh("snakemake --cores 2", smk)
    assert oracle_calls(smk) == calls_before
    out = sh("dvc repro", dvc).stdout
    rerun = set(re.findall(r"(?:Running stage '(\S+?)(?:--tiny)?':|Stage '(\S+?)(?:--tiny)?' is cached)", out))
    assert {a or b for a, b in rerun} == {"optimize_full", "select", "evaluate", "report", "export", "summary"}
    assert oracle_calls(dvc) == calls_before
    assert parquet_digests(dvc) == parquet_digests(smk)

    # the study target: ablations and the table over study.runs, with no new oracle call
    sh("snakemake --cores 2 study", smk)
    md = (smk / "docs" / "results.md").read_text()
    assert "| tiny |" in md and "Ablations of the selected config" in md and "inverted_init" in md
    assert (smk / "docs" / "figures" / "cost_efficiency.png").read_bytes().startswith(b"\x89PNG")  # says: no cost runs
    table = pd.read_parquet(smk / "results" / "study" / "summary.parquet")
    assert set(table["run"]) == {"tiny"} and int(table["gold_best_upper_bound"].sum()) == 1
    assert float(table.loc[table["method"] == "selected", "oracle_calls"].iloc[0]) > 0
    assert oracle_calls(smk) == calls_before


def test_backbone_caching_and_source_edits(repo_copy: Path) -> None:
    repo = repo_copy
    target = f"{RUN}/groups.parquet"
    sh(f"snakemake --cores 2 {target}", repo)
    assert snakemake_plan(repo, target) == set()
    sh("dvc repro group--tiny", repo)
    assert dvc_stale(repo, "group--tiny") == set()

    edit_params(repo, lambda p: p["group"].update(size=7))
    assert snakemake_plan(repo, target) == {"group"}
    assert dvc_stale(repo, "group--tiny") == {"group"}
    sh("git checkout params.yaml", repo)

    edit_params(repo, lambda p: p["runs"]["other"].update(n=20))
    assert snakemake_plan(repo, target) == set()
    sh("git checkout params.yaml", repo)

    with open(repo / "src" / "elicit" / "group.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert snakemake_plan(repo, target) == {"group"}
    assert dvc_stale(repo, "group--tiny") == {"group"}
    with open(repo / "src" / "elicit" / "embed.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert snakemake_plan(repo, target) == {"embed", "group"}


def test_one_stage_alone_by_hand(repo_copy: Path) -> None:
    repo = repo_copy
    sh(f"snakemake -j1 {RUN}/embeddings.npy", repo)
    sh("python -m elicit.stages.group --run tiny", repo)
    assert (repo / RUN / "groups.parquet").exists()
    bad = sh("python -m elicit.stages.group --run nosuchrun", repo, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown run 'nosuchrun'")


def test_bare_commands_build_only_default_runs(repo_copy: Path) -> None:
    out = sh("snakemake -n --cores 2", repo_copy).stdout
    assert "results/tiny/report.html" in out and "results/other/" not in out
    stages = sh("dvc stage list", repo_copy).stdout
    assert "group--tiny" in stages and "--other" not in stages
