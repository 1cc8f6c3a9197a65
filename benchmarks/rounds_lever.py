"""Issue 15's first lever, more rounds, under the keep rule: ``selected`` of each draw built with one more few-shot
round against the same draw's ``selected`` with the default rounds, paired per draw.

The study target ``rounds`` builds ``rounds3_<dataset>__<preset>[__drawK]`` with the seeds of the suite draw of the
same name (``suite_<dataset>__<preset>[__drawK]``), so both hold the same items and groups, and the rounds they share
were planned by the same (unswept) loop config: the extra round is the only difference. The script checks that: the
share of shared-round answers (query id and score) that differ is printed per draw and should be 0.

Accuracy is the seed-mean label of ``labels/selected`` (keep_rule.py's scoring) against items.parquet gold. Per preset:
mean Δ (points) and its 95 % t-interval over the draws; the keep rule over the out-of-family presets. Cost: oracle calls
per item (prediction rows of every round folder, zero-shot round included, over the run's items).

    uv run python benchmarks/rounds_lever.py --old-results /tmp/keeprule2/full_noprior_noranking/results
    uv run python benchmarks/rounds_lever.py --old suite_ethics --new rounds3_ethics --results results

At equal calls (more rounds against more queries per round): ``--old 'cost_ethics__{preset}__q4' --new
rounds4_ethics --same-through 0`` pairs the cost target's 2-round, 4-query draws with the 4-round, 2-query draws of
the same seeds; only the zero-shot round is shared then. A ``{preset}`` in a prefix marks where the preset goes
(default: after it, ``<prefix>__<preset>``).

``--old-results`` is where the default-rounds draws' selections lie when they were re-selected outside results/ (the
keep-rule refits under the current default); items and answers are always read from ``--results``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keep_rule import PRESETS, keep_verdict, seed_mean_accuracy  # noqa: E402

from elicit.replicates import t_interval  # noqa: E402

DRAWS = ["", "__draw1", "__draw2", "__draw3", "__draw4"]


def round_answers(run: Path) -> dict[int, pd.Series]:
    """Each round's scores by query id."""
    out = {}
    for folder in sorted(run.glob("round*")):
        preds = folder / "predictions.parquet"
        if preds.exists():
            df = pd.read_parquet(preds, columns=["query_id", "score"])
            out[int(folder.name.removeprefix("round"))] = df.set_index("query_id")["score"]
    return out


def shared_rounds_differ(old: dict[int, pd.Series], new: dict[int, pd.Series], through: int | None = None) -> float:
    """Share of the shared rounds' queries (rounds <= ``through`` when given) whose id or score differ."""
    n = bad = 0
    for r in sorted(r for r in set(old) & set(new) if through is None or r <= through):
        a, b = old[r], new[r]
        ids = a.index.union(b.index)
        n += len(ids)
        same = a.reindex(ids).to_numpy() == b.reindex(ids).to_numpy()
        bad += int((~same).sum())
    return bad / n if n else float("nan")


def run_name(prefix: str, preset: str, draw: str) -> str:
    """``<prefix>__<preset><draw>``, or the prefix with ``{preset}`` filled in, then the draw suffix."""
    base = prefix.format(preset=preset) if "{preset}" in prefix else f"{prefix}__{preset}"
    return base + draw


def compare(results: Path, old_results: Path, old: str, new: str, through: int | None = None) -> pd.DataFrame:
    rows = []
    for preset in PRESETS:
        for draw in DRAWS:
            o, n = run_name(old, preset, draw), run_name(new, preset, draw)
            if not (old_results / o / "selection.json").exists():
                continue
            sel_new = results / n / "selection.json"
            if not sel_new.exists():
                continue
            items = pd.read_parquet(results / n / "items.parquet", columns=["item_id", "gold"])
            gold = items.set_index("item_id")["gold"]
            old_items = pd.read_parquet(results / o / "items.parquet", columns=["item_id"])
            if set(old_items["item_id"]) != set(items["item_id"]):
                raise SystemExit(f"{o} and {n} hold different items: not the same draw")
            ans_old, ans_new = round_answers(results / o), round_answers(results / n)
            rows.append(
                {
                    "preset": preset,
                    "draw": draw.removeprefix("__") or "draw0",
                    "old": seed_mean_accuracy(old_results / o / "labels" / "selected", gold),
                    "new": seed_mean_accuracy(results / n / "labels" / "selected", gold),
                    "old_config": json.loads((old_results / o / "selection.json").read_text())["selected"],
                    "new_config": json.loads(sel_new.read_text())["selected"],
                    "old_calls": sum(len(s) for s in ans_old.values()) / len(items),
                    "new_calls": sum(len(s) for s in ans_new.values()) / len(items),
                    "shared_differ": shared_rounds_differ(ans_old, ans_new, through),
                }
            )
    if not rows:
        raise SystemExit(f"no {new}__* draw with a selection.json under {results}")
    table = pd.DataFrame(rows)
    table["delta"] = table["new"] - table["old"]
    return table


def markdown(table: pd.DataFrame) -> str:
    presets = [p for p in PRESETS if p in set(table["preset"])]
    cells: dict[str, tuple[float, float, float]] = {}
    texts = []
    for p in presets:
        g = table[table["preset"] == p]
        mean, low, high, _ = t_interval(g["delta"].to_numpy())
        cells[p] = (mean, low, high)
        extra = float(np.mean(g["new_calls"] - g["old_calls"]))
        texts.append(
            f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] ({len(g)} draws; {extra:+.1f} calls/item)"
        )
    out = ["| " + " | ".join([*presets, "keep rule"]) + " |", "|" + "---|" * (len(presets) + 1)]
    out.append("| " + " | ".join([*texts, keep_verdict(cells)]) + " |")
    out += ["", "| preset | draw | old | new | Δ | calls/item | configs | shared rounds differ |"]
    out.append("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        out.append(
            f"| {r.preset} | {r.draw} | {100 * r.old:.1f} | {100 * r.new:.1f} | {100 * r.delta:+.1f} | "
            f"{r.old_calls:.1f} → {r.new_calls:.1f} | {r.old_config} → {r.new_config} | {100 * r.shared_differ:.1f} % |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results"), help="the runs' folders (items, answers)")
    ap.add_argument(
        "--old-results", type=Path, help="where the default-rounds draws' selections lie (default: --results)"
    )
    ap.add_argument("--old", default="suite_ethics", help="run-name prefix of the default-rounds draws")
    ap.add_argument("--new", default="rounds3_ethics", help="run-name prefix of the one-more-round draws")
    ap.add_argument(
        "--same-through", type=int, help="check only rounds <= this are identical (default: every shared round)"
    )
    args = ap.parse_args()
    table = compare(args.results, args.old_results or args.results, args.old, args.new, args.same_through)
    print(markdown(table))


if __name__ == "__main__":
    main()
