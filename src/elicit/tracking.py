"""What a job tracks besides the files its flags name: the params keys and the source files whose edit re-runs it.

Part of the stage registry (:mod:`elicit.pipeline`, which says what each job reads and writes), apart because it
answers another question — which edits make a job stale — and because the stages use it themselves: the report writes
:func:`resolved_params`, and every job checks that the values of :func:`tracked_params` did not change while it ran.

**Tracked params.** A job tracks the params that make up the resolved values it reads (``STAGE_PARAMS``): the run's
own fields (``<run>``: its dataset, oracle, n, seed and positive_fraction as far as its entry sets them, and
``base.seed`` when it sets no seed), each shared section the job reads together with the run's override of exactly
that section, and for an optimize config the configs it ``extends``. A run's ``description``, and its overrides of
sections a job does not read, re-run nothing. Snakemake (``params: tracked``) and DVC (``params:``) track the same
keys, so both re-run on exactly the same edits. DVC can track only keys that exist, so ``dvc.yaml`` lists the keys
the params have: re-write it after adding a key a run or section did not have (a run's ``seed`` or an override, say).
The report shows — and writes beside itself, ``results/<run>/params.resolved.yaml`` — the run's resolved params, so
it tracks all of them (``<resolved>``).

**Source files.** A job's source files are its stage module and every module of ``elicit`` that it imports, directly
or through another (importing one module of a package runs the package's ``__init__``, which imports the rest), and
the data files those read (prompt templates, HTML templates): ``STAGE_SOURCES`` per stage, ``SHARED_SOURCES`` for
every stage. tests/test_stage_sources.py follows the imports and fails where a stage imports a module its list lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elicit.config import RunConfig

SHARED_SOURCES = (
    "src/elicit/config.py",
    "src/elicit/_lazy.py",
    "src/elicit/params_types.py",
    "src/elicit/replicates.py",
    "src/elicit/errors.py",
    "src/elicit/io.py",
    "src/elicit/paths.py",
    "src/elicit/stages/_cli.py",
    "src/elicit/contracts/__init__.py",
    "src/elicit/contracts/consistency.py",
    "src/elicit/contracts/methods.py",
)
DATASET_SOURCES = (
    "src/elicit/datasets/__init__.py",
    "src/elicit/datasets/builtins.py",
    "src/elicit/datasets/config.py",
    "src/elicit/datasets/diagnosis.py",
    "src/elicit/datasets/items.py",
    "src/elicit/datasets/probes.py",
    "src/elicit/datasets/readers.py",
    "src/elicit/datasets/sampling.py",
)
EVALUATE_SOURCES = (
    "src/elicit/evaluate/__init__.py",
    "src/elicit/evaluate/metrics.py",
    "src/elicit/evaluate/describe.py",
    "src/elicit/evaluate/goldfree.py",
    "src/elicit/evaluate/answers.py",
    "src/elicit/evaluate/ppi.py",
    "src/elicit/gold_budget.py",
    "src/elicit/verdicts.py",
    "src/elicit/indeterminate.py",
)
PLAN_SOURCES = (
    "src/elicit/plan.py",
    "src/elicit/plan_budget.py",
    "src/elicit/plan_context.py",
    "src/elicit/prompts.py",
)
ORACLE_SOURCES = (
    "src/elicit/oracle/__init__.py",
    "src/elicit/oracle/base.py",
    "src/elicit/oracle/cache.py",
    "src/elicit/oracle/client.py",
    "src/elicit/oracle/embedded.py",
    "src/elicit/oracle/factory.py",
    "src/elicit/oracle/failures.py",
    "src/elicit/oracle/sim_context.py",
    "src/elicit/oracle/sim_hash.py",
    "src/elicit/oracle/sim_suite.py",
    "src/elicit/oracle/simulated.py",
    "src/elicit/oracle/throttle.py",
    "src/elicit/oracle/transport.py",
    "src/elicit/stages/_oracle.py",
    "src/elicit/prompts.py",
    "data/templates.yaml",
)
OPTIMIZE_SOURCES = (
    *PLAN_SOURCES,
    "src/elicit/optimize/__init__.py",
    "src/elicit/optimize/config.py",
    "src/elicit/optimize/problem.py",
    "src/elicit/optimize/losses.py",
    "src/elicit/optimize/fit.py",
    "src/elicit/optimize/select.py",
)
BASELINE_SOURCES = (  # the package's __init__ imports all three; they read the priors and the plan's query kinds
    "src/elicit/baselines/__init__.py",
    "src/elicit/baselines/fewshot.py",
    "src/elicit/baselines/icm.py",
    "src/elicit/baselines/votes.py",
    "src/elicit/priors.py",
    *PLAN_SOURCES,
)
REGISTRY_SOURCES = ("src/elicit/pipeline.py", "src/elicit/tracking.py", *DATASET_SOURCES)
"""The stage registry, which the evaluate and report stages read for a run's label methods and resolved params (its
load rule reads the dataset config)."""
COST_SOURCES = (
    "src/elicit/cost.py",
    "src/elicit/cost_actual.py",
    "src/elicit/cost_plan.py",
    "src/elicit/cost_table.py",
    "src/elicit/group.py",
    "src/elicit/hygiene.py",
    "src/elicit/baselines/icm_official_config.py",
    "src/elicit/baselines/icm_official_steps.py",
    *BASELINE_SOURCES,
    *ORACLE_SOURCES,
)
"""The oracle-call plan (``elicit.cost``): the planner and each oracle job's own functions over a dry oracle, which
the report runs again to show planned vs actual calls."""
REPORT_SOURCES = (
    "src/elicit/stages/report.py",
    "src/elicit/report.py",
    "src/elicit/report_tables.py",
    "src/elicit/report_text.py",
    "src/elicit/plots.py",
    *PLAN_SOURCES,
    *EVALUATE_SOURCES,
    *REGISTRY_SOURCES,
    *COST_SOURCES,
    "src/elicit/stages/_labels.py",
)
"""The report stage's module and what it imports; the summary and the study import it for a run's card."""

# Stage name → its own source files: editing one re-runs the stage's jobs. Shared sources are added to every stage.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "load": ("src/elicit/stages/load.py", *DATASET_SOURCES, "src/elicit/hygiene.py"),
    "gold_budget": ("src/elicit/stages/gold_budget.py", "src/elicit/gold_budget.py"),
    "embed": ("src/elicit/stages/embed.py", "src/elicit/embed.py"),
    "group": ("src/elicit/stages/group.py", "src/elicit/group.py"),
    "query": ("src/elicit/stages/query.py", *PLAN_SOURCES, *ORACLE_SOURCES),
    "priors": ("src/elicit/stages/priors.py", "src/elicit/priors.py"),
    "plan": (  # the prompt templates too: a plan names the dataset's template ids
        "src/elicit/stages/plan.py",
        *PLAN_SOURCES,
        "src/elicit/priors.py",
        *ORACLE_SOURCES,
    ),
    "fit_loop": ("src/elicit/stages/fit_loop.py", "src/elicit/tuples.py", *OPTIMIZE_SOURCES, *DATASET_SOURCES),
    "tuples": ("src/elicit/stages/tuples.py", "src/elicit/tuples.py", *PLAN_SOURCES),
    "optimize": ("src/elicit/stages/optimize.py", *OPTIMIZE_SOURCES, *DATASET_SOURCES, "src/elicit/stages/_labels.py"),
    "select": (
        "src/elicit/stages/select.py",
        "src/elicit/gold_budget.py",
        "src/elicit/indeterminate.py",
        "src/elicit/verdicts.py",
        *OPTIMIZE_SOURCES,
        "src/elicit/stages/optimize.py",
        *DATASET_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "votes": ("src/elicit/stages/votes.py", *BASELINE_SOURCES, "src/elicit/stages/_labels.py"),
    "icm_budget": (
        "src/elicit/stages/icm_budget.py",
        *BASELINE_SOURCES,
        *ORACLE_SOURCES,
        *DATASET_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "icm": (
        "src/elicit/stages/icm.py",
        "src/elicit/baselines/icm_official.py",
        "src/elicit/baselines/icm_official_config.py",
        "src/elicit/baselines/icm_official_steps.py",
        *BASELINE_SOURCES,
        *ORACLE_SOURCES,
        *DATASET_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "fewshot": (
        "src/elicit/stages/fewshot.py",
        *BASELINE_SOURCES,
        *ORACLE_SOURCES,
        *DATASET_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "evaluate": (  # the oracle's too: a simulated oracle's belief ceiling
        "src/elicit/stages/evaluate.py",
        *EVALUATE_SOURCES,
        *REGISTRY_SOURCES,
        *ORACLE_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "protocol": (
        "src/elicit/stages/protocol.py",
        "src/elicit/protocol.py",
        "src/elicit/gold_budget.py",
        *BASELINE_SOURCES,
        *ORACLE_SOURCES,
        *REGISTRY_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "report": (*REPORT_SOURCES, "src/elicit/templates/report.html.j2"),
    "export": (
        "src/elicit/stages/export.py",
        "src/elicit/export.py",
        *DATASET_SOURCES,
        *EVALUATE_SOURCES,
        "src/elicit/stages/_labels.py",
    ),
    "summary": (
        "src/elicit/stages/summary.py",
        "src/elicit/study_estimate.py",
        *REPORT_SOURCES,
        "src/elicit/templates/summary.html.j2",
    ),
    "ablate": (
        "src/elicit/stages/ablate.py",
        "src/elicit/ablation.py",
        *EVALUATE_SOURCES,
        "src/elicit/plots.py",
        *OPTIMIZE_SOURCES,
        *DATASET_SOURCES,
    ),
    "study": (
        "src/elicit/stages/study.py",
        "src/elicit/study.py",
        "src/elicit/study_estimate.py",
        "src/elicit/study_cost.py",
        "src/elicit/study_protocol.py",
        "src/elicit/protocol.py",
        "src/elicit/replicates.py",
        *REPORT_SOURCES,
        "src/elicit/templates/summary.html.j2",
    ),
}

ORACLE_PARAMS = ("oracle", "oracles.{oracle}", "datasets.{dataset}")
# Stands for every shared setting at the top of ``optimize:`` (defaults of all configs), listed key by key so that
# editing one swept config never re-runs another.
OPTIMIZE_SHARED = "optimize.<shared>"
OPTIMIZE_OWN_KEYS = ("configs", "loop_config", "select")
RUN_FIELDS = "<run>"
"""The run's own fields: ``runs.<run>.{dataset,oracle,n,seed,positive_fraction}`` that its entry sets (``base.seed``
when it sets no seed) — never its description."""
GOLD_BUDGET_KEY = "runs.{run}.gold_budget"
"""The run's gold budget: tracked by the gold_budget stage alone; what reads its table (select, evaluate, report)
re-runs after it, the oracle stages never."""
RESOLVED_ALL = "<resolved>"
"""Everything in the run's resolved params (:func:`resolved_params`)."""
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "load": (RUN_FIELDS, "hygiene", "datasets.{dataset}"),
    "gold_budget": (RUN_FIELDS, GOLD_BUDGET_KEY),
    "embed": ("embed", RUN_FIELDS),
    "group": ("group", "base.rounds", RUN_FIELDS),
    "query": (*ORACLE_PARAMS, RUN_FIELDS),
    "priors": (RUN_FIELDS,),
    "plan": ("budget", RUN_FIELDS, "oracles.{oracle}", "datasets.{dataset}"),
    "fit_loop": ("optimize.loop_config", OPTIMIZE_SHARED, RUN_FIELDS, "datasets.{dataset}"),
    "tuples": (RUN_FIELDS,),
    "optimize": ("optimize.configs.{config}", OPTIMIZE_SHARED, "base.seeds", RUN_FIELDS, "datasets.{dataset}"),
    "select": (
        "optimize.select",
        OPTIMIZE_SHARED,
        "optimize.configs",
        "base.seeds",
        RUN_FIELDS,
        "datasets.{dataset}",
    ),
    "votes": (RUN_FIELDS,),
    "icm_budget": ("baselines.icm_budget", "baselines.seeds", "base.seeds", *ORACLE_PARAMS, RUN_FIELDS),
    "icm": ("baselines.icm", "baselines.seeds", "base.seeds", *ORACLE_PARAMS, RUN_FIELDS),
    "fewshot": (
        "baselines.fewshot",
        "baselines.bootstrap",
        "baselines.seeds",
        "base.seeds",
        *ORACLE_PARAMS,
        RUN_FIELDS,
    ),
    "evaluate": ("evaluate", RUN_FIELDS, "datasets.{dataset}", "oracles.{oracle}"),
    "protocol": ("protocol", *ORACLE_PARAMS, RUN_FIELDS),
    "report": (RESOLVED_ALL,),
    "export": (RUN_FIELDS, "datasets.{dataset}"),
    "summary": ("summary", "<summary runs>"),
    # the study (Snakemake target `study`, not part of a bare run or of dvc.yaml)
    "ablate": ("optimize", "base.seeds", "base.rounds", "evaluate", RUN_FIELDS, "datasets.{dataset}"),
    "study": ("study", "<study runs>"),
}
# The method names come from the one registry (elicit.contracts.methods).


def run_view(params: dict[str, Any], run: str) -> RunConfig:
    """The run as its stages see it (``elicit.config.resolve_run``: its overrides merged)."""
    from elicit.config import resolve_run

    return resolve_run(params, run)


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
            out += _run_fields(params, str(run)) + _with_override(params, run, GOLD_BUDGET_KEY.format(**names))
            out += [k.format(**names) for k in ("datasets.{dataset}", "oracles.{oracle}")]
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
            from elicit.pipeline import listed_runs

            for r in listed_runs(params, key[1:-6]):
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
        "run": dict(own, positive_fraction=cfg.positive_fraction, gold_budget=cfg.gold_budget),
        "datasets": {cfg.dataset: cfg.dataset_params},
        "oracles": {cfg.oracle: cfg.oracle_params},
        **{s: cfg.section(s) for s in sections},
    }


def sources(stage: str) -> list[str]:
    """A stage's source files, its own then the shared ones, each once."""
    return list(dict.fromkeys([*STAGE_SOURCES[stage], *SHARED_SOURCES]))
