"""One run's methods with paired intervals over consistency groups, and two checks of what its few-shot gains carry.

The report's intervals resample items; on a dataset built of pairs (a sentence and its opposite) the pair is the
unit, so this resamples consistency groups (items without one are their own group) and gives every method's accuracy
(seed-mean label, p_true >= 0.5) and the paired differences named on the command line. Then two checks that read
gold, for the docs only:

  shown-label majority   per few-shot baseline call, how often the majority of the labels shown in its context is
                         the target's gold: near 1 means the examples are the target's own class (similarity groups)
                         and copying them answers the question without the model knowing anything
  embedding 2-means      accuracy of a 2-means split of the run's embeddings (the better of its two namings): near 1
                         means the embedding model alone separates the classes

    uv run python benchmarks/run_table.py --run probe_sentiment__gemma3 \\
        --pairs golden_fewshot:random_fewshot selected:zero_shot_calibrated selected:bootstrap_fewshot
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import roc_auc_score

from elicit.evaluate.metrics import seed_mean_p
from elicit.stages._labels import read_labels

FEW_SHOT = ["golden_fewshot", "random_fewshot", "bootstrap_fewshot"]


def group_bootstrap(groups: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Item index sets, each a resample of whole groups."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in ids}
    return [np.concatenate([members[g] for g in rng.choice(ids, len(ids))]) for _ in range(n_boot)]


def interval(x: np.ndarray, boots: list[np.ndarray]) -> tuple[float, float, float]:
    b = np.array([x[i].mean() for i in boots])
    return float(x.mean()), float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--pairs", nargs="*", default=[], help="a:b for the paired difference a - b")
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    run = args.results / args.run
    items = pd.read_parquet(run / "items.parquet").set_index("item_id")
    if items["gold"].isna().any():
        raise SystemExit(f"{run}: items without gold; this table needs gold for every item")
    gold = items["gold"].astype(int).to_numpy()
    fallback = pd.Series(-1 - np.arange(len(items)), index=items.index)  # an item without a group is its own
    groups = items["consistency_id"].astype("float").fillna(fallback).to_numpy()
    boots = group_bootstrap(groups, args.n_boot, seed=0)

    methods = sorted(p.name for p in (run / "labels").iterdir() if any(p.glob("seed*.parquet")))
    right, rows = {}, []
    for m in methods:
        seeds = read_labels(run / "labels" / m)
        p, n_seeds = seed_mean_p(seeds, items.index.to_numpy()), len(seeds)
        right[m] = ((p >= 0.5) == gold).astype(float)
        acc, lo, hi = interval(right[m], boots)
        rows.append(
            f"| {m} | {n_seeds} | {100 * acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | {roc_auc_score(gold, p):.2f} |"
        )
    print(f"{args.run}: {len(items)} items, {len(np.unique(groups))} groups resampled, {args.n_boot} draws\n")
    print("| method | seeds | accuracy % [95 % CI] | AUROC |\n|---|---|---|---|")
    print("\n".join(rows))
    if args.pairs:
        print("\n| paired difference | points [95 % CI] |\n|---|---|")
    for pair in args.pairs:
        a, b = pair.split(":")
        d, lo, hi = interval(right[a] - right[b], boots)
        print(f"| {a} − {b} | {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] |")

    print("\n| few-shot baseline | shown-label majority = target's gold (non-tied calls) | tied |\n|---|---|---|")
    g_of = pd.Series(gold, index=items.index)
    for m in FEW_SHOT:
        path = run / "labels" / m / "calls.parquet"
        if not path.exists():
            continue
        calls = pd.read_parquet(path, columns=["target_id", "context_shown"])
        mean_shown = calls["context_shown"].map(lambda s: float(np.mean(list(s)))).to_numpy()
        tied = mean_shown == 0.5
        hit = (mean_shown > 0.5).astype(int) == g_of.reindex(calls["target_id"]).to_numpy()
        print(f"| {m} | {100 * hit[~tied].mean():.0f} % | {100 * tied.mean():.0f} % |")
    emb = np.load(run / "embeddings.npy")
    split = KMeans(2, n_init=10, random_state=0).fit_predict(emb)
    acc = float(np.mean(split == gold))
    print(f"\nembedding 2-means: {100 * max(acc, 1 - acc):.1f} % of items on their class's side")


if __name__ == "__main__":
    main()
