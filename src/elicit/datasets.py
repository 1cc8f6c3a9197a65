"""Dataset loaders: the pure core of the `load` stage.

A dataset becomes an *items* table, one row per item to label:

- ``ITEM_COLUMNS`` (required, in this order): ``item_id`` (0..N-1 in source order), ``text`` (what the oracle
  reads), ``gold`` (nullable Int8, 0/1, all <NA> when the dataset has no truth), ``consistency_id`` (nullable
  Int64: rows sharing an id are one logical group) and ``source_row`` (row index in the source file, for
  provenance).
- ``OPTIONAL_COLUMNS``, always written by :func:`load_items` after the required ones: ``answer_key`` (str or
  <NA>: the item's final answer, e.g. GSM8K's, which the ``same_answer_same_label`` consistency rule compares)
  and ``nuisance`` (nullable Int8: a known non-truth attribute, e.g. a stance being liberal, kept so reports
  can show whether labels track it).

Every dataset states what label 1 means (``label_meaning``), so prompts can ask a True/False question whose
"True" means label 1. Only :func:`load_items` (and :func:`load_other_splits`) touch files; everything else is pure.

Data paths (``path`` and ``other_splits`` of a dataset entry):

- A relative path is resolved against the repository root (the folder of params.yaml: the load stage's working
  directory, or ``--data-root``) and must stay inside it: a path that climbs out with ``..``
  (``../../etc/passwd``) is refused in one line; use an absolute path if you mean a file outside the repository.
  The check is on the path's text, so a symlink inside the repository (e.g. ``data/`` on another disk) works.
- An absolute path is read (the user asked for that file), but it must be a regular file with a data suffix
  (``SUFFIX_FORMATS``: .csv, .tsv, .json, .jsonl, .ndjson, .parquet, .pq), whatever ``format`` says, or a folder;
  anything else (``/etc/passwd``, a device, a FIFO) is refused in one line before it is opened.
- A folder is read as the concatenation of its data files (the train split where file names name splits, see
  :func:`_folder_files`); other files in it are never opened.
- Loading keeps only what it parses into items (text, gold, groups, ``source_row``): no output carries a file's
  raw contents or an absolute path; ``hygiene.json`` and the report name an absolute path by its file name only
  (:func:`shown_path`, :meth:`DatasetConfig.source_label`).

Local files are read straight from their bytes with pandas / pyarrow, never through a cache, so replacing a file
(even with the same mtime: ``cp -p``, ``rsync -a``) changes what is loaded. Texts lose any NUL bytes at load
(counted). A label column in which every labelled row is a negative loads (one class; see :func:`_labels`).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ITEM_COLUMNS = ["item_id", "text", "gold", "consistency_id", "source_row"]
"""Required columns of an items table, in order (see the module docstring)."""
OPTIONAL_COLUMNS = ["answer_key", "nuisance"]
"""Extra columns that :func:`load_items` always adds after ``ITEM_COLUMNS`` (null where not applicable)."""

SOURCES = ("builtin", "file", "hub")
FORMATS = ("csv", "json", "jsonl", "parquet")
CONSISTENCY_RULES = ("none", "at_most_one_true", "same_answer_same_label", "exactly_one_true")
DEFAULT_POSITIVE_VALUES: list[Any] = [1, True, "1", "true", "True"]
"""Raw label values read as label 1 when a file/hub dataset does not say (see ``DatasetConfig.positive_values``)."""
DEFAULT_NEGATIVE_VALUES: list[Any] = [0, False, "0", "false", "False"]
"""Raw label values that, without ``negative_values``, let a label column with no positive load as all label 0."""


class DataError(ValueError):
    """One-line message naming the problem (dataset, file, key or row) and the fix."""


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of params.yaml ``datasets.<name>``: where items come from and what label 1 means."""

    name: str
    """The key under ``datasets:``; used in messages."""
    source: str = "builtin"
    """``builtin`` (a loader in this module), ``file`` (a local table + column mapping) or ``hub``."""
    builtin: str | None = None
    """Builtin loader name (``source: builtin``); defaults to ``name``."""
    path: str | None = None
    """Data file (or folder) relative to the repo root, or absolute (rules in the module docstring); builtins have a
    default."""
    format: str | None = None
    """``csv`` | ``json`` | ``jsonl`` | ``parquet`` for ``source: file``; inferred from the suffix if None."""
    hub_path: str | None = None
    """``source: hub``: ``datasets.load_dataset(hub_path, hub_name, split=split)``."""
    hub_name: str | None = None
    split: str | None = None
    """Hub split; ``train`` when None."""
    text_column: str | None = None
    """``source: file/hub``: column holding the text shown to the oracle."""
    label_column: str | None = None
    """``source: file/hub``: column holding the gold label (None = no gold)."""
    consistency_column: str | None = None
    """``source: file/hub``: rows with equal values form a consistency group (ints kept, else numbered)."""
    positive_values: list[Any] = field(default_factory=lambda: list(DEFAULT_POSITIVE_VALUES))
    """Raw label values that mean 1 (file/hub); an empty cell means unknown gold. Without ``negative_values`` the
    other non-empty values mean 0, and a label column with more than 2 distinct values is an error."""
    negative_values: list[Any] | None = None
    """Raw label values that mean 0 (file/hub). When set, a label in neither list is an error naming it and its
    row, so a typo or a third class ('maybe') cannot silently become gold 0."""
    short_only: bool = False
    """Keep only rows whose ``is_short`` column is true (ETHICS commonsense: drops long Reddit posts)."""
    max_chars: int | None = None
    """Drop items whose text is longer (whole consistency groups go with them)."""
    label_meaning: str = ""
    """What label 1 means, in words ("the narrator's action is clearly morally wrong"); prompts use it."""
    consistency: str = "none"
    """Logical rule over ``consistency_id`` groups; one of ``CONSISTENCY_RULES``."""
    licence: str = ""
    citation: str = ""
    templates: str | None = None
    """Which prompt set of data/templates.yaml to use; None = the dataset's name (then ``default``)."""
    other_splits: list[str] = field(default_factory=list)
    """Other splits of the same dataset (files relative to the repo root, read like ``path``: ETHICS train files),
    checked for items that also occur there (data hygiene, ``elicit.hygiene``); never labelled."""

    @classmethod
    def from_params(cls, name: str, d: dict[str, Any]) -> DatasetConfig:
        """Build from a params.yaml entry; missing keys take defaults (a builtin's own), unknown keys fail."""
        if not isinstance(d, dict):
            raise DataError(f"dataset '{name}': datasets.{name} must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)} - {"name"}
        for key in d:
            if key not in known:
                raise DataError(
                    f"dataset '{name}': unknown key datasets.{name}.{key}; known keys: {', '.join(sorted(known))}"
                )
        values: dict[str, Any] = dict(d)
        source = values.get("source", "builtin")
        if source not in SOURCES:
            raise DataError(f"dataset '{name}': datasets.{name}.source is {source!r}; use one of {', '.join(SOURCES)}")
        values["source"] = source
        if source == "builtin":
            builtin = values.get("builtin") or name
            if builtin not in BUILTINS:
                raise DataError(f"dataset '{name}': unknown builtin {builtin!r}; known builtins: {', '.join(BUILTINS)}")
            values["builtin"] = builtin
            for key, default in BUILTINS[builtin].defaults().items():
                if values.get(key) is None:
                    values[key] = default
        for key in (
            "builtin",
            "path",
            "format",
            "hub_path",
            "hub_name",
            "split",
            "text_column",
            "label_column",
            "consistency_column",
            "label_meaning",
            "consistency",
            "licence",
            "citation",
        ):
            if values.get(key) is not None and not isinstance(values[key], str):
                raise DataError(f"dataset '{name}': datasets.{name}.{key} must be a string, got {values[key]!r}")
        if values.get("positive_values") is None:
            values.pop("positive_values", None)
        elif not isinstance(values["positive_values"], list):
            raise DataError(f"dataset '{name}': datasets.{name}.positive_values must be a list, e.g. [1, true]")
        if values.get("negative_values") is not None:
            if not isinstance(values["negative_values"], list) or not values["negative_values"]:
                raise DataError(
                    f"dataset '{name}': datasets.{name}.negative_values must be a non-empty list, e.g. [0, false]"
                )
            positive = values.get("positive_values", DEFAULT_POSITIVE_VALUES)
            both = [v for v in values["negative_values"] if any(v == p for p in positive)]
            if both:
                raise DataError(
                    f"dataset '{name}': {both[0]!r} is in both datasets.{name}.positive_values and "
                    f"datasets.{name}.negative_values; keep it in one"
                )
        if values.get("short_only") is None:
            values.pop("short_only", None)
        elif not isinstance(values["short_only"], bool):
            raise DataError(f"dataset '{name}': datasets.{name}.short_only must be true or false")
        if values.get("other_splits") is None:
            values.pop("other_splits", None)
        elif not isinstance(values["other_splits"], list) or not all(
            isinstance(p, str) and p for p in values["other_splits"]
        ):
            raise DataError(
                f"dataset '{name}': datasets.{name}.other_splits must be a list of file paths, "
                "e.g. [data/ethics/justice/justice_train.csv]"
            )
        max_chars = values.get("max_chars")
        if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
            raise DataError(f"dataset '{name}': datasets.{name}.max_chars must be a positive integer or null")
        for key in ("label_meaning", "consistency", "licence", "citation"):
            if values.get(key) is None:
                values.pop(key, None)
        cfg = cls(name=name, **values)
        cfg.check()
        return cfg

    def source_label(self) -> str:
        """Where the items come from, for reports: the data path as configured (only the file name of an absolute
        path, see :func:`shown_path`), else the hub path, else the builtin's name."""
        if self.path:
            return shown_path(self.path)
        return self.hub_path or self.builtin or self.name

    def check(self) -> None:
        """Reject combinations that cannot load, naming the key to set."""
        key = f"datasets.{self.name}"
        if self.consistency not in CONSISTENCY_RULES:
            raise DataError(
                f"dataset '{self.name}': {key}.consistency is {self.consistency!r}; "
                f"use one of {', '.join(CONSISTENCY_RULES)}"
            )
        if self.format is not None and self.format not in FORMATS:
            raise DataError(f"dataset '{self.name}': {key}.format is {self.format!r}; use one of {', '.join(FORMATS)}")
        if self.source == "file" and not self.path:
            raise DataError(f"dataset '{self.name}': source file needs {key}.path (relative to the repo root)")
        if self.source == "hub" and not self.hub_path:
            raise DataError(f"dataset '{self.name}': source hub needs {key}.hub_path (e.g. 'user/dataset')")
        if self.path and self.path in self.other_splits:
            raise DataError(
                f"dataset '{self.name}': {key}.other_splits lists the dataset's own file {self.path}; remove it there"
            )
        if self.source in ("file", "hub"):
            if not self.text_column:
                raise DataError(f"dataset '{self.name}': source {self.source} needs {key}.text_column")
            if not self.label_meaning:
                raise DataError(
                    f"dataset '{self.name}': {key}.label_meaning is empty; say what label 1 means, "
                    "e.g. 'the claim is true'"
                )


DATASET_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source": {"enum": list(SOURCES)},
        "builtin": {"type": ["string", "null"]},
        "path": {"type": ["string", "null"]},
        "format": {"enum": [*FORMATS, None]},
        "hub_path": {"type": ["string", "null"]},
        "hub_name": {"type": ["string", "null"]},
        "split": {"type": ["string", "null"]},
        "text_column": {"type": ["string", "null"]},
        "label_column": {"type": ["string", "null"]},
        "consistency_column": {"type": ["string", "null"]},
        "positive_values": {"type": "array", "items": {"type": ["string", "integer", "number", "boolean"]}},
        "negative_values": {
            "type": ["array", "null"],
            "minItems": 1,
            "items": {"type": ["string", "integer", "number", "boolean"]},
        },
        "short_only": {"type": "boolean"},
        "max_chars": {"type": ["integer", "null"], "minimum": 1},
        "label_meaning": {"type": "string"},
        "consistency": {"enum": list(CONSISTENCY_RULES)},
        "licence": {"type": "string"},
        "citation": {"type": "string"},
        "other_splits": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
    },
}
"""JSON schema of one ``datasets.<name>`` entry (for params.schema.yaml): the DatasetConfig keys."""


