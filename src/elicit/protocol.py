"""The ICM paper's evaluation protocol (Wen et al. 2025, "Unsupervised Elicitation of Language Models"), for any
label set: a label set is judged by how well it works as many-shot demonstrations.

The run's items are split, by whole consistency groups and without gold, into a demonstration half and a test half
(:func:`split`). Each test item is asked, once per framing, with the demonstration items shown under one label set's
labels (:func:`protocol_queries`); p_true = sigmoid(mean score over framings) and the test accuracy against gold is
the label set's score (:func:`accuracy_table`). Two references frame it: ``no_demos`` (the same questions with no
demonstrations: the zero-shot model) and ``gold`` (the demonstration half's gold labels: the golden ceiling).
Every label set shows the same demonstration items in the same order to each test item (:func:`demo_orders`), so two
methods' rows differ only in the shown labels and their accuracies are compared paired, over the same test items.

Pure functions: oracle calls go through an ``ask`` callable (:data:`elicit.baselines.fewshot.Ask`) that the stage
(:mod:`elicit.stages.protocol`) closes over the run's cached client; tests drive it with a fake oracle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.baselines.fewshot import ALL_FRAMINGS, Framings, QueryRows
from elicit.contracts import consistency_groups
from elicit.errors import ElicitError
from elicit.params_types import SECTION, Bool, Float, Int, Str, build, typed

WHERE = "protocol"
NO_DEMOS = "no_demos"
"""Reference row: the test questions with no demonstrations (the zero-shot model)."""
GOLD = "gold"
"""Reference row: the demonstration half's gold labels shown (the golden ceiling)."""
REFERENCES = (NO_DEMOS, GOLD)
KIND = "protocol"
"""``kind`` of every protocol query row."""
HALVES = ("demo", "test")
_SALT_SPLIT, _SALT_ORDER, _SALT_BOOT = 60_611, 60_617, 60_623

TABLE_COLUMNS = (
    "method",
    "accuracy",
    "ci_low",
    "ci_high",
    "diff_vs_no_demos",
    "diff_vs_no_demos_low",
    "diff_vs_no_demos_high",
    "diff_vs_gold",
    "diff_vs_gold_low",
    "diff_vs_gold_high",
    "n_test",
    "n_demos",
    "calls",
    "missing",
)


class ProtocolError(ElicitError, ValueError):
    """The ``protocol:`` params section is malformed, or the run cannot be evaluated this way; one line with the fix."""


@typed(WHERE, ProtocolError)
@pydantic_dataclass(frozen=True, config=SECTION)
class ProtocolConfig:
    """params ``protocol``: the ICM paper's many-shot evaluation of every label set of a run; opt-in."""

    enabled: Bool = Field(
        default=False,
        description=(
            "give the run a protocol job (opt-in: test items x framings x label sets calls, each with up to max_demos "
            "items in the prompt; re-write dvc.yaml after changing it)"
        ),
    )
    test_share: Float = Field(
        default=0.5, gt=0, lt=1, description="share of the run's items in the test half (whole consistency groups)"
    )
    max_demos: Int = Field(
        default=64,
        ge=1,
        description=(
            "demonstrations shown per prompt at most (the simulator's max_context_items caps it too; the client "
            "drops the earliest ones that do not fit the oracle's n_ctx)"
        ),
    )
    seed: Int | None = Field(
        default=None, ge=0, description="seed of the split, the demonstration order and the bootstrap; null: the run's"
    )
    n_boot: Int = Field(default=1000, ge=0, description="bootstrap resamples of the test half (its groups) for the CIs")
    ci: Float = Field(default=0.95, gt=0, lt=1, description="coverage of the bootstrap intervals")
    framings: Framings = Field(
        default=ALL_FRAMINGS,
        description="framings each test item is asked in; p_true = sigmoid(mean score), both cancel acquiescence",
    )
    template_id: Str | None = Field(
        default=None, description="template of every prompt; the stage fills in the dataset's first template when unset"
    )

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> ProtocolConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, WHERE, ProtocolError)


# ---------------------------------------------------------------------------------------------- the split


def split_units(items: pd.DataFrame) -> list[np.ndarray]:
    """The units of the split: each consistency group (items sharing a non-null consistency_id), then every other
    item alone; item ids sorted within a unit, units in a fixed order."""
    ids = np.sort(items["item_id"].astype(np.int64).to_numpy())
    groups = consistency_groups(items)
    grouped = set(int(i) for g in groups for i in g)
    return [*groups, *(np.array([i]) for i in ids if int(i) not in grouped)]


