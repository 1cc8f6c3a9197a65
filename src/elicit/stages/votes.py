"""votes: baselines from the stored predictions, no oracle calls — zero_shot, zero_shot_calibrated, few_shot_mean,
majority_vote and dawid_skene (prompt variants as crowd workers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.baselines import dawid_skene, few_shot_mean, majority_vote, zero_shot, zero_shot_calibrated
from elicit.contracts import VOTE_METHODS as METHODS
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, write_labels


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--priors", type=Path)
    p.add_argument("--predictions", type=Path, nargs="+", help="round{r}/predictions.parquet, all rounds")
    p.add_argument(
        "--out", type=Path, nargs=len(METHODS), help="labels/<method> folders, in the order " + " ".join(METHODS)
    )
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    rounds = int(cfg.section("base")["rounds"])
    pred_files = args.predictions or [paths.predictions(r) for r in range(rounds + 1)]
    outs = args.out or [paths.labels_dir(m) for m in METHODS]
    with _cli.telemetry(paths.telemetry("votes"), "votes") as tel:
        priors = pd.read_parquet(args.priors or paths.priors)
        preds = pd.concat([pd.read_parquet(f) for f in pred_files], ignore_index=True)
        n = len(priors)
        labels = {
            "zero_shot": zero_shot(priors, n),
            "zero_shot_calibrated": zero_shot_calibrated(priors, n),
            "few_shot_mean": few_shot_mean(preds, priors, n),
            "majority_vote": majority_vote(preds, n),
            "dawid_skene": dawid_skene(preds, n),
        }
        for method, out in zip(METHODS, outs, strict=True):
            write_labels(fresh_dir(Path(out)), 0, labels[method], n, method)
        tel.update(items=n, predictions=len(preds))


if __name__ == "__main__":
    _cli.main(run)
