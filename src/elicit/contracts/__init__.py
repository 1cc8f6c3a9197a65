"""What several stages share, declared once: the consistency rules (with the one count and the one repair of their
violations) and the method registry.

Column lists with a natural owner stay there and are imported from it: the query-row columns and few-shot kinds
(``elicit.plan``), the framings (``elicit.prompts``).
"""

from elicit.contracts.consistency import (
    CONSISTENCY_RULES,
    UNLABELLED,
    ConsistencyRule,
    ConsistencyRuleError,
    GroupLayout,
    answer_keys,
    consistency_groups,
    count_violations,
    group_violations,
    groups_layout,
    items_layout,
    layout,
    repair,
    repair_group,
    violations,
)
from elicit.contracts.methods import (
    BASELINES,
    BUILTIN_METHODS,
    BY_NAME,
    FEWSHOT_METHODS,
    GOLD_READING,
    METHODS,
    STUDY_COLUMNS,
    VOTE_METHODS,
    ZERO_SHOT_ONLY,
    Method,
    MethodKind,
)

__all__ = [
    "BASELINES",
    "BUILTIN_METHODS",
    "BY_NAME",
    "CONSISTENCY_RULES",
    "FEWSHOT_METHODS",
    "GOLD_READING",
    "METHODS",
    "STUDY_COLUMNS",
    "UNLABELLED",
    "VOTE_METHODS",
    "ZERO_SHOT_ONLY",
    "ConsistencyRule",
    "ConsistencyRuleError",
    "GroupLayout",
    "Method",
    "MethodKind",
    "answer_keys",
    "consistency_groups",
    "count_violations",
    "group_violations",
    "groups_layout",
    "items_layout",
    "layout",
    "repair",
    "repair_group",
    "violations",
]