def split(items: pd.DataFrame, test_share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """item_id → half (``demo`` | ``test``) and unit (its consistency group, or itself), by whole units.

    The units are shuffled with ``seed`` and go to the test half until it holds ``round(test_share * n)`` items (it
    may hold a group more); the rest are the demonstration half. Never reads gold (the column is dropped on entry),
    so the same items and seed give the same split whatever the gold labels are.
    """
    items = items.drop(columns=["gold"], errors="ignore")
    if not 0 < test_share < 1:
        raise ProtocolError(f"protocol.test_share: {test_share} is not between 0 and 1; use e.g. 0.5")
    units = split_units(items)
    if len(units) < 2:
        raise ProtocolError(
            f"the run has {len(units)} split unit(s) (items or consistency groups); the protocol needs two or more"
        )
    n = sum(len(u) for u in units)
    want = min(max(1, round(test_share * n)), n - 1)
    order = np.random.default_rng([int(seed), _SALT_SPLIT]).permutation(len(units))
    half = {int(u): "demo" for u in order}
    in_test = 0
    for u in order[:-1]:  # the last unit stays in the demo half, the first goes to the test half: neither is empty
        if in_test >= want:
            break
        half[int(u)] = "test"
        in_test += len(units[u])
    rows = [(int(i), half[u], u) for u, members in enumerate(units) for i in members]
    out = pd.DataFrame(rows, columns=["item_id", "half", "unit"]).sort_values("item_id", kind="stable")
    return out.reset_index(drop=True).astype({"item_id": "int64", "half": "str", "unit": "int64"})


def half_ids(halves: pd.DataFrame, half: str) -> list[int]:
    """The item ids of one half (``demo`` | ``test``) of a :func:`split`, ascending."""
    return sorted(int(i) for i in halves.loc[halves["half"] == half, "item_id"])


# ---------------------------------------------------------------------------------------------- demonstrations


def demo_orders(demo_ids: Sequence[int], test_ids: Sequence[int], max_demos: int, seed: int) -> dict[int, list[int]]:
    """Per test item: the demonstration items it is shown, in shown order (the last is next to the target).

    A seeded permutation of the demonstration half per test item (so no one order's position bias is shared by every
    test item), its first ``max_demos``. Reads no labels: every label set shows each test item the same items in the
    same order, so only the shown labels differ between them.
    """
    demos = np.sort(np.asarray(demo_ids, dtype=np.int64))
    k = min(int(max_demos), len(demos))
    out = {}
    for t in sorted(int(t) for t in test_ids):
        perm = np.random.default_rng([int(seed), _SALT_ORDER, t]).permutation(len(demos))
        out[t] = [int(d) for d in demos[perm[:k]]]
    return out


def perm_seed(seed: int, target: int) -> int:
    """The seed a test item's demonstration order was drawn with (a query row's ``perm_seed``)."""
    return int(np.random.default_rng([int(seed), _SALT_ORDER, int(target), 1]).integers(2**31 - 1))


def hard_labels(seeds: Mapping[int, pd.DataFrame]) -> dict[int, int]:
    """item_id → 0/1: the seed-mean p_true of one label set, thresholded at 0.5 (p >= 0.5 is label 1)."""
    frames = [df[["item_id", "p_true"]] for df in seeds.values()]
    if not frames:
        return {}
    mean = pd.concat(frames, ignore_index=True).groupby("item_id")["p_true"].mean()
    ids, p = mean.index.to_numpy(dtype=np.int64), mean.to_numpy(dtype=float)
    return {int(i): int(v >= 0.5) for i, v in zip(ids, p, strict=True) if np.isfinite(v)}


def protocol_queries(
    method: str,
    orders: Mapping[int, Sequence[int]],
    shown: Mapping[int, int] | None,
    framings: Sequence[str],
    template_id: str,
    seed: int,
) -> pd.DataFrame:
    """One query row per test item per framing, showing ``orders[t]`` under the labels ``shown`` (item → 0/1).

    ``shown=None`` asks with no demonstrations (``no_demos``); a demonstration item ``shown`` has no label for
    (e.g. gold missing, for the ``gold`` reference) is left out of that prompt, the others keep their order. Query
    ids are ``protocol-<method>-t<target>-<framing>``.
    """
    q = QueryRows()
    for t, order in orders.items():
        ids = [] if shown is None else [int(d) for d in order if int(d) in shown]
        labels = [int(shown[d]) for d in ids] if shown is not None else []
        for f in framings:
            q.add(f"{KIND}-{method}-t{t}-{f}", -1, -1, t, KIND, f, template_id, ids, labels, perm_seed(seed, t))
    return q.frame().assign(method=method)


# ---------------------------------------------------------------------------------------------- scoring


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float))))


