"""select: choose one optimize config WITHOUT gold (held-out likelihood of the oracle's own answers, see
``elicit.optimize.select``) and copy its labels to ``labels/selected``; the rule's scores, its tie tolerance and
the gold-free indeterminacy signals of the chosen labels (``elicit.indeterminate``) go to ``selection.json``.
With a ``gold_budget``, the budget items' gold (``gold_budget.parquet``, never the items' gold column) may overrule
the gold-free choice when another config explains it better beyond noise (``elicit.gold_budget.choose_with_gold``).
The gold-best config is reported by evaluate/report only as an upper bound."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from elicit import indeterminate
from elicit.gold_budget import GoldChoice, choose_with_gold, read_budget
from elicit.io import write_json
from elicit.optimize import OptimizeSection, select_config
from elicit.optimize.problem import BALANCE_RANGE, Problem
from elicit.stages import _cli
from elicit.stages._labels import SEED_FILE, fresh_dir, read_labels
from elicit.stages.optimize import load_problem


def _column(path: Path, name: str, n: int) -> np.ndarray | None:
    """One float column of a table keyed by item_id 0..n-1 (None when the table lacks it); reads nothing else,
    so the items' gold column is never loaded."""
    if name not in pq.read_schema(path).names:
        return None
    df = pd.read_parquet(path, columns=["item_id", name])
    values = pd.to_numeric(df[name], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(values, index=df["item_id"].to_numpy()).reindex(np.arange(n)).to_numpy(dtype=float)


def seed_labels(folders: Mapping[str, Path]) -> dict[str, list[np.ndarray]]:
    """Each config's p_true per seed, as arrays over item ids 0..n-1 (the labels contract, ``check_labels``)."""
    return {
        c: [df.sort_values("item_id")["p_true"].to_numpy(dtype=float) for _, df in sorted(read_labels(f).items())]
        for c, f in folders.items()
    }


def signals(
    problem: Problem,
    labels: Mapping[str, list[np.ndarray]],
    name: str,
    details: Mapping[str, Mapping[str, Any]],
    tie_tolerance: float,
    balance_given: bool,
    items: Path,
    priors: Path,
) -> dict[str, Any]:
    """``selection.json``'s ``indeterminate`` entry for the chosen config (see :mod:`elicit.indeterminate`)."""
    n = problem.n_items
    found = indeterminate.assess(
        selected=name,
        labels=labels,
        details=details,
        tie_tolerance=tie_tolerance,
        score_pos=_column(priors, "score_pos", n),
        score_neg=_column(priors, "score_neg", n),
        nuisance=_column(items, "nuisance", n),
        balance=None if balance_given else float(problem.balance),
        balance_bounds=BALANCE_RANGE,
    )
    return indeterminate.to_json(found, n)


def gold_checked(name: str, labels: Mapping[str, list[np.ndarray]], budget: Path) -> GoldChoice | None:
    """The gold-budget check of the gold-free choice ``name`` (None without a budget)."""
    ids, gold = read_budget(budget)
    if ids.size == 0:
        return None
    return choose_with_gold(name, {c: np.mean(seeds, axis=0)[ids] for c, seeds in labels.items()}, gold)


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--tuples", type=Path)
    p.add_argument("--labels", type=Path, nargs="+", help="labels/<config> folders of all swept configs")
    p.add_argument("--budget", type=Path, help="gold_budget.parquet (the only gold select may read)")
    p.add_argument("--out", type=Path, help="labels/selected folder")
    p.add_argument("--selection", type=Path, help="selection.json")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    section = OptimizeSection.from_params(cfg.section("optimize"))
    folders = {Path(f).name: Path(f) for f in (args.labels or [paths.labels_dir(c) for c in section.configs])}
    with _cli.telemetry(paths.telemetry("select"), "select") as tel:
        items, priors = args.items or paths.items, args.priors or paths.priors
        problem, _ = load_problem(cfg, items, priors, args.tuples or paths.tuples)
        seeds = list(cfg.section("base")["seeds"])
        name, scores = select_config(problem, section.configs, seeds=seeds, select=section.select)
        labels = seed_labels(folders)
        checked = gold_checked(name, labels, args.budget or paths.gold_budget)
        name = checked.chosen if checked is not None else name
        out = fresh_dir(args.out or paths.labels_dir("selected"))
        for f in sorted(folders[name].iterdir()):
            if SEED_FILE.match(f.name):
                shutil.copyfile(f, out / f.name)
        undetermined = signals(
            problem,
            labels,
            name,
            scores,
            section.select.tie_tolerance,
            section.configs[name].class_balance is not None,
            items,
            priors,
        )
        selection = {
            "selected": name,
            "method": section.select.method,
            "scores": {c: s["heldout_loglik"] for c, s in scores.items()},  # higher is better
            "details": scores,
            "tie_tolerance": section.select.tie_tolerance,
            "indeterminate": undetermined,
            "gold_budget": checked.to_json() if checked is not None else None,
            "gold_best": None,  # chosen without gold; evaluate/report name the gold-best config as an upper bound
        }
        write_json(selection, args.selection or paths.selection)
        tel.update(selected=name, indeterminate=undetermined["fired"])


if __name__ == "__main__":
    _cli.main(run)