# --------------------------------------------------------------------------------------------- builtins

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


def _frame(
    text: Any,
    gold: Any,
    source_row: Any,
    consistency_id: Any = None,
    answer_key: Any = None,
    nuisance: Any = None,
) -> pd.DataFrame:
    """Assemble a canonical (pre-numbering) frame; None columns become all-null."""
    n = len(text)
    null = [None] * n
    return pd.DataFrame(
        {
            "text": pd.Series(list(text), dtype="object"),
            "gold": pd.array(null if gold is None else list(gold), dtype="Int8"),
            "consistency_id": pd.array(null if consistency_id is None else list(consistency_id), dtype="Int64"),
            "source_row": np.asarray(source_row, dtype=np.int64),
            "answer_key": pd.Series(null if answer_key is None else list(answer_key), dtype="object"),
            "nuisance": pd.array(null if nuisance is None else list(nuisance), dtype="Int8"),
        }
    )


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
            empty = [i for i, v in enumerate(raw[c].tolist()) if _is_null(v)]
            if empty:
                raise DataError(
                    f"{where}: source row {int(raw.index[empty[0]])} has an empty '{c}' ({len(empty)} such rows); "
                    "restore the original file (see data/SOURCES.md) or remove those rows"
                )


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def _to_gold(raw: pd.Series, positive: list[Any]) -> list[Any]:
    """Map raw label values to 1 (in ``positive``), 0 (other non-null) or None."""
    return [None if _is_null(v) else int(any(v == p for p in positive)) for v in raw.tolist()]


