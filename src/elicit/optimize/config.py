"""Typed, validated optimizer configs built from the ``optimize:`` section of params.yaml.

Configs are frozen so a fit can never change the settings it reports; unknown keys, negative weights and unknown
optimizers fail with one line that names the key and the fix, because a typo in a swept config would otherwise
silently fall back to a default and the sweep would compare the wrong things.

``optimize:`` as written (:data:`OptimizeParams`): shared keys at its top level (defaults of every config), the
between-rounds ``loop_config``, the swept ``configs`` (one may ``extends:`` another; weights merge term by term)
and the ``select`` rule. :class:`OptimizeSection` is the section resolved: every config complete and checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, get_args

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import (
    SECTION,
    Float,
    HiddenStr,
    Int,
    Name,
    _nearest,
    annotated,
    build,
    entries,
    fail,
    key_path,
    partial,
    problem,
    required,
    typed,
    validate,
)

LossName = Literal["mutual", "prior", "ranking", "consistency", "balance", "entropy", "flip", "nuisance"]
Optimizer = Literal["adamw", "lbfgs"]
Init = Literal["prior", "inverted"]
SelectMethod = Literal["heldout"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
INITS: tuple[str, ...] = get_args(Init)
SELECT_METHODS: tuple[str, ...] = get_args(SelectMethod)
SelectHoldout = Literal["calls", "items"]


class OptimizeError(ElicitError, ValueError):
    """Bad optimizer input or a diverging fit, stated in one line (what, where, and the fix)."""


Weight = Annotated[Float, Field(ge=0)]


@typed("weights", OptimizeError, noun="loss name")
@pydantic_dataclass(frozen=True, config=SECTION)
class LossWeights:
    """Weight of each loss term in the total; 0 switches a term off (it is then not even computed).

    ``nuisance`` is the weight of the oracle-bias likelihood: with 0 the biases stay at 0 and scores are taken at
    face value (scale 1), which is what the ``-nuisance`` ablation means.
    """

    mutual: Weight = Field(default=1.0, description="mutual predictability of the few-shot answers")
    prior: Weight = Field(default=0.0, description="agreement with the calibrated zero-shot prior")
    ranking: Weight = Field(default=0.0, description="keep the prior's confident orderings")
    consistency: Weight = Field(default=0.0, description="the dataset's logical consistency rule")
    balance: Weight = Field(default=0.0, description="class balance (anti-collapse)")
    entropy: Weight = Field(default=0.0, description="confidence (low entropy of the soft labels)")
    flip: Weight = Field(default=0.0, description="flip-twin evidence (a flipped shown label's effect)")
    nuisance: Weight = Field(default=0.0, description="the oracle-bias likelihood (biases fitted and removed)")

    def active(self) -> dict[str, float]:
        """The terms with a positive weight, in the canonical order of LOSS_NAMES."""
        return {name: getattr(self, name) for name in LOSS_NAMES if getattr(self, name) > 0}

    @classmethod
    def from_params(cls, where: str, d: Any) -> LossWeights:
        """A config's ``weights:`` mapping: the terms it names, every other term off (0)."""
        return build(Weights, d, where, OptimizeError)


def _unnamed_terms_off(value: Any) -> Any:
    """A weights mapping states exactly what a config uses: a term it does not name is 0."""
    return {**dict.fromkeys(LOSS_NAMES, 0.0), **value} if isinstance(value, Mapping) else value


Weights = Annotated[LossWeights, BeforeValidator(_unnamed_terms_off)]
"""``weights:`` as params.yaml writes it (a term not named is off)."""


def _config_where(given: Mapping[str, Any]) -> str:
    name = given.get("name", "default")
    return "optimize.loop_config" if name == "loop_config" else f"optimize.configs.{name}"


