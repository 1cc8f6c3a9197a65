"""Evaluation: every method's labels against gold, and gold-free descriptions of them.

Two halves, split at their seam: :mod:`elicit.evaluate.metrics` scores label sets against gold (accuracy,
AUROC, ECE, log-loss, paired bootstrap CIs, PGR, comparisons; the ``metrics.parquet`` contract is its module
docstring) and :mod:`elicit.evaluate.describe` describes them without gold (agreement, flips, collapse,
consistency violations, nuisance tracking) and turns both into ``metrics.json`` and the verdict's words. The
names below are the public API; ``from elicit.evaluate import X`` is the way to reach them.
"""

from elicit.evaluate.describe import (
    CHEAP_BASELINES,
    INVERTED_SUFFIX,
    NUISANCE_WARN,
    adversarial_start_notes,
    consistency_violations,
    diagnostics,
    headline,
    metrics_json,
    nuisance_agreement,
    verdict,
)
from elicit.evaluate.metrics import (
    BASE_METRICS,
    COLUMNS,
    COUNT_METRICS,
    MEAN_SEED,
    ONE_CLASS,
    REFERENCES,
    TWO_CLASS_METRICS,
    Comparison,
    EvaluateConfig,
    GoldCounts,
    Labels,
    Row,
    compare,
    evaluate,
    gold_counts,
    gold_items,
    metric_row,
    seed_mean_p,
    undefined_metrics,
)

__all__ = [
    "BASE_METRICS",
    "CHEAP_BASELINES",
    "COLUMNS",
    "COUNT_METRICS",
    "INVERTED_SUFFIX",
    "MEAN_SEED",
    "NUISANCE_WARN",
    "ONE_CLASS",
    "REFERENCES",
    "TWO_CLASS_METRICS",
    "Comparison",
    "EvaluateConfig",
    "GoldCounts",
    "Labels",
    "Row",
    "adversarial_start_notes",
    "compare",
    "consistency_violations",
    "diagnostics",
    "evaluate",
    "gold_counts",
    "gold_items",
    "headline",
    "metric_row",
    "metrics_json",
    "nuisance_agreement",
    "seed_mean_p",
    "undefined_metrics",
    "verdict",
]
