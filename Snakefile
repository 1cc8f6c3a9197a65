# elicit: one params.yaml, two drivers (this Snakefile and dvc.yaml), the same stage CLIs.
# Rules only call `python -m elicit.stages.<name>`; all logic lives in src/elicit/.
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
        expand("results/{run}/report.html", run=config["pipeline"]["default_runs"]),
        expand("results/{run}/export", run=config["pipeline"]["default_runs"]),
        "results/summary.html",
    default_target: True
