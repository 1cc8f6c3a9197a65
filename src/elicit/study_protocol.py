"""The study page's section on the ICM paper's protocol (:mod:`elicit.protocol`): each label set used as many-shot
demonstrations for a disjoint test half, over the draws of every study run that enables ``protocol``.

Why over draws: within a draw the protocol's intervals resample test items only; a claim that one label set teaches
the model more than another needs the draw-to-draw spread too (:mod:`elicit.replicates`). So the table's intervals
are t-intervals over the per-draw paired differences, and each cell also counts the draws whose own item-paired
interval excludes 0 (the protocol table's ``diff_vs_*_low/high``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from elicit.protocol import GOLD, NO_DEMOS, REFERENCES
from elicit.replicates import accuracy_interval, compare_draws
from elicit.study_cost import EQUAL_COST_METHODS

SHOWN: tuple[str, ...] = (*REFERENCES, "zero_shot", *EQUAL_COST_METHODS, "golden_fewshot")
"""Label sets on the page, in this order (the swept configs are left out: ``selected`` is the one chosen)."""


def per_draw(tables: Sequence[pd.DataFrame], column: str = "accuracy") -> pd.DataFrame:
    """One row per draw, one column per label set: ``column`` of each draw's ``protocol/accuracy.parquet``."""
    return pd.DataFrame(
        [dict(zip(t["method"].astype(str), t[column].astype("float64"), strict=True)) for t in tables],
        dtype="float64",
    )


def _item_level(tables: Sequence[pd.DataFrame], method: str, ref: str) -> str:
    """How many draws' item-paired intervals put ``method`` above / below ``ref`` (of the draws that have it)."""
    lo, hi = f"diff_vs_{ref}_low", f"diff_vs_{ref}_high"
    rows = [t.set_index("method").loc[method] for t in tables if method in set(t["method"].astype(str))]
    above = sum(1 for r in rows if pd.notna(r[lo]) and r[lo] > 0)
    below = sum(1 for r in rows if pd.notna(r[hi]) and r[hi] < 0)
    return f"{above}↑ {below}↓ of {len(rows)}"


def protocol_rows(groups: Mapping[str, Sequence[pd.DataFrame]]) -> list[dict[str, str]]:
    """One row per run x label set: test accuracy over draws (mean, t-interval), and the paired differences to
    ``no_demos`` (the model without demonstrations) and ``gold`` (the demonstration half's gold labels)."""
    out = []
    for run, tables in groups.items():
        acc = per_draw(tables)
        for method in (m for m in SHOWN if m in acc):
            values = acc[method].dropna().to_numpy()
            if len(values) == 0:
                continue
            mean, low, high = accuracy_interval(values)
            row = {
                "run": run,
                "method": method,
                "draws": str(len(values)),
                "accuracy": f"{100 * mean:.1f}"
                + (f" [{100 * low:.1f}, {100 * high:.1f}]" if len(values) > 1 else " (1 draw)"),
            }
            for ref in (NO_DEMOS, GOLD):
                c = None if method == ref else compare_draws(acc, method, ref)
                row[f"vs_{ref}"] = "–" if c is None else f"{c.text()}; items: {_item_level(tables, method, ref)}"
            out.append(row)
    return out


def protocol_markdown(groups: Mapping[str, Sequence[pd.DataFrame]]) -> list[str]:
    """The page's protocol section (empty when no study run enables the protocol)."""
    rows = protocol_rows(groups)
    if not rows:
        return []
    lines = [
        "## The ICM paper's protocol: labels as many-shot demonstrations (generated)",
        "",
        "Each draw's items are split without gold into a demonstration half and a test half (whole consistency "
        "groups); every test item is asked in both framings with the demonstration items shown under one label "
        "set's labels, the same items in the same order for every label set. Test accuracy in % (mean over draws, "
        "95 % t-interval over draws); `vs` = paired difference in points with its t-interval over draws, then how "
        "many draws' own item-paired 95 % intervals lie above (↑) or below (↓) 0. `no_demos`: the same questions "
        "without demonstrations; `gold`: the demonstration half's gold labels. Transductive: every method's labels "
        "were fitted on all the run's answers, test half included (the paper labels the train split only).",
        "",
        "| run | label set | draws | test accuracy | vs no_demos | vs gold |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['run']} | {r['method']} | {r['draws']} | {r['accuracy']} | {r[f'vs_{NO_DEMOS}']} | {r[f'vs_{GOLD}']} |"
        for r in rows
    ]
    return [*lines, ""]
