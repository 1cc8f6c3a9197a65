"""Real models beside the simulator suite (issue 16, part 3): the observables the suite's presets were calibrated on,
measured on the signal search's own answers (not on any method run).

Per screened cell (probe x model x format; ``benchmarks/signal_search.py`` output folders):

  zero-shot acc@med      accuracy of the framing-averaged zero-shot score at its median (balanced classes)
  golden - zero          golden 4-shot minus zero-shot, acc@med (the suite's "golden few-shot - zero-shot")
  random-label PGR       (random - zero) / (golden - zero), acc@med and AUROC; only where golden beats zero-shot
                         (the denominator's interval above 0), else "-" (the suite's presets: 0.68 / 0.86 / 1.18)
  own share              (own - random) / (golden - random), AUROC: how much of the label-dependent gain the model's
                         OWN zero-shot answers, shown as labels, also give. Near 1: the gain follows agreement with
                         the model's beliefs (the suite's lambda near 0); near 0: it needs correct labels (lambda 1)
  copy last / first      mean log-odds when the last (first) shown label is 1 minus 0, random contexts (the suite:
                         recency 0.2, primacy 0.3 in its logit, plus similarity copying 0.8)
  yes bias               zero-shot: mean of f * (lp_true - lp_false) where the format has one framing (yes/no: the
                         lean towards "Yes"), else half the mean pos-minus-neg score difference (acquiescence; the
                         suite: 1.0 +- 0.6 per item x template x framing)

Usage: uv run python benchmarks/signal_observables.py benchmarks/runs/signal_search_gemma_yesno [more folders ...]
Prints a markdown table (docs/signal_search.md holds the measured one).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _ratio(num: float, den: float, den_lo: float) -> float:
    """num / den where the denominator's interval is above 0, else NaN (a ratio over a gap that may be 0)."""
    return num / den if den_lo > 0 and den > 0 else math.nan


def yes_bias(preds: pd.DataFrame) -> float:
    """Zero-shot lean towards the answer "True"/"Yes" in log-odds (see the module docstring)."""
    z = preds[(preds["condition"] == "zero_shot") & ~preds["missing"].astype(bool)]
    score = z["score"].astype("float64")
    if set(z["framing"]) == {"pos"}:
        return float(score.mean())  # balanced classes: a model without a lean averages 0
    wide = z.assign(score=score).pivot_table(index="target_id", columns="framing", values="score", aggfunc="mean")
    wide = wide.dropna()
    if wide.empty or not {"pos", "neg"} <= set(wide.columns):
        return math.nan
    return float(((wide["pos"] - wide["neg"]) / 2).mean())  # pos = s + a, neg (sign undone) = s - a


def observables(cells: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """One row of observables per ok cell of a screen folder (``cells.csv`` + ``predictions.parquet``)."""
    rows = []
    for c in cells[cells["status"] == "ok"].to_dict("records"):
        key = (preds["model"] == c["model"]) & (preds["dataset"] == c["dataset"]) & (preds["format"] == c["format"])
        gz = c["golden_minus_zero_shot_acc_med"]
        gz_auc = c["golden_minus_zero_shot_auroc"]
        rows.append(
            {
                "model": c["model"],
                "dataset": c["dataset"],
                "format": c["format"],
                "split": c["split"],
                "n": c["n"],
                "k": c["k"],
                "zero_acc_med": c["zero_shot_acc_med"],
                "golden_minus_zero": gz,
                "pgr_acc_med": _ratio(
                    c["random_acc_med"] - c["zero_shot_acc_med"], gz, c["golden_minus_zero_shot_acc_med_lo"]
                ),
                "pgr_auroc": _ratio(
                    c["random_auroc"] - c["zero_shot_auroc"], gz_auc, c["golden_minus_zero_shot_auroc_lo"]
                ),
                "own_share_auroc": _ratio(
                    c["own_auroc"] - c["random_auroc"],
                    c["golden_minus_random_auroc"],
                    c["golden_minus_random_auroc_lo"],
                ),
                "copy_last": c["copy_last"],
                "copy_first": c["copy_first"],
                "yes_bias": yes_bias(preds[key]),
            }
        )
    return pd.DataFrame(rows)


def markdown(obs: pd.DataFrame) -> str:
    def f(v: float, signed: bool = False) -> str:
        return "-" if not np.isfinite(v) else (f"{v:+.2f}" if signed else f"{v:.2f}")

    lines = [
        "| model | dataset | format | k | split (n) | zero-shot acc@med | golden - zero | random PGR acc@med / AUROC "
        "| own share (AUROC) | copy last / first | yes bias |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in obs.to_dict("records"):
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['format']} | {r['k']} | {r['split']} ({r['n']}) "
            f"| {f(r['zero_acc_med'])} "
            f"| {f(r['golden_minus_zero'], True)} | {f(r['pgr_acc_med'])} / {f(r['pgr_auroc'])} "
            f"| {f(r['own_share_auroc'])} | {f(r['copy_last'], True)} / {f(r['copy_first'], True)} "
            f"| {f(r['yes_bias'], True)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="signal_search output folders (cells.csv, predictions)")
    args = ap.parse_args(argv)
    frames = []
    for folder in args.folders:
        cells, preds = folder / "cells.csv", folder / "predictions.parquet"
        if not cells.exists() or not preds.exists():
            print(
                f"{folder}: no cells.csv / predictions.parquet; run benchmarks/signal_search.py first", file=sys.stderr
            )
            return 2
        frames.append(observables(pd.read_csv(cells), pd.read_parquet(preds)))
    print(markdown(pd.concat(frames, ignore_index=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