def _plain(v: Any) -> Any:
    """numpy scalars as Python values (so messages show 1, not np.int64(1))."""
    return v.item() if isinstance(v, np.generic) else v


def _strict_gold(raw: pd.Series, positive: list[Any], negative: list[Any]) -> tuple[list[Any], list[int]]:
    """Map raw labels to 1 (in ``positive``), 0 (in ``negative``) or None (empty); also the rows in neither list."""
    gold: list[Any] = []
    stray: list[int] = []
    for i, v in enumerate(raw.tolist()):
        if _is_null(v):
            gold.append(None)
        elif any(v == p for p in positive):
            gold.append(1)
        elif any(v == n for n in negative):
            gold.append(0)
        else:
            gold.append(None)
            stray.append(i)
    return gold, stray


def _binary_gold(raw: pd.Series, where: str) -> list[Any]:
    """A builtin's 0/1 (or false/true) label column; any other value is an error naming its row."""
    gold, stray = _strict_gold(raw, [1, True], [0, False])
    if stray:
        raise DataError(
            f"{where}: label {_plain(raw.iloc[stray[0]])!r} in source row {int(raw.index[stray[0]])} is not 0/1 "
            f"({len(stray)} such rows); restore the original file (see data/SOURCES.md) or use source: file "
            "with positive_values and negative_values"
        )
    return gold


def _truthy(v: Any) -> bool:
    """``is_short``-style flags: True for true booleans/ones/'true' strings."""
    if _is_null(v):
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def _blocks(n: int, size: int) -> np.ndarray:
    """Consecutive blocks of ``size`` rows (ETHICS test files are written this way)."""
    return np.arange(n) // size


def _first_appearance_ids(values: pd.Series) -> list[Any]:
    """Number distinct non-null values 0, 1, ... in order of first appearance; nulls stay null."""
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return [None if c < 0 else int(c) for c in codes]


