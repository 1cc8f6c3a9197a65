"""The stage registry: every job of a run — what it reads, writes, and which params and source files it depends on.

This is the one place the DAG is declared for DVC: ``dvc.yaml`` is written from it (``python -m elicit.pipeline
dvc``; a test fails while the committed file is stale, e.g. after adding a run to ``pipeline.default_runs``, a round, or
an optimize config). The Snakefile's rules are written by hand for readability; they take their tracked params and
source-file inputs from here (``workflow/rules/common.smk``), and a test dry-runs both tools and checks that they plan
the same jobs with the same commands, inputs and outputs.

Param keys may use ``{run}``, ``{dataset}``, ``{oracle}`` and ``{config}``, resolved per job.
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
ORACLE_SOURCES = (
    "src/elicit/oracle/__init__.py",
    "src/elicit/oracle/base.py",
    "src/elicit/oracle/cache.py",
    "src/elicit/oracle/client.py",
    "src/elicit/oracle/embedded.py",
    "src/elicit/oracle/simulated.py",
    "src/elicit/prompts.py",
    "data/templates.yaml",
)
OPTIMIZE_SOURCES = (
    "src/elicit/optimize/__init__.py",
    "src/elicit/optimize/config.py",
    "src/elicit/optimize/problem.py",
    "src/elicit/optimize/losses.py",
    "src/elicit/optimize/fit.py",
    "src/elicit/optimize/select.py",
)
ORACLE_PARAMS = ("oracle", "oracles.{oracle}", "datasets.{dataset}")
# Stands for every shared setting at the top of ``optimize:`` (defaults of all configs), listed key by key so that
# editing one swept config never re-runs another.
OPTIMIZE_SHARED = "optimize.<shared>"
OPTIMIZE_OWN_KEYS = ("configs", "loop_config", "select")

# Stage name → (its own source files, params keys it reads). Shared sources are added to every stage.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "load": ("src/elicit/stages/load.py", "src/elicit/datasets.py", "src/elicit/hygiene.py"),
    "embed": ("src/elicit/stages/embed.py", "src/elicit/embed.py"),
    "group": ("src/elicit/stages/group.py", "src/elicit/group.py"),
    "query": ("src/elicit/stages/query.py", "src/elicit/plan.py", *ORACLE_SOURCES),
    "priors": ("src/elicit/stages/priors.py", "src/elicit/priors.py"),
    "plan": ("src/elicit/stages/plan.py", "src/elicit/plan.py", "src/elicit/priors.py"),
    "fit_loop": ("src/elicit/stages/fit_loop.py", "src/elicit/tuples.py", *OPTIMIZE_SOURCES),
    "tuples": ("src/elicit/stages/tuples.py", "src/elicit/tuples.py"),
    "optimize": ("src/elicit/stages/optimize.py", *OPTIMIZE_SOURCES),
    "select": ("src/elicit/stages/select.py", *OPTIMIZE_SOURCES),
    "votes": ("src/elicit/stages/votes.py", "src/elicit/baselines/votes.py"),
    "icm": ("src/elicit/stages/icm.py", "src/elicit/baselines/icm.py", *ORACLE_SOURCES),
    "fewshot": ("src/elicit/stages/fewshot.py", "src/elicit/baselines/fewshot.py", *ORACLE_SOURCES),
    "evaluate": ("src/elicit/stages/evaluate.py", "src/elicit/evaluate.py"),
    "report": (
        "src/elicit/stages/report.py",
        "src/elicit/report.py",
        "src/elicit/plots.py",
        "src/elicit/evaluate.py",
        "src/elicit/templates/report.html.j2",
    ),
    "export": ("src/elicit/stages/export.py", "src/elicit/export.py"),
    "summary": (
        "src/elicit/stages/summary.py",
        "src/elicit/stages/report.py",
        "src/elicit/report.py",
        "src/elicit/templates/summary.html.j2",
    ),
    "ablate": (
        "src/elicit/stages/ablate.py",
        "src/elicit/ablation.py",
        "src/elicit/evaluate.py",
        "src/elicit/plots.py",
        *OPTIMIZE_SOURCES,
    ),
    "study": (
        "src/elicit/stages/study.py",
        "src/elicit/study.py",
        "src/elicit/stages/report.py",
        "src/elicit/report.py",
        "src/elicit/templates/summary.html.j2",
    ),
}
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "load": ("base.seed", "hygiene", "runs.{run}", "datasets.{dataset}"),
    "embed": ("embed", "runs.{run}"),
    "group": ("group", "base.seed", "base.rounds", "runs.{run}"),
    "query": (*ORACLE_PARAMS, "runs.{run}"),
    "priors": ("runs.{run}",),
    "plan": ("budget", "base.seed", "runs.{run}", "oracles.{oracle}", "datasets.{dataset}"),
    "fit_loop": ("optimize.loop_config", OPTIMIZE_SHARED, "base.seed", "runs.{run}", "datasets.{dataset}"),
    "tuples": ("runs.{run}",),
    "optimize": ("optimize.configs.{config}", OPTIMIZE_SHARED, "base.seeds", "runs.{run}", "datasets.{dataset}"),
    "select": (
        "optimize.select",
        OPTIMIZE_SHARED,
        "optimize.configs",
        "base.seeds",
        "runs.{run}",
        "datasets.{dataset}",
    ),
    "votes": ("runs.{run}",),
    "icm": ("baselines.icm", "baselines.seeds", "base.seeds", *ORACLE_PARAMS, "runs.{run}"),
    "fewshot": (
        "baselines.fewshot",
        "baselines.bootstrap",
        "baselines.seeds",
        "base.seeds",
        *ORACLE_PARAMS,
        "runs.{run}",
    ),
    "evaluate": ("evaluate", "runs.{run}", "datasets.{dataset}"),
    "report": ("evaluate", "report", "runs.{run}", "datasets.{dataset}", "oracles.{oracle}"),
    "export": ("runs.{run}", "datasets.{dataset}"),
    "summary": ("summary", "<summary runs>"),
    # the study (Snakemake target `study`, not part of a bare run or of dvc.yaml)
    "ablate": ("optimize", "base.seeds", "base.rounds", "evaluate", "runs.{run}", "datasets.{dataset}"),
    "study": ("study", "<study runs>"),
}
VOTE_METHODS = ("zero_shot", "zero_shot_calibrated", "few_shot_mean", "majority_vote", "dawid_skene")
FEWSHOT_METHODS = ("golden_fewshot", "random_fewshot", "bootstrap_fewshot")
BUILTIN_METHODS = (*VOTE_METHODS, "icm", "icm_budget", *FEWSHOT_METHODS, "selected", "gold_best")
"""Names of built-in methods and generated label sets: an optimize config may not take one (``labels/<name>/``)."""


@dataclass
class Job:
    """One job of one run: a stage CLI call with every path as a flag."""

    stage: str
    name: str
    """unique within the run, e.g. ``plan_r1``, ``optimize_full``."""
    run: str
    args: dict[str, str] = field(default_factory=dict)
    """non-path flags, e.g. round or config."""
    deps: dict[str, list[str]] = field(default_factory=dict)
    outs: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """placeholder values for param keys."""

    @property
    def module(self) -> str:
        return f"elicit.stages.{self.stage}"

    @property
    def sources(self) -> list[str]:
        return list(STAGE_SOURCES[self.stage]) + list(SHARED_SOURCES)

    def param_keys(self, params: dict[str, Any]) -> list[str]:
        return expand_keys(params, self.stage, self.keys)

    @property
    def command(self) -> str:
        parts = [f"python -m {self.module}" + (f" --run {self.run}" if self.run else "")]
        parts += [f"--{flag} {value}" for flag, value in self.args.items()]
        for flag, paths in {**self.deps, **self.outs}.items():
            parts.append(f"--{flag} {' '.join(paths)}")
        return " ".join(parts)


def configs(params: dict[str, Any]) -> list[str]:
    return list(params.get("optimize", {}).get("configs", {}))


def data_file(params: dict[str, Any], run: str) -> list[str]:
    """The dataset files a run's load stage reads: its file (none for hub sources), then its ``other_splits``."""
    ds = params["datasets"][params["runs"][run]["dataset"]]
    path = ds.get("path")
    own = [path] if path and ds.get("source", "builtin") != "hub" else []
    return own + [p for p in ds.get("other_splits") or [] if p not in own]


