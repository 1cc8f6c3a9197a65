"""The driver that asks all queries: prompts, cache, the query loop, predictions and telemetry.

One path for every oracle kind: each query row is rendered to a prompt, fitted to the oracle's context budget,
keyed by the oracle, and looked up in the cache; the distinct uncached prompts are asked through the `Oracle`
interface (`factory.open_oracle` picks the implementation: HTTP in `transport.py`, or the simulator), each answer
is committed to the cache as it arrives, and predictions come back in input order.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from elicit.oracle.base import Answer, Oracle, OracleConfig, OracleError, Request, new_counters, score_of
from elicit.oracle.cache import AnswerCache, canonical_json
from elicit.oracle.factory import open_oracle
from elicit.oracle.transport import payload_sha256
from elicit.prompts import (
    DEFAULT_ANSWER_WORDS,
    ContextOverflowError,
    Template,
    fit_context,
    render_chat,
    render_completion,
)

QUERY_COLUMNS = ("query_id", "target_id", "framing", "template_id", "context_ids", "context_shown")
PREDICTION_COLUMNS = (
    "lp_true",
    "lp_false",
    "score",
    "missing",
    "model",
    "oracle",
    "prompt_sha256",
    "prompt_tokens",
    "completion_tokens",
    "cached",
)


@dataclass
class _Prepared:
    keys: list[str]
    prompt_sha: list[str]
    requests: dict[str, Request]
    truncated: int
    skipped: int


def _template_map(templates: Sequence[Template] | Mapping[str, Template]) -> dict[str, Template]:
    if isinstance(templates, Mapping):
        return dict(templates)
    return {t.id: t for t in templates}


def _check_queries(queries: pd.DataFrame, items_text: Mapping[int, str], temps: Mapping[str, Template]) -> None:
    missing = [c for c in QUERY_COLUMNS if c not in queries.columns]
    if missing:
        raise OracleError(f"queries lack column(s) {missing}; a query row needs {list(QUERY_COLUMNS)}")
    bad_framing = ~queries["framing"].isin(["pos", "neg"])
    if bad_framing.any():
        row = queries[bad_framing].iloc[0]
        raise OracleError(f"query {row['query_id']}: framing {row['framing']!r} must be 'pos' or 'neg'")
    unknown = sorted(set(queries["template_id"]) - set(temps))
    if unknown:
        raise OracleError(
            f"template_id {unknown[0]!r} is not among the templates given ({sorted(temps)}); "
            "fix the plan or data/templates.yaml",
        )
    for qid, tid, ids, shown in zip(
        queries["query_id"],
        queries["target_id"],
        queries["context_ids"],
        queries["context_shown"],
        strict=True,
    ):
        if int(tid) not in items_text:
            raise OracleError(f"query {qid}: target_id {tid} is not an item_id of items")
        if len(ids) != len(shown):
            raise OracleError(f"query {qid}: context_ids and context_shown differ in length")
        for c in ids:
            if int(c) not in items_text:
                raise OracleError(f"query {qid}: context item {c} is not an item_id of items")
        for s in shown:
            if int(s) not in (0, 1):
                raise OracleError(f"query {qid}: context_shown holds {s!r}; shown labels are 0/1 values")


def _structured(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "target_id": int(row["target_id"]),
        "framing": str(row["framing"]),
        "template_id": str(row["template_id"]),
        "context_ids": [int(c) for c in row["context_ids"]],
        "context_shown": [int(c) for c in row["context_shown"]],
    }


def _prepare(
    queries: pd.DataFrame,
    items_text: Mapping[int, str],
    temps: Mapping[str, Template],
    cfg: OracleConfig,
    oracle: Oracle,
    count_tokens: Callable[[str], int] | None,
) -> _Prepared:
    """Render every row, fit its context to the oracle's budget, and key it (the oracle says what a key holds)."""
    chat = cfg.endpoint == "chat"
    n_ctx = oracle.n_ctx
    keys: list[str] = []
    shas: list[str] = []
    requests: dict[str, Request] = {}
    truncated = skipped = 0
    cols = ["query_id", "target_id", "framing", "template_id", "context_ids", "context_shown"]
    for row in queries[cols].to_dict("records"):
        q = _structured(row)
        tmpl = temps[q["template_id"]]
        ctx = [(items_text[c], s) for c, s in zip(q["context_ids"], q["context_shown"], strict=True)]
        target = items_text[q["target_id"]]
        try:
            fitted = fit_context(tmpl, q["framing"], target, ctx, n_ctx, cfg.context_margin, count_tokens, chat)
        except ContextOverflowError as exc:
            raise OracleError(
                f"query {row['query_id']}: {exc}; raise oracles.{cfg.name}.n_ctx or drop long items",
            ) from None
        truncated += fitted.truncated
        skipped += fitted.skipped
        payload: str | list[dict[str, str]]
        if chat:
            payload = render_chat(tmpl, q["framing"], target, fitted.context)
        else:
            payload = render_completion(tmpl, q["framing"], target, fitted.context)
        psha = payload_sha256(payload)
        if tmpl.answer_words != DEFAULT_ANSWER_WORDS:  # other answer words read another answer from one prompt
            q["answer_words"] = [w.lower() for w in tmpl.answer_words]
        key = oracle.request_key(q, payload)
        keys.append(key)
        shas.append(psha)
        if key not in requests:
            requests[key] = Request(key=key, payload=payload, query=q)
    return _Prepared(keys, shas, requests, truncated, skipped)