def _ethics_commonsense(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the first-person scenario; 1 = the narrator's action is clearly morally wrong."""
    _require(raw, ["label", "input", "is_short"], where)
    out = _frame(raw["input"], _binary_gold(raw["label"], where), raw.index)
    out["is_short"] = [_truthy(v) for v in raw["is_short"]]
    return out


def _ethics_justice(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the statement; 1 = it is reasonable/just.

    The test file comes in consecutive blocks of 4 related statements (the official "exact match" groups):
    each block gets a consistency_id, but labels inside a block are not logically tied, so the rule is "none".
    """
    _require(raw, ["label", "scenario"], where)
    return _frame(raw["scenario"], _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 4))


def _ethics_deontology(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Scenario: <request or role>\\nExcuse: <excuse>'; 1 = the excuse is reasonable.

    Blocks of 4 rows share one scenario: one consistency_id per block, rule "none" (several excuses can be
    reasonable, or none).
    """
    _require(raw, ["label", "scenario", "excuse"], where)
    text = [f"Scenario: {s.strip()}\nExcuse: {e.strip()}" for s, e in zip(raw["scenario"], raw["excuse"], strict=True)]
    return _frame(text, _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 4))


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
    return _frame(text, _binary_gold(raw["label"], where), raw.index, _blocks(len(raw), 5))


def _truthfulqa(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nClaim: <choice>'; 1 = the claim is a true answer to the question.

    Groups of 4 claims per question keep the file's consistency_id, but the number of true claims varies (0-4)
    and no two claims in a group are identical, so no logical rule holds: rule "none".
    """
    _require(raw, ["question", "choice", "label", "consistency_id"], where)
    text = [f"Question: {q.strip()}\nClaim: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)]
    return _frame(text, _binary_gold(raw["label"], where), raw.index, raw["consistency_id"])


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
    answers = [None if _is_null(a) else str(a).strip() for a in raw["answer"]]
    return _frame(text, _binary_gold(raw["label"], where), raw.index, raw["consistency_id"], answer_key=answers)


def _gsm8k_pairs(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nSolution: ...'; 1 = the worked solution is correct.

    Each question has exactly one correct and one incorrect solution: consistency_id per question,
    rule "exactly_one_true".
    """
    _require(raw, ["question", "choice", "label"], where)
    text = [
        f"Question: {q.strip()}\nSolution: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)
    ]
    return _frame(text, _binary_gold(raw["label"], where), raw.index, _first_appearance_ids(raw["question"]))


def _larger_than(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the claim ('Fifty-one is larger than ninety-two.'); 1 = the claim is true."""
    _require(raw, ["choice", "label"], where)
    return _frame(raw["choice"], _binary_gold(raw["label"], where), raw.index)


def _political_normative(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = 'Question: ...\\nAnswer: ...' to a normative political question. No truth: gold is all <NA>.

    The "impossible task" of Canavan et al.: a good method should stay uncertain. ``is_liberal`` is kept as
    the ``nuisance`` column (1 = liberal stance): a report can show whether labels track ideology, not truth.
    consistency_id per question (mostly liberal/conservative pairs), rule "none".
    """
    _require(raw, ["question", "choice", "is_liberal"], where)
    text = [f"Question: {q.strip()}\nAnswer: {c.strip()}" for q, c in zip(raw["question"], raw["choice"], strict=True)]
    nuisance = _to_gold(raw["is_liberal"], [1, True])
    return _frame(text, None, raw.index, _first_appearance_ids(raw["question"]), nuisance=nuisance)


MFV_INDIVIDUALIZING = ("Care", "Fairness")


def _mfv(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the vignette ('You see someone ...'); 1 = its main violation is of Care (harm) or Fairness.

    A binary version of the Moral Foundations Vignettes: label 1 = the foundation most human raters chose
    (``foundation_coarse``) is an *individualizing* one (Care, Fairness; 49 of 132), label 0 = a binding one
    (Loyalty, Authority, Sanctity) or Liberty / Social Norms (83 of 132).
    """
    _require(raw, ["text", "foundation_coarse"], where)
    gold = [None if _is_null(f) else int(f in MFV_INDIVIDUALIZING) for f in raw["foundation_coarse"]]
    return _frame(raw["text"], gold, raw.index)


def _daily_dilemmas(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """text = the dilemma, which ends in 'Should you ...?'; 1 = you should do it. No gold (all <NA>)."""
    _require(raw, ["dilemma_situation"], where)
    return _frame(raw["dilemma_situation"], None, raw.index)


_MENU = re.compile(r"\n\s*\d+:")
_MARKUP = re.compile(r"\[/?\w+\]")


def _as_dict(v: Any) -> dict[str, Any]:
    """Per-choice maps arrive as dicts, JSON strings or struct rows depending on the file format."""
    if _is_null(v):
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
            if _is_null(choice) or not lab:
                continue
            morality = [float(x) for k, x in dict(lab).items() if k.startswith("morality_") and not _is_null(x)]
            text.append(f"Scene: {scene}\nAction: {_MARKUP.sub('', str(choice)).strip()}")
            gold.append(int(any(x > 0 for x in morality)))
            rows.append(int(raw.index[i]))
            scene_ids.append(i)
    return _frame(text, gold, rows, scene_ids)


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


# --------------------------------------------------------------------------------------------- reading


@contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import ``datasets`` lazily (slow import) with its progress bars off while we read, and its own error log
    lines muted (a failed read becomes one :class:`DataError` line that carries their content)."""
    import datasets
    import datasets.utils.logging as ds_logging

    was_enabled = datasets.is_progress_bar_enabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(logging.CRITICAL)
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(verbosity)
        if was_enabled:
            datasets.enable_progress_bars()


SUFFIX_FORMATS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "ndjson": "json"}
SUFFIX_FORMATS.update({"parquet": "parquet", "pq": "parquet"})
"""File suffixes read as data (lower case, no dot) and the reader each gets; ``format:`` overrides it, except that
an absolute path must have one of these suffixes (module docstring)."""
_FOLDER_IGNORE = frozenset({"config.json", "dataset_info.json", "dataset_infos.json", "dataset_dict.json"})
_SPLIT_WORDS = {
    "train": ("train", "training"),
    "other": ("validation", "valid", "dev", "val", "test", "testing", "eval", "evaluation"),
}


def _infer_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    found = SUFFIX_FORMATS.get(path.suffix.lower().lstrip("."))
    if found:
        return found
    raise DataError(f"cannot tell the format of {path} from its suffix; set format: csv|json|jsonl|parquet")


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a bad file raises: ValueError (pandas parser/empty-data errors, JSON and Unicode errors),
    OSError and Arrow errors."""
    errors: list[type[BaseException]] = [ValueError, OSError]
    with suppress(ImportError):
        import pyarrow

        errors.append(pyarrow.ArrowException)
    return tuple(errors)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (``raise ... from``, else the implicit context)."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _utf8_problem(path: Path) -> tuple[str, str] | None:
    """('byte 0xe9 on line 2', a likely source encoding) where ``path`` is first not UTF-8; None when it decodes."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin1"
        return f"byte 0x{data[e.start]:02x} on line {line}", encoding
    except OSError:
        return None
    return None


def _json_problem(path: Path) -> str | None:
    """'line N: message' where a JSON / JSON Lines file first fails to parse, or None when it parses."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        json.loads(first)
        json_lines = True
    except json.JSONDecodeError:
        json_lines = False
    if json_lines:  # one object per line: the first line that does not parse
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    return f"line {n}: {e.msg} at column {e.colno}"
        return None
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return f"line {e.lineno}: {e.msg} at column {e.colno}"
    return None


def _read_error(exc: BaseException, path: Path, fmt: str | None, where: str, key: str) -> DataError:
    """Turn a failed read into one line: the file, the likely cause (encoding, a malformed row, no rows, not this
    format) and the fix; ``key`` is the params key naming the file (``datasets.<name>.path``)."""
    fmt_key = f"{key.rsplit('.', 1)[0]}.format"
    chain = _chain(exc)
    inner = chain[-1]
    names = {type(e).__name__ for e in chain}
    text = " ".join(_first_line(e) for e in chain)
    fmt = fmt or ("a folder of tables" if path.is_dir() else "a table")
    if "corresponds to no data" in text or "EmptyDataError" in names:
        return DataError(f"{where} has no rows (empty, or a header only); add data rows or fix {key}")
    if fmt != "parquet" and path.is_file():
        bad = _utf8_problem(path) if "UnicodeDecodeError" in names or fmt in ("csv", "json", "jsonl") else None
        if bad:
            return DataError(
                f"{where} is not UTF-8 text ({bad[0]}); re-save it as UTF-8, e.g. "
                f"`iconv -f {bad[1]} -t utf-8 {path.name} > utf8_{path.name}` (with the file's real encoding after "
                f"-f), and point {key} at the new file"
            )
    if "ParserError" in names:
        detail = _first_line(next(e for e in chain if type(e).__name__ == "ParserError"))
        detail = detail.removeprefix("Error tokenizing data. ").removeprefix("C error: ")
        return DataError(
            f"{where} has a malformed CSV row ({detail}); fix that line (quote fields that contain commas or "
            "quotes, one record per line) or re-export the file"
        )
    if fmt in ("json", "jsonl") and path.is_file():
        problem = _json_problem(path)
        if problem:
            return DataError(
                f"{where} is not valid JSON ({problem}); fix it there (JSON Lines: one complete object per line) "
                "or re-export the file"
            )
    hint = f"check that it is a {fmt} file, or set {fmt_key}"
    if "Failed to parse" in text or "Could not convert" in text or "cast" in text.lower():
        hint = "a column mixes numbers and text (its type is guessed from the first rows); make its values consistent"
    return DataError(f"{where} could not be read as {fmt} ({type(inner).__name__}: {_first_line(inner)}); {hint}")


def _json_table(path: Path) -> Any:
    """A JSON Lines file, or a JSON array (of objects; other values become a ``text`` column), as an Arrow table
    (pyarrow's JSON reader: the types the ``datasets`` json builder gave before); a pandas frame where pyarrow
    cannot type a column (a label that is 1 in one row and "yes" in another) or the file is one JSON document."""
    import pyarrow as pa
    import pyarrow.json as paj

    data = path.read_bytes()
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
    if data.lstrip().startswith(b"["):  # pyarrow reads JSON Lines only
        rows = json.loads(data)
        if not all(isinstance(r, dict) for r in rows):
            rows = [{"text": r} for r in rows]
        data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    try:
        table = paj.read_json(io.BytesIO(data), read_options=paj.ReadOptions(block_size=len(data) + (1 << 16)))
        table.validate()
        return table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = data.decode("utf-8")
        try:
            return pd.DataFrame([json.loads(line) for line in text.splitlines() if line.strip()])
        except json.JSONDecodeError:
            return pd.read_json(io.StringIO(text))  # one document (e.g. column -> values); raises if not JSON


def _read_table(path: Path, fmt: str) -> pd.DataFrame:
    """One local file, read straight from its bytes (never through a cache, so what is read always follows the
    file's content): CSV with pandas, JSON / JSON Lines and Parquet with pyarrow. Columns come out as the
    ``datasets`` builders gave them before (through Arrow: missing strings are None, dictionary columns plain)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "csv":
        table = pa.Table.from_pandas(pd.read_csv(path), preserve_index=False)
    elif fmt == "parquet":
        with path.open("rb") as fh:  # an open file: pyarrow's messages then do not carry the path
            table = pq.ParquetFile(fh).read()
    else:
        found = _json_table(path)
        if isinstance(found, pd.DataFrame):
            return found.reset_index(drop=True)
        table = found
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    table = pa.Table.from_arrays(columns, names=table.column_names)  # no pandas metadata: a plain frame
    return table.to_pandas().reset_index(drop=True)


def _split_words(rel: Path) -> set[str]:
    return {w for part in rel.with_suffix("").parts for w in re.split(r"[-._ 0-9]+", part.lower()) if w}


def _folder_files(path: Path, fmt: str | None, where: str) -> tuple[list[Path], str]:
    """The data files of a folder (e.g. a Hugging Face dataset download) that form its train split, and their
    format: files with a data suffix (or of ``fmt``), hidden files and dataset metadata left out; where some file
    names a split (``train``, ``test``, ``validation``, ...), only the train files; sorted by path."""
    found: list[tuple[Path, str]] = []
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if any(part.startswith((".", "__")) for part in rel.parts) or f.name in _FOLDER_IGNORE or not f.is_file():
            continue
        kind = SUFFIX_FORMATS.get(f.suffix.lower().lstrip("."))
        if kind and (fmt is None or kind == {"jsonl": "json"}.get(fmt, fmt)):
            found.append((rel, kind))
    if not found:
        raise DataError(f"{where} is a folder without {'/'.join(sorted(SUFFIX_FORMATS))} data files; add them there")
    named = [(rel, kind) for rel, kind in found if _split_words(rel) & {*_SPLIT_WORDS["train"], *_SPLIT_WORDS["other"]}]
    if named:
        found = [(rel, kind) for rel, kind in named if _split_words(rel) & set(_SPLIT_WORDS["train"])]
        if not found:
            raise DataError(f"{where} is a folder without a train split (no file name says train); point at a file")
    kinds = sorted({kind for _, kind in found})
    if len(kinds) > 1:
        raise DataError(f"{where} is a folder that mixes {' and '.join(kinds)} files; point at one file or set format")
    return [path / rel for rel, _ in found], kinds[0]


def _read_file(path: Path, fmt: str | None, where: str = "", key: str = "datasets.<name>.path") -> pd.DataFrame:
    """Read a local table (or a folder of them, concatenated) directly with pandas / pyarrow; row order is kept.

    No cache stands between the file and the rows (the ``datasets`` builders' cache was keyed on path and mtime,
    so a file replaced with the same mtime gave the old rows). A file that cannot be read (not UTF-8, a malformed
    CSV row or JSON line, no rows, not the stated format) raises one :class:`DataError` naming it (``where``), the
    cause (with the line where the parser says) and the fix (``key`` is the params key that names the file).
    """
    where = where or str(path)
    if path.is_dir():
        files, fmt = _folder_files(path, fmt, where)
    else:
        files, fmt = [path], _infer_format(path, fmt)
    frames = []
    for file in files:
        if file.stat().st_size == 0:
            which = "the file is empty" if file == path else f"{file.name} is empty"
            raise DataError(f"{where} has no rows ({which}); add data rows or fix {key}")
        try:
            frames.append(_read_table(file, fmt))
        except _read_errors() as e:
            raise _read_error(e, file, fmt, where, key) from e
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(frame) == 0:
        raise DataError(f"{where} has no rows (empty, or a header only); add data rows or fix {key}")
    return frame


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'the hub or the dataset could not be reached / found'."""
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, TimeoutError, FileNotFoundError
    try:
        from datasets.exceptions import DatasetNotFoundError

        errors.append(DatasetNotFoundError)
    except ImportError:  # pragma: no cover - older datasets
        pass
    try:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        errors += [HfHubHTTPError, LocalEntryNotFoundError]
    except ImportError:  # pragma: no cover
        pass
    for mod, name in (("httpx", "HTTPError"), ("requests", "RequestException")):
        with suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(mod), name))
    return tuple(errors)


def _read_hub(cfg: DatasetConfig) -> pd.DataFrame:
    split = cfg.split or "train"
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_dataset(cfg.hub_path, cfg.hub_name, split=split)
        except _hub_errors() as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            raise DataError(
                f"dataset '{cfg.name}': could not reach the Hugging Face hub for '{cfg.hub_path}' "
                f"({reason}); download it and use source: file with path: data/<file>"
            ) from None
        return ds.to_pandas().reset_index(drop=True)


def _labels(raw: pd.DataFrame, cfg: DatasetConfig, where: str) -> list[Any]:
    """Gold from the label column: 1 = in ``positive_values``, 0 = in ``negative_values`` (or, without that list,
    any other value of a column with at most 2 distinct values), None = an empty cell (counted in the log).

    Never a silent 0 for an unexpected value: a value in neither list, or a third distinct value, is an error.

    One class is a valid dataset (rare events: every row a negative), loaded with a warning, when no label is in
    ``positive_values`` and either every label is in ``negative_values`` or, without that list, every label is
    one of ``DEFAULT_NEGATIVE_VALUES`` (0 / false). Other labels that match no positive value are an error that
    names both fixes: the positive values are misspelt (set ``positive_values``), or the labels are all
    negatives (list them in ``negative_values``). All labels 1 needs no exception: it always loads.
    """
    col = str(cfg.label_column)
    key = f"datasets.{cfg.name}"
    series = raw[col]
    values = series.tolist()
    odd = next((i for i, v in enumerate(values) if isinstance(v, list | dict | np.ndarray)), None)
    if odd is not None:
        raise DataError(
            f"dataset '{cfg.name}': label column '{col}' of {where} holds a {type(values[odd]).__name__} in source "
            f"row {odd}; labels must be single values (1/0, true/false, yes/no); fix {key}.label_column"
        )
    positive, negative = cfg.positive_values, cfg.negative_values
    if negative is not None:
        gold, stray = _strict_gold(series, positive, negative)
        if stray:
            raise DataError(
                f"dataset '{cfg.name}': label {_plain(values[stray[0]])!r} in source row {stray[0]} of {where} "
                f"(column '{col}', {len(stray)} such rows) is in neither {key}.positive_values {positive!r} nor "
                f"{key}.negative_values {negative!r}; add it to one of them, or empty the cell for unknown gold"
            )
    else:
        distinct = list(dict.fromkeys(_plain(v) for v in values if not _is_null(v)))
        if len(distinct) > 2:
            shown = sorted(distinct, key=lambda v: (type(v).__name__, str(v)))
            more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
            raise DataError(
                f"dataset '{cfg.name}': label column '{col}' has {len(distinct)} distinct values "
                f"{shown[:10]!r}{more}; list the ones that mean 1 in {key}.positive_values and the ones that "
                f"mean 0 in {key}.negative_values"
            )
        gold = _to_gold(series, positive)
    labelled = sum(g is not None for g in gold)
    if labelled and not any(g == 1 for g in gold):
        zeros = all(_is_null(v) or any(v == z for z in DEFAULT_NEGATIVE_VALUES) for v in values)
        if negative is None and not zeros:
            seen = sorted({repr(_plain(v)) for v in series.dropna().unique()[:10]})
            raise DataError(
                f"dataset '{cfg.name}': no value of column '{col}' is in positive_values "
                f"{positive!r} (seen: {', '.join(seen)}); set {key}.positive_values to the values that mean 1, "
                f"or, if every row is a negative, list these values in {key}.negative_values"
            )
        log.warning(
            "dataset '%s': all %d labelled rows of column '%s' are label 0 (one class: no positives)",
            cfg.name,
            labelled,
            col,
        )
    unknown = sum(g is None for g in gold)
    if unknown:
        level = logging.WARNING if unknown == len(gold) else logging.INFO
        log.log(
            level,
            "dataset '%s': %d of %d rows have an empty label in column '%s' (gold unknown, items kept)",
            cfg.name,
            unknown,
            len(gold),
            col,
        )
    return gold


def _from_columns(raw: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
    """``source: file/hub``: map the configured columns onto the item schema."""
    wanted = [c for c in (cfg.text_column, cfg.label_column, cfg.consistency_column) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise DataError(
            f"dataset '{cfg.name}': {where} has no column {', '.join(map(repr, missing))} "
            f"(has: {', '.join(map(str, raw.columns))}); fix datasets.{cfg.name}.*_column"
        )
    gold = _labels(raw, cfg, where) if cfg.label_column else None
    cid = None
    if cfg.consistency_column:
        col = raw[cfg.consistency_column]
        cid = col.tolist() if pd.api.types.is_integer_dtype(col) else _first_appearance_ids(col)
    text = [t if isinstance(t, str) or _is_null(t) else str(t) for t in raw[cfg.text_column].tolist()]
    out = _frame(text, gold, raw.index, cid)
    if "is_short" in raw.columns:
        out["is_short"] = [_truthy(v) for v in raw["is_short"]]
    return out


def _resolve(root: Path, rel: str, name: str, key: str) -> Path:
    """A configured data path as the file (or folder) to read, under the rule in the module docstring: a relative
    path is taken from ``root`` and may not leave it (checked on the path's text, so a symlink inside the
    repository still works); an absolute path that exists must be a folder or a regular file with a data suffix.
    Whether the path exists is left to the caller, whose message names the fix."""
    p = Path(rel)
    if p.is_absolute():
        if p.exists() and not p.is_dir() and not (p.is_file() and p.suffix.lower().lstrip(".") in SUFFIX_FORMATS):
            suffixes = ", ".join(f".{x}" for x in SUFFIX_FORMATS)
            raise DataError(
                f"dataset '{name}': {key} {rel} is not a data file (an absolute path must name a folder or a regular "
                f"file ending in {suffixes}); point {key} at the data file"
            )
        return p
    base = os.path.abspath(root)
    if os.path.commonpath([base, os.path.normpath(os.path.join(base, rel))]) != base:
        raise DataError(
            f"dataset '{name}': {key} {rel} leads outside the repository ({base}) through '..'; use a path inside "
            "it, or use an absolute path if you mean a file outside the repository"
        )
    return root / p


def shown_path(path: str) -> str:
    """How outputs (``hygiene.json``, the report) name a data path: as configured when it is relative to the
    repository, only the file name when it is absolute (outputs never carry a path outside the repository)."""
    p = Path(path)
    return p.name if p.is_absolute() else path


def _raw_items(cfg: DatasetConfig, root: Path) -> pd.DataFrame:
    """Read the source and convert it to canonical (un-numbered, unfiltered) item rows."""
    key = f"datasets.{cfg.name}"
    if cfg.source == "hub":
        return _from_columns(_read_hub(cfg), cfg, f"hub dataset '{cfg.hub_path}'")
    if cfg.source == "file":
        path = _resolve(root, cfg.path or "", cfg.name, f"{key}.path")
        if not path.exists():
            raise DataError(f"dataset '{cfg.name}': data file {cfg.path} not found under {root}; fix {key}.path")
        raw = _read_file(path, cfg.format, f"dataset '{cfg.name}': {cfg.path}", f"{key}.path")
        return _from_columns(raw, cfg, str(cfg.path))
    name = cfg.builtin or cfg.name
    if name not in BUILTINS:
        raise DataError(f"dataset '{cfg.name}': unknown builtin {name!r}; known builtins: {', '.join(BUILTINS)}")
    spec = BUILTINS[name]
    rel = cfg.path or spec.path
    path = _resolve(root, rel, cfg.name, f"{key}.path")
    if not path.exists():
        if name == "machiavelli":
            raise DataError(
                f"dataset '{cfg.name}': {rel.rstrip('/')}/ is absent (the data is on the Hugging Face hub as "
                f"{MACHIAVELLI_HUB}, unreachable offline); download it there and set {key}.path"
            )
        raise DataError(
            f"dataset '{cfg.name}': data file {rel} not found under {root}; restore it "
            f"(see data/SOURCES.md) or set {key}.path"
        )
    where = f"dataset '{cfg.name}': {rel}"
    return spec.convert(_read_file(path, cfg.format, where, f"{key}.path"), where)


def load_other_splits(cfg: DatasetConfig, root: Path) -> dict[str, pd.DataFrame]:
    """``other_splits`` as ``path → frame`` (``text``, ``gold``, ``source_row``), read and converted like the
    dataset's own file but without its filters (an overlap with a long or filtered-out row is still an overlap);
    rows without text are left out. Keys are :func:`shown_path` (the file name of an absolute path, made unique),
    since they end up in ``hygiene.json`` and the report."""
    out: dict[str, pd.DataFrame] = {}
    key = f"datasets.{cfg.name}.other_splits"
    for rel in cfg.other_splits:
        path = _resolve(Path(root), rel, cfg.name, key)
        if not path.exists():
            raise DataError(
                f"dataset '{cfg.name}': other split {rel} not found under {root}; fix or remove it in {key}"
            )
        where = f"dataset '{cfg.name}': {rel}"
        raw = _read_file(path, cfg.format, where, key)
        if cfg.source == "builtin":
            frame = BUILTINS[cfg.builtin or cfg.name].convert(raw, where)
        else:
            frame = _from_columns(raw, cfg, rel)
        frame["text"] = _strip_nul(frame["text"].tolist())[0]
        ok = [isinstance(t, str) and bool(t.strip()) for t in frame["text"]]
        shown, n = shown_path(rel), 2
        while shown in out:  # two absolute paths with one file name
            shown, n = f"{shown_path(rel)} ({n})", n + 1
        out[shown] = frame.loc[ok, ["text", "gold", "source_row"]].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------------- items


def _strip_nul(texts: list[Any]) -> tuple[list[Any], int]:
    """Texts with NUL bytes (``\\x00``) removed, and how many texts had one (non-strings are left as they are)."""
    hit = [isinstance(t, str) and "\x00" in t for t in texts]
    return [t.replace("\x00", "") if h else t for t, h in zip(texts, hit, strict=True)], sum(hit)


def _finish(raw: pd.DataFrame, cfg: DatasetConfig, counts: dict[str, int] | None = None) -> pd.DataFrame:
    """Apply filters (whole consistency groups go together), check texts, number items, fix dtypes.

    NUL bytes are removed from texts first (they mean nothing to an oracle and break tools that read the export
    as C strings); how many texts had one is logged and put in ``counts["nul_texts"]``. A row with an empty text
    (missing, NaN or blank, also after that) is an error naming its source row and the count, not a skip: it
    cannot be labelled, it usually means a wrong ``text_column`` or a broken export, and dropping it would change
    which rows become items without the user asking. Filters that leave nothing are an error too.
    """
    key = f"datasets.{cfg.name}"
    cleaned, nul = _strip_nul(raw["text"].tolist())
    if nul:
        log.warning("dataset '%s': removed NUL bytes from %d of %d texts", cfg.name, nul, len(raw))
        raw = raw.assign(text=pd.Series(cleaned, index=raw.index, dtype="object"))
    if counts is not None:
        counts["nul_texts"] = nul
    text = raw["text"]
    bad = [i for i, t in enumerate(text) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"dataset '{cfg.name}': source row {int(raw['source_row'].iloc[bad[0]])} has an empty text "
            f"({len(bad)} such rows); fill or remove them, or fix {key}.text_column"
        )
    keep = np.ones(len(raw), dtype=bool)
    if cfg.short_only:
        if "is_short" not in raw.columns:
            raise DataError(
                f"dataset '{cfg.name}': short_only needs an is_short column, which this dataset lacks; "
                f"remove {key}.short_only"
            )
        keep &= raw["is_short"].to_numpy(dtype=bool)
    if cfg.max_chars is not None:
        keep &= np.array([len(t) <= cfg.max_chars for t in text], dtype=bool)
    cid = raw["consistency_id"]
    if not keep.all() and cid.notna().any():
        # a filtered-out member would leave its group incomplete (e.g. a virtue block without its true trait)
        dropped = set(cid[~keep].dropna().tolist())
        keep &= ~cid.isin(dropped).fillna(False).to_numpy(dtype=bool)
    out = raw.loc[keep].reset_index(drop=True)
    if len(out) == 0:
        raise DataError(f"dataset '{cfg.name}': no items left after filters; relax {key}.short_only / max_chars")
    items = pd.DataFrame(
        {
            "item_id": np.arange(len(out), dtype=np.int64),
            "text": pd.Series(out["text"].tolist(), dtype="str"),
            "gold": out["gold"].astype("Int8"),
            "consistency_id": out["consistency_id"].astype("Int64"),
            "source_row": out["source_row"].to_numpy(dtype=np.int64),
            "answer_key": pd.Series(out["answer_key"].tolist(), dtype="str"),
            "nuisance": out["nuisance"].astype("Int8"),
        }
    )
    items.attrs["dataset"] = cfg.name
    return items


def load_items(cfg: DatasetConfig, root: Path, counts: dict[str, int] | None = None) -> pd.DataFrame:
    """The full dataset after filters: ``ITEM_COLUMNS`` + ``OPTIONAL_COLUMNS``, item_id 0..N-1 in file order.

    Local files (and folders of them) are read directly with pandas / pyarrow (:func:`_read_file`), so the rows
    always follow the file's bytes; data paths follow the rule in the module docstring. ``source: hub`` calls
    ``datasets.load_dataset(hub_path, hub_name, split=split)`` and turns a connection or not-found failure into
    one :class:`DataError` line. ``counts``, when given, receives what loading cleaned (``nul_texts``: texts whose
    NUL bytes were removed), for the load stage's ``hygiene.json``.

    Bad input never yields a silently wrong table; each case is one :class:`DataError` line naming the file (or
    key) and the fix: a file that is not UTF-8, has a malformed CSV row or JSON line, has no rows or is not the
    stated format (:func:`_read_file`); a row with an empty text (:func:`_finish`); a label value in neither
    ``positive_values`` nor ``negative_values``, or a third distinct label value when ``negative_values`` is not
    set, or a builtin label that is not 0/1; no items left after filters. The one counted skip-like case: an
    empty label cell means unknown gold (the item is kept; the count is logged). Duplicate rows are kept here and
    counted (flagged or dropped) by ``elicit.hygiene`` in the load stage; file datasets have no id column, so
    ``item_id``/``source_row`` are always unique.
    """
    items = _finish(_raw_items(cfg, Path(root)), cfg, counts)
    validate_items(items)
    return items


def validate_items(items: pd.DataFrame) -> None:
    """Check the items schema; raise :class:`DataError` naming the first problem."""
    cols = list(items.columns)
    if cols[: len(ITEM_COLUMNS)] != ITEM_COLUMNS:
        raise DataError(f"items table must start with columns {ITEM_COLUMNS}, got {cols}")
    n = len(items)
    if n == 0:
        raise DataError("items table is empty; check the dataset's filters")
    item_id = items["item_id"]
    if not pd.api.types.is_integer_dtype(item_id) or item_id.isna().any():
        raise DataError(f"items.item_id must be integers without nulls, got dtype {item_id.dtype}")
    if not np.array_equal(item_id.to_numpy(dtype=np.int64), np.arange(n)):
        raise DataError("items.item_id must be 0..n-1 in row order (unique); renumber after filtering")
    text = items["text"]
    bad = [i for i, t in enumerate(text.tolist()) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"items.text is empty or not a string at item_id {bad[0]} ({len(bad)} rows)")
    gold = items["gold"]
    if not (gold.isna().all() or pd.api.types.is_integer_dtype(gold) or pd.api.types.is_bool_dtype(gold)):
        raise DataError(f"items.gold must be a nullable integer (Int8) column, got dtype {gold.dtype}")
    values = set(pd.Series(gold).dropna().astype(int).unique().tolist())
    if not values <= {0, 1}:
        raise DataError(f"items.gold must be 0, 1 or <NA>; found {sorted(values)}")
    cid = items["consistency_id"]
    if not (cid.isna().all() or pd.api.types.is_integer_dtype(cid)):
        raise DataError(f"items.consistency_id must be a nullable integer (Int64) column, got dtype {cid.dtype}")
    src = items["source_row"]
    if not pd.api.types.is_integer_dtype(src) or src.isna().any() or (src < 0).any():
        raise DataError(f"items.source_row must be non-negative integers without nulls, got dtype {src.dtype}")
    if "answer_key" in items.columns:
        ak = items["answer_key"].dropna().tolist()
        if any(not isinstance(a, str) for a in ak):
            raise DataError("items.answer_key must hold strings or <NA>")
    if "nuisance" in items.columns:
        nu = items["nuisance"]
        if not (nu.isna().all() or pd.api.types.is_integer_dtype(nu) or pd.api.types.is_bool_dtype(nu)):
            raise DataError(f"items.nuisance must be a nullable integer (Int8) column, got dtype {nu.dtype}")


# --------------------------------------------------------------------------------------------- subsample


def _largest_remainder(n: int, counts: np.ndarray) -> np.ndarray:
    """Split n proportionally to counts into integers summing to n (ties go to the lower index)."""
    total = int(counts.sum())
    exact = n * counts / total
    base = np.floor(exact).astype(np.int64)
    rest = n - int(base.sum())
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _fill_groups(comp: np.ndarray, order: np.ndarray, chosen: np.ndarray, share: np.ndarray, room: int) -> int:
    """Greedily add the whole group that keeps the class mix closest to ``share`` (ties: the seeded order).

    Used for stress fractions over groups (a random walk would spend the label-1 budget on label-1-heavy
    groups first) and to top up the walk. Mutates ``chosen``; returns the room left.
    """
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    sizes = comp.sum(axis=1)
    taken = comp[chosen].sum(axis=0)
    while room > 0:
        cand = np.flatnonzero(~chosen & (sizes <= room))
        if len(cand) == 0:
            break
        after = taken + comp[cand]
        dev = np.abs(after - np.outer(after.sum(axis=1), share)).sum(axis=1)
        u = cand[np.lexsort((rank[cand], np.round(dev, 9)))[0]]
        chosen[u] = True
        taken += comp[u]
        room -= int(sizes[u])
    return room


def subsample(
    items: pd.DataFrame,
    n: int | None,
    seed: int,
    positive_fraction: float | None = None,
    *,
    dataset: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """Seeded, gold-stratified subsample of ``n`` items; chosen rows keep their order and get item_id 0..n-1.

    - Stratified by gold (classes 0, 1 and <NA>, each drawn in proportion, by largest remainder) with
      ``numpy.random.default_rng(seed)``: the same inputs always give the same rows.
    - ``positive_fraction`` (stress subsampling, dataset construction by ``load`` only): draw round(n*f)
      label-1 items (rounded half up) and the rest label 0; items without gold are left out. ``n=None`` then
      means the largest sample with that fraction. Without it, ``n=None`` keeps every item.
    - Consistency groups: rows sharing a ``consistency_id`` are drawn as a whole (a group is never split), by
      walking the groups in a seeded random order and taking each one that still fits the per-class targets,
      then (best effort) topping up with the groups that keep the class mix closest to the targets. With
      ``positive_fraction`` only that closest-mix rule is used, so a stress sample favours groups whose own
      mix is near f (GSM8K has no group without a correct solution: f=0.2, n=400 gives 100 label-1 items,
      0.25). Stratification is then approximate, and when groups cannot add up to n exactly (blocks of 4,
      n=75) the sample has fewer than n items (72), never more.
    - ``source_row`` keeps provenance; ``dataset``/``run`` only name things in error messages.
    """
    name = dataset or items.attrs.get("dataset", "?")
    n_key = f"runs.{run or '<run>'}.n"
    pool = items
    if positive_fraction is not None:
        if not 0.0 < positive_fraction < 1.0:
            raise DataError(f"positive_fraction must be between 0 and 1 (exclusive), got {positive_fraction}")
        if items["gold"].isna().all():
            raise DataError(
                f"dataset '{name}' has no gold labels, so positive_fraction cannot be applied; "
                f"remove runs.{run or '<run>'}.positive_fraction"
            )
        pool = items[items["gold"].notna().to_numpy()]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise DataError(f"run asks for n={n!r}; {n_key} must be a positive integer or null")
    avail = len(pool)
    if n is not None and n > avail:
        after = " with gold" if positive_fraction is not None else ""
        raise DataError(
            f"run asks for n={n} but dataset '{name}' has {avail} items{after} after filters; lower {n_key}"
        )

    gold = pool["gold"]
    cls = np.where(gold.isna().to_numpy(), 2, gold.fillna(0).to_numpy(dtype=np.int64))  # 0, 1, 2 = <NA>
    counts = np.bincount(cls, minlength=3)
    if positive_fraction is not None:
        f = positive_fraction
        if n is None:
            n = int(min(counts[1] / f, counts[0] / (1 - f)))
            while n > 0 and (_round_half_up(n * f) > counts[1] or n - _round_half_up(n * f) > counts[0]):
                n -= 1
            if n == 0:
                raise DataError(f"dataset '{name}' cannot give positive_fraction={f}; it has {counts.tolist()[:2]}")
        n1 = _round_half_up(n * f)
        targets = np.array([n - n1, n1, 0], dtype=np.int64)
    elif n is None:
        out = items.reset_index(drop=True).copy()
        out["item_id"] = np.arange(len(out), dtype=np.int64)
        return out
    else:
        targets = _largest_remainder(n, counts)

    # units: whole consistency groups, or single rows where consistency_id is null
    cid = pool["consistency_id"]
    keys = [f"g{c}" if not _is_null(c) else f"s{i}" for i, c in enumerate(cid.tolist())]
    unit_of, _ = pd.factorize(pd.Series(keys, dtype="object"))
    n_units = int(unit_of.max()) + 1
    comp = np.zeros((n_units, 3), dtype=np.int64)
    np.add.at(comp, (unit_of, cls), 1)
    grouped = bool(cid.notna().any())
    if not grouped:
        for c, label in ((0, "label-0"), (1, "label-1")):
            if targets[c] > counts[c]:
                raise DataError(
                    f"run asks for {targets[c]} {label} items (n={n}, positive_fraction={positive_fraction}) "
                    f"but dataset '{name}' has {counts[c]}; "
                    f"lower {n_key} or runs.{run or '<run>'}.positive_fraction"
                )

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_units)
    chosen = np.zeros(n_units, dtype=bool)
    room = int(n)
    if not grouped or positive_fraction is None:
        # a seeded walk taking every unit that fits the per-class targets: exact for single rows, and a random
        # sample of whole groups with about the natural balance
        remaining = targets.copy()
        for u in order:
            size = int(comp[u].sum())
            if size <= room and (comp[u] <= remaining).all():
                chosen[u] = True
                remaining -= comp[u]
                room -= size
                if room == 0:
                    break
    if room > 0 and grouped:
        room = _fill_groups(comp, order, chosen, targets / max(int(n), 1), room)
    if room > 0:
        log.warning("dataset '%s': took %d whole-group items for n=%d (groups cannot be split)", name, n - room, n)
    rows = np.flatnonzero(chosen[unit_of])
    out = pool.iloc[rows].reset_index(drop=True).copy()
    out["item_id"] = np.arange(len(out), dtype=np.int64)
    out.attrs["dataset"] = name
    return out
