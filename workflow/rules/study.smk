# The results study (`snakemake --cores 2 study`): every run of study.runs, the ablations of study.ablate, and one
# table over them. Not part of a bare `snakemake` / `dvc repro`, which stay fast.


rule ablate:
    input:
        items_parquet="results/{run}/items.parquet",
        priors="results/{run}/priors.parquet",
        tuples="results/{run}/tuples.parquet",
        selection="results/{run}/selection.json",
        src=sources("ablate"),
    output:
        out=directory("results/{run}/ablation"),
    params:
        tracked=tracked("ablate"),
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/{run}/ablate.log",
    benchmark:
        "benchmarks/runs/{run}/ablate.tsv"
    shell:
        "python -m elicit.stages.ablate --run {wildcards.run} --items {input.items_parquet} --priors {input.priors} "
        "--tuples {input.tuples} --selection {input.selection} --out {output.out} 2> {log}"


rule study:
    input:
        reports=expand("results/{run}/report.html", run=STUDY_RUNS),
        metrics=expand("results/{run}/metrics.parquet", run=STUDY_RUNS),
        ablations=expand("results/{run}/ablation", run=STUDY_ABLATE),
        notes="docs/results_notes.md",
        src=sources("study"),
    output:
        out="results/study/summary.parquet",
        html="results/study/summary.html",
        markdown="docs/results.md",
    params:
        runs=STUDY_RUNS,
        tracked=STUDY_TRACKED,
    conda:
        "../envs/elicit.yaml"
    log:
        "logs/study.log",
    benchmark:
        "benchmarks/runs/study.tsv"
    shell:
        "python -m elicit.stages.study --runs {params.runs} --notes {input.notes} --out {output.out} "
        "--html {output.html} --markdown {output.markdown} 2> {log}"
