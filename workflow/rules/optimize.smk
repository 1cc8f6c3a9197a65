# Fit soft labels per weight config (all seeds in one job), then pick a config without gold.


rule optimize:
    input:
        **stage_inputs("optimize"),
    output:
        **stage_outputs("optimize"),
    params:
        tracked=tracked("optimize"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("optimize"),
    benchmark:
        stage_benchmark("optimize"),
    shell:
        stage_command("optimize")


rule select:
    input:
        **stage_inputs("select"),
    output:
        **stage_outputs("select"),
    params:
        tracked=tracked("select"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("select"),
    benchmark:
        stage_benchmark("select"),
    shell:
        stage_command("select")
