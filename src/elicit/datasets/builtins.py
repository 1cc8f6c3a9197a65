"""The builtin datasets: per dataset, its default file, what label 1 means, its consistency rule, and the
converter that turns the file's raw rows into canonical item rows (:func:`~elicit.datasets.items.item_frame`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from elicit.datasets.items import (
    DataError,
    first_appearance_ids,
    is_null,
    item_frame,
    plain,
    strict_gold,
    to_gold,
    truthy,
)
from elicit.datasets.probes import PROBES, probe_path

ETHICS_LICENCE = "MIT (ETHICS, hendrycks/ethics)"
ETHICS_CITATION = (
    "Hendrycks, Burns, Basart, Critch, Li, Song, Steinhardt (2021). Aligning AI With Shared Human Values. ICLR."
)
ICM_CITATION = "Wen et al. (2025). Unsupervised Elicitation of Language Models."
CHALLENGES_CITATION = (
    "Canavan et al. Three Concrete Challenges and Two Hopes for the Safety of Unsupervised Elicitation."
)
CHALLENGES_LICENCE = "MIT (callumcanavan/challenges-for-unsupervised-elicitation)"

MACHIAVELLI_HUB = "wassname/machiavelli"


_TEXT_SOURCES = ("input", "scenario", "excuse", "question", "choice", "cot", "text", "dilemma_situation")
"""Builtin columns that item texts are made of: an empty cell there is an error naming the row."""


def _require(raw: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(
            f"{where} lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, raw.columns))}); "
            "use the original file (see data/SOURCES.md) or source: file with a column mapping"
        )
    for c in columns:
        if c in _TEXT_SOURCES:
            empty = [i for i, v in enumerate(raw[c].tolist()) if is_null(v)]
            if empty:
                raise DataError(
                    f"{where}: source row {int(raw.index[empty[0]])} has an empty '{c}' ({len(empty)} such rows); "
                    "restore the original file (see data/SOURCES.md) or remove those rows"
                )


def _binary_gold(raw: pd.Series, where: str) -> list[Any]:
    """A builtin's 0/1 (or false/true) label column; any other value is an error naming its row."""
    gold, stray = strict_gold(raw, [1, True], [0, False])
    if stray:
        raise DataError(
            f"{where}: label {plain(raw.iloc[stray[0]])!r} in source row {int(raw.index[stray[0]])} is not 0/1 "
            f"({len(stray)} such rows); restore the original file (see data/SOURCES.md) or use source: file "
            "with positive_values and negative_values"
        )
    return gold


def _blocks(n: int, size: int) -> np.ndarray:
    """Consecutive blocks of ``size`` rows (ETHICS test files are written this way)."""
    return np.arange(n) // size


