"""export: the selected labels as ``export/labels.parquet`` and ``export/labels.jsonl``, plus DPO-style preference
pairs (``export/dpo_pairs.jsonl``) for datasets with consistency groups, and their gold-free accuracy estimate
(``export/estimate.json``, from the evaluate stage's metrics)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.datasets import DatasetConfig
from elicit.export import dpo_pairs, estimate_record, export_labels, to_jsonl
from elicit.io import write_json, write_parquet, write_text
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, read_labels


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--labels", type=Path, help="labels/selected")
    p.add_argument("--metrics", type=Path, help="metrics.parquet (the gold-free estimate)")
    p.add_argument("--out", type=Path, help="export folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    with _cli.telemetry(paths.telemetry("export"), "export") as tel:
        items = pd.read_parquet(args.items or paths.items).drop(columns=["gold"])
        selected = read_labels(args.labels or paths.labels_dir("selected"))
        if not selected:
            raise FileNotFoundError("no selected labels to export; run the select stage first")
        metrics_path = args.metrics or paths.metrics
        if not metrics_path.exists():
            raise FileNotFoundError(f"{metrics_path} not found; run the evaluate stage first (it holds the estimate)")
        metrics = pd.read_parquet(metrics_path)
        rule = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params).consistency
        labels = export_labels(selected, items)
        pairs = dpo_pairs(items, selected, rule)
        out = fresh_dir(args.out or paths.export)
        write_parquet(labels, out / "labels.parquet")
        write_text(to_jsonl(labels), out / "labels.jsonl")
        write_text(to_jsonl(pairs), out / "dpo_pairs.jsonl")
        write_json(estimate_record(metrics), out / "estimate.json")
        tel.update(labels=len(labels), dpo_pairs=len(pairs))


if __name__ == "__main__":
    _cli.main(run)