@typed(_config_where, OptimizeError)
@pydantic_dataclass(frozen=True, config=SECTION)
class OptimizeConfig:
    """One named fitting recipe: loss weights plus optimizer and term settings.

    Defaults are the documented values of params.yaml's ``optimize:`` section; the ``optimize:`` section may
    override any of the shared keys at its top level and any key per config.
    """

    name: HiddenStr = Field(default="default", description="the config's key in optimize.configs (or loop_config)")
    weights: Weights = Field(
        default_factory=LossWeights,
        description="weight of each loss term; a term not named is 0 (off, not even computed)",
    )
    optimizer: Optimizer = Field(default="adamw", description="adamw | lbfgs (block L-BFGS)")
    lr: Float = Field(
        default=0.1,
        gt=0,
        description="AdamW step size (use 1.0 with lbfgs: it is the line search's first trial step)",
    )
    weight_decay: Float = Field(default=0.0, ge=0, description="AdamW weight decay")
    max_epochs: Int = Field(default=300, ge=1, description="epochs at most")
    tol: Float = Field(
        default=1e-4, ge=0, description="plateau: an epoch improves if total < best - tol * max(|best|, 1)"
    )
    patience: Int = Field(default=15, ge=1, description="stop after this many epochs without improvement")
    lbfgs_history: Int = Field(default=10, ge=1, description="L-BFGS history size")
    init_noise: Float = Field(
        default=0.1,
        ge=0,
        description="std of the seeded jitter on the starting logits (prior log-odds), so restarts differ",
    )
    init: Init = Field(
        default="prior",
        description=(
            "start at the calibrated zero-shot log-odds (prior) or their negation (inverted: the adversarial start, "
            "does the objective escape a wrong basin?)"
        ),
    )
    flip_threshold: Float = Field(
        default=0.6,
        ge=0.5,
        le=1,
        description="flip evidence counts only where the target's confidence |q - 0.5| + 0.5 exceeds this",
    )
    flip_scale: Float = Field(
        default=1.0, ge=0, description="strength of one flip pair's evidence: tanh(flip_scale * e / 2)"
    )
    ranking_pairs_per_item: Float = Field(default=4.0, ge=0, description="prior orderings sampled per item")
    ranking_margin: Float = Field(default=0.5, ge=0, description="margin of the ranking hinge")
    ranking_min_gap: Float = Field(
        default=1.0,
        ge=0,
        description="only prior orderings at least this far apart (calibrated log-odds) are enforced",
    )
    class_balance: Float | None = Field(
        default=None, gt=0, lt=1, description="share of label 1; null: estimated from the zero-shot prior without gold"
    )

    @property
    def where(self) -> str:
        """This config's path in params.yaml, for error messages."""
        return _config_where({"name": self.name})

    @classmethod
    def from_params(
        cls, name: str, d: Any, defaults: dict[str, Any] | None = None, where: str | None = None
    ) -> OptimizeConfig:
        """Build and validate a config from its params mapping, on top of shared ``defaults`` (same keys).

        ``where`` is the params path used in error messages (default ``optimize.configs.<name>``).
        """
        where = where or _config_where({"name": name})
        if not isinstance(d, Mapping):
            raise OptimizeError(f"{where}: {d!r} is not of type 'object'; give weights:, optimizer:, ...")
        try:
            return _complete(name, {**(defaults or {}), **d})
        except ValidationError as exc:
            loc, message = problem(exc, cls)
        raise OptimizeError(f"{key_path(where, *loc)}: {message}")

    def with_(self, **changes: Any) -> OptimizeConfig:
        """A copy with some fields changed (frozen dataclasses cannot be edited in place)."""
        return replace(self, **changes)


SHARED_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(OptimizeConfig) if f.name not in ("name", "weights", "optimizer")
) + ("optimizer",)
"""Keys ``optimize:`` may set at its top level: defaults of every config (and of loop_config)."""
_WEIGHTS_MISSING = "missing; give at least one loss weight, e.g. weights: {mutual: 1}"


def _complete(name: str, merged: dict[str, Any], loc: tuple[str | int, ...] = ()) -> OptimizeConfig:
    """A config from its keys over the shared ones; failures are located at ``loc`` (the config's place)."""
    if "name" in merged:
        fail((*loc, "name"), "unknown key 'name'; a config's name is its key under optimize.configs")
    if "weights" not in merged:
        fail((*loc, "weights"), _WEIGHTS_MISSING)
    try:
        config: OptimizeConfig = validate(OptimizeConfig, {**merged, "name": name})
    except ValidationError as exc:
        where, message = problem(exc, OptimizeConfig)
        fail((*loc, *where), message)
    if not config.weights.active():
        fail((*loc, "weights"), "every weight is 0; give at least one positive loss weight")
    return config


