"""Export the selected labels for use outside the project (training data, audits).

Why separate: export is what leaves the project, so it never carries gold (the ``gold`` column is dropped
even if a caller passes it) and its formats are plain: a table ``item_id, text, p_true, label`` and JSON
Lines.

DPO pairs (``export/dpo_pairs.jsonl``), one JSON object per line::

    {"prompt": "...", "chosen": "...", "rejected": "...",
     "consistency_id": 7, "chosen_id": 12, "rejected_id": 13, "chosen_p_true": 0.91, "rejected_p_true": 0.08}

built only for claim datasets with consistency groups (several candidate claims about one question).
Within a group, ``chosen`` is the claim labelled true (p_true >= 0.5) with the highest p_true and each claim
labelled false that the dataset's rule lets stand against it (``ConsistencyRule.may_reject``: under
``same_answer_same_label`` not one with the chosen claim's answer_key) gives one pair as ``rejected``.
``prompt`` is the shared question: the items' ``question`` column when it exists, else the longest common
prefix of the group's texts cut at a line break (e.g. "Question: ...\\n"), with ``chosen``/``rejected``
the remainder of each text; without a shared prefix the prompt is empty and the completions are the full
texts. ``prompt``/``chosen``/``rejected`` is the format TRL's DPOTrainer reads; the other keys trace a pair
back to its items.

The estimate (``export/estimate.json``): how good the exported labels are expected to be without gold, from
:mod:`elicit.evaluate.goldfree` (``selected``'s rows of ``metrics.parquet``): ``est_accuracy`` with its 95 %
interval ``est_low``/``est_high``, the answers it was calibrated on (``calibrated_on``, or "uncalibrated"), and the
assumption it rests on. With a ``gold_budget`` of k items, also the PPI estimates (:mod:`elicit.evaluate.ppi`) of
accuracy (``ppi_accuracy``, ``ppi_low``, ``ppi_high``) and class balance (``ppi_balance*``), valid without that
assumption, and ``gold_budget`` = k. No other gold number is exported.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from elicit.contracts import ConsistencyRule
from elicit.evaluate import ASSUMPTION, ESTIMATE, EXPORTED, MEAN_SEED, metric_row, seed_mean_p, source_name
from elicit.evaluate.ppi import BUDGET_ITEMS, PPI_ACCURACY, PPI_BALANCE


def _mean_labels(labels: pd.DataFrame | Mapping[int, pd.DataFrame], ids: np.ndarray) -> np.ndarray:
    """p_true on ids from one table or from per-seed tables (averaged over seeds); NaN where unlabeled."""
    per_seed = {0: labels} if isinstance(labels, pd.DataFrame) else labels
    return seed_mean_p(per_seed, ids)


def export_labels(selected_labels: pd.DataFrame | Mapping[int, pd.DataFrame], items: pd.DataFrame) -> pd.DataFrame:
    """``item_id, text, p_true, label`` per labelled item (p_true averaged over seeds; label = p >= 0.5)."""
    base = items[["item_id", "text"]].sort_values("item_id", kind="stable").reset_index(drop=True)
    p = _mean_labels(selected_labels, base["item_id"].to_numpy())
    out = base.assign(p_true=p)
    out = out[np.isfinite(p)].reset_index(drop=True)
    out["p_true"] = out["p_true"].astype("float64")
    out["label"] = (out["p_true"] >= 0.5).astype("int8")
    return out[["item_id", "text", "p_true", "label"]]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA or v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_jsonl(df: pd.DataFrame | list[dict[str, Any]]) -> str:
    """JSON Lines (one object per row, UTF-8 text kept as is, missing values as null); "" for no rows."""
    records = df.to_dict(orient="records") if isinstance(df, pd.DataFrame) else df
    lines = [
        json.dumps({str(k): _jsonable(v) for k, v in r.items()}, ensure_ascii=False, allow_nan=False) for r in records
    ]
    return "".join(line + "\n" for line in lines)


def _split_prompt(texts: list[str]) -> tuple[str, list[str]]:
    """Shared prompt (common prefix up to a line break) and the per-item remainders."""
    prefix = os.path.commonprefix(texts) if len(texts) > 1 else ""
    cut = prefix.rfind("\n")
    prefix = prefix[: cut + 1] if cut >= 0 else ""
    if not prefix.strip():
        return "", texts
    return prefix.rstrip(), [t[len(prefix) :].strip() for t in texts]


def dpo_pairs(
    items: pd.DataFrame,
    labels: pd.DataFrame | Mapping[int, pd.DataFrame],
    dataset_rule: ConsistencyRule | str | None,
) -> list[dict[str, Any]]:
    """Preference pairs inside consistency groups (format in the module docstring); [] when there are none.

    ``dataset_rule`` is the dataset's consistency rule: no pairs under ``none`` (a group is then no set of
    alternatives), and a claim labelled false is rejected against the chosen one only where the rule allows it
    (:meth:`ConsistencyRule.may_reject`).
    """
    rule = ConsistencyRule.parse(dataset_rule)
    if rule is ConsistencyRule.NONE or "consistency_id" not in items.columns:
        return []
    cols = [c for c in ("item_id", "text", "consistency_id", "question", "answer_key") if c in items.columns]
    df = items.loc[items["consistency_id"].notna(), cols].sort_values("item_id", kind="stable")
    if df.empty:
        return []
    df = df.assign(p_true=_mean_labels(labels, df["item_id"].to_numpy()))
    df = df[np.isfinite(df["p_true"].to_numpy(dtype=float))]
    pairs: list[dict[str, Any]] = []
    for cid, group in df.groupby("consistency_id", sort=True):
        if len(group) < 2:
            continue
        texts = group["text"].astype(str).tolist()
        if "question" in group.columns and group["question"].notna().all() and group["question"].nunique() == 1:
            prompt, rest = str(group["question"].iloc[0]), texts
        else:
            prompt, rest = _split_prompt(texts)
        g = group.assign(completion=rest)
        true = g[g["p_true"] >= 0.5].sort_values(["p_true", "item_id"], ascending=[False, True], kind="stable")
        false = g[g["p_true"] < 0.5]
        if true.empty or false.empty:
            continue
        best = true.iloc[0]
        if "answer_key" in g.columns:
            keep = [rule.may_reject(best["answer_key"], key) for key in false["answer_key"]]
            false = false[np.asarray(keep, dtype=bool)]
        for _, rej in false.iterrows():
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": str(best["completion"]),
                    "rejected": str(rej["completion"]),
                    "consistency_id": _jsonable(cid),
                    "chosen_id": int(best["item_id"]),
                    "rejected_id": int(rej["item_id"]),
                    "chosen_p_true": round(float(best["p_true"]), 6),
                    "rejected_p_true": round(float(rej["p_true"]), 6),
                }
            )
    return pairs


def estimate_record(metrics: pd.DataFrame) -> dict[str, Any]:
    """``export/estimate.json``: the exported labels' gold-free accuracy estimate (module docstring); without one
    (metrics written before the estimate existed) ``est_accuracy`` is null and ``note`` says why."""
    est = metric_row(metrics, EXPORTED, ESTIMATE) if not metrics.empty else None
    record: dict[str, Any] = {"labels": EXPORTED, "interval": "95 %", "assumption": ASSUMPTION}
    if est is None:
        return {**record, "est_accuracy": None, "note": "no gold-free estimate in metrics.parquet; re-run evaluate"}
    source = metric_row(metrics, EXPORTED, "est_source", MEAN_SEED)
    items = metric_row(metrics, EXPORTED, "est_heldout_items", MEAN_SEED)
    record = {
        **record,
        "est_accuracy": round(est.value, 6),
        "est_low": round(est.ci_low, 6),
        "est_high": round(est.ci_high, 6),
        "calibrated_on": source_name(source.value if source is not None else None),
        "heldout_items": int(items.value) if items is not None else 0,
    }
    budget = metric_row(metrics, EXPORTED, BUDGET_ITEMS, MEAN_SEED)
    if budget is not None:
        record["gold_budget"] = int(budget.value)
        for metric, key in ((PPI_ACCURACY, "ppi_accuracy"), (PPI_BALANCE, "ppi_balance")):
            row = metric_row(metrics, EXPORTED, metric, MEAN_SEED)
            if row is not None:
                record |= {
                    key: round(row.value, 6),
                    f"{key}_low": round(row.ci_low, 6),
                    f"{key}_high": round(row.ci_high, 6),
                }
    return record