def _order_for_prefix_reuse(requests: Sequence[Request]) -> list[Request]:
    """Sort prompts so consecutive ones share long prefixes (the llama.cpp server reuses its cache)."""

    def text(r: Request) -> str:
        return r.payload if isinstance(r.payload, str) else canonical_json(r.payload)

    return sorted(requests, key=lambda r: (text(r), r.key))


def _items_text(items: pd.DataFrame) -> dict[int, str]:
    if "item_id" not in items.columns or "text" not in items.columns:
        raise OracleError("items need columns item_id and text")
    return {int(i): str(t) for i, t in zip(items["item_id"], items["text"], strict=True)}


async def ask(
    queries: pd.DataFrame,
    items: pd.DataFrame,
    oracle_cfg: OracleConfig,
    templates: Sequence[Template] | Mapping[str, Template],
    cache_dir: str | Path,
    gold: Mapping[int, int] | None = None,
    progress: bool = True,
    *,
    oracle: Oracle | None = None,
    server_url: str | None = None,
    server_log: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Ask the oracle every query row; return (predictions in input order, telemetry).

    oracle: one opened by `factory.open_oracle(oracle_cfg, ...)` to share between asks (an embedded server it
    started stays up); None opens one for this call from gold, server_url and server_log (see `open_oracle`:
    only the simulator reads gold). count_tokens: a tokenizer for the context budget (default: chars / 3.5).
    """
    t0 = time.perf_counter()
    cfg = oracle_cfg
    items_text = _items_text(items)
    temps = _template_map(templates)
    _check_queries(queries, items_text, temps)

    with ExitStack() as stack:
        if oracle is None:
            oracle = stack.enter_context(
                open_oracle(
                    cfg, cache_dir, gold=gold, server_url=server_url, server_log=server_log, count_tokens=count_tokens
                )
            )
        cache = stack.enter_context(AnswerCache(cache_dir)) if cfg.use_cache else None
        prep = _prepare(queries, items_text, temps, cfg, oracle, count_tokens)
        answers: dict[str, Answer] = {}
        if cache is not None:
            answers = {k: Answer.from_json(v) for k, v in cache.get_many(prep.requests).items()}
        hit_keys = set(answers)
        todo = _order_for_prefix_reuse([r for k, r in prep.requests.items() if k not in hit_keys])
        cache_hits = sum(1 for k in prep.keys if k in hit_keys)

        counters = new_counters()
        if todo:
            bar = stack.enter_context(
                tqdm(
                    total=len(todo),
                    unit="call",
                    desc=f"oracle {cfg.name}",
                    disable=not progress,
                    dynamic_ncols=True,
                ),
            )
            bar.set_postfix(cache_hits=cache_hits, refresh=False)
            batch: list[tuple[str, dict[str, Any]]] = []

            def on_answer(req: Request, ans: Answer) -> None:
                answers[req.key] = ans
                if cache is not None:
                    if oracle.batch_writes:
                        batch.append((req.key, ans.to_json()))
                    else:
                        cache.put(req.key, ans.to_json())  # committed now: a kill loses nothing answered
                bar.update(1)

            counters = await oracle.answer_many(todo, on_answer)
            if batch and cache is not None:
                cache.put_many(batch)

    preds = _assemble(queries, prep, answers, hit_keys, cfg, oracle.model_label())
    wall = time.perf_counter() - t0
    telemetry = {
        "oracle": cfg.name,
        "kind": cfg.kind,
        "model": oracle.model_label(),
        "endpoint": cfg.endpoint,
        "queries": len(queries),
        "unique_prompts": len(prep.requests),
        "calls": int(counters["calls"]),
        "retries": int(counters["retries"]),
        "retry_wait_s": float(counters.get("retry_wait_s", 0.0)),
        "throttle_wait_s": float(counters.get("throttle_wait_s", 0.0)),
        "cache_hits": int(cache_hits),
        "prompt_tokens": int(counters["prompt_tokens"]),
        "completion_tokens": int(counters["completion_tokens"]),
        "wall_s": round(wall, 3),
        "calls_per_s": round(counters["calls"] / wall, 3) if wall > 0 else None,
        "missing": int(preds["missing"].sum()),
        "truncated_context": int(prep.truncated),
        "skipped_context": int(prep.skipped),
    }
    return preds, telemetry


def _assemble(
    queries: pd.DataFrame,
    prep: _Prepared,
    answers: Mapping[str, Answer],
    hit_keys: set[str],
    cfg: OracleConfig,
    model_label: str,
) -> pd.DataFrame:
    """Prediction columns next to the query columns, row for row in input order."""
    got = [answers[k] for k in prep.keys]
    lp_t = [a.lp_true for a in got]
    lp_f = [a.lp_false for a in got]
    scores = [score_of(t, f, fr) for t, f, fr in zip(lp_t, lp_f, queries["framing"], strict=True)]
    out = queries.copy()

    def floats(vals: Sequence[float | None]) -> pd.arrays.FloatingArray:
        arr = np.array([np.nan if v is None or not math.isfinite(v) else v for v in vals], dtype=np.float64)
        mask = np.array([v is None or not math.isfinite(v) for v in vals], dtype=bool)
        return pd.arrays.FloatingArray(arr, mask)

    out["lp_true"] = floats(lp_t)
    out["lp_false"] = floats(lp_f)
    out["score"] = floats(scores)
    out["missing"] = np.array([s is None for s in scores], dtype=bool)
    out["model"] = pd.array([model_label] * len(out), dtype="string")
    out["oracle"] = pd.array([cfg.name] * len(out), dtype="string")
    out["prompt_sha256"] = pd.array(prep.prompt_sha, dtype="string")
    out["prompt_tokens"] = pd.array([a.prompt_tokens for a in got], dtype="Int64")
    out["completion_tokens"] = pd.array([a.completion_tokens for a in got], dtype="Int64")
    out["cached"] = np.array([k in hit_keys for k in prep.keys], dtype=bool)
    return out


def ask_sync(
    queries: pd.DataFrame,
    items: pd.DataFrame,
    oracle_cfg: OracleConfig,
    templates: Sequence[Template] | Mapping[str, Template],
    cache_dir: str | Path,
    gold: Mapping[int, int] | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`ask` for stage CLIs (runs its own event loop)."""
    return asyncio.run(ask(queries, items, oracle_cfg, templates, cache_dir, gold, progress, **kwargs))
