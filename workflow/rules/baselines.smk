# Baselines every result is judged against: from stored predictions (votes), and with their own oracle calls.


rule votes:
    input:
        priors="results/{run}/priors.parquet",
        predictions=ALL_PREDICTIONS,
        src=sources("votes"),
    output:
        out=[directory(f"results/{{run}}/labels/{m}") for m in VOTE_METHODS],
    params:
        tracked=tracked("votes"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/votes.log",
    benchmark:
        "benchmarks/runs/{run}/votes.tsv"
    shell:
        "python -m elicit.stages.votes --run {wildcards.run} --priors {input.priors} "
        "--predictions {input.predictions} --out {output.out} 2> {log}"


rule icm:
    input:
        items_parquet="results/{run}/items.parquet",
        embeddings="results/{run}/embeddings.npy",
        priors="results/{run}/priors.parquet",
        src=sources("icm"),
    output:
        out=directory("results/{run}/labels/icm"),
    params:
        tracked=tracked("icm"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/icm.log",
    benchmark:
        "benchmarks/runs/{run}/icm.tsv"
    shell:
        "python -m elicit.stages.icm --run {wildcards.run} --items {input.items_parquet} "
        "--embeddings {input.embeddings} --priors {input.priors} --out {output.out} 2> {log}"


rule fewshot:
    input:
        items_parquet="results/{run}/items.parquet",
        groups="results/{run}/groups.parquet",
        priors="results/{run}/priors.parquet",
        src=sources("fewshot"),
    output:
        out=directory("results/{run}/labels/{method}"),
    params:
        tracked=tracked("fewshot"),
    resources:
        oracle=oracle_slots,
    threads: 2
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/{method}.log",
    benchmark:
        "benchmarks/runs/{run}/{method}.tsv"
    shell:
        "python -m elicit.stages.fewshot --run {wildcards.run} --method {wildcards.method} "
        "--items {input.items_parquet} --groups {input.groups} --priors {input.priors} --out {output.out} 2> {log}"
