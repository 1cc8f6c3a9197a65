"""The report's sentences: the verdict's headline, the fitted oracle biases in words, the dataset card's rows, and
the numbers as the page prints them.

Apart from the page (:mod:`elicit.report`, which assembles the template's context) because this is what a reader
reads, worded once for the run report and the summary; the numbers behind it are :mod:`elicit.report_tables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import yaml

from elicit.evaluate import (
    ASSUMPTION,
    ESTIMATE,
    EXPORT_ECE,
    EXPORT_ECE_BINS,
    FEW_SHOT_ROUNDS,
    UNCALIBRATED,
    metric_row,
    source_name,
)
from elicit.evaluate.ppi import BUDGET_ACCURACY, BUDGET_ITEMS, PPI_ACCURACY, PPI_BALANCE
from elicit.report_tables import finite
from elicit.verdicts import RunVerdict, min_items, too_few_items

NUISANCE_PHRASES: dict[str, str] = {
    "copy": "copies shown labels with strength {v}",
    "position": "leans towards the label shown last with strength {v}",
    "acquiescence_pos": "leans towards answering True under the positive framing by {v}",
    "acquiescence_neg": "leans towards answering True under the negative framing by {v}",
}
"""Plain-words sentence per known oracle-bias coefficient (log-odds units); others are shown by name."""


def pct(v: Any, digits: int = 1) -> str:
    return f"{100 * float(v):.{digits}f}" if finite(v) else "–"


def num(v: Any, digits: int = 3) -> str:
    return f"{float(v):.{digits}f}" if finite(v) else "–"


def count(v: Any) -> str:
    return f"{float(v):,.0f}" if finite(v) else "–"


ECE_POOR = 0.05
"""ECE of the exported p_true above which the report calls its calibration poor: a p_true of 0.8 is then off by more
than 5 points on average, about the half-width of an accuracy interval at a few hundred items."""


def _source_words(source: str, items: int) -> str:
    where = "the few-shot rounds" if source == FEW_SHOT_ROUNDS else f"{source}'s own calls"
    return f"the oracle's answers in {where} ({items} items), which these labels were not computed from"


def budget_sentences(
    metrics: pd.DataFrame, target: str, free: Mapping[str, Any], selection: Mapping[str, Any] | None
) -> list[str]:
    """What the run's gold budget bought (``elicit.gold_budget``, ``elicit.evaluate.ppi``): the PPI estimates beside
    the gold-free one, the k labels alone, and whether their gold changed the config choice; [] without a budget."""
    budget = metric_row(metrics, "selected", BUDGET_ITEMS)
    if budget is None:
        return []
    k = int(budget.value)
    out = []
    ppi = metric_row(metrics, target, PPI_ACCURACY)
    alone = metric_row(metrics, target, BUDGET_ACCURACY)
    if ppi is not None:
        out.append(
            f"With the run's {k} gold labels (gold_budget, left out of every gold metric): {pct(ppi.value, 0)} % "
            f"(PPI, 95 % interval {pct(ppi.ci_low, 0)}–{pct(ppi.ci_high, 0)} %, {pct(ppi.ci_high - ppi.ci_low, 0)} "
            f"points wide against the gold-free interval's {pct(free['high'] - free['low'], 0)}). It needs no "
            "assumption about the model's beliefs: where the two disagree, trust this one."
        )
    if alone is not None:
        out.append(
            f"The {k} labels alone: {pct(alone.value, 0)} % right (95 % interval {pct(alone.ci_low, 0)}–"
            f"{pct(alone.ci_high, 0)} %)."
        )
    balance = metric_row(metrics, target, PPI_BALANCE)
    if balance is not None:
        out.append(
            f"Share of label 1, PPI: {pct(balance.value, 0)} % (95 % interval {pct(balance.ci_low, 0)}–"
            f"{pct(balance.ci_high, 0)} %)."
        )
    check = (selection or {}).get("gold_budget") or {}
    if check.get("switched"):
        out.append(
            f"The budget's gold overruled the gold-free choice of config: {check.get('chosen')} instead of "
            f"{check.get('gold_free')} (its log-likelihood of the {k} gold labels higher by more than "
            f"{check.get('switch_z')} standard errors). The PPI estimate and the {k} labels' accuracy above reuse "
            "the labels that made this choice, so they lean high."
        )
    elif check:
        out.append(f"The budget's gold did not overrule the gold-free choice of config ({check.get('gold_free')}).")
    return out


def estimate_block(metrics: pd.DataFrame, selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report's first block: the selected labels' gold-free accuracy estimate in words (``sentences[0]``), how it
    was calibrated, and where gold exists the gold accuracy beside it and the exported p_true's ECE (a warning above
    :data:`ECE_POOR`); ``rows``: every method's estimate. ``available`` is False for metrics without estimates."""
    sel = str((selection or {}).get("selected") or "")
    present = set(metrics.loc[metrics["metric"] == ESTIMATE, "method"].astype(str)) if not metrics.empty else set()
    target = "selected" if "selected" in present else sel if sel in present else None
    rows: list[dict[str, Any]] = []
    for method in sorted(present):
        est = metric_row(metrics, method, ESTIMATE)
        gold = metric_row(metrics, method, "accuracy_seed_mean")
        source = metric_row(metrics, method, "est_source")
        items = metric_row(metrics, method, "est_heldout_items")
        if est is None:
            continue
        rows.append(
            {
                "method": method,
                "estimate": est.value,
                "low": est.ci_low,
                "high": est.ci_high,
                "source": source_name(source.value if source is not None else None),
                "n_heldout": int(items.value) if items is not None else 0,
                "gold": gold.value if gold is not None else None,
            }
        )
    rows.sort(key=lambda r: (r["method"] != target, -r["estimate"], r["method"]))
    if target is None:
        return {
            "available": False,
            "sentences": ["No gold-free estimate of the selected labels in this run's metrics: re-run evaluate."],
            "warning": None,
            "rows": rows,
        }
    row = next(r for r in rows if r["method"] == target)
    name = "the selected labels" if target == "selected" else f"the selected config {target}"
    sentences = [
        f"Estimated accuracy of {name} without gold: {pct(row['estimate'], 0)} % (95 % interval "
        f"{pct(row['low'], 0)}–{pct(row['high'], 0)} %); {ASSUMPTION}."
    ]
    if row["source"] == UNCALIBRATED:
        sentences.append(
            "Not calibrated: no held-out oracle answers were available, so this is the labels' own confidence, "
            "too high if they are overconfident."
        )
    else:
        sentences.append(
            f"Calibrated on {_source_words(row['source'], row['n_heldout'])}. Where the model believes something wrong "
            "in every prompt, those answers share the error and the estimate is too high; where it mostly copies the "
            "labels it is shown, its answers are noisier than labels fitted to many of them, and the estimate can read "
            "too low (docs/results.md: about 6 points under the in-family simulator)."
        )
    if row["gold"] is not None:
        where = "inside" if row["low"] <= row["gold"] <= row["high"] else "outside"
        sentences.append(f"Against gold they score {pct(row['gold'])} %, {where} the estimate's interval.")
    sentences += budget_sentences(metrics, target, row, selection)
    warning = None
    ece = metric_row(metrics, target, EXPORT_ECE)
    if ece is not None:
        bins = f"{EXPORT_ECE_BINS} equal-width bins"
        if ece.value > ECE_POOR:
            warning = (
                f"The exported p_true is poorly calibrated against gold: ECE {num(ece.value)} ({bins}) is above "
                f"{ECE_POOR:.2f}, so read p_true as a ranking of items, not as the probability that a label is right."
            )
        else:
            sentences.append(f"The exported p_true is well calibrated against gold: ECE {num(ece.value)} ({bins}).")
    return {"available": True, "sentences": sentences, "warning": warning, "rows": rows}


