"""Where every stage reads and writes: the only module that spells output paths.

Snakemake rules and ``dvc.yaml`` pass every path as a flag; when a stage is run by hand without flags it falls back
to these, so ``python -m elicit.stages.group --run ethics`` and the pipelines agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS = Path("results")
LOGS = Path("logs")
BENCHMARKS = Path("benchmarks/runs")


@dataclass(frozen=True)
class RunPaths:
    """All output paths of one run (``results/<run>/``)."""

    run: str
    root: Path = RESULTS

    @property
    def dir(self) -> Path:
        return self.root / self.run

    @property
    def items(self) -> Path:
        return self.dir / "items.parquet"

    @property
    def hygiene(self) -> Path:
        """Duplicate counts of the load stage (``elicit.hygiene``), next to items.parquet."""
        return self.dir / "hygiene.json"

    @property
    def embeddings(self) -> Path:
        return self.dir / "embeddings.npy"

    @property
    def groups(self) -> Path:
        return self.dir / "groups.parquet"

    @property
    def priors(self) -> Path:
        return self.dir / "priors.parquet"

    @property
    def tuples(self) -> Path:
        return self.dir / "tuples.parquet"

    def round_dir(self, r: int) -> Path:
        return self.dir / f"round{r}"

    def predictions(self, r: int) -> Path:
        return self.round_dir(r) / "predictions.parquet"

    def plan(self, r: int) -> Path:
        return self.round_dir(r) / "plan.parquet"

    def fit(self, r: int) -> Path:
        return self.round_dir(r) / "fit.parquet"

    def labels_dir(self, method: str) -> Path:
        return self.dir / "labels" / method

    def labels(self, method: str, seed: int) -> Path:
        return self.labels_dir(method) / f"seed{seed}.parquet"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.parquet"

    @property
    def metrics_json(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def report(self) -> Path:
        return self.dir / "report.html"

    def telemetry(self, job: str) -> Path:
        return self.dir / "telemetry" / f"{job}.json"
