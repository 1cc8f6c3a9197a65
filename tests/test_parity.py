"""Snakefile and dvc.yaml must declare the same jobs: commands, inputs (data, upstream outputs, sources) and outputs.

Both sides are read by the tools themselves (Snakemake's --detailed-summary, DVC's own stage index), not by parsing
their files, so a drift in either file fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elicit import pipeline
from helpers import sh

pytestmark = pytest.mark.slow


Job = dict[str, object]


def snakemake_jobs(repo: Path) -> dict[frozenset[str], Job]:
    """Every job of a bare (default-target) forced dry run, keyed by its outputs."""
    out = sh("snakemake -n -p --forceall --cores 1", repo).stdout
    jobs: dict[frozenset[str], Job] = {}
    for block in re.split(r"\n(?=\[.*\]\nrule |\[.*\]\nlocalrule )", out)[1:]:
        rule = re.search(r"rule (\S+):", block)
        assert rule is not None
        if rule.group(1) == "all":
            continue
        fields = dict(re.findall(r"^    (input|output): (.*)$", block, flags=re.M))
        cmd = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        assert cmd is not None, block
        outs = frozenset(fields["output"].split(", "))
        jobs[outs] = {
            "rule": rule.group(1),
            "cmd": re.sub(r"\s*2>\s*\S+$", "", cmd.group(1).strip()),
            "inputs": set(fields.get("input", "").split(", ")) - {""},
        }
    return jobs


def dvc_jobs(repo: Path) -> dict[frozenset[str], Job]:
    """Every stage DVC knows, keyed by its outputs, read through DVC's own index."""
    from dvc.repo import Repo

    jobs: dict[frozenset[str], Job] = {}
    with Repo(str(repo)) as r:
        for stage in r.index.stages:
            outs = frozenset(str(o.def_path) for o in stage.outs)
            jobs[outs] = {
                "rule": stage.name,
                "cmd": stage.cmd,
                "inputs": {str(d.def_path) for d in stage.deps if not hasattr(d, "params")},
            }
    return jobs


def test_snakefile_and_dvc_yaml_agree(repo_copy: Path) -> None:
    smk, dvc = snakemake_jobs(repo_copy), dvc_jobs(repo_copy)
    assert smk, "Snakemake planned no jobs"
    assert set(smk) == set(dvc), "the two drivers build different files"
    for outs, job in smk.items():
        other = dvc[outs]
        assert job["cmd"] == other["cmd"], (job["rule"], other["rule"])
        assert job["inputs"] == other["inputs"], (job["rule"], other["rule"])


def test_every_rule_tracks_its_registry_params() -> None:
    text = "".join(p.read_text() for p in (Path(__file__).parents[1] / "workflow" / "rules").glob("*.smk"))
    for stage in pipeline.STAGE_SOURCES:
        declared = any(
            f"tracked={how}" in text
            for how in (f'tracked("{stage}")', f'tracked_config("{stage}")', f"{stage.upper()}_TRACKED")
        )
        assert declared, f"the rule of stage {stage} does not declare its params"
        assert f'src=sources("{stage}")' in text, f"the rule of stage {stage} does not list its sources"
