"""The stage registry: the one declaration of the DAG.

Each :class:`Rule` is one kind of job — a Snakemake rule: the stage CLI it calls, the paths it reads and writes (the
templates of :mod:`elicit.paths`, over the job's wildcards), its other flags, the params it tracks and its source
files. Everything else is expanded from it:

- ``dvc.yaml``: one stage per job of every default run, plus the summary (``python -m elicit.pipeline dvc``;
  ``python -m elicit.pipeline check`` and a test fail while the committed file is stale);
- the Snakemake rules take ``input:``, ``output:``, ``params:``, ``log:``, ``benchmark:`` and ``shell:`` from it
  through the helpers of ``workflow/rules/common.smk``; a rule itself adds only threads, resources and the like;
- the stages' default paths (:class:`elicit.paths.RunPaths`) are the same templates.

A test (tests/test_parity.py) builds Snakemake's DAG in-process and reads DVC's own index, and fails where a driver's
job differs from :func:`jobs_for_run`.

**Every file a stage reads is an input of its job**, passed as a flag, with three deliberate exceptions: the dataset
files of ``load`` (named by the params, declared but not passed), the oracle's answer cache (``oracle.cache_dir``: a
cache, the same answers with or without it), and telemetry (``results/<run>/telemetry/<job>.json``: wall time, calls
and cache hits of how a job ran — it differs between two runs of the same inputs, so declaring it would re-run
report, summary and study after any upstream re-run, byte-identical or not; they read it for costs and time only,
never for a metric).

**Tracked params.** A job tracks the params that make up the resolved values it reads (``STAGE_PARAMS``): the run's
own fields (``<run>``: its dataset, oracle, n, seed and positive_fraction as far as its entry sets them, and
``base.seed`` when it sets no seed), each shared section the job reads together with the run's override of exactly
that section, and for an optimize config the configs it ``extends``. A run's ``description``, and its overrides of
sections a job does not read, re-run nothing. Snakemake (``params: tracked``) and DVC (``params:``) track the same
keys, so both re-run on exactly the same edits. DVC can track only keys that exist, so ``dvc.yaml`` lists the keys
the params have: re-write it after adding a key a run or section did not have (a run's ``seed`` or an override, say).
The report shows — and writes beside itself, ``results/<run>/params.resolved.yaml`` — the run's resolved params, so
it tracks all of them (``<resolved>``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from elicit.contracts import methods as _methods
from elicit.paths import (
    ABLATION,
    BENCHMARK,
    EMBEDDINGS,
    EXPORT,
    FIT,
    GROUPS,
    HYGIENE,
    ITEMS,
    LABELS,
    LOG,
    METRICS,
    METRICS_JSON,
    PLAN,
    PLOTS,
    PREDICTIONS,
    PRIORS,
    REPORT,
    RESOLVED,
    SELECTION,
    SHARED_BENCHMARK,
    SHARED_LOG,
    STUDY,
    STUDY_HTML,
    STUDY_MARKDOWN,
    STUDY_NOTES,
    SUMMARY,
    SUMMARY_HTML,
    TUPLES,
    fill,
)

if TYPE_CHECKING:
    from elicit.config import RunConfig

SHARED_SOURCES = (
    "src/elicit/config.py",
    "src/elicit/errors.py",
    "src/elicit/io.py",
    "src/elicit/paths.py",
    "src/elicit/stages/_cli.py",
    "src/elicit/contracts/__init__.py",
    "src/elicit/contracts/consistency.py",
    "src/elicit/contracts/methods.py",
)
EVALUATE_SOURCES = (
    "src/elicit/evaluate/__init__.py",
    "src/elicit/evaluate/metrics.py",
    "src/elicit/evaluate/describe.py",
    "src/elicit/verdicts.py",
)
ORACLE_SOURCES = (
    "src/elicit/oracle/__init__.py",
    "src/elicit/oracle/base.py",
    "src/elicit/oracle/cache.py",
    "src/elicit/oracle/client.py",
    "src/elicit/oracle/embedded.py",
    "src/elicit/oracle/factory.py",
    "src/elicit/oracle/simulated.py",
    "src/elicit/oracle/transport.py",
    "src/elicit/stages/_oracle.py",
    "src/elicit/prompts.py",
    "data/templates.yaml",
)
OPTIMIZE_SOURCES = (
    "src/elicit/plan.py",
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

# Stage name → its own source files: editing one re-runs the stage's jobs. Shared sources are added to every stage.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "load": (
        "src/elicit/stages/load.py",
        "src/elicit/datasets/__init__.py",
        "src/elicit/datasets/builtins.py",
        "src/elicit/datasets/config.py",
        "src/elicit/datasets/diagnosis.py",
        "src/elicit/datasets/items.py",
        "src/elicit/datasets/readers.py",
        "src/elicit/datasets/sampling.py",
        "src/elicit/hygiene.py",
    ),
    "embed": ("src/elicit/stages/embed.py", "src/elicit/embed.py"),
    "group": ("src/elicit/stages/group.py", "src/elicit/group.py"),
    "query": ("src/elicit/stages/query.py", "src/elicit/plan.py", *ORACLE_SOURCES),
    "priors": ("src/elicit/stages/priors.py", "src/elicit/priors.py"),
    "plan": (  # the prompt templates too: a plan names the dataset's template ids
        "src/elicit/stages/plan.py",
        "src/elicit/plan.py",
        "src/elicit/priors.py",
        "src/elicit/prompts.py",
        "data/templates.yaml",
    ),
    "fit_loop": ("src/elicit/stages/fit_loop.py", "src/elicit/tuples.py", *OPTIMIZE_SOURCES),
    "tuples": ("src/elicit/stages/tuples.py", "src/elicit/tuples.py"),
    "optimize": ("src/elicit/stages/optimize.py", *OPTIMIZE_SOURCES),
    "select": ("src/elicit/stages/select.py", *OPTIMIZE_SOURCES),
    "votes": ("src/elicit/stages/votes.py", "src/elicit/baselines/votes.py", "src/elicit/plan.py"),
    "icm": ("src/elicit/stages/icm.py", "src/elicit/baselines/icm.py", *ORACLE_SOURCES),
    "fewshot": ("src/elicit/stages/fewshot.py", "src/elicit/baselines/fewshot.py", *ORACLE_SOURCES),
    "evaluate": ("src/elicit/stages/evaluate.py", *EVALUATE_SOURCES),
    "report": (
        "src/elicit/stages/report.py",
        "src/elicit/report.py",
        "src/elicit/plots.py",
        "src/elicit/plan.py",
        *EVALUATE_SOURCES,
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
        *EVALUATE_SOURCES,
        "src/elicit/plots.py",
        "src/elicit/plan.py",
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
RUN_FIELDS = "<run>"
"""The run's own fields: ``runs.<run>.{dataset,oracle,n,seed,positive_fraction}`` that its entry sets (``base.seed``
when it sets no seed) — never its description."""
RESOLVED_ALL = "<resolved>"
"""Everything in the run's resolved params (:func:`resolved_params`)."""
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "load": (RUN_FIELDS, "hygiene", "datasets.{dataset}"),
    "embed": ("embed", RUN_FIELDS),
    "group": ("group", "base.rounds", RUN_FIELDS),
    "query": (*ORACLE_PARAMS, RUN_FIELDS),
    "priors": (RUN_FIELDS,),
    "plan": ("budget", RUN_FIELDS, "oracles.{oracle}", "datasets.{dataset}"),
    "fit_loop": ("optimize.loop_config", OPTIMIZE_SHARED, RUN_FIELDS, "datasets.{dataset}"),
    "tuples": (RUN_FIELDS,),
    "optimize": ("optimize.configs.{config}", OPTIMIZE_SHARED, "base.seeds", RUN_FIELDS, "datasets.{dataset}"),
    "select": ("optimize.select", OPTIMIZE_SHARED, "optimize.configs", "base.seeds", RUN_FIELDS, "datasets.{dataset}"),
    "votes": (RUN_FIELDS,),
    "icm": ("baselines.icm", "baselines.seeds", "base.seeds", *ORACLE_PARAMS, RUN_FIELDS),
    "fewshot": (
        "baselines.fewshot",
        "baselines.bootstrap",
        "baselines.seeds",
        "base.seeds",
        *ORACLE_PARAMS,
        RUN_FIELDS,
    ),
    "evaluate": ("evaluate", RUN_FIELDS, "datasets.{dataset}"),
    "report": (RESOLVED_ALL,),
    "export": (RUN_FIELDS, "datasets.{dataset}"),
    "summary": ("summary", "<summary runs>"),
    # the study (Snakemake target `study`, not part of a bare run or of dvc.yaml)
    "ablate": ("optimize", "base.seeds", "base.rounds", "evaluate", RUN_FIELDS, "datasets.{dataset}"),
    "study": ("study", "<study runs>"),
}
# The method names come from the one registry (elicit.contracts.methods).
VOTE_METHODS, FEWSHOT_METHODS, BUILTIN_METHODS = (
    _methods.VOTE_METHODS,
    _methods.FEWSHOT_METHODS,
    _methods.BUILTIN_METHODS,
)

