"""Simulated oracle: answers from gold with planted, documented biases.

Why: the packaged small models are at chance on the datasets, so the method's evidence (mutual
predictability, framing and position corrections, flips) can only be shown on an oracle whose truth and
biases we know. The simulator knows gold by design (the only oracle that may), answers the same query
rows as a real model, and returns lp_true / lp_false like one, so framing works the same way.

The model, per query (target i with gold y_i, s_i = 2*y_i - 1; framing sign f = +1 pos, -1 neg;
context shown labels c_1..c_K with gold g_1..g_K):

    z_i   = signal * s_i * (1 - 2*w_i) + item_noise * u_i            persistent per item (difficulty)
            w_i = 1 for a fraction `wrong_frac` of items: they are systematically wrong
    z     = z_i
          + icl      * s_i * mean_k(+1 if c_k == g_k else -1)         in-context learning (K > 0)
          + copy     * mean_k(2*c_k - 1)                              copying of shown labels
          + position * (2*c_K - 1)                                    bias towards the last shown label
    d     = f * z + acquiescence + prompt_noise * e                  logit of "True" against "False"
    lp_true = log(mass) + log sigmoid(d),  lp_false = log(mass) + log sigmoid(-d)

u_i, w_i and e are drawn from sha256 of (seed, item id) and of (seed, the structured query), never from
Python's hash(), so the same query always gets the same answer, on any machine, in any batch. So
score = f * (lp_true - lp_false) = z + f * (acquiescence + noise): acquiescence cancels when the two
framings are averaged and pushes single-framing answers towards "True".

Presets, planted once (values below) and never tuned afterwards; on a balanced dataset they give
(tests/test_simulated.py, 2,000 items, K = 4 random other items as context; measured values in brackets):

    sim_mild:   signal 0.80, item_noise 1.0, wrong_frac 0.05, prompt_noise 0.5, acquiescence 0.3,
                position 0.2, copy 0.3, icl 0.6, mass 0.9
                -> zero-shot (framing-averaged) ~0.75 [0.748], golden few-shot >= zero-shot + 0.08 [0.869],
                   pos-framing only slightly lower [0.728]; flip of the last shown label moves the score
                   0.4 more than flip of the first [0.39]
    sim_strong: signal 0.55, item_noise 1.0, wrong_frac 0.10, prompt_noise 0.8, acquiescence 1.5,
                position 0.8, copy 1.0, icl 1.6, mass 0.8
                -> zero-shot ~0.65 [0.645], golden few-shot >= zero-shot + 0.15 [0.877], pos-framing-only
                   answers >= 0.05 below framing-averaged [0.564], position: last-vs-first flip effect
                   2 * 0.8 [1.57], copying: a flipped shown label moves the score 2 * 1.0 / K [0.51].
Expected zero-shot accuracy over seeds (40,000 items): sim_mild 0.748, sim_strong 0.650.

The out-of-family suite sim_latent / sim_mixed / sim_belief (sim_suite.py: model, calibration, belief ceiling)
plants mechanisms the optimizer does not fit: topic-shared item noise, a format gain, in-context gain partly
towards the model's own beliefs, kNN-like copying of similar shown items, primacy, acquiescence varying per item x
template x framing, heavy-tailed prompt noise. Its fields in SimParams default to off, so sim_mild / sim_strong
answer exactly as before the suite existed; every field stays overridable per oracle entry (`sim:`).

The hash draws and the strings that key them are in sim_hash.py, the gold lookups and the query rows' context arrays
(with the in-family few-shot terms) in sim_context.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, InitVar, asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from elicit.oracle.base import Answer, OnAnswer, OracleError, Request, new_counters
from elicit.oracle.cache import cache_key
from elicit.oracle.sim_context import _Contexts, _gold_of, _has_gold
from elicit.oracle.sim_hash import hash_normal, hash_uniform
from elicit.prompts import estimate_tokens

if TYPE_CHECKING:
    from elicit.oracle.sim_suite import Embeddings, ItemSpace


@dataclass(frozen=True)
class SimParams:
    """Planted bias parameters of the simulated oracle (see the module docstring for the model).

    signal: class separation of the persistent log-odds (zero-shot accuracy grows with it).
    item_noise: std of the persistent per-item noise (difficulty).
    wrong_frac: fraction of items the oracle gets systematically wrong (signal reversed).
    prompt_noise: std of the per-prompt noise (hash of the structured query); averages out over prompts.
    acquiescence: added to the logit of "True" in every prompt (both framings).
    position: pull towards the last shown label, in log-odds (+position if it is 1, -position if 0).
    copy: pull towards the mean shown label, in log-odds (copy * mean(2*shown - 1)).
    icl: in-context learning: +icl*mean agreement of shown with gold labels, towards the target's truth.
    mass: probability mass on True + False together (the rest goes to other tokens).
    missing_rate: fraction of prompts whose "False" is absent from the top logprobs (missing answers).
    seed: seeds every hash-derived draw.

    Out-of-family mechanisms (sim_suite.py has the model; defaults switch each off):
    topic_share: share of the persistent noise variance shared within a topic (k-means cluster of the item
        embeddings, ~25 items each); > 0 needs embeddings.
    format_gain: + format_gain * s_i whenever examples are shown, whatever their labels.
    latent_share: lambda, the share of `icl` keyed on truth; the rest (1 - lambda) pulls towards the model's
        own belief (agreement of shown labels with its beliefs about the shown items). 1: `icl` as above.
    sim_copy: pull towards the shown labels weighted by softmax(cosine / sim_temp) over the shown items
        (the most similar shown item dominates); > 0 needs embeddings.
    sim_temp: the softmax temperature of sim_copy.
    primacy: pull towards the FIRST shown label (`position` is the pull towards the last one: recency).
    acq_sd: acquiescence varies per item x template x framing: acquiescence + acq_sd * N(0, 1).
    noise_df: 0: prompt noise is normal with std prompt_noise; k >= 1: Student-t with k degrees of freedom and
        scale prompt_noise (std prompt_noise * sqrt(k / (k - 2)) for k > 2).

    max_context_items: the most items one query may show (a real model's context window would not hold more);
        a longer query is an OracleError naming this key. Changes no answer, so it is no field: not in asdict(),
        equality or the cache identity (an init-only parameter kept as an attribute).
    """

    signal: float
    item_noise: float
    wrong_frac: float
    prompt_noise: float
    acquiescence: float
    position: float
    copy: float
    icl: float
    mass: float = 0.9
    missing_rate: float = 0.0
    seed: int = 0
    # the out-of-family suite (sim_suite.py); each default switches its mechanism off, so the presets above
    # answer exactly as before these fields existed
    topic_share: float = 0.0
    format_gain: float = 0.0
    latent_share: float = 1.0
    sim_copy: float = 0.0
    sim_temp: float = 0.05
    primacy: float = 0.0
    acq_sd: float = 0.0
    noise_df: int = 0
    # a limit, not a mechanism: init-only (stored as an attribute, not a field), so no answer, no asdict() and no
    # cache identity depends on it; `replace` carries it over
    max_context_items: InitVar[int] = 256

    def __post_init__(self, max_context_items: int) -> None:
        object.__setattr__(self, "max_context_items", max_context_items)


def context_cap(p: SimParams) -> int:
    """``max_context_items`` of the parameters (an init-only attribute, which type checkers do not see)."""
    return int(getattr(p, "max_context_items", 256))


_SUITE_FIELDS = ("topic_share", "format_gain", "latent_share", "sim_copy", "sim_temp", "primacy", "acq_sd", "noise_df")

PRESETS: dict[str, SimParams] = {
    "sim_mild": SimParams(
        signal=0.80,
        item_noise=1.0,
        wrong_frac=0.05,
        prompt_noise=0.5,
        acquiescence=0.3,
        position=0.2,
        copy=0.3,
        icl=0.6,
        mass=0.9,
    ),
    "sim_strong": SimParams(
        signal=0.55,
        item_noise=1.0,
        wrong_frac=0.10,
        prompt_noise=0.8,
        acquiescence=1.5,
        position=0.8,
        copy=1.0,
        icl=1.6,
        mass=0.8,
    ),
}
# the out-of-family suite (sim_suite.py): calibrated 2026-12-02 by benchmarks/calibrate_suite.py, then frozen;
# identical but for latent_share (lambda); the in-family mean-label copy is off
_SUITE_BASE = SimParams(
    signal=0.6,
    item_noise=1.0,
    wrong_frac=0.05,
    prompt_noise=0.2,
    acquiescence=1.0,
    position=0.2,
    copy=0.0,
    icl=0.6,
    mass=0.85,
    topic_share=0.5,
    format_gain=0.9,
    latent_share=1.0,
    sim_copy=0.8,
    sim_temp=0.05,
    primacy=0.3,
    acq_sd=0.6,
    noise_df=3,
)
PRESETS.update(
    {
        "sim_latent": _SUITE_BASE,
        "sim_mixed": replace(_SUITE_BASE, latent_share=0.5),
        "sim_belief": replace(_SUITE_BASE, latent_share=0.0),
    }
)


def resolve_sim_params(preset: str | None, overrides: Mapping[str, Any] | None) -> SimParams:
    """A preset, with explicit parameters over it; without a preset every parameter must be given."""
    names = {f.name for f in fields(SimParams)} | {"max_context_items"}
    over = dict(overrides or {})
    unknown = sorted(set(over) - names)
    if unknown:
        raise ValueError(f"sim.{unknown[0]}: unknown bias parameter; allowed: {', '.join(sorted(names))}")
    for key, value in over.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"sim.{key}: must be a number, got {value!r}")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} unknown; use one of {', '.join(PRESETS)}")
        params = replace(PRESETS[preset], **over)
    else:
        required = [f.name for f in fields(SimParams) if f.default is MISSING]
        missing = [n for n in required if n not in over]
        if missing:
            raise ValueError(f"sim: set preset: {'|'.join(PRESETS)} or give all of {', '.join(missing)}")
        params = SimParams(**over)
    if not math.isfinite(params.noise_df) or params.noise_df != int(params.noise_df) or params.noise_df < 0:
        raise ValueError(f"sim.noise_df must be a whole number >= 0 (0: normal noise), got {params.noise_df}")
    cap = getattr(params, "max_context_items")  # noqa: B009 - init-only: type checkers do not see it
    if not math.isfinite(cap) or cap != int(cap) or cap < 1:
        raise ValueError(f"sim.max_context_items must be a whole number >= 1, got {cap}")
    params = replace(params, seed=int(params.seed), noise_df=int(params.noise_df), max_context_items=int(cap))
    if not 0 < params.mass <= 1:
        raise ValueError(f"sim.mass must be in (0, 1], got {params.mass}")
    for key in ("wrong_frac", "missing_rate", "topic_share", "latent_share"):
        if not 0 <= getattr(params, key) <= 1:
            raise ValueError(f"sim.{key} must be in [0, 1], got {getattr(params, key)}")
    if not params.sim_temp > 0 or params.acq_sd < 0:
        raise ValueError("sim.sim_temp must be > 0 and sim.acq_sd >= 0")
    return params


# ----------------------------------------------------------------------------------------------------
# the simulator


def item_effects(
    item_ids: Sequence[int], gold: Mapping[int, int], p: SimParams, space: ItemSpace | None = None
) -> np.ndarray:
    """The persistent log-odds z_i of each item (difficulty and systematic errors); with topic_share > 0 part of
    the noise is shared within a topic cluster of `space` (sim_suite.py)."""
    ids = [int(i) for i in item_ids]
    s = np.array([2 * _gold_of(gold, i) - 1 for i in ids], dtype=np.float64)
    u = hash_normal([f"{p.seed}|item|{i}" for i in ids])
    wrong = hash_uniform([f"{p.seed}|wrong|{i}" for i in ids]) < p.wrong_frac
    if p.topic_share > 0 and p.item_noise != 0:
        from elicit.oracle.sim_suite import topic_normals

        t = topic_normals(ids, p, space)
        u = math.sqrt(1 - p.topic_share) * u + math.sqrt(p.topic_share) * t
    return p.signal * s * np.where(wrong, -1.0, 1.0) + p.item_noise * u


def systematically_wrong(item_ids: Sequence[int], p: SimParams) -> np.ndarray:
    """Which items the simulator gets wrong on purpose (for tests and reports)."""
    return hash_uniform([f"{p.seed}|wrong|{int(i)}" for i in item_ids]) < p.wrong_frac


def simulate(
    queries: pd.DataFrame,
    gold: Mapping[int, int],
    p: SimParams,
    embeddings: Embeddings | None = None,
) -> pd.DataFrame:
    """lp_true, lp_false (null when missing) for each query row, vectorised over rows.

    embeddings: item id -> vector, an (item_ids, matrix) pair, or a prebuilt sim_suite.ItemSpace; read only when
    the parameters use topics or similarity copying (sim_suite.py), and then needed for every item asked about.
    """
    n = len(queries)
    if n == 0:
        return pd.DataFrame({"lp_true": pd.Series([], dtype="Float64"), "lp_false": pd.Series([], dtype="Float64")})
    from elicit.oracle import sim_suite as suite  # imports this module: imported here, not at the top

    use_suite = suite.uses_suite(p)
    space = suite.require_space(p, embeddings) if use_suite else None
    records = queries[["target_id", "framing", "template_id", "context_ids", "context_shown"]].to_dict("records")
    targets = [int(r["target_id"]) for r in records]
    uniq = sorted(set(targets))
    z_of = dict(zip(uniq, item_effects(uniq, gold, p, space), strict=True))
    z = np.array([z_of[t] for t in targets], dtype=np.float64)
    s = np.array([2 * _gold_of(gold, t) - 1 for t in targets], dtype=np.float64)
    f = np.array([1.0 if r["framing"] == "pos" else -1.0 for r in records])
    if not set(queries["framing"]) <= {"pos", "neg"}:
        raise OracleError("simulated oracle: framing must be 'pos' or 'neg' in every query row")

    ctx = _Contexts(records, gold, context_cap(p))
    # the in-family terms: gold-keyed icl (its lambda share), copying of the mean shown label, recency
    icl_latent = p.icl if p.latent_share == 1 else p.icl * p.latent_share
    z = z + icl_latent * s * ctx.icl + p.copy * ctx.copy + p.position * ctx.last

    qstrings = ctx.query_strings(p.seed, records)
    acq: float | np.ndarray = p.acquiescence
    if not use_suite:
        eps = hash_normal(qstrings)
    else:  # the out-of-family terms
        z = z + suite.fewshot_terms(records, gold, p, space)
        eps = suite.student_t(qstrings, p.noise_df) if p.noise_df > 0 else hash_normal(qstrings)
        if p.acq_sd != 0:
            acq = suite.acquiescence(records, p)
    d = f * z + acq + p.prompt_noise * eps
    log_mass = math.log(p.mass)
    lp_true = log_mass - np.logaddexp(0.0, -d)
    lp_false = log_mass - np.logaddexp(0.0, d)
    out = pd.DataFrame({"lp_true": pd.array(lp_true, dtype="Float64"), "lp_false": pd.array(lp_false, dtype="Float64")})
    if p.missing_rate > 0:
        miss = hash_uniform([q + "|missing" for q in qstrings]) < p.missing_rate
        out.loc[miss, "lp_false"] = pd.NA
    return out


class SimulatedOracle:
    """The simulator behind the Oracle interface: no server, ~0 cost per call."""

    n_ctx: int | None = None  # it reads the structured query, not the prompt text: no context budget
    batch_writes = True  # all answers come at once: one cache write after the batch

    def __init__(
        self,
        name: str,
        params: SimParams,
        gold: Mapping[int, int] | None,
        preset: str | None,
        embeddings: Embeddings | None = None,
    ) -> None:
        """embeddings: read only when params use topics or similarity copying (sim_suite.py): then the topic
        clusters are computed here, once, over all items given, and the embeddings join the cache identity."""
        if gold is None:
            raise OracleError(f"oracle '{name}': kind simulated needs gold labels; pass gold=... to ask")
        self.name = name
        self.params = params
        self.gold = gold
        self.preset = preset
        from elicit.oracle.sim_suite import require_space

        self.space: ItemSpace | None = require_space(params, embeddings, who=f"oracle '{name}' (simulated)")
        self._valid_gold: dict[int, int] | None = None
        self._identity: tuple[SimParams, dict[str, Any]] | None = None

    def identity(self) -> dict[str, Any]:
        """The parameters (the suite's fields only where set: the in-family presets keep their cache keys) and,
        when read, the embeddings' sha256. A fresh copy each call, built once per parameters (every request
        key reads it)."""
        if self._identity is None or self._identity[0] is not self.params:
            self._identity = (self.params, self._build_identity())
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self._identity[1].items()}

    def _build_identity(self) -> dict[str, Any]:
        params = asdict(self.params)
        for f in fields(SimParams):
            if f.name in _SUITE_FIELDS and params[f.name] == f.default:
                del params[f.name]
        out: dict[str, Any] = {"simulator": params}
        if self.space is not None:
            out["embeddings_sha256"] = self.space.fingerprint
        return out

    def model_label(self) -> str:
        return f"simulated:{self.preset or 'custom'}"

    def gold_context(self, query: Mapping[str, Any]) -> list[int]:
        """Gold of the target and context items: part of the cache key, as the answer depends on it."""
        ids = [int(query["target_id"]), *(int(c) for c in query["context_ids"])]
        if self._valid_gold is None:  # checked once: a long context needs no check per item and query
            keys = [int(i) for i in self.gold]
            self._valid_gold = {i: _gold_of(self.gold, i) for i in keys if _has_gold(self.gold, i)}
        try:
            return [self._valid_gold[i] for i in ids]
        except KeyError:
            return [_gold_of(self.gold, i) for i in ids]  # raises, naming the first item without a 0/1 label

    def request_key(self, query: Mapping[str, Any], payload: str | list[dict[str, str]]) -> str:
        """The structured query and the gold it sees (not the prompt text, which the simulator never reads)."""
        structured = {"query": query, "gold": self.gold_context(query)}
        return cache_key("simulated", self.identity(), "simulated", structured, {})

    async def answer_many(self, requests: Sequence[Request], on_answer: OnAnswer) -> dict[str, Any]:
        counters = new_counters()
        if not requests:
            return counters
        frame = pd.DataFrame([dict(r.query) for r in requests])
        lps = simulate(frame, self.gold, self.params, self.space)
        for req, lt, lf in zip(requests, lps["lp_true"], lps["lp_false"], strict=True):
            tokens = payload_tokens(req.payload)
            on_answer(req, Answer(None if pd.isna(lt) else float(lt), None if pd.isna(lf) else float(lf), tokens))
            counters["prompt_tokens"] += tokens
        counters["calls"] = len(requests)
        return counters


def payload_tokens(payload: str | list[dict[str, str]]) -> int:
    """The prompt tokens of a rendered prompt, estimated (chars / 3.5: the simulator has no tokenizer). The simulator
    answers from the structured query, but counting the prompt a real model would have read lets costs in tokens
    (reports, the study's cost figure) compare methods whose prompts differ in length, as on a real endpoint."""
    text = payload if isinstance(payload, str) else "".join(m.get("content", "") for m in payload)
    return estimate_tokens(text)
