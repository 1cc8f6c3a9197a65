"""The study's cost figures: accuracy against what the labels cost, in oracle calls AND prompt tokens per item, for
``selected`` and the baselines, over whole-pipeline draws at several budgets. Two targets make one figure each: ``cost``
(``selected`` and the cheap baselines at several query budgets, with the suite's runs on the same dataset x oracle)
and ``equal_cost`` (:data:`EQUAL_COST_METHODS`: ``selected``, the few-shot mean, bootstrapped few-shot and the cheap
ICM variant each at low / mid / high budget, and faithful ICM at its natural cost: one more point).

Why both axes: methods differ in prompt length (few-shot prompts carry k examples, faithful ICM every labelled item
of its batch), so a method that looks cheap in calls can be expensive in tokens; on a hosted API tokens are the bill.
Costs come from the runs' telemetry (:func:`elicit.report_tables.method_costs`): a method with its own oracle job is
charged that job divided by its restarts (its accuracy is the mean over restarts, each of which paid the job's cost
once); ``selected`` and the few-shot votes are charged every shared query round. For the simulated oracle, prompt
tokens are the chars / 3.5 estimate of the prompt the client rendered (the simulator has no tokenizer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from elicit.replicates import accuracy_interval

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from elicit.study import StudyRun

COST_METHODS: tuple[str, ...] = (
    "selected",
    "few_shot_mean",
    "bootstrap_fewshot",
    "icm_budget",
    "icm",
    "dawid_skene",
    "zero_shot",
)
"""Drawn in the figures: the fitted labels, the cheap baselines a user would otherwise pick, and both ICMs (``icm``,
the paper's algorithm, only in runs that enable it)."""
COLOURS: dict[str, str] = dict(
    zip(COST_METHODS, ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#8c564b", "#9467bd", "#7f7f7f"), strict=True)
)
COST_TARGET = "cost"
"""The study target whose runs (and the suite runs on the same dataset and oracle) make the cost figure."""
EQUAL_COST_TARGET = "equal_cost"
"""The study target whose runs alone make the equal-cost figure (issue 17, item 5)."""
EQUAL_COST_METHODS: tuple[str, ...] = ("selected", "few_shot_mean", "bootstrap_fewshot", "icm_budget", "icm")
"""The equal-cost comparison: each at several budgets (faithful ``icm`` at its natural cost only)."""


def _seeds(metrics: pd.DataFrame, method: str) -> int:
    """Restarts behind a method's seed-mean accuracy (per-seed accuracy rows), at least 1."""
    rows = metrics[(metrics["method"].astype(str) == method) & (metrics["metric"] == "accuracy")]
    return max(1, int((rows["seed"].astype(int) >= 0).sum()))


def _accuracy(metrics: pd.DataFrame, method: str) -> float | None:
    rows = metrics[(metrics["method"].astype(str) == method) & (metrics["metric"] == "accuracy_seed_mean")]
    return float(rows["value"].iloc[0]) if len(rows) else None


def draw_costs(run: StudyRun, methods: Sequence[str] = COST_METHODS) -> list[dict[str, Any]]:
    """One row per method of one draw: its accuracy and its calls and prompt tokens per item (None if unknown)."""
    n = int(run.card.get("n") or 0)
    rows = []
    for method in methods:
        acc = _accuracy(run.metrics, method)
        cost = run.costs.get(method)
        if acc is None or cost is None or n <= 0:
            continue
        per = n * (_seeds(run.metrics, method) if cost.get("jobs") == [method] else 1)
        calls, tokens = cost.get("calls"), cost.get("prompt_tokens")
        rows.append(
            {
                "method": method,
                "accuracy": acc,
                "calls_per_item": calls / per if calls else None,
                "tokens_per_item": tokens / per if tokens else None,
            }
        )
    return rows


def cost_points(
    groups: Mapping[str, Sequence[StudyRun]], queries_per_item: Mapping[str, int], methods: Sequence[str] = COST_METHODS
) -> pd.DataFrame:
    """One row per replicated run x method: the accuracy's mean over draws with its 95 % t-interval over draws, the
    mean calls and prompt tokens per item, and the run's dataset, oracle and queries per item per round."""
    rows = []
    for name, draw_runs in groups.items():
        per_draw = pd.DataFrame([r | {"draw": k} for k, run in enumerate(draw_runs) for r in draw_costs(run, methods)])
        if per_draw.empty:
            continue
        card = draw_runs[0].card
        for method, d in per_draw.groupby("method", sort=False):
            mean, low, high = accuracy_interval(d["accuracy"].to_numpy(dtype=float))
            if len(d) < 2:  # one draw: no interval (the table says how many draws)
                low = high = mean
            rows.append(
                {
                    "run": name,
                    "dataset": str(card.get("dataset")),
                    "oracle": str(card.get("oracle")),
                    "queries_per_item": queries_per_item.get(name),
                    "method": str(method),
                    "draws": len(d),
                    "accuracy": mean,
                    "acc_low": low,
                    "acc_high": high,
                    "calls_per_item": d["calls_per_item"].astype(float).mean(),
                    "tokens_per_item": d["tokens_per_item"].astype(float).mean(),
                }
            )
    return pd.DataFrame(rows)


COST_TITLE = "Cost efficiency: accuracy against oracle calls and prompt tokens per item"


def plot_cost_efficiency(points: pd.DataFrame, title: str = COST_TITLE, target: str = COST_TARGET) -> bytes:
    """:func:`cost_figure` as PNG bytes."""
    from elicit.plots import _png

    return _png(cost_figure(points, title, target))


def cost_figure(points: pd.DataFrame, title: str = COST_TITLE, target: str = COST_TARGET) -> Figure:
    """Two panels (calls per item, prompt tokens per item) of accuracy with its interval over draws; one line per
    method x oracle through the budgets (a method in one run of each oracle, as faithful ``icm``: one point), the
    queries per item per round written at each point of ``selected``. Always a figure (the study's declared output):
    with no points it says which target to build."""
    from elicit.plots import _empty_panel, _new_figure

    fig = _new_figure(12, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    if points.empty:
        for ax in axes:
            _empty_panel(ax, f"no replicated runs of the {target} target built yet")
        return fig
    styles = ("-", "--", ":", "-.")
    oracles = list(dict.fromkeys(points["oracle"]))
    for ax, x, label in zip(
        axes, ("calls_per_item", "tokens_per_item"), ("oracle calls per item", "prompt tokens per item"), strict=True
    ):
        for (method, oracle), d in points.groupby(["method", "oracle"], sort=False):
            d = d.dropna(subset=[x]).sort_values(x)
            if d.empty:
                continue
            yerr = np.vstack([d["accuracy"] - d["acc_low"], d["acc_high"] - d["accuracy"]]) * 100
            ax.errorbar(
                d[x],
                d["accuracy"] * 100,
                yerr=yerr,
                color=COLOURS.get(str(method), "#333333"),
                linestyle=styles[oracles.index(oracle) % len(styles)],
                marker="o",
                capsize=3,
                label=f"{method} ({oracle})",
            )
            if method == "selected":
                for _, r in d.iterrows():
                    if r["queries_per_item"] is not None and not pd.isna(r["queries_per_item"]):
                        ax.annotate(f"q={int(r['queries_per_item'])}", (r[x], r["accuracy"] * 100), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy, % (mean over draws, 95 % t-interval)")
    for ax in axes:
        if not ax.has_data():  # text only: clearing its ticks would clear the shared accuracy axis too
            ax.text(0.5, 0.5, "no prompt-token counts in these runs", ha="center", transform=ax.transAxes)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return fig


def cost_markdown(
    points: pd.DataFrame,
    figure: str | None,
    heading: str = "Cost efficiency",
    budget_note: str = "q = queries per item per round.",
) -> list[str]:
    """The page's section of one cost figure: the figure and its numbers (faithful ``icm`` has no budget: q "–")."""
    if points.empty:
        return []
    lines = [f"## {heading} (generated)", ""]
    if figure:
        lines += [f"![accuracy against oracle calls and prompt tokens per item]({figure})", ""]
    lines += [
        "Accuracy in % (mean over draws, 95 % t-interval over draws); costs per item per labelling (a method with "
        "its own oracle job: that job divided by its restarts; `selected` and the votes: every shared query round). "
        + budget_note,
        "",
        "| run | method | q | draws | accuracy | calls / item | prompt tokens / item |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in points.iterrows():
        budgetless = r["method"] == "icm" or r["queries_per_item"] is None or pd.isna(r["queries_per_item"])
        q = "–" if budgetless else str(int(r["queries_per_item"]))
        tokens = "–" if pd.isna(r["tokens_per_item"]) else f"{r['tokens_per_item']:,.0f}"
        calls = "–" if pd.isna(r["calls_per_item"]) else f"{r['calls_per_item']:.1f}"
        lines.append(
            f"| {r['run']} | {r['method']} | {q} | {r['draws']} | {100 * r['accuracy']:.1f} "
            f"[{100 * r['acc_low']:.1f}, {100 * r['acc_high']:.1f}] | {calls} | {tokens} |"
        )
    return [*lines, ""]
