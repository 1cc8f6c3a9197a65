"""load: dataset files (or the hub) → ``items.parquet``, duplicates flagged or dropped (``hygiene:``, counts in
``hygiene.json``, with ``nul_texts``: texts whose NUL bytes were removed), then subsampled by the run's ``n`` and
seed."""

from __future__ import annotations

import time
from pathlib import Path

from elicit.datasets import DatasetConfig, load_items, load_other_splits, subsample, validate_items
from elicit.hygiene import HygieneConfig, apply_hygiene, sample_counts, summary_line
from elicit.io import write_json, write_parquet
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--out", type=Path, help="items.parquet (default results/<run>/items.parquet)")
    p.add_argument("--hygiene", type=Path, help="duplicate counts (default results/<run>/hygiene.json)")
    p.add_argument("--data-root", type=Path, default=Path("."), help="folder that data paths are relative to")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    out = args.out or paths.items
    with _cli.telemetry(paths.telemetry("load"), "load") as tel:
        dataset = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params)
        hygiene_cfg = HygieneConfig.from_params(cfg.section("hygiene"))
        cleaned: dict[str, int] = {}
        items = load_items(dataset, args.data_root, cleaned)
        tel["rows_after_filters"] = len(items)
        # before subsampling, so a run still gets its n items after duplicates are dropped
        start = time.perf_counter()
        others = load_other_splits(dataset, args.data_root) if hygiene_cfg.action != "none" else {}
        items, hygiene = apply_hygiene(items, hygiene_cfg, others)
        tel["hygiene_s"] = round(time.perf_counter() - start, 3)
        _cli.log.info("load: %s", summary_line(hygiene))
        hygiene["nul_texts"] = cleaned.get("nul_texts", 0)  # texts whose NUL bytes load removed
        items = subsample(items, cfg.n, cfg.seed, cfg.positive_fraction, dataset=cfg.dataset, run=cfg.name)
        validate_items(items)
        tel["items"] = len(items)
        hygiene["sample"] = sample_counts(items)
        write_parquet(items, out)
        write_json(hygiene, args.hygiene or paths.hygiene)
    _cli.log.info("load: %d items of dataset '%s' -> %s", len(items), cfg.dataset, out)


if __name__ == "__main__":
    _cli.main(run)
