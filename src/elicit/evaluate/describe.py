"""Describe label sets without gold, and say in words what a run's numbers mean.

Gold-free diagnostics (:func:`diagnostics`, valid for runs without gold too): agreement between methods and
seeds, flips against zero-shot, positive rates, consistency violations under the dataset's rule (counted by
``elicit.contracts``, the same count the baselines and the optimizer's layout use), labels that track a known
nuisance feature, adversarial-start notes. Then the glue that turns the metrics table and the diagnostics into
``metrics.json`` and the report's verdict lines (the decision itself is :mod:`elicit.verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from elicit.contracts import UNLABELLED, ConsistencyRule, items_layout, violations
from elicit.evaluate.goldfree import ESTIMATE, HELDOUT_ITEMS, SOURCE, source_name
from elicit.evaluate.metrics import (
    BASE_METRICS,
    COUNT_METRICS,
    MEAN_SEED,
    Comparison,
    Labels,
    compare,
    gold_counts,
    gold_items,
    metric_row,
    seed_mean_p,
    undefined_metrics,
)
from elicit.indeterminate import FROZEN, fired, signals_of
from elicit.verdicts import RunVerdict, decide, min_items, worst_case_half_width

# ---------------------------------------- diagnostics


def consistency_violations(
    hard: pd.Series, items: pd.DataFrame, rule: ConsistencyRule | str | None
) -> dict[str, float | int] | None:
    """Groups breaking the dataset's logical rule (:func:`elicit.contracts.violations` > 0), for hard labels
    indexed by item_id.

    Only labelled items take part. Returns None when the rule is ``none``, items have no consistency groups, or
    no labelled item is in one. A group counts when at least two of its labelled items take part (one item
    cannot contradict itself), or one under ``exactly_one_true``; under ``same_answer_same_label`` an item
    without an answer_key takes no part.
    """
    rule = ConsistencyRule.parse(rule)
    if rule is ConsistencyRule.NONE or "consistency_id" not in items.columns:
        return None
    df = items.loc[items["consistency_id"].notna()]
    label = df["item_id"].map(hard)
    df, label = df[label.notna()], label[label.notna()]
    if df.empty:
        return None
    groups = items_layout(df, rule, min_size=1 if rule.needs_a_true else 2)
    ids = df["item_id"].to_numpy(dtype=np.int64)
    y = np.full(int(ids.max()) + 1, UNLABELLED, dtype=np.int64)
    y[ids] = label.to_numpy(dtype=np.int64)
    n_groups = groups.n_groups
    n_bad = int((violations(groups, y) > 0).sum())
    return {"groups": n_groups, "violations": n_bad, "rate": n_bad / n_groups if n_groups else 0.0}


def diagnostics(labels: Labels, items: pd.DataFrame, rule: ConsistencyRule | str | None = None) -> dict[str, Any]:
    """Gold-free descriptions of the label sets (valid for runs without gold too).

    * ``agreement``: pairwise fraction of items with the same hard label (seed-averaged p >= 0.5), on items
      both methods labelled; ``{"methods": [...], "matrix": [[...]]}``.
    * ``seed_agreement``: mean pairwise agreement between the seeds of a method (methods with >= 2 seeds).
    * ``flip_rate_vs_zero_shot``: fraction of items whose hard label differs from zero_shot's.
    * ``positive_rate``: fraction labelled 1 (collapse shows up here first).
    * ``consistency_violations``: per method ``{groups, violations, rate}`` under the dataset's rule (an
      unknown rule raises one line naming the valid ones).
    """
    rule = ConsistencyRule.parse(rule)
    ids = np.sort(items["item_id"].to_numpy())
    methods = sorted(m for m in labels if labels[m])
    out: dict[str, Any] = {
        "n_items": len(ids),
        "has_gold": bool(not gold_items(items).empty),
        "methods": methods,
        "consistency_rule": str(rule),
        "notes": [],
    }
    hard = np.full((len(methods), len(ids)), np.nan)
    for i, m in enumerate(methods):
        p = seed_mean_p(labels[m], ids)
        hard[i] = np.where(np.isfinite(p), (p >= 0.5).astype(float), np.nan)
    valid = np.isfinite(hard).astype(float)
    one = (hard == 1).astype(float)
    zero = (hard == 0).astype(float)
    both = valid @ valid.T
    agree = one @ one.T + zero @ zero.T
    matrix = np.divide(agree, both, out=np.zeros_like(agree), where=both > 0)
    out["agreement"] = {"methods": methods, "matrix": [[round(float(v), 6) for v in row] for row in matrix]}
    out["positive_rate"] = {
        m: float(one[i].sum() / valid[i].sum()) for i, m in enumerate(methods) if valid[i].sum() > 0
    }
    if "zero_shot" in methods:
        z = methods.index("zero_shot")
        out["flip_rate_vs_zero_shot"] = {
            m: float(1.0 - matrix[i, z]) for i, m in enumerate(methods) if m != "zero_shot"
        }
        out["notes"] += mirror_notes(
            out["flip_rate_vs_zero_shot"].get("selected"), out["positive_rate"].get("zero_shot")
        )
    else:
        out["flip_rate_vs_zero_shot"] = {}
        out["notes"].append("zero_shot labels absent: flip rates not computed")

    seed_agreement: dict[str, float] = {}
    for m in methods:
        seeds = sorted(labels[m])
        if len(seeds) < 2:
            continue
        h = np.vstack([seed_mean_p({s: labels[m][s]}, ids) for s in seeds])
        v = np.isfinite(h).astype(float)
        o, z_ = ((h >= 0.5) & (v > 0)).astype(float), ((h < 0.5) & (v > 0)).astype(float)
        b = v @ v.T
        a = np.divide(o @ o.T + z_ @ z_.T, b, out=np.zeros_like(b), where=b > 0)
        iu = np.triu_indices(len(seeds), k=1)
        seed_agreement[m] = float(a[iu].mean())
    out["seed_agreement"] = seed_agreement
    out["notes"] += adversarial_start_notes(methods, matrix)
    out["nuisance_agreement"], nuisance_notes = nuisance_agreement(methods, hard, items, ids)
    out["notes"] += nuisance_notes

    viol: dict[str, dict[str, float | int]] = {}
    for i, m in enumerate(methods):
        res = consistency_violations(pd.Series(hard[i], index=ids).dropna(), items, rule)
        if res is not None:
            viol[m] = res
    out["consistency_violations"] = viol
    return out


NUISANCE_WARN = 0.75
"""Agreement (either direction) with a known non-truth feature from which labels count as tracking it."""


def nuisance_agreement(
    methods: Sequence[str], hard: np.ndarray, items: pd.DataFrame, ids: np.ndarray
) -> tuple[dict[str, float], list[str]]:
    """Per method, the fraction of items whose hard label equals the items' known ``nuisance`` feature (e.g. a
    liberal stance), and a warning for each method at or beyond :data:`NUISANCE_WARN` in either direction:
    such labels may follow that salient feature instead of the task (Canavan et al.'s second challenge)."""
    if "nuisance" not in items.columns:
        return {}, []
    nu = (
        pd.Series(
            pd.to_numeric(items["nuisance"], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            index=items["item_id"].to_numpy(),
        )
        .reindex(ids)
        .to_numpy()
    )
    known = np.isfinite(nu)
    if not known.any():
        return {}, []
    out: dict[str, float] = {}
    notes = []
    for i, m in enumerate(methods):
        ok = known & np.isfinite(hard[i])
        if not ok.any():
            continue
        a = float(np.mean(hard[i][ok] == nu[ok]))
        out[m] = a
        if max(a, 1.0 - a) >= NUISANCE_WARN:
            side = "label 1" if a >= 0.5 else "label 0"
            notes.append(
                f"Warning: {m} labels follow the known nuisance feature (nuisance = 1 gets {side}) on "
                f"{100 * max(a, 1.0 - a):.0f} % of {int(ok.sum())} items: they may track that feature, not the task."
            )
    return out, notes


INVERTED_SUFFIX = "_inverted_init"
MIRROR_FLIP_RATE = 0.5
"""``selected`` flipping more than this share of zero-shot's labels may be the mirror-image labelling: without a
prior term the loss is nearly symmetric under flipping every label, and only the start picks the side (measured:
from the inverted start, 16 of 20 ETHICS suite draws ended in the mirror image; docs/results.md)."""


COLLAPSE_RATE = 0.05
"""Labels with fewer than this share in one class have collapsed (every item, or nearly, in the other)."""


def collapsed(positive_rate: float | None) -> bool:
    """Whether a label set with this fraction of 1s has collapsed into one class (unknown: no)."""
    return positive_rate is not None and min(positive_rate, 1 - positive_rate) < COLLAPSE_RATE


def mirror_notes(rate: float | None, zero_shot_positive_rate: float | None) -> list[str]:
    """A note when ``selected`` disagrees with zero-shot on most items (``rate``: its flip rate against zero-shot):
    gold-free, so every run gets it. Silent when zero-shot itself collapsed into one class (a one-sided oracle):
    disagreeing with it then says nothing."""
    if rate is None or rate <= MIRROR_FLIP_RATE or collapsed(zero_shot_positive_rate):
        return []
    return [
        f"selected disagrees with zero_shot on {100 * rate:.0f} % of items: it may be the mirror image of the right "
        "labelling (the loss barely tells a labelling from its flip; the start decides). Check a few items by hand, "
        "or keep optimize.init: prior."
    ]


def adversarial_start_notes(methods: Sequence[str], agreement: np.ndarray) -> list[str]:
    """One note per adversarial-start ablation ``<config>_inverted_init`` (started from the inverted zero-shot
    labels): how far it came back towards zero-shot and whether it reached its normally started twin."""
    notes = []
    for i, m in enumerate(methods):
        if not m.endswith(INVERTED_SUFFIX):
            continue
        parts = []
        if "zero_shot" in methods:
            parts.append(
                f"agrees with zero_shot on {100 * agreement[i, methods.index('zero_shot')]:.0f} % (0 % at the start)"
            )
        twin = m[: -len(INVERTED_SUFFIX)]
        if twin in methods:
            a = float(agreement[i, methods.index(twin)])
            verdict = (
                "it escaped the wrong basin" if a >= 0.9 else "the start decides the labels: a wrong basin persists"
            )
            parts.append(f"with {twin} (normal start) on {100 * a:.0f} %: {verdict}")
        if parts:
            notes.append(f"Adversarial start {m}: " + "; ".join(parts) + ".")
    return notes


# ---------------------------------------- metrics.json


SIMULATOR_KEY = "_simulator"
"""metrics.json's entry for what only a simulated oracle knows (``belief_ceiling``): a leading underscore, which
the name pattern forbids, so no method or config can take it."""


def _clean(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def metrics_json(metrics: pd.DataFrame, diagnostics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``metrics.json`` for DVC: ``method -> metric -> number`` (seed means; CIs as ``_ci_low/_ci_high``).

    ``accuracy_ci_*`` is the bootstrap CI of the seed-averaged accuracy and ``<metric>_std`` the spread over
    seeds. Scalar gold-free diagnostics are merged into each method's entry, so gold-less runs still have
    numbers to diff; so is the gold-free accuracy estimate (:mod:`elicit.evaluate.goldfree`) as ``est_accuracy``,
    ``est_low``, ``est_high``, ``est_source`` (the held-out answers it was calibrated on, or "uncalibrated") and
    ``est_heldout_items``. A metric undefined on this run's data (:func:`undefined_metrics`, e.g. AUROC with one
    gold class) is ``null`` with its reason in ``<metric>_na``; no value is ever NaN.
    """
    out: dict[str, dict[str, float | str | None]] = {}

    def put(method: str, key: str, value: float | None) -> None:
        v = _clean(value) if value is not None else None
        if v is not None:
            out.setdefault(method, {})[key] = v

    mean_rows = metrics[metrics["seed"] == MEAN_SEED]
    for method, metric, value, lo, hi in zip(
        mean_rows["method"].astype(str).tolist(),
        mean_rows["metric"].astype(str).tolist(),
        mean_rows["value"].to_numpy(dtype=float).tolist(),
        mean_rows["ci_low"].to_numpy(dtype=float).tolist(),
        mean_rows["ci_high"].to_numpy(dtype=float).tolist(),
        strict=True,
    ):
        if metric in BASE_METRICS:
            put(method, metric, value)
            put(method, f"{metric}_std", (hi - lo) / 2.0)
        elif metric in COUNT_METRICS or metric == HELDOUT_ITEMS:
            put(method, metric, value)
        elif metric == ESTIMATE:
            put(method, ESTIMATE, value)
            put(method, "est_low", lo)
            put(method, "est_high", hi)
        elif metric == SOURCE:
            out.setdefault(method, {})[SOURCE] = source_name(value)
        elif metric == "accuracy_seed_mean":
            put(method, "accuracy_ci_low", lo)
            put(method, "accuracy_ci_high", hi)
        else:
            put(method, metric, value)
            put(method, f"{metric}_ci_low", lo)
            put(method, f"{metric}_ci_high", hi)
    if diagnostics:
        for key in ("flip_rate_vs_zero_shot", "positive_rate", "seed_agreement", "nuisance_agreement"):
            for method, v in (diagnostics.get(key) or {}).items():
                put(method, key, v)
        for method, res in (diagnostics.get("consistency_violations") or {}).items():
            put(method, "consistency_violation_rate", res.get("rate"))
    undefined = undefined_metrics(metrics)
    for method in sorted(set(metrics.loc[metrics["metric"] == "accuracy", "method"].astype(str))):
        for metric, reason in undefined.items():
            out.setdefault(method, {}).update({metric: None, f"{metric}_na": reason})
    return {m: dict(sorted(v.items())) for m, v in sorted(out.items())}


# ---------------------------------------- verdict


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _describe(c: Comparison, a_name: str, b_name: str) -> str:
    """One sentence: does a beat b, by how much, with which CI, and do the CIs overlap."""
    size = f"{_pts(abs(c.diff))} points"
    ci = f" (95 % CI [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}])" if c.paired else ""  # type: ignore[operator]
    if c.significant and c.diff > 0:
        head = f"{a_name} beats {b_name} by {size}{ci}"
    elif c.significant and c.diff < 0:
        head = f"{a_name} is worse than {b_name} by {size}{ci}"
    else:
        head = f"{a_name} does not clearly beat {b_name}: difference {100 * c.diff:+.1f} points{ci}"
    acc = f"accuracy {_pts(c.a_accuracy)} % vs {_pts(c.b_accuracy)} %"
    overlap = "their CIs overlap" if c.overlap else "their CIs do not overlap"
    return f"{head}; {acc}, {overlap}."


CHEAP_BASELINES: tuple[str, ...] = ("zero_shot", "zero_shot_calibrated", "few_shot_mean")
"""What the selected labels must beat (zero_shot is required for a verdict, the others count when present).

zero_shot_calibrated is one since 2026-12-02: on an oracle that leans to one answer (Gemma-3-270M says "Yes" by
+1 to +2 log-odds), zero-shot and the few-shot mean at the 0.5 threshold label almost every item one way, and any
labelling that does not would "beat" them; the same score thresholded at the gold-free class balance is as cheap."""

REAL_SIGNAL_RUN = "probe_sentiment__gemma3"
"""The study's run of a packaged model on a task where its in-context examples matter (issue 16)."""

OWN_CALL_BASELINES: tuple[str, ...] = ("bootstrap_fewshot", "random_fewshot")
"""Reported beside the verdict, not in it: they pay for oracle calls of their own."""

_READABLE: dict[str, str] = {
    "zero_shot": "zero-shot",
    "zero_shot_calibrated": "calibrated zero-shot",
    "few_shot_mean": "the few-shot mean",
    "bootstrap_fewshot": "bootstrapped few-shot",
    "random_fewshot": "random-label few-shot",
}


def _target(metrics: pd.DataFrame, selection: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(method whose rows are the selected labels, or None; the selected config's name, or None)."""
    sel = str(selection.get("selected")) if selection and selection.get("selected") else None
    present = set(metrics["method"])
    return ("selected" if "selected" in present else sel if sel in present else None), sel


def headline(
    metrics: pd.DataFrame, selection: Mapping[str, Any] | None = None, *, n_items: int | None = None
) -> RunVerdict:
    """The run's verdict (:func:`elicit.verdicts.decide`) from a metrics table and ``selection.json``.

    The size of the evaluation set comes from the table's ``n_gold`` rows; ``n_items`` is the fallback for
    tables written without them (the report passes the run's item count). The indeterminacy signals come from
    the selection (:func:`elicit.indeterminate.fired`; the select stage measures them), so a run without gold
    or without a metrics table can be INDETERMINATE too.
    """
    return _decided(metrics, selection, n_items, undetermined=bool(fired(selection)))


def _decided(
    metrics: pd.DataFrame, selection: Mapping[str, Any] | None, n_items: int | None, *, undetermined: bool
) -> RunVerdict:
    """:func:`headline` with the indeterminacy given: False gives the verdict the gold evidence alone supports."""
    if metrics.empty or not (metrics["metric"] == "accuracy").any():
        return decide(
            has_gold=False,
            n_gold=None,
            golden_vs_zero_shot=None,
            selected_vs_baselines=None,
            undetermined=undetermined,
        )
    counts = gold_counts(metrics)
    target, _ = _target(metrics, selection)
    versus: list[Comparison] = []
    for ref in CHEAP_BASELINES:
        c = compare(metrics, target, ref) if target is not None else None
        if c is None and ref == "zero_shot":
            break  # no verdict on the method without zero-shot
        if c is not None:
            versus.append(c)
    return decide(
        has_gold=True,
        n_gold=counts.n if counts is not None else n_items,
        golden_vs_zero_shot=compare(metrics, "golden_fewshot", "zero_shot"),
        selected_vs_baselines=versus,
        undetermined=undetermined,
    )


def indeterminate_lines(selection: Mapping[str, Any] | None) -> list[str]:
    """Why the run is INDETERMINATE: one sentence per fired signal, with its numbers (empty when none fired)."""
    why = fired(selection)
    if not why:
        return []
    sel = str(selection.get("selected")) if selection and selection.get("selected") else None
    name = f"the selected config {sel}" if sel else "the selected config"
    return [
        f"The oracle's answers do not determine the labels of {name} ({len(why)} of {len(signals_of(selection))} "
        f"gold-free signals fired, thresholds frozen {FROZEN}); do not use them:",
        *(s.detail for s in why),
    ]


def _too_few_lines(metrics: pd.DataFrame, selection: Mapping[str, Any] | None, n: int | None) -> list[str]:
    """The verdict of a run too small to conclude anything: say so, and give the raw accuracies for the record."""
    width = (
        f": zero-shot accuracy's 95 % interval could be ±{100 * worst_case_half_width(n):.0f} points wide" if n else ""
    )
    lines = [
        f"Only {n if n is not None else 'a few'} gold items{width}; a verdict needs at least {min_items()} gold "
        "items (±15 points). At this size neither the comparisons between methods, nor the oracle's strength, "
        "nor its fitted biases can be told from noise."
    ]
    target, sel = _target(metrics, selection)
    names = [(target, f"selected ({sel})" if sel else "selected")] if target else []
    names += [("zero_shot", "zero-shot"), ("few_shot_mean", "few-shot mean"), ("golden_fewshot", "golden few-shot")]
    accs = [f"{name} {_pts(r.value)} %" for m, name in names if (r := metric_row(metrics, m, "accuracy_seed_mean"))]
    if accs:
        lines.append(f"Observed accuracy, for the record only: {', '.join(accs)}.")
    return lines


def verdict(metrics: pd.DataFrame, selection: Mapping[str, Any] | None = None, *, n_items: int | None = None) -> str:
    """The report's first lines, in plain words: did the selected labels beat just asking the model?

    The decision is :func:`headline` (one rule, in :mod:`elicit.verdicts`); these lines give its evidence. One
    sentence per line: oracle strength (only when golden few-shot does not beat zero-shot), selected vs
    zero-shot, selected vs the few-shot mean, PGR, oracle strength when fine, and the gold-best upper bound. A
    run too small to conclude (:attr:`RunVerdict.TOO_FEW_ITEMS`) says so instead, with the raw accuracies. An
    INDETERMINATE run (:func:`indeterminate_lines`) first says why, one fired signal per line, then gives the lines
    of the verdict the gold evidence alone would get, for the record.
    """
    decided = headline(metrics, selection, n_items=n_items)
    head: list[str] = []
    if decided is RunVerdict.INDETERMINATE:
        head = indeterminate_lines(selection)
        decided = _decided(metrics, selection, n_items, undetermined=False)
        if decided not in (RunVerdict.NO_GOLD, RunVerdict.TOO_FEW_ITEMS):
            head.append("For the record only, the gold comparisons:")
    if decided is RunVerdict.NO_GOLD:
        return "\n".join(
            [
                *head,
                "No gold labels: only unsupervised diagnostics (agreement between methods and seeds, flips "
                "against zero-shot, consistency violations). Whether the labels beat zero-shot cannot be "
                "measured on this run.",
            ]
        )
    if decided is RunVerdict.TOO_FEW_ITEMS:
        counts = gold_counts(metrics)
        return "\n".join([*head, *_too_few_lines(metrics, selection, counts.n if counts is not None else n_items)])
    lines: list[str] = []
    tail: list[str] = []
    golden = compare(metrics, "golden_fewshot", "zero_shot")
    if golden is None:
        tail.append(
            "Golden few-shot or zero-shot is not available, so it is unknown whether this oracle can use "
            "labelled examples at all."
        )
    elif not (golden.significant and golden.diff > 0):
        ci = (
            f"95 % CI [{100 * golden.ci_low:+.1f}, {100 * golden.ci_high:+.1f}]"  # type: ignore[operator]
            if golden.paired
            else "CIs overlap"
        )
        evidence = (
            f"({_pts(golden.a_accuracy)} % vs {_pts(golden.b_accuracy)} %, difference {100 * golden.diff:+.1f} "
            f"points, {ci})"
        )
        if decided is RunVerdict.ORACLE_TOO_WEAK:
            lines.append(
                f"This oracle is too weak for this task — golden few-shot does not beat zero-shot {evidence}; use "
                "a larger model. Label-free methods cannot be expected to beat zero-shot when even gold examples "
                "do not help. For a task where a packaged model does use examples, see the real-signal run "
                f"{REAL_SIGNAL_RUN} (docs/results.md)."
            )
        else:  # the selected labels beat the baselines although gold examples do not help this oracle
            tail.append(f"Golden few-shot does not beat zero-shot {evidence}, yet the selected labels do.")
    else:
        tail.append(
            f"Golden few-shot beats zero-shot by {_pts(golden.diff)} points, so this oracle can use labelled "
            "examples: there is a gap for label-free methods to recover."
        )
    target, sel = _target(metrics, selection)
    if target is None:
        lines.append("No selected labels were evaluated, so there is no verdict on the method.")
    else:
        how = f", chosen without gold by {selection['method']}," if selection and selection.get("method") else ""
        name = f"The selected config {sel}{how}" if sel else "The selected config"
        for ref in CHEAP_BASELINES:
            c, ref_name = compare(metrics, target, ref), _READABLE[ref]
            if c is None and ref != "zero_shot_calibrated":
                lines.append(f"{ref_name[0].upper()}{ref_name[1:]} is not available for comparison.")
            elif c is not None:
                lines.append(_describe(c, name if ref == "zero_shot" else "It", ref_name))
        for ref in OWN_CALL_BASELINES:
            if (c := compare(metrics, target, ref)) is not None:
                lines.append(f"Beside the verdict (own oracle calls): {_describe(c, 'it', _READABLE[ref])}")
        pgr = metric_row(metrics, target, "pgr")
        if pgr is not None:
            lines.append(
                f"It recovers {100 * pgr.value:.0f} % of the gap between zero-shot and golden few-shot "
                f"(PGR 95 % CI [{100 * pgr.ci_low:.0f} %, {100 * pgr.ci_high:.0f} %])."
            )
    lines = [*head, *lines, *tail]
    if selection and selection.get("gold_best") and selection.get("gold_best") != sel:
        gb = str(selection["gold_best"])
        row = metric_row(metrics, gb, "accuracy_seed_mean")
        acc = f" ({_pts(row.value)} %)" if row is not None else ""
        lines.append(f"The best config by gold would have been {gb}{acc}: an upper bound, not selectable without gold.")
    return "\n".join(lines)
