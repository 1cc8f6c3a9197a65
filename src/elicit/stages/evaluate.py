"""evaluate: every method's labels against gold → ``metrics.parquet`` + ``metrics.json`` (with bootstrap CIs, PGR and
gold-free diagnostics; a run without gold gets only the diagnostics)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.datasets import DatasetConfig
from elicit.evaluate import SIMULATOR_KEY, EvaluateConfig, diagnostics, evaluate, metrics_json
from elicit.io import write_json, write_parquet
from elicit.pipeline import label_methods
from elicit.stages import _cli
from elicit.stages._labels import read_methods
from elicit.stages._oracle import simulator_diagnostics


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--labels", type=Path, nargs="+", help="labels/<method> folders")
    p.add_argument("--out", type=Path, help="metrics.parquet")
    p.add_argument("--json", type=Path, help="metrics.json")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    folders = args.labels or [paths.labels_dir(m) for m in label_methods(cfg.params, {"run": cfg.name})]
    with _cli.telemetry(paths.telemetry("evaluate"), "evaluate") as tel:
        items = pd.read_parquet(args.items or paths.items)
        labels = read_methods(folders)
        ecfg = EvaluateConfig.from_dict(cfg.section("evaluate"))
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        notes: list[str] = []
        metrics = evaluate(labels, items, cfg.seed, ecfg.n_boot, ece_bins=ecfg.ece_bins, ci=ecfg.ci, notes=notes)
        diag = diagnostics(labels, items, rule)
        diag["notes"] = list(diag.get("notes") or []) + notes
        tel.update(methods=len(labels), rows=len(metrics))
        write_parquet(metrics, args.out or paths.metrics)
        summary = metrics_json(metrics, diag)
        simulator = simulator_diagnostics(cfg, items, _cli.optional_input(args.embeddings, paths.embeddings))
        if simulator is not None:  # beside the methods, under a name no method can take
            summary[SIMULATOR_KEY] = simulator
        write_json(summary, args.json or paths.metrics_json)


if __name__ == "__main__":
    _cli.main(run)