def headline_box(decided: RunVerdict) -> dict[str, Any]:
    """The verdict box's first, bold line: the shared verdict's sentence (not repeated for a gold-less run,
    whose explanation already starts with it)."""
    return {
        "name": decided.name,
        "label": decided.value,
        "sentence": decided.sentence,
        "show": decided is not RunVerdict.NO_GOLD,
    }


def _nuisance_entries(d: Mapping[str, Any]) -> dict[str, tuple[float, str | None]]:
    """Flatten one nuisance.json into name -> (value, meaning), whatever of the usual shapes it has."""
    meanings: dict[str, str] = {}
    for key in ("meaning", "meanings"):
        if isinstance(d.get(key), Mapping):
            meanings.update({str(k): str(v) for k, v in d[key].items()})
    source: Mapping[str, Any] = d["coefficients"] if isinstance(d.get("coefficients"), Mapping) else d
    out: dict[str, tuple[float, str | None]] = {}
    for name, v in source.items():
        if name in ("meaning", "meanings", "coefficients"):
            continue
        if isinstance(v, Mapping):
            val = v.get("value", v.get("coef"))
            if finite(val):
                out[str(name)] = (float(val), str(v["meaning"]) if v.get("meaning") else meanings.get(name))
        elif finite(v) and not isinstance(v, bool):
            out[str(name)] = (float(v), meanings.get(str(name)))
    return out


