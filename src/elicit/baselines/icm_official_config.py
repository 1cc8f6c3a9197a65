"""The params section of faithful ICM (``baselines.icm``, the method ``icm``) and its cost guard: the calls and
prompt tokens a run will make, planned before any call, and the error that refuses a run over its caps. Apart from
the search (elicit.baselines.icm_official) because both are read before any oracle call: to validate params and to
size or refuse a run (the icm stage logs the plan, benchmarks/icm_speed.py prints it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.baselines.fewshot import ALL_FRAMINGS, BaselineConfigError, Framings, item_count
from elicit.baselines.icm_official_steps import _SALT, make_batches
from elicit.errors import ElicitError
from elicit.params_types import SECTION, Bool, Float, Int, Str, build, fail, typed
from elicit.prompts import estimate_tokens

WHERE = "baselines.icm"
"""The params section of this method (named in every error)."""
SCRIPT_ITERATIONS = 3000
SCRIPT_BATCH = 256


class ICMBudgetError(ElicitError, ValueError):
    """The run would make more oracle calls or prompt tokens than ``max_calls`` / ``max_tokens`` allow."""


@typed(WHERE, BaselineConfigError)
@pydantic_dataclass(frozen=True, config=SECTION)
class OfficialICMConfig:
    """params ``baselines.icm``: ICM as the authors' script runs it (defaults: the script's); opt-in."""

    enabled: Bool = Field(
        default=False,
        description=(
            "give the run an icm job (opt-in: thousands of long-prompt calls; re-write dvc.yaml after changing it)"
        ),
    )
    batch_size: Int = Field(
        default=SCRIPT_BATCH,
        ge=2,
        description="items per batch, whole consistency groups; disjoint batches cover every item (script: 256)",
    )
    n_init: Int = Field(default=8, ge=1, description="randomly labelled seed items per batch, half 1 (script: 8)")
    iterations_per_item: Float = Field(
        default=SCRIPT_ITERATIONS / SCRIPT_BATCH,
        gt=0,
        description="proposals per batch item: K = this x the batch size (script: K = 3000 for 256 items)",
    )
    iterations: Int | None = Field(
        default=None, ge=0, description="proposals per batch, whatever its size (null: iterations_per_item decides)"
    )
    alpha: Float = Field(
        default=30.0, ge=0, description="weight of mutual predictability against the inconsistency count (script: 30)"
    )
    t0: Float = Field(default=10.0, gt=0, description="initial annealing temperature (script: 10)")
    t_min: Float = Field(default=0.01, gt=0, description="final temperature, at most t0 (script: 0.01)")
    fix_iterations: Int = Field(
        default=10, ge=0, description="rounds of the consistency fix after each proposal (script: 10)"
    )
    max_calls: Int | None = Field(
        default=None,
        ge=1,
        description="oracle calls allowed per seed (planned before any call, enforced during); null: no cap",
    )
    max_tokens: Int | None = Field(
        default=None,
        ge=1,
        description="prompt tokens allowed per seed (estimated at 3.5 characters per token); null: no cap",
    )
    framings: Framings = Field(
        default=ALL_FRAMINGS,
        description="framings asked per prompt; their scores are averaged (script: one; both cancel acquiescence)",
    )
    template_id: Str | None = Field(
        default=None, description="template of every prompt; the stage fills in the dataset's first template when unset"
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.t_min > self.t0:
            fail(("t_min",), f"{self.t_min} is above t0 = {self.t0}; the final temperature is at most the initial one")
        if self.n_init > self.batch_size:
            fail(("n_init",), f"{self.n_init} is above batch_size = {self.batch_size}; seeds are part of a batch")
        return self

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> OfficialICMConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, WHERE, BaselineConfigError)

    def iterations_for(self, batch_len: int) -> int:
        """K, the proposals made in a batch of ``batch_len`` items."""
        if self.iterations is not None:
            return int(self.iterations)
        return int(round(self.iterations_per_item * batch_len))


# ---------------------------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostPlan:
    """The oracle calls and prompt tokens of a run, planned before any call (``plan_cost``): at least ``calls`` /
    ``prompt_tokens``; at most ``calls_max`` / ``prompt_tokens_max`` without the consistency fix."""

    batch_sizes: tuple[int, ...]
    iterations: tuple[int, ...]
    calls: int
    prompt_tokens: int
    calls_max: int
    prompt_tokens_max: int

    def line(self) -> str:
        """One line for messages and logs."""
        return (
            f"{len(self.batch_sizes)} batches of <= {max(self.batch_sizes, default=0)} items, "
            f"{sum(self.iterations):,} proposals: {self.calls:,} to {self.calls_max:,} oracle calls, "
            f"{self.prompt_tokens:,} to {self.prompt_tokens_max:,} prompt tokens"
        )


def item_tokens(items: pd.DataFrame, n: int) -> np.ndarray:
    """Estimated tokens of each item's text (chars / 3.5, `elicit.prompts.estimate_tokens`); 0 without text."""
    out = np.zeros(n, dtype=np.int64)
    if "text" in items.columns:
        for i, t in zip(items["item_id"].astype(int), items["text"], strict=True):
            out[i] = estimate_tokens("" if pd.isna(t) else str(t))
    return out


