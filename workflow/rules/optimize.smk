# Fit soft labels per weight config (all seeds in one job), then pick a config without gold.


rule optimize:
    input:
        items_parquet="results/{run}/items.parquet",
        priors="results/{run}/priors.parquet",
        tuples="results/{run}/tuples.parquet",
        src=sources("optimize"),
    output:
        out=directory("results/{run}/labels/{config}"),
    params:
        tracked=tracked_config("optimize"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/optimize_{config}.log",
    benchmark:
        "benchmarks/runs/{run}/optimize_{config}.tsv"
    shell:
        "python -m elicit.stages.optimize --run {wildcards.run} --config {wildcards.config} "
        "--items {input.items_parquet} --priors {input.priors} --tuples {input.tuples} --out {output.out} 2> {log}"


rule select:
    input:
        items_parquet="results/{run}/items.parquet",
        priors="results/{run}/priors.parquet",
        tuples="results/{run}/tuples.parquet",
        labels=[f"results/{{run}}/labels/{c}" for c in CONFIGS],
        src=sources("select"),
    output:
        out=directory("results/{run}/labels/selected"),
        selection="results/{run}/selection.json",
    params:
        tracked=tracked("select"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/select.log",
    benchmark:
        "benchmarks/runs/{run}/select.tsv"
    shell:
        "python -m elicit.stages.select --run {wildcards.run} --items {input.items_parquet} --priors {input.priors} "
        "--tuples {input.tuples} --labels {input.labels} --out {output.out} --selection {output.selection} 2> {log}"