@typed("optimize.select", OptimizeError)
@pydantic_dataclass(frozen=True, config=SECTION)
class SelectConfig:
    """How ``select`` ranks configs without gold (see select.py for the rule and its limits)."""

    method: SelectMethod = Field(
        default="heldout", description="heldout: held-out likelihood of the oracle's own answers"
    )
    holdout_fraction: Float = Field(default=0.2, gt=0, lt=1, description="share of tuples (or items) held out")
    holdout: SelectHoldout = Field(
        default="calls",
        description=(
            "calls: a random share of the tuples, an item's other calls stay in train; items: every call about a "
            "random share of the items, so labels are judged on items whose own answers were not fitted (measured "
            "2026-12-02: it picks prior_only on every ETHICS suite draw, 20-27 points below calls; a diagnostic)"
        ),
    )
    tie_tolerance: Float = Field(
        default=1e-3,
        ge=0,
        description="held-out log-likelihood per tuple (nats) within which configs tie; ties go to the most stable",
    )

    @classmethod
    def from_params(cls, d: Any) -> SelectConfig:
        """Build from ``optimize.select`` (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "optimize.select", OptimizeError)


def _extends_problem(raw_configs: Mapping[str, Any], name: str) -> tuple[list[str], str | None]:
    """The chain ``name`` extends (nearest first) and, where it breaks, what is wrong with its last link."""
    chain = [name]
    while True:
        entry = raw_configs.get(chain[-1])
        parent = entry.get("extends") if isinstance(entry, Mapping) else None
        if parent is None:
            return chain, None
        if parent not in raw_configs:
            known = list(raw_configs)
            close = [k for k in known if k != chain[-1]]
            return chain, f"no config named {parent!r}; {_nearest(str(parent), close)}known configs: {', '.join(known)}"
        if parent in chain:
            return chain, f"{parent!r} extends itself through {' -> '.join(chain)}; break the cycle"
        chain.append(str(parent))


def extends_chain(raw_configs: dict[str, Any], name: str) -> list[str]:
    """``name`` and the configs it extends, nearest first (``extends: full`` → [name, "full", ...]); a missing
    parent or a cycle is one line naming the key."""
    chain, wrong = _extends_problem(raw_configs, name)
    if wrong is not None:
        raise OptimizeError(f"optimize.configs.{chain[-1]}.extends: {wrong}")
    return chain


def _merge_chain(raw_configs: Mapping[str, Any], chain: list[str]) -> Any:
    out: dict[str, Any] = {}
    for link in reversed(chain):
        entry = raw_configs[link]
        if not isinstance(entry, Mapping):
            return entry  # the config's own check names the bad value
        for key, value in entry.items():
            if key == "extends":
                continue
            if key == "weights" and isinstance(value, Mapping) and isinstance(out.get("weights"), Mapping):
                out["weights"] = {**out["weights"], **value}
            else:
                out[key] = value
    return out


def resolve_extends(raw_configs: dict[str, Any], name: str) -> Any:
    """A config's own mapping over the one it extends (recursively); ``weights`` merge term by term, so
    ``{extends: full, weights: {nuisance: 0}}`` is full without the bias model."""
    return _merge_chain(raw_configs, extends_chain(raw_configs, name))


@typed("optimize", OptimizeError)
@pydantic_dataclass(frozen=True, config=SECTION)
class OptimizeSection:
    """The whole ``optimize:`` section resolved: the between-rounds config, the swept configs and the select rule."""

    loop_config: OptimizeConfig = Field(description="the config fitted between few-shot rounds (fit_loop)")
    configs: dict[str, OptimizeConfig] = Field(description="the swept configs, each complete")
    select: SelectConfig = Field(description="the gold-free rule that picks one of the configs")

    @classmethod
    def from_params(cls, d: Any) -> OptimizeSection:
        """Parse ``optimize:``; shared keys at its top level are defaults for every config."""
        return build(OptimizeParams, d, "optimize", OptimizeError)  # type: ignore[no-any-return]


def _resolve(raw: dict[str, Any]) -> OptimizeSection:
    """``optimize:`` as written (each key checked) → every config complete: extends followed, shared keys under
    each config's own. Failures name the key, e.g. ``configs.a.extends`` or ``configs.full.weights``."""
    defaults = {k: v for k, v in raw.items() if k in SHARED_KEYS}
    raw_configs = raw["configs"]
    configs: dict[str, OptimizeConfig] = {}
    for name in raw_configs:
        chain, wrong = _extends_problem(raw_configs, name)
        if wrong is not None:
            fail(("configs", chain[-1], "extends"), wrong)
        merged = {**defaults, **_merge_chain(raw_configs, chain)}
        configs[name] = _complete(name, merged, ("configs", name))
    loop = _complete("loop_config", {**defaults, **raw["loop_config"]}, ("loop_config",))
    return OptimizeSection(loop_config=loop, configs=configs, select=raw.get("select") or SelectConfig())


WeightsEntry = partial(
    LossWeights,
    "WeightsEntry",
    doc="loss weights of a config: a term not named is 0 (with extends: the parent's, merged term by term)",
)
_ConfigEntry = partial(
    OptimizeConfig,
    "OptimizeConfigEntry",
    drop=("weights",),
    extra={
        "weights": WeightsEntry,
        "extends": Annotated[Name, Field(description="another config of optimize.configs this one starts from")],
    },
    doc="one swept config: any key of the section's top level for itself, and its weights (or extends: another)",
)
_LoopEntry = partial(
    OptimizeConfig,
    "LoopConfigEntry",
    drop=("weights",),
    extra={"weights": required(WeightsEntry)},
    doc="the config fitted between few-shot rounds; not swept, so editing a swept config never re-asks the oracle",
)
_Written = partial(
    OptimizeConfig,
    "OptimizeParams",
    drop=("weights",),
    extra={
        "loop_config": required(
            annotated(_LoopEntry, Field(description="the config fitted between few-shot rounds (fit_loop)"))
        ),
        "configs": required(
            entries(_ConfigEntry, min_length=1, description="the swept configs; select picks one of them without gold")
        ),
        "select": Annotated[
            SelectConfig | None, Field(description="the gold-free config choice (elicit/optimize/select.py)")
        ],
    },
    doc=(
        "optimize: the soft-label fit. Keys at its top level are defaults of every config (loop_config and each of "
        "configs); the swept configs are fitted per seed and select picks one without gold."
    ),
)
if TYPE_CHECKING:  # a mapping to mypy; to pydantic, the checked section resolved into an OptimizeSection
    OptimizeParams: TypeAlias = OptimizeSection
else:
    OptimizeParams = annotated(_Written, AfterValidator(_resolve))
    """``optimize:`` as params.yaml writes it, checked key by key, then resolved into an OptimizeSection."""
