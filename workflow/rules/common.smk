# Helpers shared by all rules: schema validation, wildcard constraints, and the stage registry's
# tracked params and source files (so Snakemake re-runs on exactly the edits DVC re-runs on).
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from elicit import config as params_rules  # noqa: E402
from elicit import pipeline  # noqa: E402

# The schema (workflow/schemas/params.schema.yaml) and the checks it cannot express, as every stage runs them:
# one line naming the key (Snakemake's own validate() prints the whole schema).
try:
    params_rules.validate_params(config)
    params_rules.check_params(config)
except params_rules.ParamsError as exc:
    sys.exit(f"error: {exc}")

# Every job reads the params this run was planned with, even if params.yaml is edited while it runs. A Snakemake
# re-started for one job (a cluster node) keeps the snapshot of the run that submitted it.
if not Path(os.environ.get(params_rules.SNAPSHOT_ENV, "")).is_file():
    os.environ[params_rules.SNAPSHOT_ENV] = str(params_rules.snapshot_params(config).resolve())


wildcard_constraints:
    run=params_rules.name_pattern().strip("^$"),


def sources(stage):
    """Source files of a stage: editing one re-runs it."""
    return pipeline.sources(stage)


def tracked(stage):
    """Params a stage reads, resolved for the job's run: a changed value re-runs the job."""
    return lambda wildcards: pipeline.tracked_params(config, stage, wildcards.run)


def dataset_file(wildcards):
    return pipeline.data_file(config, wildcards.run)


ROUNDS = int(config["base"]["rounds"])
CONFIGS = list(config.get("optimize", {}).get("configs", {}))
VOTE_METHODS = list(pipeline.VOTE_METHODS)
FEWSHOT_METHODS = list(pipeline.FEWSHOT_METHODS)
LABEL_DIRS = [f"results/{{run}}/labels/{m}" for m in [*CONFIGS, "selected", *VOTE_METHODS, "icm", *FEWSHOT_METHODS]]
ALL_PREDICTIONS = [f"results/{{run}}/round{r}/predictions.parquet" for r in range(ROUNDS + 1)]
FEWSHOT_PREDICTIONS = ALL_PREDICTIONS[1:]


wildcard_constraints:
    r="[1-9][0-9]*",
    config="|".join(CONFIGS) or "NO_CONFIGS",
    method="|".join(FEWSHOT_METHODS),


def tracked_config(stage):
    """Like tracked(), for per-config jobs."""
    return lambda wildcards: pipeline.tracked_params(config, stage, wildcards.run, wildcards.config)


def oracle_slots(wildcards):
    """1 for a run whose oracle is an embedded llama.cpp server: the profile allows one such job at a time."""
    oracle = config["oracles"][config["runs"][wildcards.run]["oracle"]]
    return 1 if oracle["kind"] == "embedded" else 0


def shown_labels(wildcards):
    """Round 1 shows the zero-shot priors; round r shows the loop fit of round r - 1."""
    r = int(wildcards.r)
    return f"results/{wildcards.run}/priors.parquet" if r == 1 else f"results/{wildcards.run}/round{r - 1}/fit.parquet"


def predictions_through(wildcards):
    """Few-shot predictions of rounds 1..r (what the loop fit of round r sees)."""
    return [f"results/{wildcards.run}/round{q}/predictions.parquet" for q in range(1, int(wildcards.r) + 1)]


SUMMARY_RUNS = list(config["summary"]["runs"])
SUMMARY_TRACKED = {key: pipeline.lookup(config, key) for key in pipeline.expand_keys(config, "summary", {})}


STUDY_RUNS = list(config.get("study", {}).get("runs", []))
STUDY_ABLATE = list(config.get("study", {}).get("ablate", []))
STUDY_TRACKED = (
    {key: pipeline.lookup(config, key) for key in pipeline.expand_keys(config, "study", {})} if STUDY_RUNS else {}
)
