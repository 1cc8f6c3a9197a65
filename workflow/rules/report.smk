# Evaluate every method against gold, write the report (and the run's resolved params), export the selected
# labels; the summary over summary.runs.


rule evaluate:
    input:
        **stage_inputs("evaluate"),
    output:
        **stage_outputs("evaluate"),
    params:
        tracked=tracked("evaluate"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("evaluate"),
    benchmark:
        stage_benchmark("evaluate"),
    shell:
        stage_command("evaluate")


rule report:
    input:
        **stage_inputs("report"),
    output:
        **stage_outputs("report"),
    params:
        tracked=tracked("report"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("report"),
    benchmark:
        stage_benchmark("report"),
    shell:
        stage_command("report")


rule export:
    input:
        **stage_inputs("export"),
    output:
        **stage_outputs("export"),
    params:
        tracked=tracked("export"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("export"),
    benchmark:
        stage_benchmark("export"),
    shell:
        stage_command("export")


rule summary:
    input:
        **stage_inputs("summary"),
    output:
        **stage_outputs("summary"),
    params:
        tracked=tracked("summary"),
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("summary"),
    benchmark:
        stage_benchmark("summary"),
    shell:
        stage_command("summary")


# The ICM paper's evaluation protocol: a job only in runs with protocol.enabled (no other job reads its output).
rule protocol:
    input:
        **stage_inputs("protocol"),
    output:
        **stage_outputs("protocol"),
    params:
        tracked=tracked("protocol"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        stage_log("protocol"),
    benchmark:
        stage_benchmark("protocol"),
    shell:
        stage_command("protocol")
