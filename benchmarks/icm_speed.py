"""Speed of faithful ICM (elicit.baselines.icm_official) on the simulator: seconds per seed at n = 1,000.

Goal: <= 20 minutes per seed on the 2-core CPU, for sim_strong and for sim_latent (which reads embeddings).
Items: the shipped GSM8K solutions (data/icm/test_gsm8k.json, the paper's own testbed), a seeded subsample of
whole questions (4 solutions each, rule same_answer_same_label, so the consistency fix runs), the dataset's
first template; embeddings for sim_latent are synthetic (one random direction per question plus noise: the
solutions to one question lie close together). Defaults of ``baselines.icm`` (batches of 256, K = 3000
per 256 items, both framings).

Two oracle paths: ``direct`` calls ``elicit.oracle.simulate`` (the simulator alone); ``client`` goes through
the real driver (``elicit.oracle.ask_sync`` with an opened simulated oracle, no cache: what the stage does),
which renders and hashes every prompt, so its cost grows with the prompt's text (up to 255 GSM8K solutions).

Prints, per preset: seconds, oracle calls, distinct queries, estimated prompt tokens, the plan (at least / at
most), labels' accuracy against gold next to zero-shot's, and the process's peak memory (max RSS). Usage:
  uv run --no-sync python benchmarks/icm_speed.py [--n 1000] [--path direct|client] [--presets sim_strong ...]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elicit.baselines.icm_official import icm_official  # noqa: E402
from elicit.baselines.icm_official_config import OfficialICMConfig, plan_cost  # noqa: E402
from elicit.datasets import DatasetConfig, load_items, subsample  # noqa: E402
from elicit.oracle import OracleConfig, ask_sync, open_oracle, simulate  # noqa: E402
from elicit.oracle.sim_suite import item_space  # noqa: E402
from elicit.oracle.simulated import PRESETS  # noqa: E402
from elicit.prompts import load_templates  # noqa: E402

GOAL_S = 20 * 60
DIM = 32


def gsm8k(n: int, seed: int) -> tuple[pd.DataFrame, str]:
    cfg = DatasetConfig.from_params("gsm8k", {"builtin": "gsm8k"})
    items = subsample(load_items(cfg, ROOT), n, seed, dataset="gsm8k")
    return items.reset_index(drop=True), str(cfg.consistency)


def embeddings(items: pd.DataFrame, seed: int) -> np.ndarray:
    """One random unit direction per consistency group (question), plus noise per item; unit rows."""
    rng = np.random.default_rng(seed)
    cid = pd.factorize(items["consistency_id"].astype("string").fillna(items["item_id"].astype("string")))[0]
    centres = rng.normal(size=(int(cid.max()) + 1, DIM))
    x = centres[cid] / np.sqrt(DIM) + 0.3 * rng.normal(size=(len(items), DIM)) / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def score_frame(q: pd.DataFrame, lp_true: pd.Series, lp_false: pd.Series) -> pd.DataFrame:
    f = np.where(q["framing"] == "pos", 1.0, -1.0)
    out = q.reset_index(drop=True).copy()
    out["score"] = f * (lp_true.astype(float).to_numpy() - lp_false.astype(float).to_numpy())
    return out


def zero_shot_accuracy(ask: Callable[[pd.DataFrame], pd.DataFrame], items: pd.DataFrame, template: str) -> float:
    rows = [
        {
            "query_id": f"z{i}-{f}",
            "round": 0,
            "group_id": -1,
            "target_id": int(i),
            "kind": "zero_shot",
            "framing": f,
            "template_id": template,
            "context_ids": np.zeros(0, dtype=np.int64),
            "context_shown": np.zeros(0, dtype=np.int8),
            "perm_seed": -1,
            "flipped_pos": -1,
            "flip_of": None,
        }
        for i in items["item_id"]
        for f in ("pos", "neg")
    ]
    got = ask(pd.DataFrame(rows))
    s = got.groupby("target_id")["score"].mean().reindex(items["item_id"]).to_numpy()
    return float(((s > 0).astype(int) == items["gold"].to_numpy(dtype=int)).mean())


def run_one(name: str, items: pd.DataFrame, rule: str, path: str, seed: int) -> dict[str, float | int | str]:
    gold = {int(i): int(g) for i, g in zip(items["item_id"], items["gold"], strict=True)}
    template = load_templates(ROOT / "data" / "templates.yaml", "gsm8k")[0]
    params = PRESETS[name]
    emb = embeddings(items, seed)
    pair = (items["item_id"].to_numpy(), emb)
    space = item_space(pair, params.seed)  # topic clusters once, as the oracle builds them once
    cfg = OfficialICMConfig(template_id=template.id)
    plan = plan_cost(items, cfg, seed)
    with tempfile.TemporaryDirectory() as cache_dir:
        ocfg = OracleConfig.from_params("sim", {"kind": "simulated", "preset": name, "cache": False})
        with open_oracle(ocfg, cache_dir, gold=gold, embeddings=space) as oracle:

            def ask(q: pd.DataFrame) -> pd.DataFrame:
                if path == "direct":
                    out = simulate(q, gold, params, space)
                    return score_frame(q, out["lp_true"], out["lp_false"])
                preds, _ = ask_sync(q, items, ocfg, [template], cache_dir, gold, False, oracle=oracle)
                return preds

            zero = zero_shot_accuracy(ask, items, template.id)
            t0 = time.perf_counter()
            labels, calls, trace = icm_official(items.drop(columns=["gold"]), ask, cfg, seed, rule)
            seconds = time.perf_counter() - t0
    y = items.set_index("item_id")["gold"].reindex(labels["item_id"]).to_numpy(dtype=int)
    acc = float(((labels["p_true"].to_numpy() > 0.5).astype(int) == y).mean())
    tok = calls["context_ids"].map(len).to_numpy()
    return {
        "preset": name,
        "seconds": seconds,
        "calls": len(calls),
        "queries": len(calls) // len(cfg.framings),
        "mean_shown": float(tok.mean()) if len(tok) else 0.0,
        "plan_min": plan.calls,
        "plan_max": plan.calls_max,
        "plan_tokens_min": plan.prompt_tokens,
        "accuracy": acc,
        "zero_shot": zero,
        "accepted": int(trace["accepted"].sum() - trace["step"].eq(0).sum()),
        "proposed": int(trace["proposed"].sum()),
        "labelled_by_search": int(trace.groupby("batch")["n_labelled"].last().sum()),
        "batches": len(plan.batch_sizes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--path", choices=["direct", "client"], default="direct")
    ap.add_argument("--presets", nargs="+", default=["sim_strong", "sim_latent"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    items, rule = gsm8k(args.n, args.seed)
    print(f"GSM8K subsample: {len(items)} items, rule {rule}; path {args.path}; goal <= {GOAL_S} s per seed")
    ok = True
    for name in args.presets:
        r = run_one(name, items, rule, args.path, args.seed)
        hit = r["seconds"] <= GOAL_S
        ok &= hit
        print(
            f"{name}: {r['seconds']:.0f} s per seed ({'HIT' if hit else 'MISS'}); {r['batches']} batches; "
            f"{r['calls']:,} calls ({r['queries']:,} queries x 2 framings, {r['mean_shown']:.0f} items shown on "
            f"average); plan {r['plan_min']:,} to {r['plan_max']:,} calls, >= {r['plan_tokens_min']:,} prompt tokens;"
            f" {r['proposed']:,} proposals put to the test, {r['accepted']:,} accepted; "
            f"{r['labelled_by_search']}/{len(items)} labelled by the search; "
            f"accuracy {r['accuracy']:.3f} (zero-shot {r['zero_shot']:.3f})"
        )
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory (max RSS): {rss_gb:.2f} GB")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
