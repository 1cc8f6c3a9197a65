"""Hostile input to an `openai`-kind oracle: a server that trickles its answer, a key pasted where its name
belongs, and a server that echoes the key right across the point where error messages are cut.

- A server that answers 200 and then sends one byte every 0.3 s never trips a per-read timeout: `timeout_s`
  must bound each try as a whole (connect + full body), each retry is logged (WARNING, one line, tries left),
  and the give-up error is one line naming the fix.
- `api_key_env: "sk-..."` (the key itself, not the NAME of the variable) is refused without echoing the value.
- An error body that echoes the key is scrubbed before the message is cut: not even a prefix survives.

The fake server is tests/helpers.py's FakeOpenAI (loopback, no model); the trickle is one extra reply kind.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import OracleConfig, OracleError, ask_sync
from elicit.prompts import Template
from helpers import FakeOpenAI, Reply, fake_oracle_cfg

T = Template(id="t1", pos="Is it wrong?", neg="Is it acceptable?", item="Scenario")
LOGGER = "elicit.oracle.transport"


def items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": np.arange(n), "text": [f"I did thing number {i}." for i in range(n)]})


def queries(n: int) -> pd.DataFrame:
    rows = [{"query_id": f"q{i}", "target_id": i, "framing": "pos", "template_id": "t1", "context_ids": [],
             "context_shown": []} for i in range(n)]  # fmt: skip
    return pd.DataFrame(rows)


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------------------------------
# a trickling server: 200 and headers at once, then the body one byte at a time


class Trickle(Reply):
    """A 200 whose body (`length` spaces, announced in Content-Length) comes one byte every `every` seconds."""

    def __init__(self, every: float = 0.3, length: int = 40) -> None:
        super().__init__(body=b" " * length)
        self.every = every


def trickling(script: Callable[[int, str], Reply | None]) -> FakeOpenAI:
    """FakeOpenAI that sends a `Trickle` reply byte by byte (every other reply as usual)."""
    srv = FakeOpenAI(script)
    normal: Any = srv.server.RequestHandlerClass

    class Handler(normal):  # type: ignore[misc]
        def _send(self, reply: Reply, data: bytes) -> None:
            if not isinstance(reply, Trickle):
                return super()._send(reply, data)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(reply.every)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on this try
            self.close_connection = True
            return None

    srv.server.RequestHandlerClass = Handler
    return srv


TRICKLE_S = 40 * 0.3  # one whole trickled body: what a per-read timeout would wait, per try
TRICKLE_CASES = {
    # every try trickles: 3 tries of ~1 s each, then one line naming the fix
    "trickle_always_completions": (lambda n, p: Trickle(), "completions", 3),
    "trickle_always_chat": (lambda n, p: Trickle(), "chat", 3),
    # the first try trickles, the retry is answered: one retry, logged, and the answer is kept
    "trickle_once_then_answer": (lambda n, p: Trickle() if n == 1 else None, "completions", None),
}


@pytest.mark.parametrize("case", sorted(TRICKLE_CASES))
def test_trickling_server_times_out_per_try(case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script, endpoint, gives_up_after = TRICKLE_CASES[case]
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with trickling(script) as srv:
        cfg = fake_oracle_cfg(srv.url, endpoint=endpoint, timeout_s=1, max_retries=2)
        t0 = time.monotonic()
        if gives_up_after is not None:
            with pytest.raises(OracleError) as info:
                ask_sync(queries(1), items(1), cfg, [T], tmp_path, progress=False)
            elapsed = time.monotonic() - t0
            msg = str(info.value)
            assert "\n" not in msg
            assert msg == (
                f"oracle 'fake': {srv.url} did not answer within 1s (after 3 tries); "
                "raise oracles.fake.timeout_s or check the server"
            )
            assert len(srv.requests) == gives_up_after
        else:
            preds, tel = ask_sync(queries(1), items(1), cfg, [T], tmp_path, progress=False)
            elapsed = time.monotonic() - t0
            assert tel["calls"] == 1 and tel["retries"] == 1 and not preds["missing"].any()
            assert len(srv.requests) == 2
    tries = len(srv.requests)
    assert elapsed < tries * 1.0 + 2.5 < TRICKLE_S, f"took {elapsed:.1f}s"  # each try cut at ~timeout_s
    lines = retry_lines(caplog)
    assert len(lines) == tries - 1, lines  # one line per retry, none for the final give-up
    for k, line in enumerate(lines, start=1):
        left = 3 - k
        assert "\n" not in line
        assert line.startswith(f"oracle 'fake': try {k} of 3 failed (no complete answer from {srv.url} within 1s)")
        assert line.endswith(f"{left} {'try' if left == 1 else 'tries'} left"), line


# --------------------------------------------------------------------------------------------------
# a key pasted into api_key_env

PASTED = "sk-proj-Zx81aQ4LmN0pR7sT2uV5wY9bC3dE6fG"
NAME_NOT_KEY = (
    "oracles.remote.api_key_env: must be the NAME of an environment variable (like OPENAI_API_KEY), not the key "
    "itself; put the key in the environment and its name here"
)


def remote(**kw: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", **kw}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(PASTED, id="openai_key"),
        pytest.param("Bearer " + PASTED, id="bearer_header"),
        pytest.param(PASTED + "\n", id="name_like_with_newline"),
        pytest.param("0123456789abcdef0123456789abcdef", id="hex_key_starts_with_digit"),
        pytest.param("hf_" + PASTED[3:] + "=", id="trailing_padding"),
        pytest.param(12345678901234567890, id="digits_only_key_read_as_int"),
    ],
)
def test_api_key_env_refuses_a_key_without_echoing_it(value: Any) -> None:
    for d, defaults in ((remote(api_key_env=value), None), (remote(), {"api_key_env": value})):
        with pytest.raises(OracleError) as info:
            OracleConfig.from_params("remote", d, defaults)
        err = info.value
        text = str(err) + repr(err) + "".join(traceback.format_exception(err))
        assert str(err).startswith("oracles.remote.api_key_env: must be ")
        assert "NAME of an environment variable" in str(err) and "\n" not in str(err)
        assert str(value).strip() not in text and str(value)[:8] not in text


def test_check_oracle_params_at_load_time() -> None:
    """What load_params calls for every oracle: the same checks as OracleConfig.from_params, nothing built."""
    from elicit.oracle.base import check_oracle_params

    for name in ("OPENAI_API_KEY", "_key", "key2", "A"):
        assert check_oracle_params("remote", remote(api_key_env=name)) is None
    assert check_oracle_params("remote", remote(api_key_env=None)) is None
    with pytest.raises(OracleError) as info:
        check_oracle_params("remote", remote(api_key_env=PASTED))
    assert str(info.value) == NAME_NOT_KEY
    with pytest.raises(OracleError, match=r"^oracles\.remote\.timeout_s: 0 is less than or equal to the minimum of 0"):
        check_oracle_params("remote", remote(timeout_s=0))


def test_ask_refuses_a_key_in_api_key_env_without_echoing_it() -> None:
    """A config built in code (no from_params) with the key as api_key_env: no 'variable sk-... is not set'. The
    typed OracleConfig checks every construction, so the key is refused as the config is built, before any ask."""
    with pytest.raises(OracleError) as info:
        OracleConfig(name="remote", kind="openai", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=PASTED)
    assert str(info.value) == NAME_NOT_KEY
    assert PASTED[:8] not in "".join(traceback.format_exception(info.value))


# --------------------------------------------------------------------------------------------------
# a key echoed across the cut of a server's error message (messages keep the first 300 characters)

KEY = "sk-Q7vX2mPzR4wq9f3kL0aBwJ8yT"
ENV = "ELICIT_HOSTILE_KEY"
CUT = 300


def leaked(text: str) -> list[str]:
    """Every 6-character piece of the key found in `text`."""
    return [KEY[i : i + 6] for i in range(len(KEY) - 5) if KEY[i : i + 6] in text]


@pytest.mark.parametrize(
    ("status", "at_cut", "shape"),
    [
        pytest.param(401, 8, "message", id="401_key_prefix_8_at_cut"),
        pytest.param(403, 6, "vllm", id="403_vllm_style_body_key_prefix_6_at_cut"),
        pytest.param(500, 8, "message", id="500_retried_key_prefix_8_at_cut"),
        pytest.param(429, 20, "message", id="429_retried_key_prefix_20_at_cut"),
    ],
)
def test_echoed_key_is_scrubbed_before_the_cut(
    status: int, at_cut: int, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The key's first `at_cut` characters sit right before the cut, in an OpenAI-style body
    ({"error": {"message": ...}}) or a vLLM-style one ({"object": "error", "message": ...})."""
    monkeypatch.setenv(ENV, KEY)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    echo = "Incorrect API key provided: ".ljust(CUT - at_cut, ".") + KEY + " -- see https://example.invalid/keys"
    assert echo[:CUT].endswith("." + KEY[:at_cut])
    if shape == "message":
        body: dict[str, Any] = {"error": {"message": echo, "code": "bad_key"}}
    else:
        body = {"object": "error", "message": echo, "type": "Unauthorized", "code": status}
    with FakeOpenAI(lambda n, p: Reply(status, body=body)) as srv:
        cfg = fake_oracle_cfg(srv.url, api_key_env=ENV, max_retries=1)
        with pytest.raises(OracleError) as info:
            ask_sync(queries(1), items(1), cfg, [T], tmp_path, progress=False)
        assert all(h[3].get("authorization") == f"Bearer {KEY}" for h in srv.requests)  # it was sent
    err = info.value
    assert "\n" not in str(err) and f"HTTP {status}" in str(err)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert leaked(str(err) + repr(err) + "".join(traceback.format_exception(err)) + logged) == []
    if status in (429, 500):  # retried: the retry line says why, scrubbed too
        assert len(retry_lines(caplog)) == 1 and f"HTTP {status}" in retry_lines(caplog)[0]