def jobs_for_run(params: dict[str, Any], run: str) -> list[Job]:
    """All jobs of one run, in dependency order."""
    entry = params["runs"][run]
    keys = {"run": run, "dataset": entry["dataset"], "oracle": entry["oracle"]}
    rounds = int(params["base"]["rounds"])
    d = f"results/{run}"
    items, groups, priors, tuples = (
        f"{d}/items.parquet",
        f"{d}/groups.parquet",
        f"{d}/priors.parquet",
        f"{d}/tuples.parquet",
    )
    preds = [f"{d}/round{r}/predictions.parquet" for r in range(rounds + 1)]
    hygiene = f"{d}/hygiene.json"
    config_dirs = [f"{d}/labels/{c}" for c in configs(params)]
    baseline_dirs = [f"{d}/labels/{m}" for m in (*VOTE_METHODS, "icm", *FEWSHOT_METHODS)]

    def job(stage: str, name: str, **kw: Any) -> Job:
        return Job(stage=stage, name=name, run=run, keys=dict(keys, **kw.pop("extra_keys", {})), **kw)

    out = [
        job("load", "load", deps={}, outs={"out": [items], "hygiene": [hygiene]}),
        job("embed", "embed", deps={"items": [items]}, outs={"out": [f"{d}/embeddings.npy"]}),
        job("group", "group", deps={"embeddings": [f"{d}/embeddings.npy"]}, outs={"out": [groups]}),
        job("query", "query_r0", args={"round": "0"}, deps={"items": [items]}, outs={"out": [preds[0]]}),
        job("priors", "priors", deps={"predictions": [preds[0]]}, outs={"out": [priors]}),
    ]
    for r in range(1, rounds + 1):
        shown = priors if r == 1 else f"{d}/round{r - 1}/fit.parquet"
        plan = f"{d}/round{r}/plan.parquet"
        out.append(
            job(
                "plan",
                f"plan_r{r}",
                args={"round": str(r)},
                deps={"items": [items], "groups": [groups], "shown": [shown]},
                outs={"out": [plan]},
            )
        )
        out.append(
            job(
                "query",
                f"query_r{r}",
                args={"round": str(r)},
                deps={"items": [items], "plan": [plan]},
                outs={"out": [preds[r]]},
            )
        )
        if r < rounds:
            out.append(
                job(
                    "fit_loop",
                    f"fit_loop_r{r}",
                    args={"round": str(r)},
                    deps={"items": [items], "priors": [priors], "predictions": preds[1 : r + 1]},
                    outs={"out": [f"{d}/round{r}/fit.parquet"]},
                )
            )
    out.append(job("tuples", "tuples", deps={"predictions": preds[1:]}, outs={"out": [tuples]}))
    for c, cdir in zip(configs(params), config_dirs, strict=True):
        out.append(
            job(
                "optimize",
                f"optimize_{c}",
                args={"config": c},
                extra_keys={"config": c},
                deps={"items": [items], "priors": [priors], "tuples": [tuples]},
                outs={"out": [cdir]},
            )
        )
    out += [
        job(
            "select",
            "select",
            deps={"items": [items], "priors": [priors], "tuples": [tuples], "labels": config_dirs},
            outs={"out": [f"{d}/labels/selected"], "selection": [f"{d}/selection.json"]},
        ),
        job(
            "votes",
            "votes",
            deps={"priors": [priors], "predictions": preds},
            outs={"out": [f"{d}/labels/{m}" for m in VOTE_METHODS]},
        ),
        job(
            "icm",
            "icm",
            deps={"items": [items], "embeddings": [f"{d}/embeddings.npy"], "priors": [priors]},
            outs={"out": [f"{d}/labels/icm"]},
        ),
    ]
    for m in FEWSHOT_METHODS:
        out.append(
            job(
                "fewshot",
                m,
                args={"method": m},
                deps={"items": [items], "groups": [groups], "priors": [priors]},
                outs={"out": [f"{d}/labels/{m}"]},
            )
        )
    label_dirs = [*config_dirs, f"{d}/labels/selected", *baseline_dirs]
    out += [
        job(
            "evaluate",
            "evaluate",
            deps={"items": [items], "labels": label_dirs},
            outs={"out": [f"{d}/metrics.parquet"], "json": [f"{d}/metrics.json"]},
        ),
        job(
            "report",
            "report",
            deps={
                "items": [items],
                "metrics": [f"{d}/metrics.parquet"],
                "labels": label_dirs,
                "predictions": preds,
                "selection": [f"{d}/selection.json"],
                "hygiene": [hygiene],
            },
            outs={"out": [f"{d}/report.html"], "plots": [f"{d}/plots"]},
        ),
        job(
            "export",
            "export",
            deps={"items": [items], "labels": [f"{d}/labels/selected"]},
            outs={"out": [f"{d}/export"]},
        ),
    ]
    return out


