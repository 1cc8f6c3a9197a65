"""Report figures as PNG bytes.

Why this shape: the report inlines every image as a data URI, so a plot is just bytes; each function
returns None when its inputs are missing or empty, and the report then says "not available" instead of
failing. Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot global state, no
display needed, no figure leaks across many runs).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from elicit.contracts import BASELINES, GOLD_READING
from elicit.evaluate import MEAN_SEED, Labels, gold_items, seed_mean_p
from elicit.plan import FEW_SHOT_KINDS

log = logging.getLogger(__name__)

DPI = 110
KIND_COLOURS = {
    "selected": "#d62728",
    "config": "#1f77b4",
    "baseline": "#7f7f7f",
    "reads gold": "#2ca02c",
}
RELIABILITY_METHODS = ("selected", "zero_shot", "zero_shot_calibrated", "few_shot_mean", "golden_fewshot")
PLOT_TITLES: dict[str, str] = {
    "accuracy": "Accuracy per method with 95 % bootstrap CI",
    "reliability": "Reliability diagrams (equal-mass bins)",
    "zero_shot_hist": "Zero-shot scores by gold label and framing",
    "loss_curves": "Optimizer loss terms per config",
    "bias": "Position and framing bias of the oracle",
    "agreement": "Agreement between methods (hard labels)",
    "accuracy_vs_calls": "Accuracy vs oracle calls",
}


def method_kind(method: str) -> str:
    """Colour group of a method: selected labels, a swept config, a baseline, or a gold-reading reference."""
    if method == "selected":
        return "selected"
    if method in GOLD_READING:
        return "reads gold"
    if method in BASELINES:
        return "baseline"
    return "config"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _empty_panel(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def _as_list(x: Any) -> list[int]:
    """A context list cell (list, numpy array from Parquet, or null) as a list of ints."""
    if x is None:
        return []
    if isinstance(x, float) and np.isnan(x):
        return []
    return [int(v) for v in np.asarray(x).ravel().tolist()]


# --------------------------------------------------------------------------------------------------- plots


def plot_accuracy(metrics: pd.DataFrame | None, selection: Mapping[str, Any] | None = None) -> bytes | None:
    """Seed-averaged accuracy with its bootstrap CI per method, sorted, coloured by kind."""
    if metrics is None or metrics.empty:
        return None
    acc = metrics[(metrics["metric"] == "accuracy_seed_mean") & (metrics["seed"] == MEAN_SEED)]
    if acc.empty:
        return None
    acc = acc.sort_values("value", ascending=True, kind="stable")
    gold_best = (selection or {}).get("gold_best")
    names = [f"{m} (gold-best)" if m == gold_best else m for m in acc["method"].astype(str)]
    kinds = [method_kind(m) for m in acc["method"].astype(str)]
    v = acc["value"].to_numpy(dtype=float)
    lo = v - acc["ci_low"].to_numpy(dtype=float)
    hi = acc["ci_high"].to_numpy(dtype=float) - v
    fig = _new_figure(7.5, 0.6 + 0.32 * len(acc))
    with sns.axes_style("whitegrid"):
        ax = fig.add_subplot()
    ypos = np.arange(len(acc))
    for kind, colour in KIND_COLOURS.items():
        mask = np.array([k == kind for k in kinds])
        if mask.any():
            ax.errorbar(
                v[mask],
                ypos[mask],
                xerr=np.vstack([lo[mask], hi[mask]]),
                fmt="o",
                color=colour,
                capsize=3,
                label=kind,
            )
    zs = acc.loc[acc["method"] == "zero_shot", "value"]
    if not zs.empty:
        ax.axvline(float(zs.iloc[0]), color="#7f7f7f", ls="--", lw=1, label="zero-shot")
    ax.set_yticks(ypos, names)
    ax.set_xlabel("accuracy (mean over seeds, 95 % bootstrap CI)")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def plot_reliability(
    labels: Labels | None,
    items: pd.DataFrame | None,
    methods: tuple[str, ...] = RELIABILITY_METHODS,
    bins: int = 10,
) -> bytes | None:
    """Mean p_true vs observed frequency of label 1 in equal-mass bins, one panel per method (needs gold)."""
    if not labels or items is None:
        return None
    gold = gold_items(items)
    shown = [m for m in methods if m in labels and labels[m]]
    if gold.empty or not shown:
        return None
    ids = gold["item_id"].to_numpy()
    y = gold["gold"].astype("int64").to_numpy()
    fig = _new_figure(3.0 * len(shown), 3.2)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, m in zip(axes, shown, strict=True):
        p = seed_mean_p(labels[m], ids)
        ok = np.isfinite(p)
        pm, ym = p[ok], y[ok]
        ax.plot([0, 1], [0, 1], color="#999999", ls="--", lw=1)
        if pm.size == 0:
            _empty_panel(ax, "no labels")
        else:
            order = np.argsort(pm, kind="stable")
            parts = [part for part in np.array_split(order, min(bins, pm.size)) if part.size]
            xs = [float(pm[part].mean()) for part in parts]
            ys = [float(ym[part].mean()) for part in parts]
            ax.plot(xs, ys, "o-", color=KIND_COLOURS[method_kind(m)])
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(m, fontsize="medium")
        ax.set_xlabel("mean p_true in bin")
    axes[0].set_ylabel("fraction gold = 1")
    return _png(fig)


def plot_zero_shot_hist(predictions: pd.DataFrame | None, items: pd.DataFrame | None = None) -> bytes | None:
    """Zero-shot score histograms per framing, split by gold label when gold exists (separability, bias)."""
    if predictions is None or predictions.empty or "score" not in predictions.columns:
        return None
    zs = predictions[predictions["kind"].astype(str) == "zero_shot"]
    zs = zs[zs["score"].notna()]
    if zs.empty:
        return None
    df = pd.DataFrame(
        {
            "score": zs["score"].to_numpy(dtype=float),
            "framing": zs["framing"].astype(str).to_numpy(),
            "target_id": zs["target_id"].to_numpy(),
        }
    )
    hue: str | None = None
    if items is not None and "gold" in items.columns:
        gold = gold_items(items)
        if not gold.empty:
            gmap = pd.Series(gold["gold"].astype("int64").to_numpy(), index=gold["item_id"].to_numpy())
            df["gold"] = df["target_id"].map(gmap)
            df = df[df["gold"].notna()].assign(gold=lambda d: d["gold"].astype(int).astype(str))
            hue = "gold"
    if df.empty:
        return None
    framings = sorted(df["framing"].unique())
    fig = _new_figure(4.0 * len(framings), 3.2)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, len(framings), squeeze=False, sharex=True)[0]
    for ax, fr in zip(axes, framings, strict=True):
        sub = df[df["framing"] == fr]
        sns.histplot(
            data=sub,
            x="score",
            hue=hue,
            hue_order=["0", "1"] if hue else None,
            bins=30,
            element="step",
            stat="count",
            ax=ax,
        )
        ax.axvline(0.0, color="#333333", lw=1)
        ax.set_title(f"framing: {fr}", fontsize="medium")
        ax.set_xlabel("score (log-odds of label 1, framing undone)")
    return _png(fig)


def plot_loss_curves(curves: Mapping[str, Mapping[int, pd.DataFrame]] | None) -> bytes | None:
    """One panel per loss term, one line per config (mean over seeds, band = spread over seeds)."""
    if not curves:
        return None
    frames = []
    for config in sorted(curves):
        for seed in sorted(curves[config]):
            df = curves[config][seed]
            if df is None or df.empty or "epoch" not in df.columns:
                continue
            long = df.melt(id_vars="epoch", var_name="term", value_name="loss")
            frames.append(long.assign(config=config, seed=seed))
    if not frames:
        return None
    data = pd.concat(frames, ignore_index=True)
    data["loss"] = pd.to_numeric(data["loss"], errors="coerce")
    data = data[np.isfinite(data["loss"].to_numpy(dtype=float))]
    if data.empty:
        return None
    terms = [t for t in data["term"].drop_duplicates().tolist() if t != "total"]
    terms = (["total"] if (data["term"] == "total").any() else []) + terms
    ncol = min(3, len(terms))
    nrow = int(np.ceil(len(terms) / ncol))
    fig = _new_figure(4.0 * ncol, 2.8 * nrow)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for i, term in enumerate(terms):
        ax = axes[i]
        sns.lineplot(
            data=data[data["term"] == term],
            x="epoch",
            y="loss",
            hue="config",
            errorbar=("pi", 100),
            estimator="mean",
            ax=ax,
            legend=i == 0,
        )
        ax.set_title(str(term), fontsize="medium")
    for ax in axes[len(terms) :]:
        ax.set_visible(False)
    return _png(fig)


def bias_tables(predictions: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The numbers behind :func:`plot_bias` (mean score, standard error, count), for tables and tests.

    * ``framing``: mean score per framing over zero-shot rows; an unbiased oracle has equal means, because the
      score already undoes the framing, so a gap is acquiescence (a pull towards answering "True").
    * ``template``: mean zero-shot score per prompt template (a template ensemble's spread: a gap is a template bias).
    * ``last_shown``: few-shot rows, mean score by the label shown last in the context (position bias).
    * ``frac_shown``: few-shot rows, mean score by the fraction of shown labels equal to 1 (copying).
    """
    out: dict[str, pd.DataFrame] = {}
    if predictions is None or predictions.empty or "score" not in predictions.columns:
        return out
    df = predictions[predictions["score"].notna()]

    def summarise(frame: pd.DataFrame, by: str) -> pd.DataFrame:
        g = frame.groupby(by, sort=True)["score"]
        res = pd.DataFrame({"mean": g.mean(), "sem": g.sem(ddof=1).fillna(0.0), "n": g.size()})
        return res.reset_index()

    zs = df[df["kind"].astype(str) == "zero_shot"]
    if not zs.empty and "framing" in zs.columns:
        out["framing"] = summarise(zs.assign(framing=zs["framing"].astype(str)), "framing")
    if not zs.empty and "template_id" in zs.columns:
        out["template"] = summarise(zs.assign(template=zs["template_id"].astype(str)), "template")
    fs = df[df["kind"].astype(str).isin(FEW_SHOT_KINDS)]
    if not fs.empty and "context_shown" in fs.columns:
        shown = fs["context_shown"].map(_as_list)
        has = shown.map(len) > 0
        fs, shown = fs[has], shown[has]
        if not fs.empty:
            last = shown.map(lambda s: s[-1])
            frac = shown.map(lambda s: round(float(np.mean(s)), 2))
            out["last_shown"] = summarise(fs.assign(last_shown=last.astype(int)), "last_shown")
            out["frac_shown"] = summarise(fs.assign(frac_shown=frac.astype(float)), "frac_shown")
    return out


