"""Oracle faults as a table: each bad server behaviour gives one clear line naming the endpoint and the fix, or a
counted skip (`missing`, null score) -- never a silent wrong number. Plus Retry-After, tokens_per_min, and the
config checks of those keys.

The fake server is tests/helpers.py's FakeOpenAI (loopback, no model). Faults already covered by
tests/test_oracle_client.py are not repeated here: 429 until retries run out, unreachable endpoint, wrong model
(404), no logprobs (both endpoints), a non-JSON body, server-side context overflow, an absent False answer.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import OracleConfig, OracleError, ask_sync
from elicit.oracle.throttle import request_tokens, retry_after_s
from elicit.prompts import Template, estimate_tokens
from helpers import FakeOpenAI, Reply, fake_oracle_cfg

T = Template(id="t1", pos="Is it wrong?", neg="Is it acceptable?", item="Scenario")


def items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": np.arange(n), "text": [f"I did thing number {i}." for i in range(n)]})


def queries(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "query_id": f"q{i}",
                "target_id": i,
                "framing": "pos",
                "template_id": "t1",
                "context_ids": [],
                "context_shown": [],
            }
            for i in range(n)
        ]
    )


# --------------------------------------------------------------------------------------------------
# the fault table


@dataclass(frozen=True)
class Fault:
    script: Callable[[int, str], Reply | None]
    error: str | None = None  # the message's exact tail after "oracle 'fake': " ({url} = the base_url)
    missing: int = 0  # rows counted as missing (score null) when no error
    requests: int | None = None  # POSTs the server must have seen
    retries: int = 0
    cfg: tuple[tuple[str, Any], ...] = ()


N = 3  # queries per fault
FAULTS: dict[str, Fault] = {
    "http_500_always": Fault(
        lambda n, p: Reply(500),
        error="HTTP 500 from {url} after 3 tries: fake error 500; the server is failing: check it (and its log), "
        "or raise oracles.fake.max_retries",
        requests=3,
    ),
    "http_500_then_success": Fault(
        lambda n, p: Reply(500) if n <= 2 else None,
        requests=N + 2,
        retries=2,
    ),
    "http_503_retry_after_then_success": Fault(
        lambda n, p: Reply(503, headers={"Retry-After": "0.2"}) if n == 1 else None,
        requests=N + 1,
        retries=1,
    ),
    "timeout": Fault(
        lambda n, p: Reply(delay=1.5),
        error="{url} did not answer within 0.3s (after 2 tries); raise oracles.fake.timeout_s or check the server",
        requests=2,
        cfg=(("timeout_s", 0.3), ("max_retries", 1)),
    ),
    "body_cut_short_of_content_length": Fault(
        lambda n, p: Reply(cut=40),
        error="the connection to {url} broke mid-response after 3 tries (peer closed connection without sending "
        "complete message body (received 40 bytes, expected ",
        requests=3,
    ),
    "truncated_json": Fault(
        lambda n, p: Reply(body=b'{"id": "x", "object": "text_completion", "choi'),
        error="malformed response from {url} (JSONDecodeError: Unterminated string starting at: line 1 column 42 "
        "(char 41)); is oracles.fake.base_url an OpenAI-compatible /v1 endpoint?",
        requests=1,
    ),
    "html_instead_of_json": Fault(
        lambda n, p: Reply(body=b"<html><body>502 Bad Gateway</body></html>"),
        error="malformed response from {url} (JSONDecodeError: Expecting value: line 1 column 1 (char 0)); "
        "is oracles.fake.base_url an OpenAI-compatible /v1 endpoint?",
        requests=1,
    ),
    "no_choices": Fault(
        lambda n, p: Reply(body={"id": "x", "object": "text_completion", "created": 0, "model": "m", "choices": []}),
        error="malformed response from {url} (no choices); is oracles.fake.base_url an OpenAI-compatible /v1 endpoint?",
        requests=1,
    ),
    "probabilities_sent_as_logprobs": Fault(
        lambda n, p: Reply(top={" True": 0.7, " False": 0.3}),
        error="malformed response from {url} (logprob 0.7 of token ' True' is above 0, not a log-probability); "
        "is oracles.fake.base_url an OpenAI-compatible /v1 endpoint?",
        requests=1,
    ),
    # a tokenizer/model that never puts either answer word in its top tokens: a counted skip
    "neither_answer_in_top": Fault(lambda n, p: Reply(top={" yes": -0.2, " no": -1.9, " maybe": -3.0}), missing=N),
    # "True" at -inf is probability 0: no finite log-odds, so counted as missing (it once crashed the cache)
    "answer_at_minus_inf": Fault(lambda n, p: Reply(top={" True": -math.inf, " False": -0.1}), missing=N),
    "answer_is_nan": Fault(lambda n, p: Reply(top={" True": math.nan, " False": -0.1}), missing=N),
    "other_variant_at_minus_inf_is_ignored": Fault(
        lambda n, p: Reply(top={" True": math.log(0.6), "True": -math.inf, " False": math.log(0.3)}),
    ),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_table(name: str, tmp_path: Path) -> None:
    fault = FAULTS[name]
    with FakeOpenAI(fault.script) as srv:
        cfg = fake_oracle_cfg(srv.url, **dict(fault.cfg))
        if fault.error is not None:
            with pytest.raises(OracleError) as info:
                ask_sync(queries(N), items(N), cfg, [T], tmp_path, progress=False)
            msg = str(info.value)
            assert "\n" not in msg
            assert msg.startswith(f"oracle 'fake': {fault.error.format(url=srv.url)}"), msg
        else:
            preds, tel = ask_sync(queries(N), items(N), cfg, [T], tmp_path, progress=False)
            assert tel["calls"] == N and tel["retries"] == fault.retries
            assert tel["missing"] == fault.missing == int(preds["missing"].sum())
            # a missing row has a null score, every other row a finite one: no NaN, no inf, no sentinel
            scores = preds["score"]
            assert scores.isna().tolist() == preds["missing"].tolist()
            assert np.isfinite(scores.dropna().to_numpy(float)).all()
            for col in ("lp_true", "lp_false"):
                assert np.isfinite(preds[col].dropna().to_numpy(float)).all()
            if name == "other_variant_at_minus_inf_is_ignored":
                assert np.allclose(scores.to_numpy(float), math.log(2))
        if fault.requests is not None:
            assert len(srv.requests) == fault.requests


def test_answers_before_a_failure_are_kept_and_not_asked_again(tmp_path: Path) -> None:
    """HTTP 500 for one prompt until retries run out: the answers already in stay cached; the re-run asks the
    failed prompt and those never reached, nothing else."""
    bad = "thing number 3."
    broken = {"yes": True}

    def script(n: int, prompt: str) -> Reply | None:
        return Reply(500) if broken["yes"] and bad in prompt else None

    q, it = queries(6), items(6)
    with FakeOpenAI(script) as srv:  # the same server (the base_url is part of the cache key) ...
        cfg = fake_oracle_cfg(srv.url, concurrency=1)
        with pytest.raises(OracleError, match=rf"HTTP 500 from {re.escape(srv.url)} after 3 tries"):
            ask_sync(q, it, cfg, [T], tmp_path, progress=False)
        first = srv.prompts()
        answered = [p for p in first if bad not in p]
        assert 0 < len(answered) < 6 and first[len(answered) :] == [first[-1]] * 3  # sequential, prefix order
        broken["yes"] = False  # ... healed
        srv.requests.clear()
        preds, tel = ask_sync(q, it, cfg, [T], tmp_path, progress=False)
        again = srv.prompts()
    assert tel["cache_hits"] == len(answered) and tel["calls"] == 6 - len(answered) == len(again)
    assert not set(again) & set(answered), "an answered prompt was asked again"
    assert any(bad in p for p in again) and len(again) == len(set(again))
    assert not preds["missing"].any() and preds["cached"].sum() == len(answered)


# --------------------------------------------------------------------------------------------------
# Retry-After


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"Retry-After": "1"}, 1.0),
        ({"retry-after-ms": "400"}, 0.4),
        ({"retry-after-ms": "300", "Retry-After": "5"}, 0.3),  # the finer header wins
    ],
)
def test_429_retry_after_is_honoured(tmp_path: Path, headers: dict[str, str], expected_wait: float) -> None:
    def script(n: int, prompt: str) -> Reply | None:
        return Reply(429, headers=headers) if n == 1 else None

    with FakeOpenAI(script) as srv:
        # backoff alone would retry after 0.01 s: a gap of ~expected_wait proves the header was read
        preds, tel = ask_sync(queries(1), items(1), fake_oracle_cfg(srv.url), [T], tmp_path, progress=False)
        t = srv.times()
    assert len(t) == 2 and tel["calls"] == 1 and tel["retries"] == 1 and not preds["missing"].any()
    assert expected_wait - 0.02 <= t[1] - t[0] < expected_wait + 1.0
    assert tel["retry_wait_s"] == pytest.approx(expected_wait)


def test_retry_after_is_capped(tmp_path: Path) -> None:
    def script(n: int, prompt: str) -> Reply | None:
        return Reply(429, headers={"Retry-After": "3600"}) if n == 1 else None

    with FakeOpenAI(script) as srv:
        t0 = time.monotonic()
        _, tel = ask_sync(
            queries(1), items(1), fake_oracle_cfg(srv.url, max_retry_after_s=0.3), [T], tmp_path, progress=False
        )
    assert time.monotonic() - t0 < 5 and tel["retry_wait_s"] == pytest.approx(0.3) and tel["calls"] == 1


def test_retry_after_holds_every_worker(tmp_path: Path) -> None:
    """One worker told to wait makes all workers wait: no request starts inside the server's pause."""
    pause = 0.8

    def script(n: int, prompt: str) -> Reply | None:
        return Reply(429, headers={"Retry-After": str(pause)}, delay=0.05) if n == 1 else Reply(delay=0.05)

    with FakeOpenAI(script) as srv:
        _, tel = ask_sync(
            queries(12), items(12), fake_oracle_cfg(srv.url, concurrency=3), [T], tmp_path, progress=False
        )
        t = srv.times()
    assert tel["calls"] == 12 and tel["retries"] == 1
    told = t[0] + 0.05  # when the 429 was sent
    inside = [x - told for x in t if told + 0.25 < x < told + pause - 0.1]  # slack: requests granted before
    assert not inside, f"requests started {inside} s into a {pause} s Retry-After pause"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: retry now
        ({"retry-after": "whenever"}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    exc = SimpleNamespace(response=SimpleNamespace(headers=headers))
    assert retry_after_s(exc) == expected  # type: ignore[arg-type]


def test_retry_after_http_date_in_the_future() -> None:
    from email.utils import formatdate

    exc = SimpleNamespace(response=SimpleNamespace(headers={"retry-after": formatdate(time.time() + 30, usegmt=True)}))
    wait = retry_after_s(exc)  # type: ignore[arg-type]
    assert wait is not None and 28 <= wait <= 31


# --------------------------------------------------------------------------------------------------
# tokens_per_min


def test_tokens_per_min_spaces_calls_across_workers(tmp_path: Path) -> None:
    with FakeOpenAI() as srv:
        # probe the prompts' size once (cache off for the probe so it does not answer the real run)
        ask_sync(queries(1), items(1), fake_oracle_cfg(srv.url, cache=False), [T], tmp_path, progress=False)
        per_request = estimate_tokens(srv.prompts()[0]) + 1
        assert request_tokens(srv.prompts()[0]) == per_request
        srv.requests.clear()
        tpm = 120 * per_request  # two requests per second; the bucket holds one second's worth (2 requests)
        n = 6
        cfg = fake_oracle_cfg(srv.url, tokens_per_min=tpm, concurrency=3)
        before = time.monotonic()  # the server stamps arrivals with the same clock, in this process
        _, tel = ask_sync(queries(n), items(n), cfg, [T], tmp_path, progress=False)
        t = srv.times()
    assert len(t) == n and tel["calls"] == n
    sizes = [estimate_tokens(p) + 1 for p in srv.prompts()]
    assert max(sizes) - min(sizes) <= 1  # same-length prompts
    rate = tpm / 60.0
    # a full bucket (one second's tokens) lets the first two go at once; the others wait for tokens
    bound = (sum(sizes[:-1]) + sizes[-1] - rate) / rate
    assert bound > 1.5
    last = t[-1] - before  # >= the grant time of the last request, whatever a connection setup costs
    assert bound <= last < bound + 2.0, (last, bound)
    assert sum(x - before < 0.4 for x in t) <= 2  # only the bucket's one second's worth went at once
    assert tel["throttle_wait_s"] >= bound - 0.3


def test_request_tokens_of_chat_messages() -> None:
    msgs = [{"role": "system", "content": "x" * 35}, {"role": "user", "content": "y" * 70}]
    assert request_tokens(msgs) == 10 + 4 + 20 + 4 + 3 + 1
    assert request_tokens("z" * 7, count_tokens=len) == 8


# --------------------------------------------------------------------------------------------------
# config checks of the new keys


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"tokens_per_min": 0}, "oracles.o.tokens_per_min: 0 is less than or equal to the minimum of 0"),
        ({"tokens_per_min": "90k"}, "oracles.o.tokens_per_min: '90k' is not of type 'number'"),
        ({"tokens_per_min": True}, "oracles.o.tokens_per_min: True is not of type 'number'"),
        ({"tokens_per_min": math.inf}, "oracles.o.tokens_per_min: inf is not a finite number"),
        ({"requests_per_s": -1}, "oracles.o.requests_per_s: -1 is less than or equal to the minimum of 0"),
        ({"max_retry_after_s": 0}, "oracles.o.max_retry_after_s: 0 is less than or equal to the minimum of 0"),
        ({"max_retry_after_s": None}, "oracles.o.max_retry_after_s: must not be null"),
        (
            {"tokens_per_minute": 1000},
            "oracles.o.tokens_per_minute: unknown key 'tokens_per_minute'; did you mean 'tokens_per_min'? known keys:",
        ),
    ],
)
def test_rate_limit_config_errors(d: dict[str, Any], message: str) -> None:
    with pytest.raises(OracleError) as info:
        OracleConfig.from_params("o", {"kind": "openai", "base_url": "http://x/v1", "model": "m", **d})
    assert str(info.value).startswith(message)