def expand_keys(params: dict[str, Any], stage: str, keys: dict[str, str]) -> list[str]:
    """The dotted params keys a stage's job reads, placeholders resolved and shared optimize settings listed."""
    out: list[str] = []
    for key in STAGE_PARAMS[stage]:
        if key == OPTIMIZE_SHARED:
            out += [f"optimize.{k}" for k in params.get("optimize", {}) if k not in OPTIMIZE_OWN_KEYS]
        elif key in ("<summary runs>", "<study runs>"):  # each listed run's entry, dataset and oracle
            for run in params[key[1:-6]]["runs"]:
                entry = params["runs"][run]
                out += [f"runs.{run}", f"datasets.{entry['dataset']}", f"oracles.{entry['oracle']}"]
        else:
            out.append(key.format(**keys))
    return list(dict.fromkeys(out))


def summary_job(params: dict[str, Any]) -> Job:
    """The one job over several runs: ``results/summary.{parquet,html}`` for the runs in ``summary.runs``."""
    runs = list(params["summary"]["runs"])
    return Job(
        stage="summary",
        name="summary",
        run="",
        args={"runs": " ".join(runs)},
        deps={
            "metrics": [f"results/{r}/metrics.parquet" for r in runs],
            "items": [f"results/{r}/items.parquet" for r in runs],
        },
        outs={"out": ["results/summary.parquet"], "html": ["results/summary.html"]},
    )


