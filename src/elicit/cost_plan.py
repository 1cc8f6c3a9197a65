"""The oracle calls a run will make, stage by stage, planned before any call (``python -m elicit.cost``).

Each stage is planned by the code that will ask, not by a formula beside it, so the plan cannot drift from the run:

- query round 0 and the few-shot rounds: :func:`elicit.plan.zero_shot_queries` and :func:`elicit.plan.plan_round`
  over the run's items and groups, every shown label at 0.5 (no answer exists yet; a shown label changes a word of a
  prompt, never how many prompts there are). From round 2, ``budget.adaptive`` gives extra calls to the home targets
  of the most uncertain groups, known only after the answers: the range runs from the selected groups holding the
  fewest home targets to those holding the most (how many groups: :func:`elicit.plan_budget.queries_per_item`
  itself), the point is the mean.
- golden / random / bootstrap few-shot and the budget ICM: their own functions, run against a dry oracle that records
  each query and answers with random scores. Their call counts do not depend on the answers (ICM spends its whole
  budget whatever it hears), so the count is the run's; golden few-shot is shown placeholder labels, never gold.
- faithful ICM, when enabled: its own cost guard (:func:`elicit.baselines.icm_official_config.plan_cost`), a range
  whose top leaves out the consistency fix.

Prompt tokens: every planned prompt rendered and counted as the client counts it before sending
(:func:`elicit.prompts.fit_context`: 3.5 characters per token, context shrunk to the oracle's ``n_ctx``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from elicit.baselines.fewshot import (
    Ask,
    BootstrapConfig,
    FewShotConfig,
    bootstrap_fewshot,
    golden_fewshot,
    random_fewshot,
)
from elicit.baselines.icm import ICMConfig, icm
from elicit.baselines.icm_official_config import OfficialICMConfig, item_tokens, plan_cost
from elicit.config import RunConfig
from elicit.errors import ElicitError
from elicit.plan import BudgetConfig, plan_round, zero_shot_queries
from elicit.plan_budget import queries_per_item
from elicit.prompts import ContextOverflowError, Template, fit_context

EXACT, BUDGET, RANGE = "exact", "budget", "range"
"""How a stage's count is known: from the plan alone; a call budget the stage always spends; a range (the answers
decide)."""


class CostError(ElicitError, ValueError):
    """A run that cannot be planned (a prompt over the oracle's context size, bad inputs); one line with the fix."""


@dataclass(frozen=True)
class RunInputs:
    """What the plan reads besides the params: nothing an oracle wrote."""

    items: pd.DataFrame
    """item_id, text (+ consistency_id, answer_key); never gold."""
    groups: pd.DataFrame
    embeddings: np.ndarray
    templates: Sequence[Template]
    oracle: str
    """the oracle's name (named in errors)."""
    n_ctx: int | None = None
    """the context size the client fits prompts to (None: no limit, as for the simulator)."""
    margin: int = 64
    chat: bool = False


@dataclass(frozen=True)
class StagePlan:
    """The planned oracle calls of one job: a point and a [low, high] range (equal unless the answers decide)."""

    stage: str
    """the job's telemetry name (``query.round1``, ``icm``), as ``results/<run>/telemetry/<stage>.json``."""
    kind: str
    calls: float
    calls_low: int
    calls_high: int
    prompt_tokens: float
    tokens_low: float
    tokens_high: float
    shown: float
    """mean context items shown per call (the embedded server's time grows with them)."""
    note: str = ""


# ---------------------------------------------------------------------------------------------- prompts


def prompt_tokens(queries: pd.DataFrame, inputs: RunInputs) -> np.ndarray:
    """Estimated prompt tokens of each query row, as the client fits and counts them before sending."""
    texts = {int(i): str(t) for i, t in zip(inputs.items["item_id"], inputs.items["text"], strict=True)}
    temps = {t.id: t for t in inputs.templates}
    out = np.zeros(len(queries), dtype=np.int64)
    cols = ["query_id", "target_id", "framing", "template_id", "context_ids", "context_shown"]
    for k, (qid, target, framing, tpl, ctx_ids, ctx_shown) in enumerate(queries[cols].itertuples(index=False)):
        ctx = [(texts[int(c)], int(s)) for c, s in zip(ctx_ids, ctx_shown, strict=True)]
        try:
            fitted = fit_context(
                temps[str(tpl)], str(framing), texts[int(target)], ctx, inputs.n_ctx, inputs.margin, chat=inputs.chat
            )
        except ContextOverflowError as exc:
            raise CostError(f"query {qid}: {exc}; raise oracles.{inputs.oracle}.n_ctx or drop long items") from None
        out[k] = fitted.prompt_tokens
    return out


def _shown(queries: pd.DataFrame) -> float:
    return float(np.mean([len(c) for c in queries["context_ids"]])) if len(queries) else 0.0


def summarize(stage: str, queries: pd.DataFrame, inputs: RunInputs, kind: str = EXACT, note: str = "") -> StagePlan:
    """A stage whose planned queries are all known: the count is the plan's, the tokens every prompt's."""
    n = len(queries)
    tok = float(prompt_tokens(queries, inputs).sum())
    return StagePlan(stage, kind, float(n), n, n, tok, tok, tok, _shown(queries), note)


# ---------------------------------------------------------------------------------------------- query rounds


def adaptive_groups(cfg: BudgetConfig, round: int, n_groups: int) -> int:
    """How many of a round's groups get ``adaptive_extra`` calls, asked of the planner's own rule: one item per group,
    all equally uncertain, so the count of items given extra calls is the count of groups selected."""
    g = np.arange(n_groups, dtype=np.int64)
    q = queries_per_item(cfg, round, np.full(n_groups, 0.5), g, g, g, np.ones(n_groups, dtype=np.int64), g)
    return int(np.count_nonzero(q > cfg.queries_per_item))


def plan_rounds(run: RunConfig, inputs: RunInputs) -> list[StagePlan]:
    """Round 0 (zero-shot) and each few-shot round of the run, from the planner itself."""
    ids = [t.id for t in inputs.templates]
    items = inputs.items[["item_id", "text"]]
    cfg = BudgetConfig.from_params(run.section("budget"))
    out = [summarize("query.round0", zero_shot_queries(items, ids, framings=cfg.framings), inputs)]
    fixed = dataclasses.replace(cfg, adaptive=False)
    shown = pd.DataFrame({"item_id": items["item_id"].astype(np.int64), "p_true": 0.5})
    for r in range(1, int(run.section("base")["rounds"]) + 1):
        plan = plan_round(items, inputs.groups, shown, r, fixed, run.seed, ids)
        base = summarize(f"query.round{r}", plan, inputs)
        round_groups = np.unique(inputs.groups.loc[inputs.groups["round"] == r, "group_id"].to_numpy())
        n_sel = adaptive_groups(cfg, r, len(round_groups))
        if n_sel == 0:
            out.append(base)
            continue
        homes = plan.groupby("group_id")["target_id"].nunique().reindex(round_groups, fill_value=0).to_numpy()
        homes = np.sort(homes)
        extra = cfg.adaptive_extra
        low, high = extra * int(homes[:n_sel].sum()), extra * int(homes[-n_sel:].sum())
        point = extra * n_sel * len(items) / len(round_groups)
        per_call = base.prompt_tokens / max(base.calls, 1.0)
        out.append(
            StagePlan(
                base.stage,
                RANGE,
                base.calls + point,
                base.calls_low + low,
                base.calls_high + high,
                per_call * (base.calls + point),
                per_call * (base.calls + low),
                per_call * (base.calls + high),
                base.shown,
                f"adaptive: {n_sel} of {len(round_groups)} groups get +{extra} call(s) per home target",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- baselines


def dry_oracle(seed: int) -> tuple[Ask, list[pd.DataFrame]]:
    """An ``ask`` that records every query frame and answers with random scores (no oracle is involved)."""
    asked: list[pd.DataFrame] = []
    rng = np.random.default_rng([int(seed), 19])

    def ask(queries: pd.DataFrame) -> pd.DataFrame:
        asked.append(queries)
        return queries.assign(score=rng.normal(size=len(queries)))

    return ask, asked


def _asked(asked: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in asked if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["context_ids"])


def plan_fewshot(run: RunConfig, inputs: RunInputs, rule: str) -> list[StagePlan]:
    """golden / random / bootstrap few-shot, each its own function over a dry oracle, seed by seed as the stage runs
    them (golden: seed 0 only)."""
    b = run.section("baselines")
    fcfg = FewShotConfig.from_params(b.get("fewshot"))
    fcfg = dataclasses.replace(fcfg, template_id=fcfg.template_id or inputs.templates[0].id)
    rounds = BootstrapConfig.from_params(b.get("bootstrap")).rounds
    items, groups = inputs.items, inputs.groups
    priors = pd.DataFrame({"item_id": items["item_id"].astype(np.int64), "score": np.nan})
    placeholder = items.assign(gold=pd.array(np.zeros(len(items), dtype=np.int8), dtype="Int8"))
    runs: dict[str, tuple[list[int], Callable[[Ask, int], object]]] = {
        "golden_fewshot": ([0], lambda ask, s: golden_fewshot(placeholder, groups, ask, fcfg, s)),
        "random_fewshot": (run.baseline_seeds, lambda ask, s: random_fewshot(items, groups, priors, ask, fcfg, s)),
        "bootstrap_fewshot": (
            run.baseline_seeds,
            lambda ask, s: bootstrap_fewshot(items, groups, priors, ask, fcfg, s, rounds, rule),
        ),
    }
    out = []
    for method, (seeds, call) in runs.items():
        asked: list[pd.DataFrame] = []
        for seed in seeds:
            ask, got = dry_oracle(seed)
            call(ask, seed)
            asked.extend(got)
        out.append(summarize(method, _asked(asked), inputs, note=f"{len(seeds)} seed(s)"))
    return out


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _faithful_shaped(entry: Any) -> bool:
    """A ``baselines.<key>`` mapping meant for faithful ICM (``enabled``, or a key only its config has)."""
    if not isinstance(entry, Mapping):
        return False
    return "enabled" in entry or bool(set(entry) & (_fields(OfficialICMConfig) - _fields(ICMConfig)))


def icm_sections(
    baselines: Mapping[str, Any],
) -> tuple[tuple[str, ICMConfig] | None, tuple[str, OfficialICMConfig] | None]:
    """(budget ICM, faithful ICM), each as (telemetry job, config) or None.

    Read from whichever layout the params use: the budget variant under ``baselines.icm_budget``, else under
    ``baselines.icm`` while that holds the budget variant's keys; faithful ICM under ``baselines.icm`` (or
    ``baselines.icm_official``) only with ``enabled: true``."""
    icm_entry = baselines.get("icm")
    faithful: tuple[str, OfficialICMConfig] | None = None
    for key in ("icm", "icm_official"):
        entry = baselines.get(key)
        if isinstance(entry, Mapping) and _faithful_shaped(entry) and entry.get("enabled") is True:
            known = _fields(OfficialICMConfig)
            d = {k: v for k, v in entry.items() if k != "enabled" or k in known}
            faithful = (key, OfficialICMConfig.from_params(d))
            break
    if "icm_budget" in baselines:
        cheap = ("icm_budget", ICMConfig.from_params(baselines["icm_budget"]))
    elif _faithful_shaped(icm_entry):
        cheap = ("icm_budget", ICMConfig.from_params(None))
    else:
        cheap = ("icm", ICMConfig.from_params(icm_entry))
    return cheap, faithful


def plan_icm(run: RunConfig, inputs: RunInputs, rule: str) -> list[StagePlan]:
    """The budget ICM over a dry oracle (its count is its budget), and faithful ICM's own range when enabled."""
    cheap, faithful = icm_sections(run.section("baselines"))
    items = inputs.items
    priors = pd.DataFrame({"item_id": items["item_id"].astype(np.int64), "score": np.nan})
    seeds = run.baseline_seeds
    out = []
    if cheap is not None:
        name, cfg = cheap
        cfg = dataclasses.replace(cfg, template_id=cfg.template_id or inputs.templates[0].id)
        asked: list[pd.DataFrame] = []
        for seed in seeds:
            ask, got = dry_oracle(seed)
            icm(items, inputs.embeddings, priors, ask, cfg, seed, rule)
            asked.extend(got)
        note = f"{len(seeds)} seed(s); the call budget is always spent"
        out.append(summarize(name, _asked(asked), inputs, BUDGET, note))
    if faithful is not None:
        name, fcfg = faithful
        plans = [plan_cost(items, fcfg, seed) for seed in seeds]
        calls, calls_max = sum(p.calls for p in plans), sum(p.calls_max for p in plans)
        tokens, tokens_max = sum(p.prompt_tokens for p in plans), sum(p.prompt_tokens_max for p in plans)
        mean_item = float(item_tokens(items, len(items)).mean()) if len(items) else 0.0
        shown = max(tokens / max(calls, 1) / max(mean_item, 1.0) - 1.0, 0.0)
        note = (
            f"{len(seeds)} seed(s), {plans[0].line()} per seed; point = the least; the top leaves out the "
            "consistency fix"
        )
        out.append(StagePlan(name, RANGE, float(calls), calls, calls_max, tokens, tokens, tokens_max, shown, note))
    return out


def plan_stages(run: RunConfig, inputs: RunInputs, rule: str) -> list[StagePlan]:
    """Every oracle-calling job of the run, in pipeline order."""
    return [*plan_rounds(run, inputs), *plan_fewshot(run, inputs, rule), *plan_icm(run, inputs, rule)]
