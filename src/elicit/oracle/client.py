"""The driver that asks all queries: prompts, cache, an OpenAI-compatible async client, telemetry.

One path for every oracle kind: each query row is rendered to a prompt, keyed, looked up in the cache;
the distinct uncached prompts are asked (HTTP with bounded concurrency and retries, or the simulator),
each answer is committed to the cache the moment it arrives, and predictions come back in input order.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import errno
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import openai
import pandas as pd
from tqdm.auto import tqdm

from elicit.oracle.base import (
    Answer,
    OnAnswer,
    OracleConfig,
    OracleError,
    Request,
    api_key_env_problem,
    parse_top_logprobs,
    score_of,
)
from elicit.oracle.cache import AnswerCache, cache_key, canonical_json, sha256_text
from elicit.prompts import (
    ContextOverflowError,
    Template,
    estimate_tokens,
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
_MAX_LOGPROB = 1e-3
_CONTEXT_WORDS = ("context", "exceed", "too long", "maximum", "n_ctx", "tokens")

log = logging.getLogger(__name__)


def _same(text: str) -> str:
    return text


def sampling_params(cfg: OracleConfig) -> dict[str, Any]:
    """The request's sampling parameters; part of the cache key."""
    if cfg.endpoint == "chat":
        return {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": cfg.top_logprobs}
    return {"max_tokens": 1, "temperature": 0, "logprobs": cfg.top_logprobs}


# ----------------------------------------------------------------------------------------------------
# HTTP oracle


class _Throttle:
    """What every worker waits for before it sends a request (one instance shared by all workers).

    - requests_per_s: request starts spaced by 1/rate seconds.
    - tokens_per_min: a token bucket refilled at tokens_per_min / 60 per second, holding one second's worth
      (or one request, if larger) and starting full; a request takes its estimated tokens and may leave the
      bucket in debt, which later requests wait out, so the long-run rate never exceeds the limit.
    - a server's Retry-After: `hold(s)` pauses every worker's next start until then, not just the one told.
    """

    def __init__(self, requests_per_s: float | None, tokens_per_min: float | None) -> None:
        self.interval = 1.0 / requests_per_s if requests_per_s else 0.0
        self.next = 0.0
        self.token_rate = tokens_per_min / 60.0 if tokens_per_min else 0.0
        self.capacity = self.token_rate  # one second's worth
        self.level = self.capacity
        self.refilled_at: float | None = None
        self.not_before = 0.0
        self.waited_s = 0.0
        self.lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        """No worker starts a request for `seconds` from now (a server asked us to wait)."""
        self.not_before = max(self.not_before, asyncio.get_running_loop().time() + seconds)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.waited_s += seconds
            await asyncio.sleep(seconds)

    async def wait(self, tokens: int) -> None:
        if not (self.interval or self.token_rate or self.not_before):
            return
        loop = asyncio.get_running_loop()
        async with self.lock:  # one worker at a time: starts are granted in order
            await self._sleep(self.not_before - loop.time())
            if self.interval:
                now = loop.time()
                await self._sleep(self.next - now)
                self.next = max(now, self.next) + self.interval
            if self.token_rate:
                need = min(float(tokens), max(self.capacity, 1.0))
                while True:
                    now = loop.time()
                    if self.refilled_at is not None:
                        self.level = min(self.capacity, self.level + (now - self.refilled_at) * self.token_rate)
                    self.refilled_at = now
                    if self.level >= need:
                        break
                    await self._sleep((need - self.level) / self.token_rate)
                self.level -= tokens


def request_tokens(payload: str | list[dict[str, str]], count_tokens: Callable[[str], int] | None = None) -> int:
    """Estimated tokens one request costs against tokens_per_min: prompt tokens + max completion tokens (1)."""
    count = count_tokens or estimate_tokens
    if isinstance(payload, str):
        return count(payload) + 1
    return sum(count(str(m.get("content", ""))) + 4 for m in payload) + 3 + 1  # chat framing per message


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds a 429/503 (or any error) response asks us to wait: retry-after-ms, else Retry-After
    (seconds or an HTTP date); None when the response says nothing (then we back off exponentially)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    ra = headers.get("retry-after")
    if ra is None:
        return None
    try:
        value = float(ra)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        value = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(0.0, value) if math.isfinite(value) else None


def _root_cause(exc: BaseException, scrub: Callable[[str], str] = _same) -> str:
    """A short cause of a connection failure, e.g. 'connection refused' (scrubbed before it is cut)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    last = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        last = cur
        cur = cur.__cause__ or cur.__context__
    msg = scrub(str(last) or type(last).__name__)
    if "refused" in msg.lower() or "connect call failed" in msg.lower():
        return "connection refused"
    return (msg.splitlines() or [""])[0][:200]


def _never_connected(exc: BaseException) -> bool:
    """Whether a connection failure happened before the server was reached (refused, DNS, connect)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return True
        if type(cur).__name__ in ("ConnectError", "ConnectTimeout", "gaierror"):
            return True
        cur = cur.__cause__ or cur.__context__
    return "refused" in _root_cause(exc)


def _status_message(exc: openai.APIStatusError, scrub: Callable[[str], str] = _same) -> str:
    """The server's error message: its first line, scrubbed (of the API key) BEFORE it is cut to 300 characters,
    so a key echoed across the cut cannot leave a prefix behind."""

    def first_line(text: str) -> str:
        return (scrub(text).splitlines() or [""])[0][:300]

    body = exc.body
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and err.get("message"):
            return first_line(str(err["message"]))
        if isinstance(err, str):
            return first_line(err)
    return first_line(str(exc.message) or exc.response.reason_phrase)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _new_counters() -> dict[str, Any]:
    """What one batch of HTTP calls counts (telemetry)."""
    return {"calls": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0, "retry_wait_s": 0.0,
            "throttle_wait_s": 0.0}  # fmt: skip


class HttpOracle:
    """Any OpenAI-compatible server (llama.cpp, vLLM, OpenAI) over the `openai` async client."""

    def __init__(
        self,
        cfg: OracleConfig,
        identity: Mapping[str, Any],
        model_label: str,
        base_url: str | None = None,
        server_hint: str | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.count_tokens = count_tokens
        self.name = cfg.name
        self.base_url = base_url or cfg.base_url
        self._identity = dict(identity)
        self._label = model_label
        self._secret: str | None = None  # the API key while asking: scrubbed from every message
        self.server_hint = server_hint or f"start the server or fix oracles.{cfg.name}.base_url"

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def model_label(self) -> str:
        return self._label

    def _api_key(self) -> str:
        env = self.cfg.api_key_env
        if env is None:
            return "no-key"  # local servers ignore it; the client insists on a string
        problem = api_key_env_problem(self.name, env)  # a pasted key: refuse it, never echo it
        if problem is not None:
            raise OracleError(problem)
        key = os.environ.get(env)
        if not key:
            raise OracleError(
                f"oracle '{self.name}': environment variable {env} is not set; export it or fix "
                f"oracles.{self.name}.api_key_env",
            )
        self._secret = key
        return key

    def _redact(self, text: str) -> str:
        """`text` without the API key (servers may echo a rejected key in their error message)."""
        if self._secret and len(self._secret) >= 4:
            return text.replace(self._secret, f"<{self.cfg.api_key_env}>")
        return text

    async def answer_many(self, requests: Sequence[Request], on_answer: OnAnswer) -> dict[str, Any]:
        counters = _new_counters()
        if not requests:
            return counters
        if not self.base_url:
            raise OracleError(f"oracle '{self.name}': no base_url; set oracles.{self.name}.base_url")
        host = (urlsplit(self.base_url).hostname or "").lower()
        loopback = host in ("127.0.0.1", "localhost", "::1")
        client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key(),
            max_retries=0,  # retries are ours: backoff, counted, and a clear message at the end
            timeout=self.cfg.timeout_s,
            # a proxy from the environment must not capture calls to a server on this machine
            http_client=openai.DefaultAsyncHttpxClient(trust_env=False) if loopback else None,
        )
        throttle = _Throttle(self.cfg.requests_per_s, self.cfg.tokens_per_min)
        pending = iter(requests)  # shared: workers take the next request in the given order

        async def worker() -> None:
            for req in pending:
                ans = await self._ask_one(client, req, counters, throttle)
                counters["calls"] += 1
                counters["prompt_tokens"] += ans.prompt_tokens or 0
                counters["completion_tokens"] += ans.completion_tokens or 0
                on_answer(req, ans)  # commits to the cache before this worker asks again

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.cfg.concurrency, len(requests))):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            first = _first_leaf(group)
            if isinstance(first, OracleError):
                raise OracleError(self._redact(str(first))) from None
            if self._secret and self._secret in str(first):
                raise OracleError(f"oracle '{self.name}': {type(first).__name__}: {self._redact(str(first))}") from None
            raise first from None
        finally:
            await client.close()
            counters["throttle_wait_s"] = round(throttle.waited_s, 3)
            counters["retry_wait_s"] = round(counters["retry_wait_s"], 3)
        return counters

    async def _ask_one(
        self,
        client: openai.AsyncOpenAI,
        req: Request,
        counters: dict[str, Any],
        throttle: _Throttle,
    ) -> Answer:
        """One request with retries: every try passes the throttle (rate limits count retries too).

        timeout_s bounds each try as a whole (connect + the full body), not each read: a server that answers 200
        and then trickles its body a byte at a time would otherwise hold the worker forever. Up to max_retries + 1
        tries; each retry is logged (WARNING, one scrubbed line: why, and how many tries are left).
        """
        last: BaseException | None = None
        tokens = request_tokens(req.payload, self.count_tokens) if self.cfg.tokens_per_min else 0
        tries = self.cfg.max_retries + 1
        for attempt in range(tries):
            await throttle.wait(tokens)
            try:
                async with asyncio.timeout(self.cfg.timeout_s):
                    return await self._request(client, req)
            except TimeoutError as exc:  # the whole try took longer than timeout_s
                last = exc
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                if isinstance(exc, openai.APIStatusError) and not _is_transient(exc):
                    raise self._fatal(exc, req) from None
                last = exc
            if attempt < self.cfg.max_retries:
                counters["retries"] += 1
                told = retry_after_s(last)
                if told is not None:  # the server said how long: wait that (capped), all workers together
                    wait = min(told, self.cfg.max_retry_after_s)
                    throttle.hold(wait)
                else:
                    wait = self.cfg.retry_backoff_s * (2**attempt)
                counters["retry_wait_s"] += wait
                left = tries - attempt - 1
                log.warning(
                    "oracle '%s': try %d of %d failed (%s); retrying in %gs, %d %s left",
                    self.name, attempt + 1, tries, self._reason(last), wait, left, "try" if left == 1 else "tries",
                )  # fmt: skip
                await asyncio.sleep(wait)
        assert last is not None
        raise self._gave_up(last) from None

    def _reason(self, exc: BaseException) -> str:
        """Why one try failed, in a few words on one line, without the API key (for the retry log)."""
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            return f"no complete answer from {self.base_url} within {self.cfg.timeout_s:g}s"
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code} from {self.base_url}: {_status_message(exc, self._redact)}"
        if isinstance(exc, openai.APIConnectionError):
            what = "cannot reach" if _never_connected(exc) else "connection broke mid-response from"
            return f"{what} {self.base_url}: {_root_cause(exc, self._redact)}"
        return (self._redact(f"{type(exc).__name__}: {exc}").splitlines() or [""])[0][:200]  # pragma: no cover

    def _gave_up(self, exc: BaseException) -> OracleError:
        tries = f"after {self.cfg.max_retries + 1} tries"
        n = self.name
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            return OracleError(
                f"oracle '{n}': {self.base_url} did not answer within {self.cfg.timeout_s:g}s ({tries}); "
                f"raise oracles.{n}.timeout_s or check the server",
            )
        if isinstance(exc, openai.APIConnectionError):
            if _never_connected(exc):
                return OracleError(
                    f"oracle '{n}': cannot reach {self.base_url} ({_root_cause(exc, self._redact)}); "
                    f"{self.server_hint}",
                )
            fix = self.server_hint if self.cfg.kind == "embedded" else "check the server and any proxy in between"
            return OracleError(
                f"oracle '{n}': the connection to {self.base_url} broke mid-response {tries} "
                f"({_root_cause(exc, self._redact)}); {fix}",
            )
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            if code in (408, 409, 429):
                fix = (
                    f"lower oracles.{n}.concurrency, set requests_per_s / tokens_per_min, "
                    "or raise max_retries / max_retry_after_s"
                )
            else:
                fix = f"the server is failing: check it (and its log), or raise oracles.{n}.max_retries"
            return OracleError(
                f"oracle '{n}': HTTP {code} from {self.base_url} {tries}: {_status_message(exc, self._redact)}; {fix}",
            )
        return OracleError(f"oracle '{n}': {type(exc).__name__}: {exc}")  # pragma: no cover

    def _fatal(self, exc: openai.APIStatusError, req: Request) -> OracleError:
        n, code, msg = self.name, exc.status_code, _status_message(exc, self._redact)
        if code == 404:
            return OracleError(
                f"oracle '{n}': model '{self.cfg.model}' not found at {self.base_url} (HTTP 404: {msg}); "
                f"fix oracles.{n}.model (and base_url must end in /v1)",
            )
        if code in (401, 403):
            return OracleError(
                f"oracle '{n}': the server rejected the API key (HTTP {code}: {msg}); "
                f"check the variable named by oracles.{n}.api_key_env",
            )
        if code in (400, 413, 422) and any(w in msg.lower() for w in _CONTEXT_WORDS):
            return OracleError(
                f"oracle '{n}': prompt (sha256 {_payload_sha(req.payload)[:12]}) is over the context size "
                f"(HTTP {code}: {msg}); raise oracles.{n}.n_ctx or show fewer/shorter context items",
            )
        return OracleError(f"oracle '{n}': HTTP {code} from {self.base_url}: {msg}; check oracles.{n} settings")

    def _no_logprobs(self) -> OracleError:
        hint = " (llama.cpp needs --logits_all true)"
        return OracleError(
            f"oracle '{self.name}': {self.base_url} does not return logprobs; use a server/endpoint that "
            f"does{hint}, or switch oracles.{self.name}.endpoint",
        )

    def _malformed(self, why: str) -> OracleError:
        return OracleError(
            f"oracle '{self.name}': malformed response from {self.base_url} ({why}); is "
            f"oracles.{self.name}.base_url an OpenAI-compatible /v1 endpoint?",
        )

    async def _request(self, client: openai.AsyncOpenAI, req: Request) -> Answer:
        cfg = self.cfg
        model = cfg.model or "default"
        try:
            if cfg.endpoint == "chat":
                resp: Any = await client.chat.completions.create(
                    model=model,
                    messages=req.payload,  # type: ignore[arg-type]
                    max_tokens=1,
                    temperature=0,
                    logprobs=True,
                    top_logprobs=cfg.top_logprobs,
                )
            else:
                resp = await client.completions.create(
                    model=model,
                    prompt=req.payload,  # type: ignore[arg-type]
                    max_tokens=1,
                    temperature=0,
                    logprobs=cfg.top_logprobs,
                )
        except (openai.APIConnectionError, openai.APIStatusError):
            raise
        except openai.APIResponseValidationError as exc:
            raise self._malformed(self._redact(str(exc))[:120]) from None
        except (ValueError, TypeError, KeyError) as exc:  # e.g. invalid JSON body
            raise self._malformed(f"{type(exc).__name__}: {self._redact(str(exc))[:120]}") from None
        return self._parse(resp)

    def _parse(self, resp: Any) -> Answer:
        if isinstance(resp, str | bytes) or not hasattr(resp, "choices"):
            raise self._malformed("not a JSON completion object")
        choices = getattr(resp, "choices", None)
        if not choices:
            raise self._malformed("no choices")
        choice = choices[0]
        lp = getattr(choice, "logprobs", None)
        if lp is None:
            raise self._no_logprobs()
        top: list[tuple[str, float]] = []
        try:
            if self.cfg.endpoint == "chat":
                content = getattr(lp, "content", None)
                if not content:
                    raise self._no_logprobs()
                first = content[0]
                alts = getattr(first, "top_logprobs", None) or []
                top = [(t.token, float(t.logprob)) for t in alts]
                if first.token is not None and first.token not in {t for t, _ in top}:
                    top.append((first.token, float(first.logprob)))
            else:
                tops = getattr(lp, "top_logprobs", None)
                if not tops or tops[0] is None:
                    raise self._no_logprobs()
                first_top = tops[0]
                if not isinstance(first_top, Mapping):
                    raise self._malformed("top_logprobs is not a token -> logprob mapping")
                top = [(str(t), float(v)) for t, v in first_top.items()]
                tokens = getattr(lp, "tokens", None) or []
                token_lps = getattr(lp, "token_logprobs", None) or []
                if tokens and token_lps and tokens[0] not in first_top and token_lps[0] is not None:
                    top.append((tokens[0], float(token_lps[0])))
        except OracleError:
            raise
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise self._malformed(f"{type(exc).__name__}: {self._redact(str(exc))[:120]}") from None
        for token, value in top:
            # log-probabilities are <= 0 (a little slack for rounding); anything else is a wrong number, e.g.
            # probabilities sent as logprobs. -inf is probability 0 and NaN no value: both count as absent.
            if value > _MAX_LOGPROB:
                raise self._malformed(f"logprob {value!r} of token {token!r} is above 0, not a log-probability")
        lp_true, lp_false = parse_top_logprobs([(t, v) for t, v in top if math.isfinite(v)])
        usage = getattr(resp, "usage", None)
        return Answer(
            lp_true,
            lp_false,
            _int_or_none(getattr(usage, "prompt_tokens", None)),
            _int_or_none(getattr(usage, "completion_tokens", None)),
        )


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first non-cancellation exception of a TaskGroup failure (OracleError preferred)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, OracleError):
            return e
    for e in leaves:
        if not isinstance(e, asyncio.CancelledError):
            return e
    return leaves[0]


