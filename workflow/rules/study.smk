# The results study (`snakemake --cores 2 study`): every run of study.runs, the ablations of study.ablate, and one
# table over them. Not part of a bare `snakemake` / `dvc repro`, which stay fast.


rule ablate:
    input:
        **stage_inputs("ablate"),
    output:
        **stage_outputs("ablate"),
    params:
        tracked=tracked("ablate"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("ablate"),
    benchmark:
        stage_benchmark("ablate"),
    shell:
        stage_command("ablate")


rule study:
    input:
        **stage_inputs("study"),
    output:
        **stage_outputs("study"),
    params:
        tracked=tracked("study"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("study"),
    benchmark:
        stage_benchmark("study"),
    shell:
        stage_command("study")


# One rule per study target (`snakemake --cores 2 study_<target>`): the reports of every draw of the target's runs and
# the ablations study.ablate names among them; each target is sized to build in about 90 minutes on 2 cores.
for _target in config.get("study", {}).get("targets", {}):

    rule:
        name:
            f"study_{_target}"
        input:
            pipeline.study_target(config, _target),
        localrule: True
