"""load: dataset files (or the hub) → ``items.parquet``, subsampled by the run's ``n`` and seed."""

from __future__ import annotations

from pathlib import Path

from elicit.datasets import DatasetConfig, load_items, subsample, validate_items
from elicit.io import write_parquet
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--out", type=Path, help="items.parquet (default results/<run>/items.parquet)")
    p.add_argument("--data-root", type=Path, default=Path("."), help="folder that data paths are relative to")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    out = args.out or paths.items
    with _cli.telemetry(paths.telemetry("load"), "load") as tel:
        dataset = DatasetConfig.from_params(cfg.dataset, cfg.dataset_params)
        items = load_items(dataset, args.data_root)
        tel["rows_after_filters"] = len(items)
        items = subsample(items, cfg.n, cfg.seed, cfg.positive_fraction)
        validate_items(items)
        tel["items"] = len(items)
        write_parquet(items, out)
    _cli.log.info("load: %d items of dataset '%s' -> %s", len(items), cfg.dataset, out)


if __name__ == "__main__":
    _cli.main(run)
