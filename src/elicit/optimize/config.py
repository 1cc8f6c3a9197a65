"""Typed, validated optimizer configs built from the ``optimize:`` section of params.yaml.

Configs are frozen so a fit can never change the settings it reports; ``from_params`` rejects unknown keys,
negative weights and unknown optimizers with one line that names the key and the fix, because a typo in a
swept config would otherwise silently fall back to a default and the sweep would compare the wrong things.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from elicit.errors import ElicitError

LOSS_NAMES: tuple[str, ...] = (
    "mutual",
    "prior",
    "ranking",
    "consistency",
    "balance",
    "entropy",
    "flip",
    "nuisance",
)
OPTIMIZERS: tuple[str, ...] = ("adamw", "lbfgs")
INITS: tuple[str, ...] = ("prior", "inverted")
SELECT_METHODS: tuple[str, ...] = ("heldout",)


class OptimizeError(ElicitError, ValueError):
    """Bad optimizer input or a diverging fit, stated in one line (what, where, and the fix)."""


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; known keys: {', '.join(known)}"


def _number(where: str, value: Any, *, minimum: float | None = 0.0, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptimizeError(f"{where}: expected a number, got {value!r}; write a plain number")
    if not math.isfinite(float(value)):
        raise OptimizeError(f"{where}: must be finite, got {value!r}; write a finite number")
    if integer and int(value) != value:
        raise OptimizeError(f"{where}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise OptimizeError(f"{where}: must be >= {minimum}, got {value!r}; use a non-negative value")
    return float(value)


@dataclass(frozen=True)
class LossWeights:
    """Weight of each loss term in the total; 0 switches a term off (it is then not even computed).

    ``nuisance`` is the weight of the oracle-bias likelihood: with 0 the biases stay at 0 and scores are
    taken at face value (scale 1), which is what the ``no_nuisance`` ablation means.
    """

    mutual: float = 1.0
    prior: float = 0.0
    ranking: float = 0.0
    consistency: float = 0.0
    balance: float = 0.0
    entropy: float = 0.0
    flip: float = 0.0
    nuisance: float = 0.0

    def active(self) -> dict[str, float]:
        """The terms with a positive weight, in the canonical order of LOSS_NAMES."""
        return {name: getattr(self, name) for name in LOSS_NAMES if getattr(self, name) > 0}

    @classmethod
    def from_params(cls, where: str, d: Any) -> LossWeights:
        if not isinstance(d, dict):
            raise OptimizeError(f"{where}: expected a mapping of loss name to weight, got {d!r}")
        for key, value in d.items():
            if key not in LOSS_NAMES:
                raise OptimizeError(f"{where}.{key}: unknown loss name{_suggest(str(key), LOSS_NAMES)}")
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise OptimizeError(
                    f"{where}.{key}: negative weight {value}; weights must be >= 0 (0 switches a term off)"
                )
            _number(f"{where}.{key}", value)
        # Terms not named are off: a config states exactly what it uses.
        return cls(**{name: float(d.get(name, 0.0)) for name in LOSS_NAMES})


@dataclass(frozen=True)
class OptimizeConfig:
    """One named fitting recipe: loss weights plus optimizer and term settings.

    Defaults are the documented values of params.yaml's ``optimize:`` section; the ``optimize:`` section may
    override any of the shared keys at its top level and any key per config.
    """

    name: str = "default"
    weights: LossWeights = field(default_factory=LossWeights)
    optimizer: str = "adamw"
    lr: float = 0.1
    weight_decay: float = 0.0
    max_epochs: int = 300
    tol: float = 1e-4  # plateau: an epoch "improves" if it beats the best total by tol * max(|best|, 1)
    patience: int = 15  # stop after this many epochs without improvement
    lbfgs_history: int = 10
    init_noise: float = 0.1  # std of the seeded jitter added to the prior logits at the start (restarts differ)
    # start point: "prior" (the calibrated zero-shot log-odds) or "inverted" (their negation: the adversarial
    # initialisation ablation, which asks whether the objective escapes a wrong basin)
    init: str = "prior"
    flip_threshold: float = 0.6  # trust flip evidence only where |q - 0.5| + 0.5 of the target exceeds this
    flip_scale: float = 1.0  # multiplies the debiased flip score change before tanh (evidence strength)
    ranking_pairs_per_item: float = 4.0
    ranking_margin: float = 0.5
    ranking_min_gap: float = 1.0  # only pairs whose calibrated prior log-odds differ by at least this
    class_balance: float | None = None  # None: estimated from the zero-shot prior without gold

    @property
    def where(self) -> str:
        """This config's path in params.yaml, for error messages."""
        return "optimize.loop_config" if self.name == "loop_config" else f"optimize.configs.{self.name}"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise OptimizeError(
                f"{self.where}.optimizer: unknown optimizer '{self.optimizer}'; use one of: {', '.join(OPTIMIZERS)}"
            )
        if self.init not in INITS:
            raise OptimizeError(f"{self.where}.init: unknown start '{self.init}'; use one of: {', '.join(INITS)}")
        if not 0.5 <= self.flip_threshold <= 1.0:
            raise OptimizeError(
                f"{self.where}.flip_threshold: {self.flip_threshold} is outside [0.5, 1]; "
                "it is a confidence |q-0.5|+0.5"
            )
        if self.class_balance is not None and not 0.0 < self.class_balance < 1.0:
            raise OptimizeError(f"{self.where}.class_balance: {self.class_balance} must be in (0, 1) or null")
        if self.max_epochs < 1 or self.patience < 1:
            raise OptimizeError(f"{self.where}: max_epochs and patience must be >= 1")
        if self.lr <= 0:
            raise OptimizeError(f"{self.where}.lr: must be > 0, got {self.lr}")

    @classmethod
    def from_params(
        cls, name: str, d: Any, defaults: dict[str, Any] | None = None, where: str | None = None
    ) -> OptimizeConfig:
        """Build and validate a config from its params mapping, on top of shared ``defaults`` (same keys).

        ``where`` is the params path used in error messages (default ``optimize.configs.<name>``).
        """
        where = where or ("optimize.loop_config" if name == "loop_config" else f"optimize.configs.{name}")
        if not isinstance(d, dict):
            raise OptimizeError(f"{where}: expected a mapping (weights:, optimizer:, ...), got {d!r}")
        merged: dict[str, Any] = dict(defaults or {})
        merged.update(d)
        known = [f.name for f in fields(cls) if f.name != "name"]
        kwargs: dict[str, Any] = {"name": name}
        for key, value in merged.items():
            if key not in known:
                raise OptimizeError(f"{where}.{key}: unknown key{_suggest(str(key), known)}")
            if key == "weights":
                kwargs[key] = LossWeights.from_params(f"{where}.weights", value)
            elif key in ("optimizer", "init"):
                kwargs[key] = str(value).lower()
            elif key == "class_balance":
                kwargs[key] = None if value is None else _number(f"{where}.{key}", value)
            elif key in ("max_epochs", "patience", "lbfgs_history"):
                kwargs[key] = int(_number(f"{where}.{key}", value, minimum=1, integer=True))
            else:
                kwargs[key] = _number(f"{where}.{key}", value)
        if "weights" not in kwargs:
            raise OptimizeError(f"{where}.weights: missing; give at least one loss weight, e.g. weights: {{mutual: 1}}")
        if not kwargs["weights"].active():
            raise OptimizeError(f"{where}.weights: every weight is 0; give at least one positive loss weight")
        return cls(**kwargs)

    def with_(self, **changes: Any) -> OptimizeConfig:
        """A copy with some fields changed (frozen dataclasses cannot be edited in place)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SelectConfig:
    """How ``select`` ranks configs without gold (see select.py for the rule and its limits)."""

    method: str = "heldout"
    holdout_fraction: float = 0.2
    tie_tolerance: float = 1e-3  # held-out log-likelihood per tuple (nats) within which configs count as tied

    @classmethod
    def from_params(cls, d: Any) -> SelectConfig:
        where = "optimize.select"
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise OptimizeError(f"{where}: expected a mapping, got {d!r}")
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise OptimizeError(f"{where}.{key}: unknown key{_suggest(str(key), known)}")
        method = str(d.get("method", "heldout"))
        if method not in SELECT_METHODS:
            raise OptimizeError(f"{where}.method: unknown method '{method}'; use one of: {', '.join(SELECT_METHODS)}")
        frac = _number(f"{where}.holdout_fraction", d.get("holdout_fraction", 0.2))
        if not 0.0 < frac < 1.0:
            raise OptimizeError(f"{where}.holdout_fraction: {frac} must be in (0, 1), e.g. 0.2")
        tie = _number(f"{where}.tie_tolerance", d.get("tie_tolerance", 1e-3))
        return cls(method=method, holdout_fraction=frac, tie_tolerance=tie)


def extends_chain(raw_configs: dict[str, Any], name: str) -> list[str]:
    """``name`` and the configs it extends, nearest first (``extends: full`` → [name, "full", ...]); a missing
    parent or a cycle is one line naming the key."""
    chain = [name]
    while True:
        entry = raw_configs.get(chain[-1])
        parent = entry.get("extends") if isinstance(entry, dict) else None
        if parent is None:
            return chain
        where = f"optimize.configs.{chain[-1]}.extends"
        if parent not in raw_configs:
            raise OptimizeError(f"{where}: no config named '{parent}'{_suggest(str(parent), list(raw_configs))}")
        if parent in chain:
            raise OptimizeError(f"{where}: '{parent}' extends itself through {' -> '.join(chain)}; break the cycle")
        chain.append(str(parent))


def resolve_extends(raw_configs: dict[str, Any], name: str) -> Any:
    """A config's own mapping over the one it extends (recursively); ``weights`` merge term by term, so
    ``{extends: full, weights: {nuisance: 0}}`` is full without the bias model."""
    out: dict[str, Any] = {}
    for link in reversed(extends_chain(raw_configs, name)):
        entry = raw_configs[link]
        if not isinstance(entry, dict):
            return entry  # OptimizeConfig.from_params names the bad value
        for key, value in entry.items():
            if key == "extends":
                continue
            if key == "weights" and isinstance(value, dict) and isinstance(out.get("weights"), dict):
                out["weights"] = {**out["weights"], **value}
            else:
                out[key] = value
    return out


SHARED_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(OptimizeConfig) if f.name not in ("name", "weights", "optimizer")
) + ("optimizer",)


@dataclass(frozen=True)
class OptimizeSection:
    """The whole ``optimize:`` section: the between-rounds config, the swept configs and the select rule."""

    loop_config: OptimizeConfig
    configs: dict[str, OptimizeConfig]
    select: SelectConfig

    @classmethod
    def from_params(cls, d: Any) -> OptimizeSection:
        """Parse ``optimize:``; shared keys at its top level are defaults for every config."""
        if not isinstance(d, dict):
            raise OptimizeError(f"optimize: expected a mapping, got {d!r}")
        allowed = ("loop_config", "configs", "select", *SHARED_KEYS)
        for key in d:
            if key not in allowed:
                raise OptimizeError(f"optimize.{key}: unknown key{_suggest(str(key), list(allowed))}")
        defaults = {k: v for k, v in d.items() if k in SHARED_KEYS}
        raw_configs = d.get("configs")
        if not isinstance(raw_configs, dict) or not raw_configs:
            raise OptimizeError("optimize.configs: missing or empty; name at least one config with its weights")
        configs = {
            str(n): OptimizeConfig.from_params(str(n), resolve_extends(raw_configs, str(n)), defaults)
            for n in raw_configs
        }
        if "loop_config" not in d:
            raise OptimizeError("optimize.loop_config: missing; give the config used between rounds")
        loop = OptimizeConfig.from_params("loop_config", d["loop_config"], defaults)
        return cls(loop_config=loop, configs=configs, select=SelectConfig.from_params(d.get("select")))