def plot_bias(predictions: pd.DataFrame | None) -> bytes | None:
    """Four panels: mean score by framing, by template, by last shown label, and by fraction of shown labels = 1."""
    tables = bias_tables(predictions)
    if not tables:
        return None
    fig = _new_figure(14.5, 3.4)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, 4)
    panels = (
        ("framing", "framing (zero-shot)", "acquiescence: gap between framings"),
        ("template", "template (zero-shot)", "template bias: gap between templates"),
        ("last_shown", "last shown label (few-shot)", "position: pull towards the last label"),
        ("frac_shown", "fraction of shown labels = 1", "copying: slope"),
    )
    for ax, (key, xlabel, title) in zip(axes, panels, strict=True):
        t = tables.get(key)
        if t is None or t.empty:
            _empty_panel(ax, "not available")
        else:
            x = t[key].astype(str) if key != "frac_shown" else t[key].astype(float)
            if key == "frac_shown":
                ax.errorbar(x, t["mean"], yerr=1.96 * t["sem"], fmt="o-", capsize=3, color="#1f77b4")
            else:
                pos = np.arange(len(t))
                ax.bar(pos, t["mean"], yerr=1.96 * t["sem"], capsize=4, color="#9ecae1", edgecolor="#1f77b4")
                ax.set_xticks(pos, x.tolist(), rotation=20 if key == "template" else 0, fontsize="small")
            ax.axhline(0.0, color="#333333", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel("mean score (log-odds of label 1)")
    return _png(fig)


def plot_agreement(diagnostics: Mapping[str, Any] | None) -> bytes | None:
    """Heatmap of pairwise hard-label agreement between methods (works without gold)."""
    agreement = (diagnostics or {}).get("agreement") or {}
    methods = list(agreement.get("methods") or [])
    matrix = agreement.get("matrix")
    if len(methods) < 2 or matrix is None:
        return None
    df = pd.DataFrame(np.asarray(matrix, dtype=float), index=methods, columns=methods)
    size = 2.5 + 0.5 * len(methods)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    sns.heatmap(
        df,
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
        annot=len(methods) <= 16,
        fmt=".2f",
        annot_kws={"fontsize": 7},
        square=True,
        ax=ax,
        cbar_kws={"label": "agreement", "shrink": 0.8},
    )
    return _png(fig)


def plot_accuracy_vs_calls(metrics: pd.DataFrame | None, calls: Mapping[str, Mapping[str, Any]] | None) -> bytes | None:
    """Accuracy (with CI) against the oracle calls each method spent: what does an extra call buy?"""
    if metrics is None or metrics.empty or not calls:
        return None
    acc = metrics[(metrics["metric"] == "accuracy_seed_mean") & (metrics["seed"] == MEAN_SEED)]
    rows = []
    for m, v, lo, hi in zip(
        acc["method"].astype(str).tolist(),
        acc["value"].to_numpy(dtype=float).tolist(),
        acc["ci_low"].to_numpy(dtype=float).tolist(),
        acc["ci_high"].to_numpy(dtype=float).tolist(),
        strict=True,
    ):
        c = (calls.get(m) or {}).get("calls")
        if c is not None and np.isfinite(float(c)) and float(c) > 0:
            rows.append((m, float(c), v, lo, hi))
    if not rows:
        return None
    fig = _new_figure(7.0, 4.2)
    with sns.axes_style("whitegrid"):
        ax = fig.add_subplot()
    names: dict[tuple[float, float], list[str]] = {}
    for m, c, v, lo, hi in rows:
        colour = KIND_COLOURS[method_kind(m)]
        ax.errorbar([c], [v], yerr=[[v - lo], [hi - v]], fmt="o", color=colour, capsize=3)
        names.setdefault((c, v), []).append(m)
    for (c, v), ms in names.items():  # identical points (selected = its config) share one label
        ax.annotate(" = ".join(ms), (c, v), textcoords="offset points", xytext=(5, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("oracle calls (log scale)")
    ax.set_ylabel("accuracy (95 % bootstrap CI)")
    return _png(fig)


def make_plots(
    *,
    metrics: pd.DataFrame | None = None,
    diagnostics: Mapping[str, Any] | None = None,
    labels: Labels | None = None,
    items: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    curves: Mapping[str, Mapping[int, pd.DataFrame]] | None = None,
    calls: Mapping[str, Mapping[str, Any]] | None = None,
    selection: Mapping[str, Any] | None = None,
    reliability_bins: int = 10,
) -> dict[str, bytes | None]:
    """Every report figure by name (keys of :data:`PLOT_TITLES`); a figure that fails is logged and None."""
    jobs: dict[str, Callable[[], bytes | None]] = {
        "accuracy": lambda: plot_accuracy(metrics, selection),
        "reliability": lambda: plot_reliability(labels, items, bins=reliability_bins),
        "zero_shot_hist": lambda: plot_zero_shot_hist(predictions, items),
        "loss_curves": lambda: plot_loss_curves(curves),
        "bias": lambda: plot_bias(predictions),
        "agreement": lambda: plot_agreement(diagnostics),
        "accuracy_vs_calls": lambda: plot_accuracy_vs_calls(metrics, calls),
    }
    out: dict[str, bytes | None] = {}
    for name, job in jobs.items():
        try:
            out[name] = job()
        except Exception:  # a broken figure must not cost the whole report
            log.exception("plot %s failed; the report will show it as not available", name)
            out[name] = None
    return out


def plot_ablation(table: pd.DataFrame | None) -> bytes | None:
    """Accuracy (95 % paired bootstrap CI) of the selected config and each ablation of it, best first."""
    if table is None or table.empty:
        return None
    t = table.sort_values("accuracy", ascending=True, kind="stable").reset_index(drop=True)
    fig = _new_figure(6.5, 0.9 + 0.35 * len(t))
    with sns.axes_style("whitegrid"):
        ax = fig.add_subplot()
    y = np.arange(len(t))
    colours = ["#d62728" if v == "selected" else "#1f77b4" for v in t["variant"]]
    ax.errorbar(
        t["accuracy"],
        y,
        xerr=[t["accuracy"] - t["ci_low"], t["ci_high"] - t["accuracy"]],
        fmt="none",
        ecolor="#777777",
        capsize=3,
    )
    ax.scatter(t["accuracy"], y, c=colours, zorder=3)
    sel = t[t["variant"] == "selected"]
    if not sel.empty:
        ax.axvspan(float(sel["ci_low"].iloc[0]), float(sel["ci_high"].iloc[0]), color="#d62728", alpha=0.08)
    ax.set_yticks(y, t["variant"].astype(str).tolist(), fontsize="small")
    ax.set_xlabel("accuracy (95 % paired bootstrap CI)")
    ax.set_title(f"Ablations of {t['config'].iloc[0]}", fontsize="medium")
    return _png(fig)
