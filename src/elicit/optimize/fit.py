"""Fit soft labels (and the oracle's biases) by full-batch gradient descent on the weighted loss terms.

One call = one config, one seed: seeded start (calibrated prior logits plus a small seeded jitter, so restarts
differ), AdamW or L-BFGS, stop when the total stops improving (relative tolerance + patience) or at
max_epochs. A fit that blows up raises OptimizeError naming the term responsible rather than writing NaN
labels. Results are bit-reproducible on CPU for a given seed; on CUDA, atomic scatter-adds may change the
last digits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from elicit.optimize import losses as L
from elicit.optimize.config import LOSS_NAMES, OptimizeConfig, OptimizeError
from elicit.optimize.problem import Problem, sample_ranking_pairs

SMALL_PROBLEM_SLOTS = 2_000_000  # below this many context slots (T * K), CPU fits run on one thread
DIVERGENCE_FACTOR = 10.0  # total above best + (factor - 1) * max(|best|, DIVERGENCE_FLOOR) counts as diverged
DIVERGENCE_FLOOR = 0.1


@dataclass
class FitResult:
    """What one fit produces: labels, the loss curve, the fitted oracle biases, and how it stopped."""

    p_true: np.ndarray  # [N] float64, P(label 1) per item id
    logits: np.ndarray  # [N] float64, z (log-odds), kept for held-out scoring without re-clipping p
    curve: pd.DataFrame  # epoch, one column per active term (unweighted), total (weighted sum)
    nuisance: dict[str, Any]  # JSON-ready, see losses.nuisance_report (+ prior calibration)
    n_epochs: int
    converged: bool
    config: str = ""
    seed: int = 0
    device: str = "cpu"
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))  # raw nuisance vector (losses.NUISANCE_NAMES)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) at once; returns a CPU generator for the fit's own
    draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def cpu_threads(problem: Problem, device: torch.device, threads: int | None = None) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads (default: 1 for small problems), restoring the setting after.

    Each op of a seed-sized epoch touches ~3e5 numbers; splitting that across threads costs more than it saves
    (measured 5.9 ms vs 18.5 ms per epoch on the 2-core CI machine), and a loaded machine makes it worse.
    """
    if threads is None and (device.type != "cpu" or problem.ctx_ids.numel() >= SMALL_PROBLEM_SLOTS):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def check_config(config: OptimizeConfig) -> dict[str, float]:
    """Re-validate weights (a config may be built in code, bypassing from_params); returns the active ones."""
    for name in LOSS_NAMES:
        w = getattr(config.weights, name)
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise OptimizeError(f"config '{config.name}': weight {name}={w!r} must be a finite number >= 0")
    active = config.weights.active()
    if not active:
        raise OptimizeError(f"config '{config.name}': every loss weight is 0; give at least one positive weight")
    return active


def _blame(terms: dict[str, float], best_terms: dict[str, float], weights: dict[str, float]) -> str:
    """The term whose weighted value grew most since the best epoch (or the first non-finite one)."""
    for name, value in terms.items():
        if not math.isfinite(value):
            return name
    return max(terms, key=lambda n: weights[n] * (terms[n] - best_terms.get(n, terms[n])))


def fit(
    problem: Problem,
    config: OptimizeConfig,
    seed: int,
    device: str | torch.device = "auto",
    threads: int | None = None,
) -> FitResult:
    """Fit labels for every item of ``problem`` with ``config`` from ``seed``; see module docstring.

    ``threads``: CPU intra-op threads for this fit (None: 1 below SMALL_PROBLEM_SLOTS context slots, else
    torch's setting); the process-wide setting is restored afterwards.
    """
    weights = check_config(config)
    dev = resolve_device(device)
    prob = problem if problem.device == dev else problem.to(dev)
    with cpu_threads(prob, dev, threads):
        return _fit(prob, config, seed, weights, dev)