def tracked_params(params: dict[str, Any], stage: str, run: str, config: str | None = None) -> dict[str, Any]:
    """The values of the params a stage reads, for one job: Snakemake re-runs the job when these change."""
    entry = params["runs"][run]
    keys = {"run": run, "dataset": entry["dataset"], "oracle": entry["oracle"], "config": config or ""}
    return {k: lookup(params, k) for k in expand_keys(params, stage, keys)}


def lookup(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def sources(stage: str) -> list[str]:
    return list(STAGE_SOURCES[stage]) + list(SHARED_SOURCES)


def _dvc_stage(params: dict[str, Any], j: Job, extra_deps: list[str] | None = None) -> dict[str, Any]:
    return {
        "cmd": j.command,
        "deps": [*(extra_deps or []), *(p for paths in j.deps.values() for p in paths), *j.sources],
        "params": j.param_keys(params),
        "outs": [p for paths in j.outs.values() for p in paths],
    }


def dvc_yaml(params: dict[str, Any]) -> dict[str, Any]:
    """dvc.yaml as a dict: one explicit stage per job of every default run (``<job>--<run>``), the summary over
    ``summary.runs``, and each default run's metrics.json as a DVC metrics file (``dvc metrics show``)."""
    stages: dict[str, Any] = {}
    for run in params["pipeline"]["default_runs"]:
        for j in jobs_for_run(params, run):
            extra = data_file(params, run) if j.stage == "load" else []
            stages[f"{j.name}--{run}"] = _dvc_stage(params, j, extra)
    stages["summary"] = _dvc_stage(params, summary_job(params))
    metrics = [f"results/{run}/metrics.json" for run in params["pipeline"]["default_runs"]]
    return {"stages": stages, "metrics": metrics}


HEADER = (
    "# Written by `python -m elicit.pipeline dvc` from src/elicit/pipeline.py and params.yaml; do not edit by hand.\n"
    "# Re-write it after changing pipeline.default_runs, base.rounds or the names of optimize.configs\n"
    "# (a test fails while it is stale). Editing any other value needs no re-write: `dvc repro` tracks it.\n"
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