def nuisance_summary(
    nuisance: Mapping[str, Mapping[int, Mapping[str, Any]]] | None,
    selection: Mapping[str, Any] | None,
    n_items: int | None = None,
) -> dict[str, Any]:
    """Fitted oracle biases in words for the selected config, and a table (mean ± std over seeds).

    On a run with too few items (:func:`elicit.verdicts.too_few_items` of ``n_items``) the coefficients are
    not estimable: no "± std" is printed as if it measured their uncertainty, each sentence says so, and
    ``caveat`` (None otherwise) says the whole table is unreliable.
    """
    small = too_few_items(n_items)
    table = []
    per_config: dict[str, dict[str, tuple[float, float, str | None]]] = {}
    for config in sorted(nuisance or {}):
        values: dict[str, list[float]] = {}
        meaning: dict[str, str | None] = {}
        for seed in sorted((nuisance or {})[config]):
            for name, (v, m) in _nuisance_entries((nuisance or {})[config][seed]).items():
                values.setdefault(name, []).append(v)
                meaning[name] = meaning.get(name) or m
        for name in sorted(values):
            arr = np.asarray(values[name])
            std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            per_config.setdefault(config, {})[name] = (float(arr.mean()), std, meaning[name])
            table.append(
                {
                    "config": config,
                    "name": name,
                    "mean": float(arr.mean()),
                    "std": std,
                    "meaning": meaning[name],
                }
            )
    sel = str((selection or {}).get("selected") or "")
    # Speak of a config that fitted the biases: the selected one if it did (prior_only, say, fits none).
    fitted = [c for c in sorted(per_config) if any(s.get("fitted", True) for s in (nuisance or {})[c].values())]
    focus = sel if sel in fitted else ("full" if "full" in fitted else (fitted[0] if fitted else None))
    sentences = []
    if focus is not None:
        known = [k for k in NUISANCE_PHRASES if k in per_config[focus]]
        names = known + sorted(set(per_config[focus]) - set(known))
        for name in names:
            mean, std, m = per_config[focus][name]
            value = f"{mean:+.2f} ± {std:.2f}" if std and not small else f"{mean:+.2f}"
            phrase = NUISANCE_PHRASES.get(name)
            text = f"Your oracle {phrase.format(v=value)}" if phrase else f"Bias coefficient {name} = {value}"
            sentences.append(text + (f" ({m})" if m else "") + (" — not estimable at this size." if small else "."))
    caveat = (
        f"Only {n_items} items: fitted biases are not estimable at this size (a verdict needs at least "
        f"{min_items()}); the values below are what the fit returned, not measurements."
        if small
        else None
    )
    return {"focus": focus, "sentences": sentences, "table": table, "caveat": caveat}


def card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    balance = card.get("class_balance")
    if isinstance(balance, Mapping):
        balance_text = ", ".join(f"label {k}: {num(v)}" for k, v in balance.items())
    elif finite(balance):
        balance_text = f"{pct(balance)} % label 1"
    else:
        balance_text = "unknown (no gold)"
    fields = [
        ("Run", card.get("run")),
        ("Dataset", card.get("dataset")),
        ("Items (n)", card.get("n")),
        ("What label 1 means", card.get("label_meaning")),
        ("Class balance (gold)", balance_text),
        ("Source", card.get("source")),
        ("Licence", card.get("licence")),
        ("Citation", card.get("citation")),
        ("Seed", card.get("seed")),
        *(_hygiene_rows(card["hygiene"]) if "hygiene" in card else []),
    ]
    return [(k, "–" if v is None or v == "" else str(v)) for k, v in fields]


def _hygiene_rows(h: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """Dataset-card rows of the load stage's duplicate check (``hygiene.json``, see elicit.hygiene)."""
    if not h:
        return [("Duplicates", "not recorded")]
    within = h.get("within")
    if within is None:
        return [("Duplicates", "not checked (hygiene.action: none)")]
    threshold = h.get("near_threshold")
    near = f"{within['near_items']} rows" + (
        f" (same text up to case and punctuation, or cosine ≥ {threshold})"
        if threshold is not None
        else " (same text up to case and punctuation; near_threshold: null)"
    )
    rows: list[tuple[str, Any]] = [
        ("Exact duplicates within", f"{within['exact_items']} of {h['rows_checked']} rows"),
        ("Near duplicates within", near),
        ("Duplicate pairs with conflicting gold", f"{within.get('conflicting_gold_pairs')} pairs"),
    ]
    splits = h.get("other_splits") or {}
    if splits:
        rows.append(
            (
                "Overlap with other splits",
                "; ".join(
                    f"{name}: {s['exact_items']} exact + {s['near_items']} near ({s['rows']} rows)"
                    for name, s in splits.items()
                )
                + f" — {h.get('other_split_items', 0)} items in all",
            )
        )
    else:
        rows.append(("Overlap with other splits", "no other split configured (datasets.<name>.other_splits)"))
    if h.get("action") == "drop":
        done = f"dropped {h.get('dropped', 0)} rows ({h.get('dropped_group_mates', 0)} of them consistency-group mates)"
    else:
        sample = h.get("sample") or {}
        done = f"flagged {h.get('flagged', 0)} rows (kept; columns dup_within, dup_other_split)"
        if sample:
            done += (
                f"; in this run's {sample['items']} items: {sample['dup_within']} within, "
                f"{sample['dup_other_split']} in other splits"
            )
    rows.append(("Duplicates handling", done))
    return rows


def params_yaml(card: Mapping[str, Any]) -> str:
    params = card.get("params")
    if not params:
        return "(not available)"
    return yaml.safe_dump(_plain(params), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plain(x: Any) -> Any:
    """Params as plain Python (numpy scalars and tuples would otherwise make safe_dump fail)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
