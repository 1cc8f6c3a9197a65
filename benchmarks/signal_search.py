"""Signal search (issue 16): on which probe task, model and prompt format do the packaged small models' in-context
examples matter?

The method can only beat zero-shot where showing labelled examples changes the model's answers in the direction of
the truth. This screen measures that per cell (probe dataset x model x prompt format) on n generated items with known
truth (``elicit.datasets.probes``), in four conditions that share every context item and its position:

  zero_shot  no examples; both framings averaged where the format has two (claim, chat), pos only for yesno
  random     k examples from other consistency groups (half of each class) shown with a random permutation of
             their gold labels: what examples are worth when their labels carry no information about the items
  golden     the same examples with their gold labels
  own        the same examples with the model's own zero-shot answers (its item scores thresholded at their median:
             the classes are balanced by construction, so the median is a gold-free threshold)

Per condition: accuracy at log-odds 0, accuracy at the median score (removes a constant bias), AUROC; per cell: a
paired bootstrap over consistency groups of golden - random and golden - zero-shot (accuracy and AUROC), and, from
the random condition, copying of the last and the first shown label (mean score when it is 1 minus when it is 0).

Formats: ``claim`` and ``chat`` are the project's prompts (``data/templates.yaml``'s default template, rendered and
asked by ``elicit.oracle.ask`` with the same cache keys as a pipeline run; chat = the same text as one user message on
the chat endpoint). ``yesno`` ("Question: Is a dog an animal?\\nAnswer: Yes") is the template set
``probe_questions`` of ``data/templates.yaml`` over the items' question form: answer words Yes/No, one framing (the
items carry no negated question), asked the same way, so a pipeline run on the question form (e.g. the study's
probe_sentiment__gemma3) reads the same cache entries.

Usage (the full screen, hours on 2 CPU cores; see docs/signal_search.md):
  uv run python benchmarks/signal_search.py
  uv run python benchmarks/signal_search.py --models smollm2 --datasets categories,capitals --formats claim,yesno --n 12
  uv run python benchmarks/signal_search.py --split fresh --seed 1 --models gemma --datasets capitals --formats yesno
Writes cells.csv, cells.md, predictions.parquet and summary.json under --out (default benchmarks/runs/signal_search).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elicit.datasets.probes import PROBES, probe_items  # noqa: E402
from elicit.errors import ElicitError  # noqa: E402
from elicit.oracle.base import Oracle, OracleConfig  # noqa: E402
from elicit.oracle.client import ask_sync  # noqa: E402
from elicit.oracle.embedded import embedded_server  # noqa: E402
from elicit.oracle.factory import open_oracle  # noqa: E402
from elicit.prompts import Template, load_templates  # noqa: E402

TEMPLATES = ROOT / "data" / "templates.yaml"
MODELS = {"smollm2": "smollm2", "gemma": "gemma3_270m"}
"""CLI name -> the oracle of params.yaml (its settings and the shared cache)."""
CONDITIONS = ("zero_shot", "random", "golden", "own")


@dataclass(frozen=True)
class Format:
    """How a cell asks: the endpoint, the framings, and whether it asks the item's question (template set
    ``probe_questions``, answer words Yes/No) instead of its claim (the dataset's default template)."""

    name: str
    endpoint: str
    framings: tuple[str, ...]
    yes_no: bool

    def template(self, dataset: str) -> Template:
        """The template a cell of this format asks with (the first of its set in data/templates.yaml)."""
        return load_templates(TEMPLATES, "probe_questions" if self.yes_no else f"probe_{dataset}")[0]


FORMATS = {
    "claim": Format("claim", "completions", ("pos", "neg"), False),
    "yesno": Format("yesno", "completions", ("pos",), True),
    "chat": Format("chat", "chat", ("pos", "neg"), False),
}


class UsageError(ElicitError, ValueError):
    """A bad command line; one line naming the fix."""


# ---------------------------------------------------------------------------------------------- plan (pure)


def plan_contexts(items: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Per target: ``k`` context items from other consistency groups, half of each gold class (the odd one's class
    at random), in random order; ``random_shown`` = the same labels permuted at random (so random and golden differ
    only in which shown label goes with which item)."""
    rng = np.random.default_rng([seed, 16])
    gold = items["gold"].to_numpy(dtype=np.int64)
    group = items["consistency_id"].to_numpy(dtype=np.int64)
    rows = []
    for t in items["item_id"].to_numpy(dtype=np.int64):
        outside = group != group[t]
        n_pos = k // 2 + (int(rng.integers(2)) if k % 2 else 0)
        pos = rng.choice(np.flatnonzero(outside & (gold == 1)), size=n_pos, replace=False)
        neg = rng.choice(np.flatnonzero(outside & (gold == 0)), size=k - n_pos, replace=False)
        ctx = rng.permutation(np.concatenate([pos, neg]))
        rows.append(
            {
                "target_id": int(t),
                "context_ids": [int(c) for c in ctx],
                "random_shown": [int(s) for s in rng.permutation(gold[ctx])],
            }
        )
    return pd.DataFrame(rows)


def queries(
    condition: str, contexts: pd.DataFrame, fmt: Format, template_id: str, shown_of: np.ndarray | None = None
) -> pd.DataFrame:
    """Query rows (``elicit.oracle.client.QUERY_COLUMNS``) of one condition: every target in every framing.
    ``shown_of``: the label shown for each item id (gold for golden, the model's own for own)."""
    rows = []
    for r in contexts.to_dict("records"):
        if condition == "zero_shot":
            ids: list[int] = []
            shown: list[int] = []
        elif condition == "random":
            ids, shown = list(r["context_ids"]), list(r["random_shown"])
        else:
            assert shown_of is not None
            ids, shown = list(r["context_ids"]), [int(shown_of[c]) for c in r["context_ids"]]
        for framing in fmt.framings:
            rows.append(
                {
                    "query_id": f"{condition}:{r['target_id']}:{framing}",
                    "target_id": r["target_id"],
                    "framing": framing,
                    "template_id": template_id,
                    "context_ids": ids,
                    "context_shown": shown,
                    "condition": condition,
                }
            )
    return pd.DataFrame(rows)


def item_scores(preds: pd.DataFrame, n: int) -> np.ndarray:
    """Label-1 log-odds per item id: the mean over its framings (NaN where every framing is missing)."""
    s = preds.assign(score=preds["score"].astype("float64")).groupby("target_id")["score"].mean()
    out = np.full(n, np.nan)
    out[s.index.to_numpy(dtype=np.int64)] = s.to_numpy()
    return out


def own_labels(zero_scores: np.ndarray) -> np.ndarray:
    """The model's own zero-shot labels: above the median score (classes are balanced by construction; no gold)."""
    med = np.nanmedian(zero_scores) if np.isfinite(zero_scores).any() else 0.0
    return (np.nan_to_num(zero_scores, nan=med) > med).astype(np.int64)


# ---------------------------------------------------------------------------------------------- metrics (pure)


def accuracy(s: np.ndarray, y: np.ndarray, threshold: float = 0.0) -> float:
    """Share right at ``threshold``; a missing score counts as a coin flip (0.5)."""
    right = np.where(np.isnan(s), 0.5, ((s > threshold) == (y == 1)).astype(float))
    return float(right.mean())


def accuracy_median(s: np.ndarray, y: np.ndarray) -> float:
    """Accuracy at the median score: a constant bias removed without gold (balanced classes)."""
    return accuracy(s, y, float(np.nanmedian(s))) if np.isfinite(s).any() else 0.5


def auroc(s: np.ndarray, y: np.ndarray) -> float:
    """P(score of a true item > score of a false one), ties 1/2; a missing score sits at the median."""
    s = np.nan_to_num(s, nan=float(np.nanmedian(s)) if np.isfinite(s).any() else 0.0)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


Metric = Callable[[np.ndarray, np.ndarray], float]


def paired_bootstrap(
    metric: Metric, a: np.ndarray, b: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """metric(a) - metric(b) and its 95 % percentile interval, resampling whole consistency groups (members of a
    group are not independent) with the same draw for both conditions."""
    point = metric(a, y) - metric(b, y)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    rng = np.random.default_rng([seed, 1600])
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([members[j] for j in rng.integers(len(ids), size=len(ids))])
        diffs[i] = metric(a[idx], y[idx]) - metric(b[idx], y[idx])
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    return point, float(lo), float(hi)


def copying(preds: pd.DataFrame, position: int) -> float:
    """Mean label-1 log-odds when the shown label at ``position`` is 1 minus when it is 0 (random condition: shown
    labels are independent of the target's truth, so any difference is copying)."""
    shown = np.array([int(s[position]) for s in preds["context_shown"]])
    score = preds["score"].astype("float64").to_numpy()
    ok = np.isfinite(score)
    if not (ok & (shown == 1)).any() or not (ok & (shown == 0)).any():
        return float("nan")
    return float(score[ok & (shown == 1)].mean() - score[ok & (shown == 0)].mean())


def cell_metrics(preds: pd.DataFrame, items: pd.DataFrame, n_boot: int, seed: int) -> dict[str, float]:
    """Every number of one cell from its prediction rows (``condition``, ``target_id``, ``score``, ...)."""
    n = len(items)
    y = items["gold"].to_numpy(dtype=np.int64)
    groups = items["consistency_id"].to_numpy(dtype=np.int64)
    scores = {c: item_scores(preds[preds["condition"] == c], n) for c in CONDITIONS}
    out: dict[str, float] = {}
    for c, s in scores.items():
        out[f"{c}_acc"] = accuracy(s, y)
        out[f"{c}_acc_med"] = accuracy_median(s, y)
        out[f"{c}_auroc"] = auroc(s, y)
        out[f"{c}_missing"] = float(preds.loc[preds["condition"] == c, "missing"].mean())
    zs = scores["zero_shot"]
    out["zero_shot_mean_score"] = float(np.nanmean(zs)) if np.isfinite(zs).any() else float("nan")
    for other in ("random", "zero_shot", "own"):
        for name, metric in (("acc", accuracy), ("acc_med", accuracy_median), ("auroc", auroc)):
            d, lo, hi = paired_bootstrap(metric, scores["golden"], scores[other], y, groups, n_boot, seed)
            key = f"golden_minus_{other}_{name}"
            out[key], out[f"{key}_lo"], out[f"{key}_hi"] = d, lo, hi
    rand = preds[preds["condition"] == "random"]
    if len(rand) and len(rand["context_shown"].iloc[0]):
        out["copy_last"] = copying(rand, -1)
        out["copy_first"] = copying(rand, 0)
    return out


# ---------------------------------------------------------------------------------------------- one cell


@dataclass
class Oracles:
    """The oracles of one model on one running server, per format."""

    by_format: dict[str, Oracle]
    cfgs: dict[str, OracleConfig]
    cache_dir: Path


def ask_cell(
    qs: pd.DataFrame, items: pd.DataFrame, fmt: Format, oracles: Oracles, template: Template
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Ask one batch of a cell's queries in its format."""
    col = "question" if fmt.yes_no else "text"
    texts = {int(i): str(t) for i, t in zip(items["item_id"], items[col], strict=True)}
    oracle = oracles.by_format[fmt.name]
    frame = pd.DataFrame({"item_id": list(texts), "text": list(texts.values())})
    preds, tel = ask_sync(qs, frame, oracles.cfgs[fmt.name], [template], oracles.cache_dir, oracle=oracle)
    return preds, tel


def run_cell(
    dataset: str, fmt: Format, oracles: Oracles, template: Template, args: argparse.Namespace
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One cell: zero-shot, then random / golden / own few-shot on shared contexts; its numbers and its rows."""
    items = probe_items(dataset, args.n, args.seed, args.split)
    contexts = plan_contexts(items, args.k, args.seed)
    t0 = time.perf_counter()
    zero, tel0 = ask_cell(queries("zero_shot", contexts, fmt, template.id), items, fmt, oracles, template)
    own = own_labels(item_scores(zero, len(items)))
    gold = items["gold"].to_numpy(dtype=np.int64)
    few_q = pd.concat(
        [
            queries("random", contexts, fmt, template.id),
            queries("golden", contexts, fmt, template.id, gold),
            queries("own", contexts, fmt, template.id, own),
        ],
        ignore_index=True,
    )
    few, tel1 = ask_cell(few_q, items, fmt, oracles, template)
    preds = pd.concat([zero, few], ignore_index=True)
    record: dict[str, Any] = cell_metrics(preds, items, args.n_boot, args.seed)
    record.update(
        calls=tel0["calls"] + tel1["calls"],
        cache_hits=tel0["cache_hits"] + tel1["cache_hits"],
        oracle_s=round(time.perf_counter() - t0, 2),
        s_per_call_zero=round(tel0["wall_s"] / tel0["calls"], 3) if tel0["calls"] else float("nan"),
        s_per_call_few=round(tel1["wall_s"] / tel1["calls"], 3) if tel1["calls"] else float("nan"),
        tokens_zero=float(zero["prompt_tokens"].astype("Float64").mean()),
        tokens_few=float(few["prompt_tokens"].astype("Float64").mean()),
    )
    keep = ["query_id", "condition", "target_id", "framing", "context_ids", "context_shown", "score", "missing"]
    rows = preds[[*keep, "cached", "prompt_tokens"]].assign(gold=gold[preds["target_id"].to_numpy()])
    return record, rows


# ---------------------------------------------------------------------------------------------- tables


def _f(v: Any, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def _delta(r: Mapping[Any, Any], key: str) -> str:
    if not np.isfinite(r.get(key, np.nan)):
        return "–"
    return f"{r[key]:+.2f} [{r[key + '_lo']:+.2f}, {r[key + '_hi']:+.2f}]"


def markdown(cells: pd.DataFrame) -> str:
    """The cells as a markdown table: accuracy at the median score / AUROC per condition, the paired differences
    with their 95 % intervals, copying of the last shown label, and each cell's status (failures included).
    Accuracy at log-odds 0 is in cells.csv (``*_acc``): a model that always says one word scores 0.5 there."""
    head = (
        "| model | dataset | format | k | zero-shot acc@med / AUROC | random k-shot | golden k-shot | own k-shot "
        "| golden−random acc@med | golden−random AUROC | golden−zero acc@med | golden−zero AUROC | copy last "
        "| status |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in cells.to_dict("records"):
        per = [f"{_f(r.get(f'{c}_acc_med'))} / {_f(r.get(f'{c}_auroc'))}" for c in CONDITIONS]
        deltas = [
            _delta(r, f"golden_minus_{o}_{m}") for o, m in (("random", "acc_med"), ("random", "auroc"),
                                                            ("zero_shot", "acc_med"), ("zero_shot", "auroc"))
        ]  # fmt: skip
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['format']} | {r.get('k', '–')} | "
            + " | ".join(per)
            + " | "
            + " | ".join(deltas)
            + f" | {_f(r.get('copy_last'))} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- driver


def _names(value: str, known: Sequence[str], flag: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in known]
    if bad or not names:
        raise UsageError(f"{flag} {value!r}: unknown {bad[0] if bad else 'empty list'}; use some of {','.join(known)}")
    return names


def oracle_cfg(params: Mapping[str, Any], model: str, endpoint: str, threads: int | None = None) -> OracleConfig:
    """The params.yaml oracle of ``model`` on ``endpoint`` (the chat format is the same oracle on the chat endpoint);
    ``threads`` overrides the server's threads (not part of cache keys: answers are shared)."""
    name = MODELS[model]
    settings = {**params["oracles"][name], "endpoint": endpoint, **({"n_threads": threads} if threads else {})}
    return OracleConfig.from_params(name, settings, params.get("oracle"))


def open_oracles(stack: ExitStack, params: Mapping[str, Any], model: str, formats: Sequence[str], cache_dir: Path,
                 log: Path, threads: int | None) -> Oracles:  # fmt: skip
    """One llama.cpp server for the model, and an oracle per format on it (opened by the project's factory)."""
    cfgs = {f: oracle_cfg(params, model, FORMATS[f].endpoint, threads) for f in formats}
    url = stack.enter_context(embedded_server(cfgs[formats[0]], cache_dir=cache_dir, log_path=log))
    by_format = {f: stack.enter_context(open_oracle(cfgs[f], cache_dir, server_url=url)) for f in formats}
    return Oracles(by_format, cfgs, cache_dir)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(PROBES), help="probes (elicit.datasets.probes.PROBES)")
    ap.add_argument("--models", default=",".join(MODELS), help="smollm2, gemma")
    ap.add_argument("--formats", default=",".join(FORMATS), help="claim, yesno, chat")
    ap.add_argument("--n", type=int, default=60, help="items per cell (whole consistency groups)")
    ap.add_argument("--k", type=int, default=4, help="examples per few-shot prompt")
    ap.add_argument("--seed", type=int, default=0, help="draws the items, their contexts and the bootstrap")
    ap.add_argument("--split", default="main", help="main (the search) or fresh (disjoint items, to confirm)")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "runs" / "signal_search")
    ap.add_argument("--threads", type=int, default=None, help="server threads (default: the oracle's in params)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="oracle settings and cache_dir")
    args = ap.parse_args(argv)
    try:
        datasets = _names(args.datasets, list(PROBES), "--datasets")
        models = _names(args.models, list(MODELS), "--models")
        formats = _names(args.formats, list(FORMATS), "--formats")
        if args.k < 1:
            raise UsageError(f"--k {args.k}: a few-shot prompt needs at least one example; use e.g. --k 4")
        for d in datasets:  # a bad n or split fails before any server starts
            probe_items(d, args.n, args.seed, args.split)
            outside = (args.n - PROBES[d].group_size) // 2  # items of each class outside a target's group
            if outside < -(-args.k // 2):
                need = PROBES[d].group_size + 2 * -(-args.k // 2)
                raise UsageError(f"--n {args.n} leaves too few examples outside a group of {d} for --k {args.k}; "
                                 f"use --n >= {need}")  # fmt: skip
    except ElicitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    cache_dir = ROOT / params.get("oracle", {}).get("cache_dir", ".cache/elicit")
    args.out.mkdir(parents=True, exist_ok=True)
    planned = sum(args.n * len(FORMATS[f].framings) * len(CONDITIONS) for f in formats) * len(datasets) * len(models)
    print(f"{len(datasets) * len(models) * len(formats)} cells, {planned} queries (cached ones cost nothing)")

    records: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    started = time.perf_counter()
    server_s = 0.0
    bar = tqdm(total=len(datasets) * len(models) * len(formats), desc="cells", unit="cell", position=0)
    for model in models:
        with ExitStack() as stack:
            t_server = time.perf_counter()
            oracles: Oracles | None = None
            failure = None
            try:
                log = args.out / f"server-{model}.log"
                oracles = open_oracles(stack, params, model, formats, cache_dir, log, args.threads)
            except ElicitError as exc:
                failure = f"failed: {str(exc).splitlines()[0][:300]}"
            server_s += time.perf_counter() - t_server
            for dataset in datasets:
                for f in formats:
                    base = {"model": model, "dataset": dataset, "format": f, "split": args.split, "n": args.n,
                            "k": args.k, "seed": args.seed}  # fmt: skip
                    if oracles is not None:
                        try:
                            record, rows = run_cell(dataset, FORMATS[f], oracles, FORMATS[f].template(dataset), args)
                            records.append({**base, **record, "status": "ok"})
                            frames.append(rows.assign(model=model, dataset=dataset, format=f))
                        except ElicitError as exc:
                            records.append({**base, "status": f"failed: {str(exc).splitlines()[0][:300]}"})
                    else:
                        records.append({**base, "status": failure})
                    bar.update(1)
                    bar.set_postfix(oracle_s=round(time.perf_counter() - started))
    bar.close()
    total = time.perf_counter() - started

    cells = pd.DataFrame(records)
    cells.to_csv(args.out / "cells.csv", index=False)
    (args.out / "cells.md").write_text(markdown(cells), encoding="utf-8")
    if frames:
        pd.concat(frames, ignore_index=True).to_parquet(args.out / "predictions.parquet", index=False)
    ok = cells[cells["status"] == "ok"]
    per_call = {
        f"{r['model']}/{r['format']}/{r['dataset']}": {"zero": r["s_per_call_zero"], "few": r["s_per_call_few"]}
        for r in ok.to_dict("records")
    }
    summary: dict[str, Any] = {
        "cells": len(cells),
        "failed": int((cells["status"] != "ok").sum()),
        "oracle_s": round(total, 1),
        "server_start_s": round(server_s, 1),
        "calls": int(ok["calls"].sum()) if len(ok) else 0,
        "cache_hits": int(ok["cache_hits"].sum()) if len(ok) else 0,
        "s_per_call": per_call,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(markdown(cells))
    print(
        f"oracle time: {total:.1f} s ({server_s:.1f} s starting servers), {summary['calls']} calls, "
        f"{summary['cache_hits']} cache hits; {summary['failed']} failed cells; outputs in {args.out}"
    )
    for r in ok.to_dict("records"):
        print(
            f"  {r['model']}/{r['format']}/{r['dataset']}: s/call zero-shot {_f(r['s_per_call_zero'], 3)}, "
            f"{args.k}-shot {_f(r['s_per_call_few'], 3)}; prompt tokens {_f(r['tokens_zero'], 0)}, "
            f"{_f(r['tokens_few'], 0)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
