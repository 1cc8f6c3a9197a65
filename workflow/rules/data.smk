# Data backbone: load -> embed -> group.


rule load:
    input:
        **stage_inputs("load"),
    output:
        **stage_outputs("load"),
    params:
        tracked=tracked("load"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("load"),
    benchmark:
        stage_benchmark("load"),
    shell:
        stage_command("load")


rule gold_budget:
    input:
        **stage_inputs("gold_budget"),
    output:
        **stage_outputs("gold_budget"),
    params:
        tracked=tracked("gold_budget"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("gold_budget"),
    benchmark:
        stage_benchmark("gold_budget"),
    shell:
        stage_command("gold_budget")


rule embed:
    input:
        **stage_inputs("embed"),
    output:
        **stage_outputs("embed"),
    params:
        tracked=tracked("embed"),
    threads: 1
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("embed"),
    benchmark:
        stage_benchmark("embed"),
    shell:
        stage_command("embed")


rule group:
    input:
        **stage_inputs("group"),
    output:
        **stage_outputs("group"),
    params:
        tracked=tracked("group"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("group"),
    benchmark:
        stage_benchmark("group"),
    shell:
        stage_command("group")
