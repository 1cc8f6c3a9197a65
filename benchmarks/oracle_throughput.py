"""Throughput of the oracle driver against the embedded llama.cpp server.

Prints:
  1. raw requests (a plain `openai` client in a sequential loop) vs our driver (`ask`, concurrency 1)
     on the same ~30 zero-shot prompts: ratio = raw time / driver time (goal >= 0.9). Run ABBA
     (raw, driver, driver, raw) so that drift in machine load cancels.
  2. a fully cached re-run of the driver: goal 0 calls and < 5 s.
  3. per-call cost of zero-shot vs few-shot (k = 4) prompts, with their prompt tokens.

Usage: uv run --no-sync python benchmarks/oracle_throughput.py [--n-items 15] [--threads 2]
Items are ETHICS commonsense short scenarios from data/ethics/commonsense/cm_test.csv.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elicit.oracle import OracleConfig, ask_sync  # noqa: E402
from elicit.oracle.base import parse_top_logprobs  # noqa: E402
from elicit.oracle.embedded import EmbeddedServer  # noqa: E402
from elicit.prompts import load_templates, render_completion  # noqa: E402


def load_items(n: int) -> pd.DataFrame:
    df = pd.read_csv(ROOT / "data/ethics/commonsense/cm_test.csv")
    df = df[df["is_short"].astype(str) == "True"].head(n).reset_index(drop=True)
    return pd.DataFrame({"item_id": range(len(df)), "text": df["input"].astype(str)})


def query_rows(items: pd.DataFrame, template_id: str, k: int) -> pd.DataFrame:
    n = len(items)
    rows = []
    for i in range(n):
        for f in ("pos", "neg"):
            ctx = [(i + j + 1) % n for j in range(k)]
            rows.append(
                {
                    "query_id": f"{'f' if k else 'z'}{i}{f}",
                    "target_id": i,
                    "framing": f,
                    "template_id": template_id,
                    "context_ids": ctx,
                    "context_shown": [(i + j) % 2 for j in range(k)],
                },
            )
    return pd.DataFrame(rows)


def raw_loop(base_url: str, model: str, prompts: list[str], top: int) -> float:
    """What a user would write by hand: one request after another, no cache."""
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=300)
    t0 = time.perf_counter()
    for p in prompts:
        r = client.completions.create(model=model, prompt=p, max_tokens=1, temperature=0, logprobs=top)
        assert r.choices[0].logprobs is not None and r.choices[0].logprobs.top_logprobs is not None
        parse_top_logprobs(r.choices[0].logprobs.top_logprobs[0].items())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-items", type=int, default=15, help="items; x2 framings = zero-shot prompts")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    cfg = OracleConfig.from_params("smollm2", {"kind": "embedded", "n_threads": args.threads, "n_ctx": 2048})
    (template,) = load_templates(ROOT / "data/templates.yaml", "ethics")
    items = load_items(args.n_items)
    texts = dict(zip(items["item_id"], items["text"], strict=True))
    zs = query_rows(items, template.id, 0)
    fs = query_rows(items, template.id, 4).head(10)
    prompts = [render_completion(template, f, texts[t]) for t, f in zip(zs["target_id"], zs["framing"], strict=True)]

    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(cfg) as server:
        url = server.base_url
        raw_loop(url, str(cfg.model), prompts[:1], cfg.top_logprobs)  # warm-up (model pages, threads)

        # raw loop in input order (what one writes by hand) and in the driver's order (prompts sorted so
        # neighbours share a prefix): the second isolates the driver's own overhead.
        times = {"raw": 0.0, "raw_sorted": 0.0, "driver": 0.0}
        last_cache = Path(tmp)
        for step, what in enumerate(("raw", "raw_sorted", "driver", "driver", "raw_sorted", "raw")):
            t0 = time.perf_counter()
            if what == "raw":
                raw_loop(url, str(cfg.model), prompts, cfg.top_logprobs)
            elif what == "raw_sorted":
                raw_loop(url, str(cfg.model), sorted(prompts), cfg.top_logprobs)
            else:
                last_cache = Path(tmp) / f"c{step}"
                _, tel = ask_sync(zs, items, cfg, [template], last_cache, progress=False, server_url=url)
                assert tel["calls"] == len(prompts), tel
            times[what] += time.perf_counter() - t0
        n = 2 * len(prompts)
        print(f"zero-shot prompts: {len(prompts)} (x2 runs each, ABCCBA), SmolLM2-135M, {args.threads} threads")
        for name, label in (
            ("raw", "raw loop, input order"),
            ("raw_sorted", "raw loop, sorted"),
            ("driver", "our driver"),
        ):
            print(f"  {label:22s}: {times[name]:6.2f} s  ({n / times[name]:5.2f} calls/s)")
        ratio = times["raw"] / times["driver"]
        ratio_sorted = times["raw_sorted"] / times["driver"]
        verdict = "OK" if min(ratio, ratio_sorted) >= 0.9 else "MISSED"
        print(
            f"  driver throughput / raw = {ratio:.2f} (input order), {ratio_sorted:.2f} (same order);"
            f" goal >= 0.9: {verdict}"
        )

        t0 = time.perf_counter()
        _, tel_c = ask_sync(zs, items, cfg, [template], last_cache, progress=False, server_url=url)
        cached_s = time.perf_counter() - t0
        ok = tel_c["calls"] == 0 and cached_s < 5
        print(
            f"fully cached re-run: {tel_c['calls']} calls, {tel_c['cache_hits']} cache hits, {cached_s:.2f} s"
            f" (goal 0 calls, < 5 s: {'OK' if ok else 'MISSED'})",
        )

        costs = {}
        for name, q in (("zero-shot", zs.head(10)), ("few-shot k=4", fs)):
            per: list[float] = []
            toks: list[int] = []
            for j in range(len(q)):
                t0 = time.perf_counter()
                p, _ = ask_sync(q.iloc[[j]], items, cfg, [template], Path(tmp) / "cost", progress=False, server_url=url)
                per.append(time.perf_counter() - t0)
                toks.append(int(p["prompt_tokens"].iloc[0]))
            costs[name] = (statistics.median(per), statistics.mean(toks))
            med, tok = costs[name]
            print(f"per call, {name:12s}: median {med:.2f} s, {tok:.0f} prompt tokens (mean)")
        print(f"  few-shot / zero-shot cost = {costs['few-shot k=4'][0] / costs['zero-shot'][0]:.1f}x")
        summary = {
            **{f"{k}_s": round(v, 2) for k, v in times.items()},
            "ratio": round(ratio, 3),
            "ratio_same_order": round(ratio_sorted, 3),
            "cached_calls": tel_c["calls"],
            "cached_s": round(cached_s, 2),
            "zero_shot_s_per_call": round(costs["zero-shot"][0], 3),
            "few_shot_s_per_call": round(costs["few-shot k=4"][0], 3),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