# ------------------------------------------------------------------------------------------------ the rules

Wildcards = Mapping[str, str]
PathsFn = Callable[[dict[str, Any], Wildcards], list[str]]
Paths = str | tuple[str, ...] | PathsFn
"""What a flag names: a template, several templates, or a function of the params and the job's wildcards."""
Values = Callable[[dict[str, Any], Wildcards], Iterable[Any]]


def each(template: str, **over: Values) -> PathsFn:
    """``template`` once per value of some wildcards, e.g. ``each(PREDICTIONS, r=few_shot_rounds)``."""

    def paths(params: dict[str, Any], wc: Wildcards) -> list[str]:
        combos = itertools.product(*(list(fn(params, wc)) for fn in over.values()))
        return [fill(template, **{**wc, **dict(zip(over, combo, strict=True))}) for combo in combos]

    return paths


def run_view(params: dict[str, Any], run: str) -> RunConfig:
    """The run as its stages see it (``elicit.config.resolve_run``: its overrides merged)."""
    from elicit.config import resolve_run

    return resolve_run(params, run)


def rounds(params: dict[str, Any], run: str) -> int:
    """The run's few-shot rounds (``base.rounds``, after its overrides)."""
    return int(run_view(params, run).section("base")["rounds"])


def configs(params: dict[str, Any], run: str | None = None) -> list[str]:
    """The optimize configs of a run (after its overrides), or of the shared section."""
    section = run_view(params, run).section("optimize") if run else params.get("optimize", {})
    return list((section or {}).get("configs") or {})