def test_rate_limit_config_values() -> None:
    cfg = OracleConfig.from_params(
        "o",
        {"kind": "openai", "base_url": "http://x/v1", "model": "m", "tokens_per_min": 90000, "requests_per_s": None},
        {"max_retry_after_s": 30, "cache_dir": ".cache/elicit"},
    )
    assert cfg.tokens_per_min == 90000.0 and cfg.requests_per_s is None and cfg.max_retry_after_s == 30.0
    default = OracleConfig.from_params("o", {"kind": "openai", "base_url": "http://x/v1", "model": "m"})
    assert default.tokens_per_min is None and default.max_retry_after_s == 60.0


def test_schema_checks_rate_limit_keys(tmp_path: Path) -> None:
    import copy

    import yaml

    from elicit.config import ParamsError, load_params

    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.pop("include", None)  # the study's runs (study.yaml) are not needed here
    good = copy.deepcopy(params)
    good["oracles"]["openai_chat"]["tokens_per_min"] = 200000
    good["oracle"]["max_retry_after_s"] = 30
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    load_params(tmp_path / "good.yaml")
    for section, key, value in (
        (("oracles", "openai_chat"), "tokens_per_min", "lots"),
        (("oracles", "openai_chat"), "tokens_per_min", 0),
        (("oracle",), "max_retry_after_s", -5),
    ):
        bad = copy.deepcopy(params)
        node = bad
        for s in section:
            node = node[s]
        node[key] = value
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ParamsError, match=rf"{'.'.join(section)}\.{key}: "):
            load_params(tmp_path / "bad.yaml")
