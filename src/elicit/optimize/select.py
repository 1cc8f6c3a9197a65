"""Choose a config without gold: held-out likelihood of the oracle's own answers.

Rule (method ``heldout``). For each seed s:
  1. Split the tuples at random (seeded by s) into 80 % train / 20 % held out; a flip row always goes with its
     twin, so no pair straddles the split. Every config sees the same split for the same seed. With
     ``holdout: items`` the held-out share is of items: every tuple asking about a held-out item is held out.
  2. Fit each config on the train tuples only (same seed), giving labels q.
  3. Refit the oracle model of losses.py (copy, position, acquiescence, ICL gain, signal, noise) for those
     labels on the *train* tuples with one fixed procedure (L-BFGS on the nuisance likelihood, labels frozen)
     -- the same for every config, whatever its own weights, so configs differ only in their labels.
  4. Score = mean log-likelihood per held-out tuple of its score under that model:
     log[q_i N(s - b; a, sd) + (1 - q_i) N(s - b; -a, sd)], the predictive model the mutual and nuisance
     terms use.
Configs are ranked by the mean score over seeds; configs within ``tie_tolerance`` nats of the best count as
tied, and a tie goes to the config whose labels agree most across seeds (mean pairwise agreement of hard
labels), then to the name (deterministic).

Why it is fair without gold: nothing but oracle answers is used, every config is judged on exactly the same
held-out answers with the same predictive model refitted the same way, and the held-out answers were not used
to fit the labels. A config that ignores tuples (e.g. prior_only) is still scored on all held-out tuples --
it gets no default win and no default loss; it wins only if the zero-shot prior predicts the oracle's
few-shot answers better than labels fitted to the other few-shot answers.

Limits: it measures agreement with the oracle, not truth. Errors the oracle makes consistently on an item (the
same misconception in every prompt) are rewarded, and a config that overrides the oracle with logic (e.g. a
heavy consistency weight) can be right and still lose likelihood. The default split is by tuple, so an item's
held-out call usually has sibling calls in train (it checks consistency across prompts more than
generalisation to new items); ``holdout: items`` checks the latter (a held-out item's label then comes only from
its prior, its logic and its role as a shown example). With one seed there is no agreement tie-break. The
gold-best config is reported elsewhere, as an upper bound only.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from elicit.optimize import losses as L
from elicit.optimize.config import OptimizeConfig, OptimizeError, SelectConfig
from elicit.optimize.fit import cpu_threads, fit, resolve_device
from elicit.optimize.problem import Problem


def split_tuples(
    problem: Problem, holdout_fraction: float, seed: int, by: str = "calls"
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows), seeded; flip rows follow their twin. Both non-empty when T >= 2. ``by="items"``
    holds out every tuple whose target is one of a random share of the items (``optimize.select.holdout``)."""
    t = problem.n_tuples
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    if by == "items":
        held = (rng.random(problem.n_items) < holdout_fraction)[problem.target.cpu().numpy()]
    else:
        held = rng.random(t) < holdout_fraction
    fr = problem.flip_row.cpu().numpy()
    tw = problem.twin_row.cpu().numpy()
    held[fr] = held[tw]
    if t >= 2 and (held.all() or not held.any()):  # tiny problems: force one row to each side
        held[:] = False
        held[int(rng.integers(t))] = True
        held[fr] = held[tw]
        if held.all():
            held[:] = False
    rows = np.arange(t)
    return rows[~held], rows[held]


def refit_oracle_model(problem: Problem, logits: torch.Tensor, max_iter: int = 100) -> torch.Tensor:
    """Maximum-likelihood nuisance vector for fixed labels (the same procedure for every config)."""
    z = logits.to(problem.device, problem.dtype).detach()
    theta = torch.nn.Parameter(L.init_nuisance(problem))
    if problem.n_tuples == 0 or not bool(problem.has_score.any()):
        return theta.detach()
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = L.nuisance(z, theta, problem)
        loss.backward()
        return loss

    opt.step(closure)
    out = theta.detach()
    return out if bool(torch.isfinite(out).all()) else L.init_nuisance(problem)


