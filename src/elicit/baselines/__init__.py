"""Baselines the fitted labels are compared with (DESIGN.md "Evaluation").

From stored predictions (no oracle calls): zero_shot, zero_shot_calibrated, few_shot_mean, majority_vote,
dawid_skene. With their own oracle calls, through an ``ask`` callable: icm_budget (function ``icm``, a cheap ICM),
golden_fewshot (the only one that reads gold), random_fewshot, bootstrap_fewshot. Each returns a labels frame
(item_id, p_true) for every item. Faithful ICM, the opt-in method ``icm``, is imported from
``elicit.baselines.icm_official`` itself, so the stages that do not run it do not track its files.
"""

from elicit.baselines.fewshot import (
    BaselineConfigError,
    BootstrapConfig,
    FewShotConfig,
    bootstrap_fewshot,
    golden_fewshot,
    random_fewshot,
)
from elicit.baselines.icm import ICMConfig, icm
from elicit.baselines.votes import (
    dawid_skene,
    estimate_class_balance,
    few_shot_mean,
    majority_vote,
    worker_votes,
    zero_shot,
    zero_shot_calibrated,
)

__all__ = [
    "BaselineConfigError",
    "BootstrapConfig",
    "FewShotConfig",
    "ICMConfig",
    "bootstrap_fewshot",
    "dawid_skene",
    "estimate_class_balance",
    "few_shot_mean",
    "golden_fewshot",
    "icm",
    "majority_vote",
    "random_fewshot",
    "worker_votes",
    "zero_shot",
    "zero_shot_calibrated",
]
