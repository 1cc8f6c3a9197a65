"""The optimizer: soft labels for every item from few-shot/flip oracle calls, fitted without gold.

API (pure functions, no file I/O; the ``optimize``/``select``/``fit_loop`` stages do the reading and
writing)::

    from elicit.optimize import OptimizeSection, build_problem, fit, select_config

    section = OptimizeSection.from_params(params["optimize"])       # validated, typed configs
    problem = build_problem(tuples, priors, items, consistency_rule)  # tables -> padded tensors (+ checks)
    result = fit(problem, section.configs["full"], seed=0, device="auto")
    result.p_true          # np.ndarray [N], P(label 1) by item id
    result.curve           # DataFrame: epoch, one column per active term (unweighted), total (weighted)
    result.nuisance        # JSON-ready oracle biases with their meaning -> seed<s>.nuisance.json
    result.n_epochs, result.converged
    name, scores = select_config(problem, section.configs, seeds=[0, 1], select=section.select)

* ``build_problem(tuples, priors, items=None, consistency_rule="none", *, class_balance=None, device="cpu",
  dtype=torch.float32) -> Problem``: validates (empty tables, unknown item ids, mismatched lists, unknown
  kinds or framings raise OptimizeError in one line), pads contexts to [T, K], pairs flip rows with twins,
  calibrates the zero-shot prior without gold (``calibrate_prior``), lays out consistency groups. Reads only
  item_id, consistency_id and answer_key from items -- never gold. ``Problem.to(device, dtype)``,
  ``Problem.subset(rows)``.
* ``fit(problem, config, seed, device="auto") -> FitResult``: AdamW or block L-BFGS, plateau stop (tol,
patience)
  or max_epochs, ``seed_everything(seed)`` first; OptimizeError naming the term on divergence (non-finite, or
  total 10x its best) or on a bad config.
* ``select_config(problem, configs, seeds, select=None, device="auto") -> (name, scores)``: the gold-free
  held-out-likelihood rule of select.py (its docstring states the rule, why it is fair, and its limits).
* Losses (losses.py) are pure functions of (z, theta, Problem); reference.py has loop versions for the tests.
* ``synthetic.generate(SyntheticSpec(...))``: a planted-truth, planted-bias problem for tests and benchmarks.
"""

from elicit.optimize.config import (
    LOSS_NAMES,
    LossWeights,
    OptimizeConfig,
    OptimizeError,
    OptimizeSection,
    SelectConfig,
)
from elicit.optimize.fit import FitResult, fit, resolve_device, seed_everything
from elicit.optimize.problem import CONSISTENCY_RULES, Problem, build_problem, calibrate_prior
from elicit.optimize.select import heldout_loglik, select_config, split_tuples

__all__ = [
    "CONSISTENCY_RULES",
    "LOSS_NAMES",
    "FitResult",
    "LossWeights",
    "OptimizeConfig",
    "OptimizeError",
    "OptimizeSection",
    "Problem",
    "SelectConfig",
    "build_problem",
    "calibrate_prior",
    "fit",
    "heldout_loglik",
    "resolve_device",
    "seed_everything",
    "select_config",
    "split_tuples",
]
