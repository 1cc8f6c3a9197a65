"""Where every stage reads and writes: the only module that spells a path.

Each file or folder of the pipeline is one template below, over the wildcards ``{run}`` (``runs.<run>``), ``{r}``
(a round), ``{method}`` (a label set: a baseline, an optimize config or ``selected``) and ``{job}``. The stage
registry (``elicit.pipeline``) says which job reads and writes which of them; ``dvc.yaml`` and the Snakemake rules
are expanded from it, so every path is a flag of the stage CLI. A stage run by hand without flags falls back to
:class:`RunPaths` — the same templates — so ``python -m elicit.stages.group --run ethics`` and the pipelines agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LOGS = Path("logs")

RUN_DIR = "results/{run}"
"""One run's folder; every template of a run is under it."""
ITEMS = RUN_DIR + "/items.parquet"
HYGIENE = RUN_DIR + "/hygiene.json"
GOLD_BUDGET = RUN_DIR + "/gold_budget.parquet"
"""the gold-budget items and their gold, written by load (empty without ``gold_budget``; ``elicit.gold_budget``)."""
"""duplicate counts of the load stage (``elicit.hygiene``), next to items.parquet."""
EMBEDDINGS = RUN_DIR + "/embeddings.npy"
GROUPS = RUN_DIR + "/groups.parquet"
PREDICTIONS = RUN_DIR + "/round{r}/predictions.parquet"
PRIORS = RUN_DIR + "/priors.parquet"
PLAN = RUN_DIR + "/round{r}/plan.parquet"
FIT = RUN_DIR + "/round{r}/fit.parquet"
TUPLES = RUN_DIR + "/tuples.parquet"
LABELS = RUN_DIR + "/labels/{method}"
SELECTION = RUN_DIR + "/selection.json"
METRICS = RUN_DIR + "/metrics.parquet"
METRICS_JSON = RUN_DIR + "/metrics.json"
REPORT = RUN_DIR + "/report.html"
PLOTS = RUN_DIR + "/plots"
RESOLVED = RUN_DIR + "/params.resolved.yaml"
"""the run's resolved params (its overrides merged, no description), written with the report and shown in it."""
EXPORT = RUN_DIR + "/export"
ABLATION = RUN_DIR + "/ablation"
PROTOCOL = RUN_DIR + "/protocol"
"""the ICM paper's many-shot evaluation of every label set (opt-in, ``elicit.protocol``): accuracy, calls, split."""
TELEMETRY = RUN_DIR + "/telemetry/{job}.json"
"""wall time, oracle calls and cache hits of one job: a record of how it ran, read by report, summary and study for
costs and time only, and deliberately no declared input or output of any job (see ``elicit.pipeline``)."""

# Over several runs
SUMMARY = "results/summary.parquet"
SUMMARY_HTML = "results/summary.html"
STUDY = "results/study/summary.parquet"
STUDY_HTML = "results/study/summary.html"
STUDY_MARKDOWN = "docs/results.md"
STUDY_NOTES = "docs/results_notes.md"
STUDY_COST_FIGURE = "docs/figures/cost_efficiency.png"
STUDY_EQUAL_COST_FIGURE = "docs/figures/equal_cost.png"

# Beside the results: one log and one benchmark per Snakemake job ({job} as in ``elicit.pipeline``)
LOG = "logs/{run}/{job}.log"
BENCHMARK = "benchmarks/runs/{run}/{job}.tsv"
SHARED_LOG = "logs/{job}.log"
SHARED_BENCHMARK = "benchmarks/runs/{job}.tsv"

FOLDERS = frozenset({LABELS, PLOTS, EXPORT, ABLATION, PROTOCOL})
"""Templates of folders (Snakemake ``directory()`` outputs); every other template is a file."""

_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: object) -> str:
    """A template with the given wildcards filled in and every other one left as it is (``{run}`` stays)."""
    return _FIELD.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


def _pattern(template: str) -> re.Pattern[str]:
    parts = _FIELD.split(template)  # literal, field name, literal, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "[^/]+" for i, p in enumerate(parts)))


def is_folder(path: str) -> bool:
    """Whether a path, or a template filled in part or not at all, is one of :data:`FOLDERS`."""
    return any(_pattern(f).fullmatch(path) for f in FOLDERS)


@dataclass(frozen=True)
class RunPaths:
    """All paths of one run (``results/<run>/``), from the templates above."""

    run: str

    def at(self, template: str, **values: object) -> Path:
        return Path(fill(template, run=self.run, **values))

    @property
    def dir(self) -> Path:
        return self.at(RUN_DIR)

    @property
    def items(self) -> Path:
        return self.at(ITEMS)

    @property
    def hygiene(self) -> Path:
        return self.at(HYGIENE)

    @property
    def gold_budget(self) -> Path:
        return self.at(GOLD_BUDGET)

    @property
    def embeddings(self) -> Path:
        return self.at(EMBEDDINGS)

    @property
    def groups(self) -> Path:
        return self.at(GROUPS)

    @property
    def priors(self) -> Path:
        return self.at(PRIORS)

    @property
    def tuples(self) -> Path:
        return self.at(TUPLES)

    def predictions(self, r: int) -> Path:
        return self.at(PREDICTIONS, r=r)

    def plan(self, r: int) -> Path:
        return self.at(PLAN, r=r)

    def fit(self, r: int) -> Path:
        return self.at(FIT, r=r)

    def labels_dir(self, method: str) -> Path:
        return self.at(LABELS, method=method)

    @property
    def selection(self) -> Path:
        return self.at(SELECTION)

    @property
    def metrics(self) -> Path:
        return self.at(METRICS)

    @property
    def metrics_json(self) -> Path:
        return self.at(METRICS_JSON)

    @property
    def report(self) -> Path:
        return self.at(REPORT)

    @property
    def plots(self) -> Path:
        return self.at(PLOTS)

    @property
    def resolved(self) -> Path:
        return self.at(RESOLVED)

    @property
    def export(self) -> Path:
        return self.at(EXPORT)

    @property
    def ablation(self) -> Path:
        return self.at(ABLATION)

    @property
    def protocol(self) -> Path:
        return self.at(PROTOCOL)

    def telemetry(self, job: str) -> Path:
        return self.at(TELEMETRY, job=job)
