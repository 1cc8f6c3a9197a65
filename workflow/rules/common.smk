# Helpers shared by all rules: schema validation, wildcard constraints, and the stage registry's
# tracked params and source files (so Snakemake re-runs on exactly the edits DVC re-runs on).
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from elicit import pipeline  # noqa: E402

validate(config, schema="../schemas/params.schema.yaml")


wildcard_constraints:
    run="[A-Za-z0-9][A-Za-z0-9_.-]*",


def sources(stage):
    """Source files of a stage: editing one re-runs it."""
    return list(pipeline.STAGE_BY_NAME[stage].all_sources)


def tracked(stage):
    """Params a stage reads, resolved for the job's run: a changed value re-runs the job."""
    return lambda wildcards: pipeline.tracked_params(config, stage, wildcards.run)


def dataset_file(wildcards):
    return pipeline.data_file(config, wildcards.run)
