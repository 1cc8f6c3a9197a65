# Data backbone: load -> embed -> group.


rule load:
    input:
        data=dataset_file,
        src=sources("load"),
    output:
        out="results/{run}/items.parquet",
        hygiene="results/{run}/hygiene.json",
    params:
        tracked=tracked("load"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/load.log",
    benchmark:
        "benchmarks/runs/{run}/load.tsv"
    shell:
        "python -m elicit.stages.load --run {wildcards.run} --out {output.out} --hygiene {output.hygiene} 2> {log}"


rule embed:
    input:
        items_parquet="results/{run}/items.parquet",
        src=sources("embed"),
    output:
        out="results/{run}/embeddings.npy",
    params:
        tracked=tracked("embed"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/embed.log",
    benchmark:
        "benchmarks/runs/{run}/embed.tsv"
    threads: 1
    shell:
        "python -m elicit.stages.embed --run {wildcards.run} --items {input.items_parquet} --out {output.out} 2> {log}"


rule group:
    input:
        embeddings="results/{run}/embeddings.npy",
        src=sources("group"),
    output:
        out="results/{run}/groups.parquet",
    params:
        tracked=tracked("group"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/group.log",
    benchmark:
        "benchmarks/runs/{run}/group.tsv"
    shell:
        "python -m elicit.stages.group --run {wildcards.run} --embeddings {input.embeddings} --out {output.out} 2> {log}"