def _fit(prob: Problem, config: OptimizeConfig, seed: int, weights: dict[str, float], dev: torch.device) -> FitResult:
    gen = seed_everything(seed)

    jitter = torch.randn(prob.n_items, generator=gen, dtype=torch.float64).to(dev, prob.dtype)
    start = -prob.prior_logit if config.init == "inverted" else prob.prior_logit
    z = torch.nn.Parameter(start.clone() + config.init_noise * jitter)
    theta = torch.nn.Parameter(L.init_nuisance(prob))
    use_theta = weights.get("nuisance", 0.0) > 0
    pairs = (
        sample_ranking_pairs(prob, config.ranking_pairs_per_item, config.ranking_min_gap, gen)
        if "ranking" in weights
        else None
    )
    balance_target = config.class_balance if config.class_balance is not None else prob.balance

    def evaluate(names: dict[str, float]) -> dict[str, torch.Tensor]:
        return L.compute_losses(
            z,
            theta,
            prob,
            names,
            pairs=pairs,
            flip_threshold=config.flip_threshold,
            flip_scale=config.flip_scale,
            ranking_margin=config.ranking_margin,
            balance_target=balance_target,
            use_nuisance=use_theta,
        )

    record: dict[str, float] = {}

    def closure_for(optimizer: torch.optim.Optimizer, names: dict[str, float]) -> Callable[[], torch.Tensor]:
        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            terms = evaluate(names)
            total = sum((weights[n] * v for n, v in terms.items()), start=z.new_zeros(()))
            if not all(n in record for n in terms):  # L-BFGS evaluates several points a step: keep the first
                values = torch.stack([v.detach() for v in terms.values()]).tolist()  # one device sync
                for n, v in zip(terms, values, strict=True):
                    record.setdefault(n, v)
            total.backward()  # a non-finite total is caught by the caller before any step uses it
            return total

        return closure

    steps: list[Callable[[], None]] = []
    if config.optimizer == "lbfgs":
        # Block-coordinate L-BFGS: labels with the oracle model fixed, then the oracle model with labels
        # fixed. Each block's objective is then an honest function of its parameters (mutual/flip see theta
        # detached, the nuisance likelihood sees z detached), which the strong-Wolfe line search needs.
        def lbfgs(param: torch.Tensor, names: dict[str, float]) -> Callable[[], None]:
            opt = torch.optim.LBFGS(
                [param],
                lr=config.lr,
                max_iter=1,  # one iteration per epoch, so the curve and the plateau rule see every step
                max_eval=25,  # the default (max_iter * 5 // 4 = 1) would leave the line search no evaluations
                history_size=config.lbfgs_history,
                line_search_fn="strong_wolfe",
            )
            closure = closure_for(opt, names)

            def step() -> None:
                opt.step(closure)

            return step

        label_terms = {n: w for n, w in weights.items() if n != "nuisance"}
        if label_terms:
            steps.append(lbfgs(z, label_terms))
        if use_theta:
            steps.append(lbfgs(theta, {"nuisance": weights["nuisance"]}))
    else:
        groups: list[dict[str, Any]] = [{"params": [z], "weight_decay": config.weight_decay}]
        if use_theta:
            groups.append({"params": [theta], "weight_decay": 0.0})
        adam = torch.optim.AdamW(groups, lr=config.lr)
        adam_closure = closure_for(adam, weights)

        def adam_step() -> None:
            adam_closure()
            if all(math.isfinite(v) for v in record.values()):  # never step on a NaN gradient
                adam.step()

        steps.append(adam_step)

    rows: list[dict[str, float]] = []
    best = math.inf
    best_terms: dict[str, float] = {}
    since_best = 0
    converged = False
    for epoch in range(1, config.max_epochs + 1):
        record.clear()
        for step in steps:
            step()
        terms = {n: record[n] for n in weights}
        total = sum(weights[n] * v for n, v in terms.items())
        if not math.isfinite(total):
            name = _blame(terms, best_terms, weights)
            raise OptimizeError(
                f"config '{config.name}' seed {seed}: loss became non-finite at epoch {epoch} in term "
                f"'{name}'; lower lr or this term's weight"
            )
        if best < math.inf and total > best + (DIVERGENCE_FACTOR - 1) * max(abs(best), DIVERGENCE_FLOOR):
            name = _blame(terms, best_terms, weights)
            raise OptimizeError(
                f"config '{config.name}' seed {seed}: diverged at epoch {epoch} (total {total:.4g} vs best "
                f"{best:.4g}), driven by term '{name}'; lower lr or this term's weight"
            )
        rows.append({"epoch": float(epoch), **terms, "total": total})
        improved = best == math.inf or total < best - config.tol * max(abs(best), 1.0)
        if improved:
            best, best_terms, since_best = total, terms, 0
        else:
            since_best += 1
            if since_best >= config.patience:
                converged = True
                break

    with torch.no_grad():
        if not (torch.isfinite(z).all() and torch.isfinite(theta).all()):
            raise OptimizeError(f"config '{config.name}' seed {seed}: parameters became non-finite; lower lr")
        logits = z.detach().to(torch.float64).cpu().numpy()
        p_true = torch.sigmoid(z.detach().to(torch.float64)).cpu().numpy()
    curve = pd.DataFrame(rows, columns=["epoch", *weights, "total"])
    curve["epoch"] = curve["epoch"].astype(np.int64)
    report = L.nuisance_report(theta, fitted=use_theta)
    report["prior_calibration"] = dict(prob.calibration)
    report["class_balance_target"] = float(balance_target)
    return FitResult(
        p_true=p_true,
        logits=logits,
        curve=curve,
        nuisance=report,
        n_epochs=len(rows),
        converged=converged,
        config=config.name,
        seed=seed,
        device=str(dev),
        theta=theta.detach().to(torch.float64).cpu().numpy(),
    )
