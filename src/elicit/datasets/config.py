"""``datasets.<name>`` of params.yaml: :class:`DatasetConfig`, its checks, its JSON schema, and the data-path rule
(:func:`resolve_path`, :func:`shown_path`; the rule itself is in the package docstring)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from elicit.datasets.builtins import BUILTINS
from elicit.datasets.items import DataError

SOURCES = ("builtin", "file", "hub")
FORMATS = ("csv", "json", "jsonl", "parquet")
CONSISTENCY_RULES = ("none", "at_most_one_true", "same_answer_same_label", "exactly_one_true")
DEFAULT_POSITIVE_VALUES: list[Any] = [1, True, "1", "true", "True"]
"""Raw label values read as label 1 when a file/hub dataset does not say (see ``DatasetConfig.positive_values``)."""
DEFAULT_NEGATIVE_VALUES: list[Any] = [0, False, "0", "false", "False"]
"""Raw label values that, without ``negative_values``, let a label column with no positive load as all label 0."""


SUFFIX_FORMATS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "ndjson": "json"}
SUFFIX_FORMATS.update({"parquet": "parquet", "pq": "parquet"})
"""File suffixes read as data (lower case, no dot) and the reader each gets; ``format:`` overrides it, except that
an absolute path must have one of these suffixes (the package docstring)."""


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of params.yaml ``datasets.<name>``: where items come from and what label 1 means."""

    name: str
    """The key under ``datasets:``; used in messages."""
    source: str = "builtin"
    """``builtin`` (a loader of ``elicit.datasets.builtins``), ``file`` (a local table + column mapping) or ``hub``."""
    builtin: str | None = None
    """Builtin loader name (``source: builtin``); defaults to ``name``."""
    path: str | None = None
    """Data file (or folder) relative to the repo root, or absolute (rules in the package docstring); builtins have a
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


def resolve_path(root: Path, rel: str, name: str, key: str) -> Path:
    """A configured data path as the file (or folder) to read, under the rule in the package docstring: a relative
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