def all_rounds(params: dict[str, Any], wc: Wildcards) -> range:
    return range(rounds(params, wc["run"]) + 1)


def few_shot_rounds(params: dict[str, Any], wc: Wildcards) -> range:
    return range(1, rounds(params, wc["run"]) + 1)


def loop_rounds(params: dict[str, Any], wc: Wildcards) -> range:
    """Rounds whose fit shows the labels of the next round: all but the last."""
    return range(1, rounds(params, wc["run"]))


def rounds_through(params: dict[str, Any], wc: Wildcards) -> range:
    """Few-shot rounds 1..r (what the loop fit of round r sees)."""
    return range(1, int(wc["r"]) + 1)


def config_names(params: dict[str, Any], wc: Wildcards) -> list[str]:
    return configs(params, wc["run"])


def fewshot_methods(params: dict[str, Any], wc: Wildcards) -> tuple[str, ...]:
    return FEWSHOT_METHODS


def label_methods(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """Every label set of a run, in evaluation order: the configs, selected, the baselines."""
    return [*config_names(params, wc), "selected", *VOTE_METHODS, "icm", *FEWSHOT_METHODS]


def shown_labels(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """Round 1 shows the zero-shot priors; round r shows the loop fit of round r - 1."""
    r = int(wc["r"])
    return [fill(PRIORS, **wc)] if r == 1 else [fill(FIT, run=wc["run"], r=r - 1)]


def data_file(params: dict[str, Any], run: str) -> list[str]:
    """The dataset files a run's load stage reads: its file (none for hub sources), then its ``other_splits``."""
    ds = params["datasets"][params["runs"][run]["dataset"]]
    path = ds.get("path")
    if path is None and ds.get("source", "builtin") == "builtin":  # a one-line builtin entry: its own file
        from elicit.datasets.builtins import BUILTINS

        builtin = BUILTINS.get(ds.get("builtin") or params["runs"][run]["dataset"])
        path = builtin.path if builtin is not None else None
    own = [path] if path and ds.get("source", "builtin") != "hub" else []
    return own + [p for p in ds.get("other_splits") or [] if p not in own]


def over_runs(template: str, section: str, key: str = "runs") -> PathsFn:
    """``template`` for each run listed in ``<section>.<key>`` (summary.runs, study.runs, study.ablate)."""
    return lambda params, wc: [fill(template, run=r) for r in (params.get(section) or {}).get(key) or []]


def listed(section: str, key: str = "runs") -> Callable[[dict[str, Any]], str]:
    return lambda params: " ".join((params.get(section) or {}).get(key) or [])


@dataclass(frozen=True)
class Rule:
    """One kind of job (one Snakemake rule): a stage CLI call with every path a flag."""

    name: str
    """the Snakemake rule; the Slurm profile and ``snakemake -n`` name it."""
    inputs: dict[str, Paths]
    """flag → what the job reads through it."""
    outputs: dict[str, str | tuple[str, ...]]
    """flag → template(s) over the rule's own wildcards (Snakemake finds a job by them)."""
    stage: str = ""
    """the CLI, ``python -m elicit.stages.<stage>`` (default: the rule's name)."""
    job: str = ""
    """one job's name over the rule's wildcards (default: the rule's name): DVC stage ``<job>--<run>``,
    ``logs/<run>/<job>.log``."""
    args: dict[str, str | Callable[[dict[str, Any]], str]] = field(default_factory=dict)
    """non-path flags: a template over the wildcards (``{r}``) or a function of the params."""
    each: dict[str, Values] = field(default_factory=dict)
    """the values of each wildcard besides ``run``, i.e. the rule's jobs in a run (plan: r = 1..rounds)."""
    reads: Callable[[dict[str, Any], Wildcards], list[str]] | None = None
    """inputs the job reads without a flag (load: the dataset files the params name)."""
    after: PathsFn | None = None
    """outputs to build first that the job does not read (the study builds every run's report)."""
    per_run: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", self.stage or self.name)
        object.__setattr__(self, "job", self.job or self.name)

    def input(self, flag: str, params: dict[str, Any], wc: Wildcards) -> list[str]:
        return _paths(self.inputs[flag], params, wc)

    def inputs_for(self, params: dict[str, Any], wc: Wildcards) -> dict[str, list[str]]:
        return {flag: self.input(flag, params, wc) for flag in self.inputs}

    def outputs_for(self, wc: Wildcards) -> dict[str, list[str]]:
        return {flag: [fill(t, **wc) for t in _templates(spec)] for flag, spec in self.outputs.items()}

    def args_for(self, params: dict[str, Any], wc: Wildcards) -> dict[str, str]:
        return {flag: v(params) if callable(v) else fill(v, **wc) for flag, v in self.args.items()}

    def jobs(self, params: dict[str, Any], run: str | None) -> list[Job]:
        wildcards = [
            dict(zip(self.each, combo, strict=True))
            for combo in itertools.product(*(list(fn(params, {"run": run or ""})) for fn in self.each.values()))
        ]
        out = []
        for values in wildcards:
            wc = {"run": run, **{k: str(v) for k, v in values.items()}} if run else {}
            out.append(
                Job(
                    rule=self,
                    name=fill(self.job, **wc),
                    run=run or "",
                    args=self.args_for(params, wc),
                    deps=self.inputs_for(params, wc),
                    outs=self.outputs_for(wc),
                    data=self.reads(params, wc) if self.reads else [],
                    after=self.after(params, wc) if self.after else [],
                    config=wc.get("config"),
                )
            )
        return out

    @property
    def log(self) -> str:
        return fill(LOG, job=self.job) if self.per_run else fill(SHARED_LOG, job=self.job)

    @property
    def benchmark(self) -> str:
        return fill(BENCHMARK, job=self.job) if self.per_run else fill(SHARED_BENCHMARK, job=self.job)


def _templates(spec: str | tuple[str, ...]) -> tuple[str, ...]:
    return (spec,) if isinstance(spec, str) else spec


def _paths(spec: Paths, params: dict[str, Any], wc: Wildcards) -> list[str]:
    if callable(spec):
        return spec(params, wc)
    return [fill(t, **wc) for t in _templates(spec)]


def command_line(stage: str, run: str | None, flags: Mapping[str, str]) -> str:
    """``python -m elicit.stages.<stage> --run <run> --<flag> <value> ...``: the one shape of every job's command."""
    head = f"python -m elicit.stages.{stage}" + (f" --run {run}" if run else "")
    return " ".join([head, *(f"--{flag} {value}" for flag, value in flags.items())])


SELECTED = fill(LABELS, method="selected")
ROUND0 = fill(PREDICTIONS, r=0)

RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("load", {}, {"out": ITEMS, "hygiene": HYGIENE}, reads=lambda p, wc: data_file(p, wc["run"])),
        Rule("embed", {"items": ITEMS}, {"out": EMBEDDINGS}),
        Rule("group", {"embeddings": EMBEDDINGS}, {"out": GROUPS}),
        Rule("query_zero_shot", {"items": ITEMS}, {"out": ROUND0}, stage="query", job="query_r0", args={"round": "0"}),
        Rule("priors", {"predictions": ROUND0}, {"out": PRIORS}),
        Rule(
            "plan",
            {"items": ITEMS, "groups": GROUPS, "shown": shown_labels},
            {"out": PLAN},
            job="plan_r{r}",
            args={"round": "{r}"},
            each={"r": few_shot_rounds},
        ),
        Rule(
            "query",
            {"items": ITEMS, "plan": PLAN},
            {"out": PREDICTIONS},
            job="query_r{r}",
            args={"round": "{r}"},
            each={"r": few_shot_rounds},
        ),
        Rule(
            "fit_loop",
            {"items": ITEMS, "priors": PRIORS, "predictions": each(PREDICTIONS, r=rounds_through)},
            {"out": FIT},
            job="fit_loop_r{r}",
            args={"round": "{r}"},
            each={"r": loop_rounds},
        ),
        Rule("tuples", {"predictions": each(PREDICTIONS, r=few_shot_rounds)}, {"out": TUPLES}),
        Rule(
            "optimize",
            {"items": ITEMS, "priors": PRIORS, "tuples": TUPLES},
            {"out": fill(LABELS, method="{config}")},
            job="optimize_{config}",
            args={"config": "{config}"},
            each={"config": config_names},
        ),
        Rule(
            "select",
            {"items": ITEMS, "priors": PRIORS, "tuples": TUPLES, "labels": each(LABELS, method=config_names)},
            {"out": SELECTED, "selection": SELECTION},
        ),
        Rule(
            "votes",
            {"priors": PRIORS, "predictions": each(PREDICTIONS, r=all_rounds)},
            {"out": tuple(fill(LABELS, method=m) for m in VOTE_METHODS)},
        ),
        Rule("icm", {"items": ITEMS, "embeddings": EMBEDDINGS, "priors": PRIORS}, {"out": fill(LABELS, method="icm")}),
        Rule(
            "fewshot",
            {"items": ITEMS, "groups": GROUPS, "priors": PRIORS},
            {"out": LABELS},
            job="{method}",
            args={"method": "{method}"},
            each={"method": fewshot_methods},
        ),
        Rule(
            "evaluate",
            {"items": ITEMS, "labels": each(LABELS, method=label_methods)},
            {"out": METRICS, "json": METRICS_JSON},
        ),
        Rule(
            "report",
            {
                "items": ITEMS,
                "metrics": METRICS,
                "labels": each(LABELS, method=label_methods),
                "predictions": each(PREDICTIONS, r=all_rounds),
                "selection": SELECTION,
                "hygiene": HYGIENE,
            },
            {"out": REPORT, "plots": PLOTS, "resolved": RESOLVED},
        ),
        Rule("export", {"items": ITEMS, "labels": SELECTED}, {"out": EXPORT}),
        Rule(
            "summary",
            {"metrics": over_runs(METRICS, "summary"), "items": over_runs(ITEMS, "summary")},
            {"out": SUMMARY, "html": SUMMARY_HTML},
            args={"runs": listed("summary")},
            per_run=False,
        ),
        # the study (`snakemake study`): not part of a bare run or of dvc.yaml
        Rule("ablate", {"items": ITEMS, "priors": PRIORS, "tuples": TUPLES, "selection": SELECTION}, {"out": ABLATION}),
        Rule(
            "study",
            {
                "metrics": over_runs(METRICS, "study"),
                "metrics-json": over_runs(METRICS_JSON, "study"),
                "items": over_runs(ITEMS, "study"),
                "selection": over_runs(SELECTION, "study"),
                "ablations": over_runs(ABLATION, "study", "ablate"),
                "notes": STUDY_NOTES,
            },
            {"out": STUDY, "html": STUDY_HTML, "markdown": STUDY_MARKDOWN},
            args={"runs": listed("study"), "ablate": listed("study", "ablate")},
            after=over_runs(REPORT, "study"),
            per_run=False,
        ),
    )
}
RUN_RULES = tuple(name for name in RULES if name not in ("summary", "ablate", "study"))
"""The rules of one run, as a bare ``snakemake`` / ``dvc repro`` builds it."""


