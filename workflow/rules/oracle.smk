# The oracle loop: zero-shot round 0 -> priors -> per few-shot round: plan, query, loop fit -> tuples.


rule query_zero_shot:
    input:
        **stage_inputs("query_zero_shot"),
    output:
        **stage_outputs("query_zero_shot"),
    params:
        tracked=tracked("query_zero_shot"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("query_zero_shot"),
    benchmark:
        stage_benchmark("query_zero_shot"),
    shell:
        stage_command("query_zero_shot")


rule priors:
    input:
        **stage_inputs("priors"),
    output:
        **stage_outputs("priors"),
    params:
        tracked=tracked("priors"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("priors"),
    benchmark:
        stage_benchmark("priors"),
    shell:
        stage_command("priors")


rule plan:
    input:
        **stage_inputs("plan"),
    output:
        **stage_outputs("plan"),
    params:
        tracked=tracked("plan"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("plan"),
    benchmark:
        stage_benchmark("plan"),
    shell:
        stage_command("plan")


rule query:
    input:
        **stage_inputs("query"),
    output:
        **stage_outputs("query"),
    params:
        tracked=tracked("query"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("query"),
    benchmark:
        stage_benchmark("query"),
    shell:
        stage_command("query")


rule fit_loop:
    input:
        **stage_inputs("fit_loop"),
    output:
        **stage_outputs("fit_loop"),
    params:
        tracked=tracked("fit_loop"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("fit_loop"),
    benchmark:
        stage_benchmark("fit_loop"),
    shell:
        stage_command("fit_loop")


rule tuples:
    input:
        **stage_inputs("tuples"),
    output:
        **stage_outputs("tuples"),
    params:
        tracked=tracked("tuples"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("tuples"),
    benchmark:
        stage_benchmark("tuples"),
    shell:
        stage_command("tuples")
