"""The HTTP transport: any OpenAI-compatible server (llama.cpp, vLLM, OpenAI) behind the oracle interface.

`HttpOracle` sends requests with bounded concurrency through one shared throttle (requests per second, tokens per
minute, a server's Retry-After: `throttle.py`), retries transient failures with backoff (each try bounded by
``timeout_s``), parses True/False log-probabilities from the response, and turns every failure into one line naming
the cause and the fix, with the API key scrubbed out (what the failure was: `failures.py`). Prompts, the cache and
predictions are the driver's (`client.py`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import openai

from elicit.oracle.base import (
    ANSWER_WORDS,
    Answer,
    OnAnswer,
    OracleConfig,
    OracleError,
    Request,
    api_key_env_problem,
    new_counters,
    parse_top_logprobs,
)
from elicit.oracle.cache import cache_key, canonical_json, sha256_text
from elicit.oracle.failures import first_leaf, is_transient, never_connected, root_cause, status_message
from elicit.oracle.throttle import Throttle, request_tokens, retry_after_s

_MAX_LOGPROB = 1e-3
_CONTEXT_WORDS = ("context", "exceed", "too long", "maximum", "n_ctx", "tokens")

log = logging.getLogger(__name__)


def sampling_params(cfg: OracleConfig) -> dict[str, Any]:
    """The request's sampling parameters; part of the cache key."""
    if cfg.endpoint == "chat":
        return {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": cfg.top_logprobs}
    return {"max_tokens": 1, "temperature": 0, "logprobs": cfg.top_logprobs}


class HttpOracle:
    """Any OpenAI-compatible server (llama.cpp, vLLM, OpenAI) over the `openai` async client.

    Built by `elicit.oracle.factory.open_oracle`, which says what differs between an `openai` endpoint and the
    embedded server: identity (base_url + model, or the GGUF's sha256), the URL (or how to start the server on
    the first batch that needs an answer), and the fixes named when the server cannot be reached
    (``server_hint``) or breaks mid-response (``broken_hint``).
    """

    batch_writes = False  # each answer is committed to the cache as it arrives: a kill loses nothing answered

    def __init__(
        self,
        cfg: OracleConfig,
        identity: Mapping[str, Any],
        model_label: str,
        base_url: str | None,
        *,
        server_hint: str | None = None,
        broken_hint: str = "check the server and any proxy in between",
        start_server: Callable[[], str] | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.count_tokens = count_tokens
        self.name = cfg.name
        self.n_ctx = cfg.n_ctx
        self.base_url = base_url
        self._identity = dict(identity)
        self._label = model_label
        self._start_server = start_server
        self._secret: str | None = None  # the API key while asking: scrubbed from every message
        self.server_hint = server_hint or f"start the server or fix oracles.{cfg.name}.base_url"
        self.broken_hint = broken_hint

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def model_label(self) -> str:
        return self._label

    def request_key(self, query: Mapping[str, Any], payload: str | list[dict[str, str]]) -> str:
        """sha256 of (kind, identity, endpoint, the prompt as sent, sampling parameters; and the answer words where
        the template's are not True/False, since they decide which answer is read from the same reply)."""
        sampling = sampling_params(self.cfg)
        if "answer_words" in query:
            sampling = {**sampling, "answer_words": list(query["answer_words"])}
        return cache_key(self.cfg.kind, self._identity, self.cfg.endpoint, payload, sampling)

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
        counters = new_counters()
        if not requests:
            return counters
        if self._start_server is not None:  # the embedded server: started for the first batch, then kept
            self.base_url, self._start_server = self._start_server(), None
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
        throttle = Throttle(self.cfg.requests_per_s, self.cfg.tokens_per_min)
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
            first = first_leaf(group)
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
        throttle: Throttle,
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
                if isinstance(exc, openai.APIStatusError) and not is_transient(exc):
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
            return f"HTTP {exc.status_code} from {self.base_url}: {status_message(exc, self._redact)}"
        if isinstance(exc, openai.APIConnectionError):
            what = "cannot reach" if never_connected(exc) else "connection broke mid-response from"
            return f"{what} {self.base_url}: {root_cause(exc, self._redact)}"
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
            if never_connected(exc):
                return OracleError(
                    f"oracle '{n}': cannot reach {self.base_url} ({root_cause(exc, self._redact)}); {self.server_hint}",
                )
            return OracleError(
                f"oracle '{n}': the connection to {self.base_url} broke mid-response {tries} "
                f"({root_cause(exc, self._redact)}); {self.broken_hint}",
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
                f"oracle '{n}': HTTP {code} from {self.base_url} {tries}: {status_message(exc, self._redact)}; {fix}",
            )
        return OracleError(f"oracle '{n}': {type(exc).__name__}: {exc}")  # pragma: no cover

    def _fatal(self, exc: openai.APIStatusError, req: Request) -> OracleError:
        n, code, msg = self.name, exc.status_code, status_message(exc, self._redact)
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
                f"oracle '{n}': prompt (sha256 {payload_sha256(req.payload)[:12]}) is over the context size "
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
        return self._parse(resp, req.words)

    def _parse(self, resp: Any, words: tuple[str, str] = ANSWER_WORDS) -> Answer:
        if isinstance(resp, str | bytes) or not hasattr(resp, "choices"):
            raise self._malformed("not a JSON completion object")
        choices = getattr(resp, "choices", None)
        if not choices:
            raise self._malformed("no choices")
        choice = choices[0]
        lp = getattr(choice, "logprobs", None)
        if lp is None:
            raise self._no_logprobs()
        usage = getattr(resp, "usage", None)
        tokens_used = (
            _int_or_none(getattr(usage, "prompt_tokens", None)),
            _int_or_none(getattr(usage, "completion_tokens", None)),
        )
        if _ended_at_once(choice, lp, self.cfg.endpoint):
            return Answer(None, None, *tokens_used)  # the model's first token ended the text: neither answer shown
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
        lp_true, lp_false = parse_top_logprobs([(t, v) for t, v in top if math.isfinite(v)], words)
        return Answer(lp_true, lp_false, *tokens_used)


def _ended_at_once(choice: Any, lp: Any, endpoint: str) -> bool:
    """The completion stopped before its first token (the model's most likely next token was end-of-text):
    llama.cpp then sends empty logprob lists. That is an answer with neither word in it -- a missing answer --
    not a server without logprobs (which sends none at all, or lists for a token it did write)."""
    if getattr(choice, "finish_reason", None) != "stop":
        return False
    if endpoint == "chat":
        message = getattr(choice, "message", None)
        return getattr(lp, "content", None) == [] and not getattr(message, "content", None)
    return getattr(lp, "top_logprobs", None) == [] and not getattr(choice, "text", None)


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def payload_sha256(payload: str | list[dict[str, str]]) -> str:
    """The ``prompt_sha256`` of a prompt (completions) or of its messages as canonical JSON (chat)."""
    return sha256_text(payload if isinstance(payload, str) else canonical_json(payload))