@dataclass
class Job:
    """One job: a stage CLI call with every path a flag."""

    rule: Rule
    name: str
    """unique within the run, e.g. ``plan_r1``, ``optimize_full``."""
    run: str
    args: dict[str, str] = field(default_factory=dict)
    """non-path flags, e.g. round or config."""
    deps: dict[str, list[str]] = field(default_factory=dict)
    outs: dict[str, list[str]] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    """inputs read without a flag (load's dataset files)."""
    after: list[str] = field(default_factory=list)
    config: str | None = None

    @property
    def stage(self) -> str:
        return self.rule.stage

    @property
    def module(self) -> str:
        return f"elicit.stages.{self.stage}"

    @property
    def sources(self) -> list[str]:
        return sources(self.stage)

    def param_keys(self, params: dict[str, Any]) -> list[str]:
        return expand_keys(params, self.stage, self.run or None, self.config)

    @property
    def command(self) -> str:
        flags = {**self.args, **{flag: " ".join(paths) for flag, paths in {**self.deps, **self.outs}.items()}}
        return command_line(self.stage, self.run, flags)

    @property
    def inputs(self) -> list[str]:
        """Every declared input: data files, flags' paths, what it waits for, its source files."""
        return [*self.data, *(p for paths in self.deps.values() for p in paths), *self.after, *self.sources]

    @property
    def outputs(self) -> list[str]:
        return [p for paths in self.outs.values() for p in paths]


