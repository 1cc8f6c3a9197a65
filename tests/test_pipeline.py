"""Both drivers for real: Snakemake and DVC on the tiny params in a temporary git copy of the repo.

Shows the caching contract of DESIGN.md: nothing to do when nothing changed; a grouping edit re-runs group (not load
or embed); a source edit re-runs its stage; editing another run's entry re-runs nothing of this run; both drivers
write byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from helpers import sh

pytestmark = pytest.mark.slow

TARGET = "results/tiny/groups.parquet"
OUTPUTS = ["results/tiny/items.parquet", "results/tiny/embeddings.npy", "results/tiny/groups.parquet"]


def digest(repo: Path) -> dict[str, str]:
    return {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in OUTPUTS}


def snakemake_plan(repo: Path, target: str = TARGET) -> set[str]:
    """Rules Snakemake would run for ``target`` (a dry run)."""
    out = sh(f"snakemake -n --cores 2 {target}", repo).stdout
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0] for r in rows if len(r) == 2 and r[0] != "total"}


def dvc_stale(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (names like group@tiny)."""
    out = sh("dvc status", repo).stdout
    return set(re.findall(r"^(\S+@\S+):$", out, flags=re.M))


def edit_params(repo: Path, fn) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    fn(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_snakemake_and_dvc_build_the_same_files_and_cache(repo_copy: Path) -> None:
    repo = repo_copy
    sh(f"snakemake --cores 2 {TARGET}", repo)
    for stage in ("load", "embed", "group"):
        assert (repo / "logs" / "tiny" / f"{stage}.log").exists()
    by_snakemake = digest(repo)
    assert snakemake_plan(repo) == set()

    sh("dvc repro", repo)
    assert digest(repo) == by_snakemake, "Snakemake and DVC disagree on the outputs"
    assert dvc_stale(repo) == set()

    # A grouping parameter: group (and only group) re-runs, in both tools.
    edit_params(repo, lambda p: p["group"].update(size=7))
    assert snakemake_plan(repo) == {"group"}
    assert dvc_stale(repo) == {"group@tiny"}

    # Another run's entry: nothing of `tiny` re-runs.
    sh("git checkout params.yaml", repo)
    edit_params(repo, lambda p: p["runs"]["other"].update(n=20))
    assert snakemake_plan(repo) == set()
    assert dvc_stale(repo) == set()

    # The stage's own source: it re-runs, and what follows it.
    sh("git checkout params.yaml", repo)
    with open(repo / "src" / "elicit" / "group.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert snakemake_plan(repo) == {"group"}
    assert dvc_stale(repo) == {"group@tiny"}
    with open(repo / "src" / "elicit" / "embed.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert snakemake_plan(repo) == {"embed", "group"}


def test_one_stage_alone_by_hand(repo_copy: Path) -> None:
    repo = repo_copy
    sh("snakemake -j1 results/tiny/embeddings.npy", repo)
    sh("python -m elicit.stages.group --run tiny", repo)
    assert (repo / TARGET).exists()
    bad = sh("python -m elicit.stages.group --run nosuchrun", repo, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown run 'nosuchrun'")


def test_bare_commands_build_only_default_runs(repo_copy: Path) -> None:
    out = sh("snakemake -n --cores 2", repo_copy).stdout
    assert "results/tiny/groups.parquet" in out and "results/other/" not in out
    stages = sh("dvc stage list", repo_copy).stdout
    assert "group@tiny" in stages and "@other" not in stages
