"""protocol: the ICM paper's evaluation (Wen et al. 2025) of every label set of the run, opt-in (``protocol.enabled``).

The run's items are split without gold, by whole consistency groups, into a demonstration half and a test half; each
label set's labels of the demonstration half (seed-mean p_true >= 0.5) are shown as many-shot demonstrations (at most
``protocol.max_demos``, the same items in the same order for every label set) to predict each test item in both
framings, through the run's cached oracle client. Two references: ``no_demos`` (no demonstrations) and ``gold`` (the
demonstration half's gold labels). **An evaluation stage, like evaluate**: it reads the test half's gold to score and
the demonstration half's gold only for the ``gold`` reference row (and the simulated oracle gets gold, as in every
oracle stage). Writes ``protocol/accuracy.parquet`` (per method: test accuracy with a bootstrap CI, paired
differences vs no_demos and gold; a ``gold_budget``'s items are not scored), ``protocol/protocol.json``,
``protocol/calls.parquet`` (query rows with a
``method`` column) and ``protocol/split.parquet`` (item_id, half, unit)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.baselines.fewshot import ask_scores
from elicit.gold_budget import read_budget
from elicit.io import write_json, write_parquet
from elicit.oracle.simulated import context_cap
from elicit.pipeline import label_methods
from elicit.protocol import (
    GOLD,
    NO_DEMOS,
    REFERENCES,
    ProtocolConfig,
    ProtocolError,
    accuracy_table,
    demo_orders,
    half_ids,
    hard_labels,
    predictions,
    protocol_queries,
    split,
    summary,
)
from elicit.stages import _cli
from elicit.stages._labels import fresh_dir, read_methods
from elicit.stages._oracle import OracleSession

JOB = "protocol"


def _gold(items: pd.DataFrame, ids: list[int]) -> dict[int, int]:
    """item_id → gold for the given items that have gold."""
    g = items.set_index("item_id")["gold"]
    return {int(i): int(g[i]) for i in ids if not pd.isna(g[i])}


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--embeddings", type=Path, nargs="*", help="embeddings.npy: simulated oracles only")
    p.add_argument("--labels", type=Path, nargs="*", help="labels/<method> folders (default: every label set)")
    p.add_argument("--budget", type=Path, help="gold_budget.parquet: items left out of the test scores")
    p.add_argument("--out", type=Path, help="protocol folder")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    pcfg = ProtocolConfig.from_params(cfg.section("protocol"))
    seed = cfg.seed if pcfg.seed is None else pcfg.seed
    folders = args.labels or [paths.labels_dir(m) for m in label_methods(cfg.params, {"run": cfg.name})]
    with _cli.telemetry(paths.telemetry(JOB), JOB) as tel:
        items = pd.read_parquet(args.items or paths.items)
        labels = read_methods(folders)
        clash = [m for m in labels if m in REFERENCES]
        if clash:
            raise ProtocolError(f"a label set is named {clash[0]!r}, a reference row of the protocol; rename it")
        halves = split(items.drop(columns=["gold"]), pcfg.test_share, seed)
        demo, test = half_ids(halves, "demo"), half_ids(halves, "test")
        with OracleSession(cfg, items, JOB, _cli.optional_input(args.embeddings, paths.embeddings)) as session:
            template_id = pcfg.template_id or session.templates[0].id
            cap = pcfg.max_demos if session.cfg.sim is None else min(pcfg.max_demos, context_cap(session.cfg.sim))
            orders = demo_orders(demo, test, cap, seed)
            shown: dict[str, dict[int, int] | None] = {
                NO_DEMOS: None,
                GOLD: _gold(items, demo),  # the golden reference: the only demo gold read
            }
            for method, seeds in labels.items():
                own = hard_labels(seeds)
                shown[method] = {d: own[d] for d in demo if d in own}
            queries = pd.concat(
                [protocol_queries(m, orders, s, pcfg.framings, template_id, seed) for m, s in shown.items()],
                ignore_index=True,
            )
            _cli.log.info("protocol: %d demo / %d test items, %d calls", len(demo), len(test), len(queries))
            calls, _ = ask_scores(session.ask, queries)
        out = fresh_dir(args.out or paths.protocol)
        write_parquet(calls.reset_index(drop=True), out / "calls.parquet")
        write_parquet(halves, out / "split.parquet")
        units = dict(zip(halves["item_id"].astype(int), halves["unit"].astype(int), strict=True))
        budget = set(read_budget(args.budget or paths.gold_budget)[0].tolist())
        scored = [t for t in test if t not in budget]  # the budget's labels were chosen with its gold (as evaluate)
        table = accuracy_table(predictions(calls), _gold(items, scored), units, pcfg.n_boot, pcfg.ci, seed)
        write_parquet(table, out / "accuracy.parquet")
        write_json(summary(table, halves, pcfg, seed), out / "protocol.json")
        tel.update(session.telemetry, methods=len(shown), demo_cap=cap)


if __name__ == "__main__":
    _cli.main(run)
