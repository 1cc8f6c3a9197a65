"""The oracle's answers as evaluation and the report see them: which are missing, and which a method never read.

Two uses. The report counts missing answers per stage and template (a missing answer drops evidence, and answers that
go missing more often for one label than the other bias the labels). The gold-free estimate
(:mod:`elicit.evaluate.goldfree`) calibrates each method on answers that its labels were not computed from: this
module says which answers those are and reduces them to one number per item.

An answer is missing when its ``missing`` flag is set (or null) or its score is not a finite number: the rule of
``elicit.priors`` and ``elicit.tuples``, so every count in a report agrees with what the fits saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from elicit.contracts import BY_NAME

MISSING_WARN = 0.05
"""Missing share of one stage and template above which the report warns. A missing answer is never replaced, so the
damage is bounded by the share: if every missing answer would have pointed the same way, an item's evidence moves by
at most that share of its answers. 5 % is about the half-width of an accuracy interval at a few hundred items, so
above it the bias could be as large as the noise the report already shows; below it, it is smaller."""

FEW_SHOT_ROUNDS = "few-shot rounds"
"""The shared query rounds r >= 1 (``round{r}/predictions.parquet``), as an answer source."""
HELDOUT_SOURCES: tuple[str, ...] = (FEW_SHOT_ROUNDS, "random_fewshot", "bootstrap_fewshot", "icm_budget", "icm")
"""Answer sources the gold-free estimate may calibrate on, in order of preference: the planned few-shot rounds, then
the oracle calls of the baselines that ask their own prompts (``labels/<method>/calls.parquet``). golden_fewshot's
calls are never used: their prompts show gold labels. Append only: a source's position is its ``est_source`` code."""


def answered(calls: pd.DataFrame) -> np.ndarray:
    """True where a call has an answer: ``missing`` false and a finite score (frames without a ``missing`` column:
    the score alone)."""
    if "score" not in calls.columns:
        return np.zeros(len(calls), dtype=bool)
    score = pd.to_numeric(calls["score"], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(score)
    if "missing" in calls.columns:
        ok &= ~calls["missing"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    return ok


def heldout_sources(method: str) -> tuple[str, ...]:
    """The answer sources ``method``'s labels were not computed from, in order of preference.

    Methods of the zero-shot round and methods with their own oracle job never read the few-shot rounds; methods of
    the shared rounds (few-shot votes, Dawid-Skene, every optimize config, ``selected``, names not in the registry)
    read all of them, so only the calls of the own-prompt baselines are held out for them. A method never calibrates
    on its own calls.
    """
    entry = BY_NAME.get(method)
    reads = entry.oracle_calls if entry is not None else "shared"
    if reads == "shared":
        return tuple(s for s in HELDOUT_SOURCES if s != FEW_SHOT_ROUNDS)
    return tuple(s for s in HELDOUT_SOURCES if s != method)


def item_means(calls: pd.DataFrame, n_items: int) -> np.ndarray:
    """Per item 0..n-1 the mean answered score, framing-balanced (the mean of the per-framing means, so a framing
    that lost more answers does not tilt the item by the oracle's acquiescence); NaN where the item has none."""
    n = int(n_items)
    out = np.full(n, np.nan)
    if calls.empty or "target_id" not in calls.columns:
        return out
    ok = answered(calls)
    target = pd.to_numeric(calls["target_id"], errors="coerce").to_numpy(dtype=float)
    ok &= np.isfinite(target) & (target >= 0) & (target < n)
    if not ok.any():
        return out
    t = target[ok].astype(np.int64)
    s = pd.to_numeric(calls["score"], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)[ok]
    framing = calls["framing"].astype(str).to_numpy()[ok] if "framing" in calls.columns else np.full(len(t), "pos")
    sums, counts = np.zeros(n), np.zeros(n)
    for f in np.unique(framing):
        sel = framing == f
        cnt = np.bincount(t[sel], minlength=n).astype(float)
        tot = np.bincount(t[sel], weights=s[sel], minlength=n)
        has = cnt > 0
        sums[has] += tot[has] / cnt[has]
        counts[has] += 1
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


def _template_rows(stage: str, calls: pd.DataFrame) -> list[dict[str, Any]]:
    ok = answered(calls)
    templates = (
        calls["template_id"].astype(str).fillna("–").to_numpy()
        if "template_id" in calls.columns
        else np.full(len(calls), "–", dtype=object)
    )
    rows = []
    for template in sorted(set(templates.tolist())):
        sel = templates == template
        total = int(sel.sum())
        missing = int((~ok[sel]).sum())
        share = missing / total if total else 0.0
        rows.append(
            {
                "stage": stage,
                "template": template,
                "missing": missing,
                "total": total,
                "share": share,
                "warn": share > MISSING_WARN,
            }
        )
    return rows


def missing_answers(
    predictions: pd.DataFrame | None, calls: Mapping[str, pd.DataFrame] | None = None
) -> list[dict[str, Any]]:
    """Missing answers per stage (``round r`` of the shared queries, or a baseline's own calls) and template:
    ``stage, template, missing, total, share, warn`` (share > :data:`MISSING_WARN`); [] when there are no calls."""
    rows: list[dict[str, Any]] = []
    if predictions is not None and len(predictions):
        rounds = (
            pd.to_numeric(predictions["round"], errors="coerce").fillna(-1).astype(int).to_numpy()
            if "round" in predictions.columns
            else np.zeros(len(predictions), dtype=int)
        )
        for r in sorted(set(rounds.tolist())):
            what = "zero-shot" if r == 0 else "few-shot"
            rows += _template_rows(f"round {r} ({what})", predictions[rounds == r])
    for method in sorted(calls or {}):
        frame = (calls or {})[method]
        if len(frame):
            rows += _template_rows(f"{method} (own calls)", frame)
    return rows


def missing_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per stage and template whose missing share is above :data:`MISSING_WARN`."""
    return [
        f"Warning: {100 * r['share']:.1f} % of the oracle's answers in {r['stage']} under template {r['template']} "
        f"are missing ({r['missing']} of {r['total']}): above {100 * MISSING_WARN:.0f} %, answers that go missing more "
        "often for one label than for the other can bias the labels."
        for r in rows
        if r["warn"]
    ]
