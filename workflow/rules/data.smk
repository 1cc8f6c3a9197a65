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