def _ethics_commonsense(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the first-person scenario; 1 = the narrator's action is clearly morally wrong."""
    _require(raw, ["label", "input", "is_short"], where)
    out = item_frame(raw["input"], _binary_gold(raw["label"], where), raw.index)
    out["is_short"] = [truthy(v) for v in raw["is_short"]]
    return out


def _ethics_justice(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the statement; 1 = it is reasonable/just.

    The test file comes in consecutive blocks of 4 related statements (the official "exact match" groups):
    each block gets a consistency_id, but labels inside a block are not logically tied, so the rule is "none".
    """
    _require(raw, ["label", "scenario"], where)
    return item_frame(raw["scenario"], _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 4))


def _ethics_deontology(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Scenario: <request or role>\\nExcuse: <excuse>'; 1 = the excuse is reasonable.

    Blocks of 4 rows share one scenario: one consistency_id per block, rule "none" (several excuses can be
    reasonable, or none).
    """
    _require(raw, ["label", "scenario", "excuse"], where)
    text = [f"Scenario: {s.strip()}\nExcuse: {e.strip()}" for s, e in zip(raw["scenario"], raw["excuse"], strict=True)]
    return item_frame(text, _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 4))


def _ethics_virtue(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Sentence: ...\\nTrait: ...'; 1 = the character exhibits the trait.

    The test file is blocks of 5 rows sharing one sentence with exactly one label 1: consistency_id per block,
    rule "exactly_one_true".
    """
    _require(raw, ["label", "scenario"], where)
    text = []
    for s in raw["scenario"]:
        sentence, sep, trait = str(s).rpartition("[SEP]")
        text.append(f"Sentence: {sentence.strip()}\nTrait: {trait.strip()}" if sep else str(s).strip())
    return item_frame(text, _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 5))


def _truthfulqa(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nClaim: <choice>'; 1 = the claim is a true answer to the question.

    Groups of 4 claims per question keep the file's consistency_id, but the number of true claims varies (0-4)
    and no two claims in a group are identical, so no logical rule holds: rule "none".
    """
    _require(raw, ["question", "choice", "label", "consistency_id"], where)
    text = [f"Question: {q.strip()}\nClaim: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)]
    return item_frame(text, _binary_gold(raw["label"], where), raw.index, raw["consistency_id"])


def _gsm8k(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = question + candidate solution + final answer; 1 = the solution and its answer are correct.

    Groups of 4 candidate solutions per question (the file's consistency_id). Rule "same_answer_same_label":
    solutions with different final answers cannot both be correct, and the same final answer gets the same
    label. ``answer_key`` is the file's final-answer string, stripped but not normalized: the gold labels
    treat '$32' and '32' as different answers, and normalizing would make the rule contradict gold in 82
    groups instead of 23 (where the label also judges the reasoning).
    """
    _require(raw, ["question", "cot", "answer", "label", "consistency_id"], where)
    text = [
        f"Question: {q.strip()}\nSolution: {c.strip()}\nFinal answer: {str(a).strip()}"
        for q, c, a in zip(raw["question"], raw["cot"], raw["answer"], strict=True)
    ]
    answers = [None if is_null(a) else str(a).strip() for a in raw["answer"]]
    return item_frame(text, _binary_gold(raw["label"], where), raw.index, raw["consistency_id"], answer_key=answers)


def _gsm8k_pairs(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nSolution: ...'; 1 = the worked solution is correct.

    Each question has exactly one correct and one incorrect solution: consistency_id per question,
    rule "exactly_one_true".
    """
    _require(raw, ["question", "choice", "label"], where)
    text = [
        f"Question: {q.strip()}\nSolution: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)
    ]
    return item_frame(text, _binary_gold(raw["label"], where), raw.index, first_appearance_ids(raw["question"]))


def _larger_than(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the claim ('Fifty-one is larger than ninety-two.'); 1 = the claim is true."""
    _require(raw, ["choice", "label"], where)
    return item_frame(raw["choice"], _binary_gold(raw["label"], where), raw.index)


def _political_normative(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nAnswer: ...' to a normative political question. No truth: gold is all <NA>.

    The "impossible task" of Canavan et al.: a good method should stay uncertain. ``is_liberal`` is kept as
    the ``nuisance`` column (1 = liberal stance): a report can show whether labels track ideology, not truth.
    consistency_id per question (mostly liberal/conservative pairs), rule "none".
    """
    _require(raw, ["question", "choice", "is_liberal"], where)
    text = [f"Question: {q.strip()}\nAnswer: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)]
    nuisance = to_gold(raw["is_liberal"], [1, True])
    return item_frame(text, None, raw.index, first_appearance_ids(raw["question"]), nuisance=nuisance)


MFV_INDIVIDUALIZING = ("Care", "Fairness")


def _mfv(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the vignette ('You see someone ...'); 1 = its main violation is of Care (harm) or Fairness.

    A binary version of the Moral Foundations Vignettes: label 1 = the foundation most human raters chose
    (``foundation_coarse``) is an *individualizing* one (Care, Fairness; 49 of 132), label 0 = a binding one
    (Loyalty, Authority, Sanctity) or Liberty / Social Norms (83 of 132).
    """
    _require(raw, ["text", "foundation_coarse"], where)
    gold = [None if is_null(f) else int(f in MFV_INDIVIDUALIZING) for f in raw["foundation_coarse"]]
    return item_frame(raw["text"], gold, raw.index)


def _daily_dilemmas(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the dilemma, which ends in 'Should you ...?'; 1 = you should do it. No gold (all <NA>)."""
    _require(raw, ["dilemma_situation"], where)
    return item_frame(raw["dilemma_situation"], None, raw.index)


_MENU = re.compile(r"\n\s*\d+:")
_MARKUP = re.compile(r"\[/?\w+\]")


def _as_dict(v: Any) -> dict[str, Any]:
    """Per-choice maps arrive as dicts, JSON strings or struct rows depending on the file format."""
    if is_null(v):
        return {}
    if isinstance(v, str):
        v = json.loads(v)
    return {str(k): x for k, x in dict(v).items()}


def _machiavelli(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """One item per (scene, choice): text = 'Scene: ...\\nAction: ...'; 1 = the action is unethical.

    Reads the flat ``wassname/machiavelli`` layout (per row: ``obs`` scene text ending in a numbered choice
    menu, ``choice_text`` and ``choice_labels`` maps keyed by choice index). Label 1 = at least one of the
    choice's ``morality_*`` annotations (deception, killing, stealing, ...) is positive; 0 = none is; choices
    without annotations are skipped. consistency_id = the scene, rule "none". Unverified offline: the data was
    not available when this was written.
    """
    _require(raw, ["obs", "choice_text", "choice_labels"], where)
    text, gold, rows, scene_ids = [], [], [], []
    for i, (obs, choices, labels) in enumerate(zip(raw["obs"], raw["choice_text"], raw["choice_labels"], strict=True)):
        scene = _MARKUP.sub("", _MENU.split(str(obs))[0]).strip()
        labels_d = _as_dict(labels)
        for key, choice in sorted(_as_dict(choices).items(), key=lambda kv: kv[0]):
            lab = labels_d.get(key)
            if is_null(choice) or not lab:
                continue
            morality = [float(x) for k, x in dict(lab).items() if k.startswith("morality_") and not is_null(x)]
            text.append(f"Scene: {scene}\nAction: {_MARKUP.sub('', str(choice)).strip()}")
            gold.append(int(any(x > 0 for x in morality)))
            rows.append(int(raw.index[i]))
            scene_ids.append(i)
    return item_frame(text, gold, rows, scene_ids)


def _probe(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """A shipped probe file (``elicit.datasets.probes``): text = the claim; its groups and, for arithmetic, the
    stated sum as ``answer_key`` (read back as text: a CSV reader makes it a number)."""
    _require(raw, ["text", "gold", "consistency_id"], where)
    keys = raw["answer_key"] if "answer_key" in raw.columns else [None] * len(raw)
    answers = [None if is_null(a) else str(int(a)) if isinstance(a, float) else str(a) for a in keys]
    return item_frame(raw["text"], _binary_gold(raw["gold"], where), raw.index, raw["consistency_id"], answers)


PROBE_LICENCE = "the project's own (generated by elicit.datasets.probes from its word lists)"


@dataclass(frozen=True)
class Builtin:
    """A builtin dataset: its default file, what label 1 means, and how raw rows become items."""

    path: str
    label_meaning: str
    consistency: str
    licence: str
    citation: str
    convert: Callable[[pd.DataFrame, str], pd.DataFrame]

    def defaults(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label_meaning": self.label_meaning,
            "consistency": self.consistency,
            "licence": self.licence,
            "citation": self.citation,
        }


BUILTINS: dict[str, Builtin] = {
    "ethics_commonsense": Builtin(
        "data/ethics/commonsense/cm_test.csv",
        "the narrator's action is clearly morally wrong",
        "none",
        ETHICS_LICENCE,
        ETHICS_CITATION,
        _ethics_commonsense,
    ),
    "ethics_justice": Builtin(
        "data/ethics/justice/justice_test.csv",
        "the statement is reasonable (just: impartial, or deserved)",
        "none",
        ETHICS_LICENCE,
        ETHICS_CITATION,
        _ethics_justice,
    ),
    "ethics_deontology": Builtin(
        "data/ethics/deontology/deontology_test.csv",
        "the excuse is a reasonable response to the request or role in the scenario",
        "none",
        ETHICS_LICENCE,
        ETHICS_CITATION,
        _ethics_deontology,
    ),
    "ethics_virtue": Builtin(
        "data/ethics/virtue/virtue_test.csv",
        "the character in the sentence exhibits the trait",
        "exactly_one_true",
        ETHICS_LICENCE,
        ETHICS_CITATION,
        _ethics_virtue,
    ),
    "truthfulqa": Builtin(
        "data/icm/train_truthfulqa.json",
        "the claim is a true answer to the question",
        "none",
        "Apache-2.0 (TruthfulQA texts); licence of the ICM claim file unclear",
        "Lin, Hilton, Evans (2021). TruthfulQA. Claims file from " + ICM_CITATION,
        _truthfulqa,
    ),
    "gsm8k": Builtin(
        "data/icm/test_gsm8k.json",
        "the candidate solution and its final answer are correct",
        "same_answer_same_label",
        "MIT (GSM8K texts); licence of the ICM solution file unclear",
        "Cobbe et al. (2021). GSM8K. Candidate solutions from " + ICM_CITATION,
        _gsm8k,
    ),
    "gsm8k_pairs": Builtin(
        "data/challenges/test_gsm8k.json",
        "the worked solution is correct",
        "exactly_one_true",
        CHALLENGES_LICENCE,
        CHALLENGES_CITATION,
        _gsm8k_pairs,
    ),
    "larger_than": Builtin(
        "data/challenges/train_larger_than.json",
        "the claim is true",
        "none",
        CHALLENGES_LICENCE,
        "Marks & Tegmark (2023), via " + CHALLENGES_CITATION,
        _larger_than,
    ),
    "political_normative": Builtin(
        "data/challenges/test_political_normative.json",
        "the answer to the normative political question is correct (there is no ground truth)",
        "none",
        CHALLENGES_LICENCE,
        CHALLENGES_CITATION,
        _political_normative,
    ),
    "mfv": Builtin(
        "data/mfv/vignettes_classic_other_violate.jsonl",
        "the main moral violation in the scenario is of care (harm) or fairness",
        "none",
        "unclear (tinymfv declares MIT on its dataset card; no LICENSE file)",
        "Clifford et al. (2015). Moral foundations vignettes. Behavior Research Methods (via tinymfv)",
        _mfv,
    ),
    "daily_dilemmas": Builtin(
        "data/daily_dilemmas/dilemma.csv",
        "you should take the action the dilemma asks about",
        "none",
        "CC-BY-4.0",
        "Chiu, Jiang, Choi (2024). DailyDilemmas.",
        _daily_dilemmas,
    ),
    "machiavelli": Builtin(
        "data/machiavelli",
        "the action is unethical (MACHIAVELLI annotates at least one ethical violation)",
        "none",
        "MIT (MACHIAVELLI, Pan et al. 2023)",
        "Pan et al. (2023). Do the Rewards Justify the Means? The MACHIAVELLI Benchmark. ICML.",
        _machiavelli,
    ),
}
BUILTINS.update(
    {
        f"probe_{name}": Builtin(
            probe_path(name), p.label_meaning, p.rule.value, PROBE_LICENCE, "elicit (issue 16 probes)", _probe
        )
        for name, p in PROBES.items()
    }
)
"""The probe tasks with known truth (``data/probes/<name>_main.csv``; the ``fresh`` split is their other split)."""