def _batch_plan(tok: np.ndarray, s: int, k: int, frames: int) -> tuple[int, int, int, int]:
    """(calls, tokens, calls_max, tokens_max) of one batch whose item tokens are ``tok``, ``s`` seeds, ``k``
    proposals. At least: the seeds scored, each other item proposed once and, labelled, the pool re-scored (a
    pool of p + 1 labelled items costs p new queries: the new item's own query was its proposal). At most: every
    proposal changes a label and the whole batch is re-scored. A prompt shows the target and every other
    labelled item: (pool size) x the batch's mean tokens per item."""
    m = len(tok)
    mean = float(tok.mean()) if m else 0.0
    p = np.arange(s, m, dtype=np.float64)
    calls = s + (m - s) + float(p.sum())
    tokens = mean * (s * s + float((p + 1).sum()) + float((p * (p + 1)).sum()))
    calls_max = s + k * m
    tokens_max = mean * (s * s + k * m * m)
    return tuple(int(round(x * frames)) for x in (calls, tokens, calls_max, tokens_max))  # type: ignore[return-value]


def plan_cost(items: pd.DataFrame, cfg: OfficialICMConfig, seed: int = 0) -> CostPlan:
    """Calls and prompt tokens of a run over ``items`` (its batches, from ``seed``), before any call.

    At least (``calls``, ``prompt_tokens``): the seeds scored, one proposal per other item, and at its first label
    the whole pool re-scored (the search's main cost: ~ batch^2 / 2 queries per batch). At most (``calls_max``,
    ``prompt_tokens_max``): every proposal changes a label and re-scores the whole batch; the consistency fix
    (2 re-scorings per pair tried) is left out of both. Each in every framing; prompt tokens = the target's and
    the shown items' texts at 3.5 characters per token (the client's default counter; the template's words are
    left out). On the simulator runs made 2.3-3.6x the least calls (benchmarks/icm_speed.py).
    """
    items = items.drop(columns=["gold"], errors="ignore")
    n = item_count(items)
    tok = item_tokens(items, n)
    batches = make_batches(items, cfg.batch_size, np.random.default_rng([int(seed), _SALT]))
    iterations = tuple(cfg.iterations_for(len(b)) for b in batches)
    total = np.zeros(4, dtype=np.int64)
    for ids, k in zip(batches, iterations, strict=True):
        total += np.array(_batch_plan(tok[ids], min(cfg.n_init, len(ids)), k, len(cfg.framings)), dtype=np.int64)
    calls, tokens, calls_max, tokens_max = (int(x) for x in total)
    return CostPlan(tuple(len(b) for b in batches), iterations, calls, tokens, calls_max, tokens_max)


def check_cost(plan: CostPlan, cfg: OfficialICMConfig) -> None:
    """Raise ICMBudgetError (one line) when the plan exceeds ``max_calls`` or ``max_tokens``."""
    if cfg.max_calls is not None and plan.calls > cfg.max_calls:
        raise ICMBudgetError(
            f"{WHERE}: the run needs at least {plan.calls:,} oracle calls ({plan.line()}), over max_calls = "
            f"{cfg.max_calls:,}; raise {WHERE}.max_calls (null: no cap), or lower batch_size"
        )
    if cfg.max_tokens is not None and plan.prompt_tokens > cfg.max_tokens:
        raise ICMBudgetError(
            f"{WHERE}: the run needs at least {plan.prompt_tokens:,} prompt tokens ({plan.line()}), over "
            f"max_tokens = {cfg.max_tokens:,}; raise {WHERE}.max_tokens (null: no cap), or lower batch_size"
        )
