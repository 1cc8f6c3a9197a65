# Baselines every result is judged against: from stored predictions (votes), and with their own oracle calls.


rule votes:
    input:
        **stage_inputs("votes"),
    output:
        **stage_outputs("votes"),
    params:
        tracked=tracked("votes"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("votes"),
    benchmark:
        stage_benchmark("votes"),
    shell:
        stage_command("votes")


rule icm_budget:
    input:
        **stage_inputs("icm_budget"),
    output:
        **stage_outputs("icm_budget"),
    params:
        tracked=tracked("icm_budget"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("icm_budget"),
    benchmark:
        stage_benchmark("icm_budget"),
    shell:
        stage_command("icm_budget")


# Faithful ICM: a job only in runs with baselines.icm.enabled (evaluate and report ask for its labels only there).
rule icm:
    input:
        **stage_inputs("icm"),
    output:
        **stage_outputs("icm"),
    params:
        tracked=tracked("icm"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("icm"),
    benchmark:
        stage_benchmark("icm"),
    shell:
        stage_command("icm")


rule fewshot:
    input:
        **stage_inputs("fewshot"),
    output:
        **stage_outputs("fewshot"),
    params:
        tracked=tracked("fewshot"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("fewshot"),
    benchmark:
        stage_benchmark("fewshot"),
    shell:
        stage_command("fewshot")
