"""The whole DAG end to end on the real embedded llama.cpp server (tiny run, 12 items), the gold-isolation check of
DESIGN.md with a non-simulated oracle, and the report in a headless browser."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from elicit.contracts.methods import GOLD_READING
from elicit.prompts import load_templates
from helpers import sh

pytestmark = pytest.mark.slow

RUN = "results/tiny_embedded"
TARGETS = f"{RUN}/report.html {RUN}/export"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def gold_free_digests(repo: Path) -> dict[str, str]:
    """Outputs that must not depend on gold: plans, predictions, tuples, and every label file but golden_fewshot's."""
    run = repo / RUN
    files = [*run.glob("round*/*.parquet"), run / "priors.parquet", run / "tuples.parquet", run / "groups.parquet"]
    files += [f for f in (run / "labels").rglob("seed*.parquet") if "golden_fewshot" not in f.parts]
    return {str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(files)}


def budget_digests(repo: Path) -> dict[str, str]:
    """With a gold budget, also these may read only the budget's gold: the config choice, the exported estimate (the
    gold-free one and PPI's), and the PPI rows of the metrics."""
    run = repo / RUN
    metrics = pd.read_parquet(run / "metrics.parquet")
    ppi = metrics[
        metrics["metric"].isin(["ppi_accuracy", "ppi_balance", "budget_accuracy", "est_accuracy"])
        & ~metrics["method"].isin(GOLD_READING)  # golden_fewshot's labels are gold's by design
    ]
    return {
        "selection": hashlib.sha256((run / "selection.json").read_bytes()).hexdigest(),
        "estimate": hashlib.sha256((run / "export" / "estimate.json").read_bytes()).hexdigest(),
        "ppi": hashlib.sha256(ppi.to_csv(index=False).encode()).hexdigest(),
    }


def calls(repo: Path, job: str) -> int:
    return int(json.loads((repo / RUN / "telemetry" / f"{job}.json").read_text())["calls"])


def test_embedded_dag_end_to_end_and_gold_isolation(repo_copy: Path) -> None:
    repo = repo_copy
    sh(f"snakemake --cores 2 {TARGETS}", repo, timeout=1500)
    metrics = pd.read_parquet(repo / RUN / "metrics.parquet")
    assert {"zero_shot", "few_shot_mean", "dawid_skene", "icm_budget", "golden_fewshot", "selected"} <= set(
        metrics["method"]
    )
    n_templates = len(load_templates(repo / "data" / "templates.yaml", "ethics"))
    assert n_templates >= 2 and calls(repo, "query.round0") == 12 * 2 * n_templates  # items x framings x templates
    html = (repo / RUN / "report.html").read_text()
    assert "SmolLM2" in html or "smollm2" in html
    before = gold_free_digests(repo)

    # Shuffle the gold labels of the data file: only load (gold), golden_fewshot, evaluate and report may change.
    data = repo / "tests" / "fixtures" / "ethics_tiny.csv"
    df = pd.read_csv(data)
    df["label"] = df["label"].sample(frac=1.0, random_state=1).to_numpy()[::-1]
    assert (df["label"] != pd.read_csv(data)["label"]).any()
    df.to_csv(data, index=False)
    sh(f"snakemake --cores 2 {TARGETS}", repo, timeout=1500)
    assert gold_free_digests(repo) == before, "an estimating stage read gold"
    assert calls(repo, "query.round0") == 0 and calls(repo, "query.round1") == 0  # all answered from the cache

    # A gold budget of 4 items: their gold may be read (select, PPI) and they leave every metric; the gold of the
    # other 8 must still be unread: shuffled among themselves, every gold-free output stays byte-identical,
    # the selected labels and selection.json included.
    params = repo / "params.yaml"
    text = params.read_text()
    assert text.count("    dataset: ethics_tiny\n") == 1
    params.write_text(text.replace("    dataset: ethics_tiny\n", "    dataset: ethics_tiny\n    gold_budget: 4\n"))
    sh(f"snakemake --cores 2 {TARGETS}", repo, timeout=1500)
    budget = pd.read_parquet(repo / RUN / "gold_budget.parquet")
    assert len(budget) == 4
    metrics = pd.read_parquet(repo / RUN / "metrics.parquet").set_index(["method", "seed", "metric"])
    assert metrics.loc[("selected", -1, "n_gold"), "value"] == 12 - 4  # the budget is not evaluated
    assert metrics.loc[("selected", -1, "gold_budget_items"), "value"] == 4
    assert "budget_accuracy" in metrics.index.get_level_values("metric")
    selection = json.loads((repo / RUN / "selection.json").read_text())
    assert selection["gold_budget"]["k"] == 4
    before = {
        **gold_free_digests(repo),
        **budget_digests(repo),
    }
    items = pd.read_parquet(repo / RUN / "items.parquet")
    rows = items.loc[~items["item_id"].isin(budget["item_id"]), "source_row"].to_numpy()
    df = pd.read_csv(data)
    labels = df.loc[rows, "label"].to_numpy()
    df.loc[rows, "label"] = labels[[*range(1, len(labels)), 0]]  # rotate: every unbudgeted label moves
    assert (df.loc[rows, "label"].to_numpy() != labels).any()
    df.to_csv(data, index=False)
    sh(f"snakemake --cores 2 {TARGETS}", repo, timeout=1500)
    after = {
        **gold_free_digests(repo),
        **budget_digests(repo),
    }
    assert after == before, "a stage read gold outside the budget"
    pd.testing.assert_frame_equal(pd.read_parquet(repo / RUN / "gold_budget.parquet"), budget)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(repo_copy: Path, tmp_path: Path) -> None:
    repo = repo_copy
    sh("snakemake --cores 2 results/tiny/report.html", repo, timeout=1500)
    page = tmp_path / "report.html"
    probe = (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        " document.title = 'IMAGES ' + imgs.length + ' LOADED ' + imgs.filter(i => i.complete && i.naturalWidth > 0)"
        ".length + ' TABLE ' + document.querySelectorAll('table').length; });</script>"
    )
    page.write_text((repo / "results/tiny/report.html").read_text().replace("</body>", probe + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    title = dom.split("<title>")[1].split("</title>")[0]
    _, n_images, _, n_loaded, _, n_tables = title.split()
    assert int(n_images) >= 4 and n_loaded == n_images, title
    assert int(n_tables) >= 1
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1200,2400", f"--screenshot={tmp_path / 'report.png'}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "report.png").stat().st_size > 10_000
