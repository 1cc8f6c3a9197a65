# The oracle loop: zero-shot round 0 -> priors -> per few-shot round: plan, query, loop fit -> tuples.


rule query_zero_shot:
    input:
        items_parquet="results/{run}/items.parquet",
        src=sources("query"),
    output:
        out="results/{run}/round0/predictions.parquet",
    params:
        tracked=tracked("query"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/query_r0.log",
    benchmark:
        "benchmarks/runs/{run}/query_r0.tsv"
    shell:
        "python -m elicit.stages.query --run {wildcards.run} --round 0 --items {input.items_parquet} "
        "--out {output.out} 2> {log}"


rule priors:
    input:
        predictions="results/{run}/round0/predictions.parquet",
        src=sources("priors"),
    output:
        out="results/{run}/priors.parquet",
    params:
        tracked=tracked("priors"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/priors.log",
    benchmark:
        "benchmarks/runs/{run}/priors.tsv"
    shell:
        "python -m elicit.stages.priors --run {wildcards.run} --predictions {input.predictions} "
        "--out {output.out} 2> {log}"


rule plan:
    input:
        items_parquet="results/{run}/items.parquet",
        groups="results/{run}/groups.parquet",
        shown=shown_labels,
        src=sources("plan"),
    output:
        out="results/{run}/round{r}/plan.parquet",
    params:
        tracked=tracked("plan"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/plan_r{r}.log",
    benchmark:
        "benchmarks/runs/{run}/plan_r{r}.tsv"
    shell:
        "python -m elicit.stages.plan --run {wildcards.run} --round {wildcards.r} --items {input.items_parquet} "
        "--groups {input.groups} --shown {input.shown} --out {output.out} 2> {log}"


rule query:
    input:
        items_parquet="results/{run}/items.parquet",
        plan="results/{run}/round{r}/plan.parquet",
        src=sources("query"),
    output:
        out="results/{run}/round{r}/predictions.parquet",
    params:
        tracked=tracked("query"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/query_r{r}.log",
    benchmark:
        "benchmarks/runs/{run}/query_r{r}.tsv"
    shell:
        "python -m elicit.stages.query --run {wildcards.run} --round {wildcards.r} --items {input.items_parquet} "
        "--plan {input.plan} --out {output.out} 2> {log}"


rule fit_loop:
    input:
        items_parquet="results/{run}/items.parquet",
        priors="results/{run}/priors.parquet",
        predictions=predictions_through,
        src=sources("fit_loop"),
    output:
        out="results/{run}/round{r}/fit.parquet",
    params:
        tracked=tracked("fit_loop"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/fit_loop_r{r}.log",
    benchmark:
        "benchmarks/runs/{run}/fit_loop_r{r}.tsv"
    shell:
        "python -m elicit.stages.fit_loop --run {wildcards.run} --round {wildcards.r} --items {input.items_parquet} "
        "--priors {input.priors} --predictions {input.predictions} --out {output.out} 2> {log}"


rule tuples:
    input:
        predictions=FEWSHOT_PREDICTIONS,
        src=sources("tuples"),
    output:
        out="results/{run}/tuples.parquet",
    params:
        tracked=tracked("tuples"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/tuples.log",
    benchmark:
        "benchmarks/runs/{run}/tuples.tsv"
    shell:
        "python -m elicit.stages.tuples --run {wildcards.run} --predictions {input.predictions} "
        "--out {output.out} 2> {log}"