def _in_order(jobs: list[Job]) -> list[Job]:
    """Jobs in dependency order, each as early as its inputs allow and otherwise in declaration order."""
    made = {p: j.name for j in jobs for p in j.outputs}
    todo, out = list(jobs), []
    done: set[str] = set()
    while todo:
        job = next(j for j in todo if all(made.get(p, j.name) in done | {j.name} for p in j.inputs))
        todo.remove(job)
        done.add(job.name)
        out.append(job)
    return out


def jobs_for_run(params: dict[str, Any], run: str) -> list[Job]:
    """All jobs of one run, in dependency order."""
    return _in_order([job for name in RUN_RULES for job in RULES[name].jobs(params, run)])


def summary_job(params: dict[str, Any]) -> Job:
    """The one job over several runs: ``results/summary.{parquet,html}`` for the runs in ``summary.runs``."""
    return RULES["summary"].jobs(params, None)[0]


def default_targets(params: dict[str, Any]) -> list[str]:
    """What a bare ``snakemake`` / ``dvc repro`` builds: every output of the default runs' jobs and the summary that
    no other job reads."""
    jobs = [j for run in params["pipeline"]["default_runs"] for j in jobs_for_run(params, run)] + [summary_job(params)]
    read = {p for j in jobs for p in j.inputs}
    return [p for j in jobs for p in j.outputs if p not in read]


