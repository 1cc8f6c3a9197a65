"""The stage registry: the one declaration of the DAG.

Each :class:`Rule` is one kind of job — a Snakemake rule: the stage CLI it calls, the paths it reads and writes (the
templates of :mod:`elicit.paths`, over the job's wildcards), its other flags, the params it tracks and its source
files (which params and source files a job tracks: :mod:`elicit.tracking`). Everything else is expanded from it:

- ``dvc.yaml``: one stage per job of every default run, plus the summary (``python -m elicit.pipeline dvc``, written
  by :mod:`elicit.dvc_yaml`; ``python -m elicit.pipeline check`` and a test fail while the committed file is stale);
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
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from elicit.contracts import methods as _methods
from elicit.paths import (
    ABLATION,
    BENCHMARK,
    EMBEDDINGS,
    EXPORT,
    FIT,
    GOLD_BUDGET,
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
    PROTOCOL,
    REPORT,
    RESOLVED,
    SELECTION,
    SHARED_BENCHMARK,
    SHARED_LOG,
    STUDY,
    STUDY_COST_FIGURE,
    STUDY_EQUAL_COST_FIGURE,
    STUDY_HTML,
    STUDY_MARKDOWN,
    STUDY_NOTES,
    SUMMARY,
    SUMMARY_HTML,
    TUPLES,
    fill,
)
from elicit.replicates import draws
from elicit.tracking import expand_keys, run_view, sources

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


def baseline_methods(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """The baselines a run makes labels for, in registry order: each one a stage writes, an opt-in one (faithful
    ``icm``) only where the run enables it (``baselines.icm.enabled``, after its overrides)."""
    baselines = run_view(params, wc["run"]).section("baselines")
    return [m.name for m in _methods.METHODS if m.name in _methods.BASELINES and _methods.enabled(m, baselines)]


def icm_enabled(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """The faithful ICM job of a run: one where the run enables it, none otherwise (the rule's ``each``)."""
    return [m for m in baseline_methods(params, wc) if m == "icm"]


def protocol_enabled(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """The protocol job of a run: one where the run enables it (``protocol.enabled``, after its overrides), none
    otherwise (the rule's ``each``)."""
    return ["protocol"] if (run_view(params, wc["run"]).section("protocol") or {}).get("enabled") else []


def label_methods(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """Every label set of a run, in evaluation order: the configs, selected, the baselines."""
    return [*config_names(params, wc), "selected", *baseline_methods(params, wc)]


def shown_labels(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """Round 1 shows the zero-shot priors; round r shows the loop fit of round r - 1."""
    r = int(wc["r"])
    return [fill(PRIORS, **wc)] if r == 1 else [fill(FIT, run=wc["run"], r=r - 1)]


def simulator_embeddings(params: dict[str, Any], wc: Wildcards) -> list[str]:
    """The run's embeddings for the jobs that ask or score a simulated oracle (its copying and difficulty follow item
    similarity; evaluate's belief ceiling): none for a real oracle, which never reads them."""
    oracle = params["oracles"].get(params["runs"][wc["run"]]["oracle"]) or {}
    return [fill(EMBEDDINGS, **wc)] if oracle.get("kind") == "simulated" else []


def data_file(params: dict[str, Any], run: str) -> list[str]:
    """The dataset files a run's load stage reads: its file (none for hub sources; a builtin's own unless the entry
    names one), then its ``other_splits``."""
    from elicit.datasets.config import DatasetConfig

    name = params["runs"][run]["dataset"]
    ds = DatasetConfig.from_params(name, params["datasets"][name])
    own = [ds.path] if ds.path and ds.source != "hub" else []
    return own + [p for p in ds.other_splits if p not in own]


def listed_runs(params: dict[str, Any], section: str, key: str = "runs") -> list[str]:
    """The runs ``<section>.<key>`` lists, each followed by its replicate draws (``study.ablate``: the listed runs
    only; an ablation of every draw is not worth its cost)."""
    if section == "study" and key == "runs":
        names = study_runs(params)
    else:
        names = list((params.get(section) or {}).get(key) or [])
    return [d for r in names for d in draws(params["runs"], r)] if key == "runs" else names


def study_runs(params: dict[str, Any], target: str | None = None) -> list[str]:
    """The runs of one study target, or of every target in the page's order (``study.targets``)."""
    targets = (params.get("study") or {}).get("targets") or {}
    chosen = [targets[target]] if target is not None else list(targets.values())
    return list(dict.fromkeys(r for runs in chosen for r in runs))


def study_target(params: dict[str, Any], target: str) -> list[str]:
    """What ``snakemake study_<target>`` builds: the report of every draw of the target's runs, the protocol of each
    draw that enables it (no other job reads it), and the ablations of those of its runs that ``study.ablate``
    lists."""
    runs = study_runs(params, target)
    every = [d for r in runs for d in draws(params["runs"], r)]
    ablate = set((params.get("study") or {}).get("ablate") or [])
    return (
        [fill(REPORT, run=d) for d in every]
        + protocols(params, every)
        + [fill(ABLATION, run=r) for r in runs if r in ablate]
    )


def protocols(params: dict[str, Any], names: list[str]) -> list[str]:
    """The protocol folders of those of ``names`` (runs or draws) that enable the protocol."""
    return [fill(PROTOCOL, run=d) for d in names if protocol_enabled(params, {"run": d})]


def over_runs(template: str, section: str, key: str = "runs") -> PathsFn:
    """``template`` for each run listed in ``<section>.<key>`` (summary.runs, study.runs, study.ablate)."""
    return lambda params, wc: [fill(template, run=r) for r in listed_runs(params, section, key)]


def listed(section: str, key: str = "runs") -> Callable[[dict[str, Any]], str]:
    return lambda params: " ".join(listed_runs(params, section, key))


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
        Rule("gold_budget", {"items": ITEMS}, {"out": GOLD_BUDGET}),
        Rule("embed", {"items": ITEMS}, {"out": EMBEDDINGS}),
        Rule("group", {"embeddings": EMBEDDINGS}, {"out": GROUPS}),
        Rule(
            "query_zero_shot",
            {"items": ITEMS, "embeddings": simulator_embeddings},
            {"out": ROUND0},
            stage="query",
            job="query_r0",
            args={"round": "0"},
        ),
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
            {"items": ITEMS, "plan": PLAN, "embeddings": simulator_embeddings},
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
            {
                "items": ITEMS,
                "priors": PRIORS,
                "tuples": TUPLES,
                "labels": each(LABELS, method=config_names),
                "budget": GOLD_BUDGET,  # the gold-budget items' gold, the only gold select may read
            },
            {"out": SELECTED, "selection": SELECTION},
        ),
        Rule(
            "votes",
            {"priors": PRIORS, "predictions": each(PREDICTIONS, r=all_rounds)},
            {"out": tuple(fill(LABELS, method=m) for m in VOTE_METHODS)},
        ),
        Rule(
            "icm_budget",
            {"items": ITEMS, "embeddings": EMBEDDINGS, "priors": PRIORS},
            {"out": fill(LABELS, method="icm_budget")},
        ),
        Rule(  # opt-in: no job in a run that does not enable it
            "icm",
            {"items": ITEMS, "embeddings": simulator_embeddings},
            {"out": fill(LABELS, method="icm")},
            each={"method": icm_enabled},
        ),
        Rule(
            "fewshot",
            {"items": ITEMS, "groups": GROUPS, "priors": PRIORS, "embeddings": simulator_embeddings},
            {"out": LABELS},
            job="{method}",
            args={"method": "{method}"},
            each={"method": fewshot_methods},
        ),
        Rule(
            "evaluate",
            {
                "items": ITEMS,
                "labels": each(LABELS, method=label_methods),
                "predictions": each(PREDICTIONS, r=few_shot_rounds),  # held-out answers of the gold-free estimate
                "embeddings": simulator_embeddings,
                "budget": GOLD_BUDGET,  # left out of every metric; its gold gives the PPI intervals
            },
            {"out": METRICS, "json": METRICS_JSON},
        ),
        Rule(  # opt-in: the ICM paper's many-shot evaluation of every label set; no job unless the run enables it
            "protocol",
            {
                "items": ITEMS,
                "embeddings": simulator_embeddings,
                "labels": each(LABELS, method=label_methods),
                "budget": GOLD_BUDGET,
            },
            {"out": PROTOCOL},
            each={"protocol": protocol_enabled},
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
                "budget": GOLD_BUDGET,
                "embeddings": EMBEDDINGS,  # with items and groups: the oracle-call plan beside what the jobs did
                "groups": GROUPS,
            },
            {"out": REPORT, "plots": PLOTS, "resolved": RESOLVED},
        ),
        Rule("export", {"items": ITEMS, "labels": SELECTED, "metrics": METRICS}, {"out": EXPORT}),
        Rule(
            "summary",
            {
                "metrics": over_runs(METRICS, "summary"),
                "items": over_runs(ITEMS, "summary"),
                "selection": over_runs(SELECTION, "summary"),  # each run's indeterminacy signals, for its verdict
            },
            {"out": SUMMARY, "html": SUMMARY_HTML},
            args={"runs": listed("summary")},
            per_run=False,
        ),
        # the study (`snakemake study`): not part of a bare run or of dvc.yaml
        Rule(
            "ablate",
            {"items": ITEMS, "priors": PRIORS, "tuples": TUPLES, "selection": SELECTION, "budget": GOLD_BUDGET},
            {"out": ABLATION},
        ),
        Rule(
            "study",
            {
                "metrics": over_runs(METRICS, "study"),
                "metrics-json": over_runs(METRICS_JSON, "study"),
                "items": over_runs(ITEMS, "study"),
                "selection": over_runs(SELECTION, "study"),
                "ablations": over_runs(ABLATION, "study", "ablate"),
                "protocols": lambda params, wc: protocols(params, listed_runs(params, "study")),
                "notes": STUDY_NOTES,
            },
            {
                "out": STUDY,
                "html": STUDY_HTML,
                "markdown": STUDY_MARKDOWN,
                "cost-figure": STUDY_COST_FIGURE,
                "equal-cost-figure": STUDY_EQUAL_COST_FIGURE,
            },
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


if __name__ == "__main__":  # `python -m elicit.pipeline dvc|check`: write or check dvc.yaml
    from elicit.dvc_yaml import main

    sys.exit(main())