def predictions(calls: pd.DataFrame) -> pd.DataFrame:
    """method, target_id → p_true = sigmoid(mean non-missing score over framings) (0.5 if all are missing),
    n_demos (items shown), calls and missing answers."""
    df = calls[["method", "target_id", "score", "context_ids"]].copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    df["n_demos"] = [len(c) for c in df["context_ids"]]
    g = df.groupby(["method", "target_id"], sort=False)
    out = g.agg(score=("score", "mean"), n_demos=("n_demos", "mean"), calls=("score", "size"))
    out["missing"] = g["score"].apply(lambda s: int(s.isna().sum()))
    out["p_true"] = _sigmoid(out["score"].fillna(0.0).to_numpy())
    return out.reset_index()[["method", "target_id", "p_true", "n_demos", "calls", "missing"]]


def _interval(point: float, samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval, widened to contain the point (the point itself when there are no samples)."""
    if samples.size == 0:
        return point, point
    lo, hi = np.quantile(samples, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(min(lo, point)), float(max(hi, point))


def accuracy_table(
    preds: pd.DataFrame,
    gold: Mapping[int, int],
    units: Mapping[int, int],
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Test accuracy per method (prediction = p_true >= 0.5 against ``gold``, test items with gold only), with a
    bootstrap interval, and the paired differences vs ``no_demos`` and ``gold`` with paired bootstrap intervals.

    The bootstrap resamples the test half's split units (consistency groups, or single items), the same resamples for
    every method (paired). Rows: the references first, then the methods in the order of ``preds``. Every method must
    have a prediction for every scored test item; both references must be present. No NaN: a method's difference with
    itself is 0 with interval [0, 0].
    """
    methods = list(dict.fromkeys(preds["method"]))
    missing_refs = [r for r in REFERENCES if r not in methods]
    if missing_refs:
        raise ValueError(f"predictions lack the reference row(s) {missing_refs} (bug)")
    methods = [*REFERENCES, *(m for m in methods if m not in REFERENCES)]
    test = sorted(int(t) for t in set(preds["target_id"].astype(int)) if int(t) in gold)
    if not test:
        raise ProtocolError("no test item has a gold label; the protocol evaluates against gold (use a labelled run)")
    y = np.array([int(gold[t]) for t in test])
    unit_of = np.array([int(units[t]) for t in test])
    uniq, col = np.unique(unit_of, return_inverse=True)
    sizes = np.bincount(col, minlength=len(uniq)).astype(float)
    correct = np.zeros((len(methods), len(uniq)))
    stats = []
    for m, method in enumerate(methods):
        sub = preds[preds["method"] == method].set_index("target_id")
        lost = [t for t in test if t not in sub.index]
        if lost:
            raise ValueError(f"method {method!r} has no prediction for test item {lost[0]} (bug)")
        hit = (sub.loc[test, "p_true"].to_numpy(dtype=float) >= 0.5).astype(int) == y
        correct[m] = np.bincount(col, weights=hit.astype(float), minlength=len(uniq))
        stats.append(
            {
                "n_demos": float(sub["n_demos"].mean()),
                "calls": int(sub["calls"].sum()),
                "missing": int(sub["missing"].sum()),
            }
        )
    acc = correct.sum(1) / sizes.sum()
    if n_boot > 0:
        rng = np.random.default_rng([int(seed), _SALT_BOOT])
        w = rng.multinomial(len(uniq), np.full(len(uniq), 1.0 / len(uniq)), size=n_boot).astype(float)
        boot = (w @ correct.T) / (w @ sizes)[:, None]  # [B, M]
    else:
        boot = np.zeros((0, len(methods)))
    ref = {r: methods.index(r) for r in REFERENCES}
    rows = []
    for m, method in enumerate(methods):
        row: dict[str, Any] = {"method": method, "accuracy": float(acc[m])}
        row["ci_low"], row["ci_high"] = _interval(float(acc[m]), boot[:, m], ci)
        for r, k in ref.items():
            d = float(acc[m] - acc[k])
            lo, hi = (d, d) if m == k else _interval(d, boot[:, m] - boot[:, k], ci)
            row[f"diff_vs_{r}"], row[f"diff_vs_{r}_low"], row[f"diff_vs_{r}_high"] = d, lo, hi
        rows.append({**row, "n_test": len(test), **stats[m]})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def summary(table: pd.DataFrame, halves: pd.DataFrame, cfg: ProtocolConfig, seed: int) -> dict[str, Any]:
    """``protocol.json``: the settings, the split's sizes and one entry per method (the table's row)."""
    return {
        "protocol": "Wen et al. 2025: each label set as many-shot demonstrations for a disjoint test half",
        "seed": int(seed),
        "test_share": cfg.test_share,
        "max_demos": cfg.max_demos,
        "framings": list(cfg.framings),
        "n_demo_half": int((halves["half"] == "demo").sum()),
        "n_test_half": int((halves["half"] == "test").sum()),
        "methods": {str(r["method"]): {k: v for k, v in r.items() if k != "method"} for r in table.to_dict("records")},
    }
