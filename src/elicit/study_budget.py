"""What k gold labels buy, measured on the study's runs: ``python -m elicit.study_budget --runs <run> ...``.

For every built run (with gold) and k in ``--k`` (25, 50, 100), and ``--repeats`` budget draws per run, it does what a
run with ``gold_budget: k`` does after its oracle calls, on the run's own answers: it draws the budget
(:func:`elicit.gold_budget.choose`, the run's seed + the repeat), leaves it out, estimates ``selected``'s accuracy
without gold (:mod:`elicit.evaluate.goldfree`, on the other items) and with PPI (:mod:`elicit.evaluate.ppi`), and
re-chooses the config with the budget's gold (:func:`elicit.gold_budget.choose_with_gold`). Each is compared with
the truth on the items outside the budget: the estimate's error, whether its interval covers, its width; and the
accuracy of the gold-checked choice against the gold-free one. No oracle call is made; nothing in the runs changes.

Output: a markdown table per oracle preset and k (``--out``, default printed), over runs x repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elicit.config import load_params, resolve_run
from elicit.evaluate import estimate_all
from elicit.evaluate.metrics import seed_mean_p
from elicit.evaluate.ppi import ppi_mean, right_probability
from elicit.gold_budget import choose, choose_with_gold, is_right
from elicit.io import write_text
from elicit.paths import RunPaths
from elicit.stages._labels import read_methods
from elicit.stages.evaluate import held_out_answers

K_DEFAULT = (25, 50, 100)


def _accuracy(p: np.ndarray, gold: np.ndarray) -> float:
    return float(is_right(p, gold).mean())


def run_rows(
    run: str, params: dict[str, Any], ks: Sequence[int], repeats: int, root: Path = Path(".")
) -> list[dict[str, Any]]:
    """One row per (k, repeat) of one built run (module docstring); [] for a run without gold or without labels."""
    cfg = resolve_run(params, run)
    paths = RunPaths(run)
    run_dir = root / paths.dir
    items = pd.read_parquet(root / paths.items)
    if items["gold"].isna().any() or not (run_dir / "selection.json").exists():
        return []
    selection = json.loads((run_dir / "selection.json").read_text())
    configs = list(selection["scores"])
    gold_free = str(selection["selected"])
    folders = [run_dir / "labels" / m for m in sorted({*configs, "selected", "random_fewshot", "bootstrap_fewshot"})]
    present = [f for f in folders if f.exists()]
    labels = read_methods(present)
    preds = [f for f in sorted(run_dir.glob("round*/predictions.parquet")) if f.parent.name != "round0"]
    answers = held_out_answers(present, preds)
    ids = np.sort(items["item_id"].to_numpy(dtype=np.int64))
    gold_all = items.set_index("item_id").loc[ids, "gold"].to_numpy(dtype=np.int64)
    p_sel = seed_mean_p(labels["selected"], ids)
    p_cfg = {c: seed_mean_p(labels[c], ids) for c in configs if c in labels}
    rows = []
    for k in ks:
        for rep in range(repeats):
            budget = choose(ids, k, cfg.seed + 1000 * rep)
            inside = np.isin(ids, budget)
            rest = ids[~inside]
            truth = _accuracy(p_sel[~inside], gold_all[~inside])
            est = estimate_all({"selected": labels["selected"]}, answers, rest, seed=cfg.seed, n_boot=50)["selected"]
            right = is_right(p_sel[inside], gold_all[inside])
            ppi = ppi_mean(right_probability(p_sel[~inside], est), right_probability(p_sel[inside], est), right)
            checked = choose_with_gold(gold_free, {c: p[inside] for c, p in p_cfg.items()}, gold_all[inside])
            rows.append(
                {
                    "run": run,
                    "oracle": cfg.oracle,
                    "n": int(ids.size),
                    "k": int(k),
                    "repeat": rep,
                    "truth": truth,
                    "free": est.value,
                    "free_low": est.low,
                    "free_high": est.high,
                    "ppi": ppi.value,
                    "ppi_low": ppi.low,
                    "ppi_high": ppi.high,
                    "lam": ppi.lam,
                    "switched": checked.chosen != gold_free,
                    "acc_gold_free_choice": _accuracy(p_cfg[gold_free][~inside], gold_all[~inside]),
                    "acc_gold_checked_choice": _accuracy(p_cfg[checked.chosen][~inside], gold_all[~inside]),
                }
            )
    return rows


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per oracle preset and k: error, coverage and width of the gold-free and the PPI estimates; the choice."""
    df = rows.assign(
        free_err=rows["free"] - rows["truth"],
        ppi_err=rows["ppi"] - rows["truth"],
        free_cov=(rows["free_low"] <= rows["truth"]) & (rows["truth"] <= rows["free_high"]),
        ppi_cov=(rows["ppi_low"] <= rows["truth"]) & (rows["truth"] <= rows["ppi_high"]),
        free_width=rows["free_high"] - rows["free_low"],
        ppi_width=rows["ppi_high"] - rows["ppi_low"],
        gain=rows["acc_gold_checked_choice"] - rows["acc_gold_free_choice"],
    )
    return (
        df.groupby(["oracle", "n", "k"], sort=True)
        .agg(
            cells=("truth", "size"),
            runs=("run", "nunique"),
            free_err=("free_err", "mean"),
            free_cov=("free_cov", "mean"),
            free_width=("free_width", "mean"),
            ppi_err=("ppi_err", "mean"),
            ppi_abs_err=("ppi_err", lambda s: float(np.mean(np.abs(s)))),
            ppi_cov=("ppi_cov", "mean"),
            ppi_width=("ppi_width", "mean"),
            lam=("lam", "mean"),
            switched=("switched", "mean"),
            gain=("gain", "mean"),
        )
        .reset_index()
    )


def markdown(table: pd.DataFrame) -> str:
    def pts(x: float) -> str:
        return f"{100 * x:+.1f}"

    head = (
        "| preset | n | k | runs x draws | gold-free: error | coverage | width | PPI: error | abs. error | coverage "
        "| width | λ | gold-checked choice: switched | accuracy gain |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in table.to_dict("records"):
        lines.append(
            f"| {r['oracle']} | {r['n']} | {r['k']} | {r['cells']} | {pts(r['free_err'])} | "
            f"{100 * r['free_cov']:.0f} % | "
            f"{100 * r['free_width']:.1f} | {pts(r['ppi_err'])} | {100 * r['ppi_abs_err']:.1f} | "
            f"{100 * r['ppi_cov']:.0f} % | {100 * r['ppi_width']:.1f} | {r['lam']:.2f} | {100 * r['switched']:.0f} % | "
            f"{pts(r['gain'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="built runs (results/<run>/)")
    ap.add_argument("--k", type=int, nargs="+", default=list(K_DEFAULT), help="budget sizes")
    ap.add_argument("--repeats", type=int, default=3, help="budget draws per run and k")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, help="markdown file (default: print)")
    ap.add_argument("--rows", type=Path, help="every cell as CSV")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    rows: list[dict[str, Any]] = []
    for i, run in enumerate(args.runs, 1):
        print(f"[{i}/{len(args.runs)}] {run}", file=sys.stderr, flush=True)
        rows += run_rows(run, params, args.k, args.repeats)
    if not rows:
        print("no run with gold and labels", file=sys.stderr)
        return 2
    frame = pd.DataFrame(rows)
    if args.rows:
        frame.to_csv(args.rows, index=False)
    text = markdown(summarize(frame))
    if args.out:
        write_text(text, args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
