# elicit: one params.yaml, two drivers (this Snakefile and dvc.yaml), the same stage CLIs and one declaration of
# the DAG: each rule takes its paths, params, log and command from the stage registry (src/elicit/pipeline.py, via
# workflow/rules/common.smk), as dvc.yaml does. Rules only call `python -m elicit.stages.<name>`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/oracle.smk"
include: "workflow/rules/optimize.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/study.smk"


rule all:
    input:
        default_targets(),
    default_target: True