def heldout_loglik(train: Problem, test: Problem, logits: np.ndarray | torch.Tensor) -> float:
    """Mean log-likelihood per held-out tuple of its score, model refitted on ``train`` for these labels."""
    z = torch.as_tensor(np.asarray(logits), dtype=train.dtype, device=train.device)
    z = z.clamp(-30.0, 30.0)  # beyond this the labels are certain anyway; keeps log(1 - q) finite in float32
    theta = refit_oracle_model(train, z)
    n = int(test.has_score.sum())
    if n == 0:
        return 0.0
    with torch.no_grad():
        ll = L.score_loglik(z.to(test.device), theta.to(test.device), test)
    return float(ll.sum()) / n


def seed_agreement(labels: list[np.ndarray]) -> float:
    """Mean pairwise share of items given the same hard label (p > 0.5) by two seeds; 1.0 with one seed."""
    if len(labels) < 2:
        return 1.0
    hard = [p > 0.5 for p in labels]
    return float(np.mean([np.mean(a == b) for a, b in itertools.combinations(hard, 2)]))


def select_config(
    problem: Problem,
    configs: dict[str, OptimizeConfig],
    seeds: list[int] | tuple[int, ...],
    select: SelectConfig | None = None,
    device: str | torch.device = "auto",
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Rank ``configs`` by the held-out rule (module docstring); returns (chosen name, per-config scores).

    Each score entry is JSON-ready: heldout_loglik (mean over seeds), heldout_loglik_per_seed, seed_agreement,
    n_heldout (per seed), rank (1 = chosen), tied_with_best.
    """
    select = select or SelectConfig()
    if select.method != "heldout":
        raise OptimizeError(f"optimize.select.method '{select.method}' is not implemented; use heldout")
    if not configs:
        raise OptimizeError("select: no configs to choose from; name at least one under optimize.configs")
    if not seeds:
        raise OptimizeError("select: no seeds; give base.seeds")
    dev = resolve_device(device)
    prob = problem if problem.device == dev else problem.to(dev)
    with cpu_threads(prob, dev):
        return _select(prob, configs, seeds, select, dev)


def _select(
    prob: Problem,
    configs: dict[str, OptimizeConfig],
    seeds: list[int] | tuple[int, ...],
    select: SelectConfig,
    dev: torch.device,
) -> tuple[str, dict[str, dict[str, Any]]]:
    per_seed: dict[str, list[float]] = {name: [] for name in configs}
    labels: dict[str, list[np.ndarray]] = {name: [] for name in configs}
    n_held: list[int] = []
    for seed in seeds:
        train_rows, test_rows = split_tuples(prob, select.holdout_fraction, seed, select.holdout)
        train, test = prob.subset(train_rows), prob.subset(test_rows)
        n_held.append(int(test.has_score.sum()))
        for name, config in configs.items():
            result = fit(train, config, seed, device=dev)
            per_seed[name].append(heldout_loglik(train, test, result.logits))
            labels[name].append(result.p_true)
    scores: dict[str, dict[str, Any]] = {}
    for name in configs:
        values = per_seed[name]
        mean = float(np.mean(values))
        scores[name] = {
            "heldout_loglik": mean if math.isfinite(mean) else -math.inf,
            "heldout_loglik_per_seed": [float(v) for v in values],
            "seed_agreement": seed_agreement(labels[name]),
            "n_heldout": n_held,
        }
    best = max(s["heldout_loglik"] for s in scores.values())
    tied = {n for n, s in scores.items() if s["heldout_loglik"] >= best - select.tie_tolerance}
    order = sorted(
        scores,
        key=lambda n: (
            n not in tied,  # the tied group first, most stable across seeds first within it
            -scores[n]["seed_agreement"] if n in tied else 0.0,
            -scores[n]["heldout_loglik"],
            n,
        ),
    )
    for rank, name in enumerate(order, start=1):
        scores[name]["rank"] = rank
        scores[name]["tied_with_best"] = name in tied
    return order[0], scores