def _payload_sha(payload: str | list[dict[str, str]]) -> str:
    return sha256_text(payload if isinstance(payload, str) else canonical_json(payload))


# ----------------------------------------------------------------------------------------------------
# the driver


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
    identity: Mapping[str, Any],
    gold_context: Callable[[Mapping[str, Any]], list[int]] | None,
    count_tokens: Callable[[str], int] | None,
) -> _Prepared:
    """Render every row, fit its context to the budget, and key it."""
    chat = cfg.endpoint == "chat"
    sampling = sampling_params(cfg)
    n_ctx = None if cfg.kind == "simulated" else cfg.n_ctx
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
        psha = _payload_sha(payload)
        if cfg.kind == "simulated":
            assert gold_context is not None
            key = cache_key("simulated", identity, "simulated", {"query": q, "gold": gold_context(q)}, {})
        else:
            key = cache_key(cfg.kind, identity, cfg.endpoint, payload, sampling)
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
    server_url: str | None = None,
    server_log: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Ask the oracle every query row; return (predictions in input order, telemetry).

    gold: only the simulated oracle reads it (it generates answers from the truth by design); every
    other kind ignores it. server_url: an already running embedded server to use instead of starting
    one (tests, benchmarks). server_log: where the embedded server writes its log. count_tokens: a
    tokenizer for the context budget (default: chars / 3.5).
    """
    t0 = time.perf_counter()
    cfg = oracle_cfg
    items_text = _items_text(items)
    temps = _template_map(templates)
    _check_queries(queries, items_text, temps)

    with ExitStack() as stack:
        cache = stack.enter_context(AnswerCache(cache_dir)) if cfg.use_cache or cfg.kind == "embedded" else None
        oracle: Any
        start_server: Callable[[], str] | None = None
        gold_context = None
        if cfg.kind == "simulated":
            from elicit.oracle.simulated import SimulatedOracle

            assert cfg.sim is not None
            oracle = SimulatedOracle(cfg.name, cfg.sim, gold, cfg.preset)
            gold_context = oracle.gold_context
        elif cfg.kind == "openai":
            oracle = HttpOracle(
                cfg,
                {"base_url": (cfg.base_url or "").rstrip("/"), "model": cfg.model},
                str(cfg.model),
                count_tokens=count_tokens,
            )
        else:
            from elicit.oracle.embedded import embedded_server, resolve_gguf

            gguf = resolve_gguf(cfg, Path(cache_dir))
            assert cache is not None
            sha = cache.file_sha256(gguf)
            oracle = HttpOracle(
                cfg,
                {"gguf_sha256": sha},
                gguf.name,
                base_url=server_url,
                server_hint="the embedded llama.cpp server stopped answering; see its log",
                count_tokens=count_tokens,
            )
            if server_url is None:

                def start_server() -> str:
                    return stack.enter_context(embedded_server(cfg, cache_dir=Path(cache_dir), log_path=server_log))

        prep = _prepare(queries, items_text, temps, cfg, oracle.identity(), gold_context, count_tokens)
        use_cache = cache is not None and cfg.use_cache
        answers: dict[str, Answer] = {}
        if use_cache:
            assert cache is not None
            answers = {k: Answer.from_json(v) for k, v in cache.get_many(prep.requests).items()}
        hit_keys = set(answers)
        todo = _order_for_prefix_reuse([r for k, r in prep.requests.items() if k not in hit_keys])
        cache_hits = sum(1 for k in prep.keys if k in hit_keys)

        counters = _new_counters()
        if todo:
            if start_server is not None:
                oracle.base_url = start_server()
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
            sim_batch: list[tuple[str, dict[str, Any]]] = []

            def on_answer(req: Request, ans: Answer) -> None:
                answers[req.key] = ans
                if use_cache and cache is not None:
                    if cfg.kind == "simulated":
                        sim_batch.append((req.key, ans.to_json()))
                    else:
                        cache.put(req.key, ans.to_json())  # committed now: a kill loses nothing answered
                bar.update(1)

            counters = await oracle.answer_many(todo, on_answer)
            if sim_batch and cache is not None:
                cache.put_many(sim_batch)

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


def telemetry_json(telemetry: Mapping[str, Any]) -> str:
    """Telemetry as pretty JSON (what stages write under results/<run>/telemetry/)."""
    return json.dumps(dict(telemetry), indent=2, sort_keys=True)
