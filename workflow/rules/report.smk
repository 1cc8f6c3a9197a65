# Evaluate every method against gold, write the report, export the selected labels.


rule evaluate:
    input:
        items_parquet="results/{run}/items.parquet",
        labels=LABEL_DIRS,
        src=sources("evaluate"),
    output:
        out="results/{run}/metrics.parquet",
        json="results/{run}/metrics.json",
    params:
        tracked=tracked("evaluate"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/evaluate.log",
    benchmark:
        "benchmarks/runs/{run}/evaluate.tsv"
    shell:
        "python -m elicit.stages.evaluate --run {wildcards.run} --items {input.items_parquet} "
        "--labels {input.labels} --out {output.out} --json {output.json} 2> {log}"


rule report:
    input:
        items_parquet="results/{run}/items.parquet",
        metrics="results/{run}/metrics.parquet",
        labels=LABEL_DIRS,
        predictions=ALL_PREDICTIONS,
        selection="results/{run}/selection.json",
        hygiene="results/{run}/hygiene.json",
        src=sources("report"),
    output:
        out="results/{run}/report.html",
        plots=directory("results/{run}/plots"),
    params:
        tracked=tracked("report"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/report.log",
    benchmark:
        "benchmarks/runs/{run}/report.tsv"
    shell:
        "python -m elicit.stages.report --run {wildcards.run} --items {input.items_parquet} "
        "--metrics {input.metrics} --labels {input.labels} --predictions {input.predictions} "
        "--selection {input.selection} --hygiene {input.hygiene} --out {output.out} --plots {output.plots} 2> {log}"


rule export:
    input:
        items_parquet="results/{run}/items.parquet",
        labels="results/{run}/labels/selected",
        src=sources("export"),
    output:
        out=directory("results/{run}/export"),
    params:
        tracked=tracked("export"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/export.log",
    benchmark:
        "benchmarks/runs/{run}/export.tsv"
    shell:
        "python -m elicit.stages.export --run {wildcards.run} --items {input.items_parquet} "
        "--labels {input.labels} --out {output.out} 2> {log}"


rule summary:
    input:
        metrics=expand("results/{run}/metrics.parquet", run=SUMMARY_RUNS),
        items_parquet=expand("results/{run}/items.parquet", run=SUMMARY_RUNS),
        src=sources("summary"),
    output:
        out="results/summary.parquet",
        html="results/summary.html",
    params:
        runs=SUMMARY_RUNS,
        tracked=SUMMARY_TRACKED,
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/summary.log",
    benchmark:
        "benchmarks/runs/summary.tsv"
    shell:
        "python -m elicit.stages.summary --runs {params.runs} --metrics {input.metrics} --items {input.items_parquet} "
        "--out {output.out} --html {output.html} 2> {log}"