# ---------------------------------------------------------------------------------------------- tracked params

MISSING = object()


def lookup(params: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _has(params: dict[str, Any], dotted: str) -> bool:
    return lookup(params, dotted, MISSING) is not MISSING


def _run_fields(params: dict[str, Any], run: str) -> list[str]:
    entry = params["runs"][run]
    keys = [f"runs.{run}.{k}" for k in ("dataset", "oracle", "n", "seed", "positive_fraction") if k in entry]
    return keys if "seed" in entry else [*keys, "base.seed"]


def _with_override(params: dict[str, Any], run: str | None, key: str) -> list[str]:
    """A section key as the params have it, and the run's override of exactly that key if it has one."""
    over = f"runs.{run}.overrides.{key}"
    return [k for k in (key, over if run else None) if k and _has(params, k)]


def _extends(params: dict[str, Any], run: str, config: str) -> list[str]:
    """A config and the configs it extends, nearest first."""
    section = run_view(params, run).section("optimize") if run else params.get("optimize", {})
    known = (section or {}).get("configs") or {}
    chain = [config]
    while isinstance(known.get(chain[-1]), dict) and known[chain[-1]].get("extends") not in (None, *chain):
        chain.append(str(known[chain[-1]]["extends"]))
    return chain


def expand_keys(params: dict[str, Any], stage: str, run: str | None = None, config: str | None = None) -> list[str]:
    """The dotted params keys one job tracks (see the module docstring), in a fixed order."""
    if run and run not in params["runs"]:
        run_view(params, run)  # the one-line "unknown run 'x'; use one of ..." error
    entry = params["runs"][run] if run else {}
    names = {"run": run or "", "dataset": entry.get("dataset", ""), "oracle": entry.get("oracle", ""), "config": config}
    out: list[str] = []
    for key in STAGE_PARAMS[stage]:
        if key == RUN_FIELDS:
            out += _run_fields(params, str(run))
        elif key == RESOLVED_ALL:
            out += _run_fields(params, str(run)) + [
                k.format(**names) for k in ("datasets.{dataset}", "oracles.{oracle}")
            ]
            out += [s for s in params if s not in NOT_RUN_SECTIONS]
            out += [f"runs.{run}.overrides"] if entry.get("overrides") else []
        elif key == OPTIMIZE_SHARED:
            section = run_view(params, str(run)).section("optimize") if run else params.get("optimize", {})
            for k in section or {}:
                if k not in OPTIMIZE_OWN_KEYS:
                    out += _with_override(params, run, f"optimize.{k}")
        elif key == "optimize.configs.{config}":
            for c in _extends(params, str(run), str(config)):
                out += _with_override(params, run, f"optimize.configs.{c}")
        elif key in ("<summary runs>", "<study runs>"):  # each listed run's fields, dataset and oracle
            for r in (params.get(key[1:-6]) or {}).get("runs") or []:
                e = params["runs"][r]
                out += [*_run_fields(params, r), f"datasets.{e['dataset']}", f"oracles.{e['oracle']}"]
        else:
            out += _with_override(params, run, key.format(**names))
    return list(dict.fromkeys(out))


def tracked_params(
    params: dict[str, Any], stage: str, run: str | None = None, config: str | None = None
) -> dict[str, Any]:
    """The values of the keys one job tracks: Snakemake re-runs the job when one changes (DVC: ``params:``)."""
    return {k: lookup(params, k) for k in expand_keys(params, stage, run, config)}


NOT_RUN_SECTIONS = ("include", "pipeline", "summary", "study", "runs", "datasets", "oracles")
"""Top-level params that are not a section a run reads (with its overrides)."""


def resolved_params(params: dict[str, Any], run: str) -> dict[str, Any]:
    """One run's params as its stages see them — its overrides merged into the sections, its own dataset and
    oracle only, no description — for ``params.resolved.yaml`` and the report. Holds no secret: params never hold
    an API key, only the name of the variable that does (``api_key_env``)."""
    cfg = run_view(params, run)
    own = {"name": run, "dataset": cfg.dataset, "oracle": cfg.oracle, "n": cfg.n, "seed": cfg.seed}
    sections = [s for s in params if s not in NOT_RUN_SECTIONS] + [s for s in cfg.overrides if s not in params]
    return {
        "run": dict(own, positive_fraction=cfg.positive_fraction),
        "datasets": {cfg.dataset: cfg.dataset_params},
        "oracles": {cfg.oracle: cfg.oracle_params},
        **{s: cfg.section(s) for s in sections},
    }


def sources(stage: str) -> list[str]:
    return list(STAGE_SOURCES[stage]) + list(SHARED_SOURCES)


# --------------------------------------------------------------------------------------------------- dvc.yaml


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
    "# Re-write it after changing pipeline.default_runs, base.rounds or the names of optimize.configs, or after\n"
    "# adding a key that was not there (a run's seed or overrides); `python -m elicit.pipeline check` and a test fail\n"
    "# while it is stale. Editing a value needs no re-write: `dvc repro` tracks it.\n"
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
