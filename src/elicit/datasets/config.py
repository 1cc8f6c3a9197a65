"""``datasets.<name>`` of params.yaml: :class:`DatasetConfig`, its checks, its JSON schema, and the data-path rule
(:func:`resolve_path`, :func:`shown_path`; the rule itself is in the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.datasets.builtins import BUILTINS
from elicit.datasets.items import DataError
from elicit.params_types import SECTION, Bool, HiddenStr, Int, NonEmptyStr, Str, build, entry_schema, fail, typed

Source = Literal["builtin", "file", "hub"]
Format = Literal["csv", "json", "jsonl", "parquet"]
Consistency = Literal["none", "at_most_one_true", "same_answer_same_label", "exactly_one_true"]
SOURCES: tuple[str, ...] = get_args(Source)
FORMATS: tuple[str, ...] = get_args(Format)
CONSISTENCY_RULES: tuple[str, ...] = get_args(Consistency)
DEFAULT_POSITIVE_VALUES: list[Any] = [1, True, "1", "true", "True"]
"""Raw label values read as label 1 when a file/hub dataset does not say (see ``DatasetConfig.positive_values``)."""
DEFAULT_NEGATIVE_VALUES: list[Any] = [0, False, "0", "false", "False"]
"""Raw label values that, without ``negative_values``, let a label column with no positive load as all label 0."""


SUFFIX_FORMATS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "ndjson": "json"}
SUFFIX_FORMATS.update({"parquet": "parquet", "pq": "parquet"})
"""File suffixes read as data (lower case, no dot) and the reader each gets; ``format:`` overrides it, except that
an absolute path must have one of these suffixes (the package docstring)."""


def _scalar(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{type(value).__name__} is not a label value; use strings, numbers or true/false")


LabelValue = Annotated[
    Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "integer", "number", "boolean"]})
]
"""A raw label value as a data file holds it (``yes``, ``1``, ``true``)."""
_NULL_IS_DEFAULT = (
    "positive_values",
    "short_only",
    "other_splits",
    "label_meaning",
    "consistency",
    "licence",
    "citation",
)
"""Keys whose ``null`` means "the default" (the builtin's own, else the class default)."""


@typed(lambda given: f"datasets.{given.get('name')}", DataError)
@pydantic_dataclass(frozen=True, config=SECTION)
class DatasetConfig:
    """One entry of params.yaml ``datasets.<name>``: where items come from and what label 1 means. A builtin needs
    only its name (``builtin: ...``, or the entry's own name); its defaults fill the keys the entry leaves out."""

    name: HiddenStr = Field(description="the key under datasets:; used in messages")
    source: Source = Field(
        default="builtin",
        description="builtin (a loader of elicit.datasets.builtins), file (a local table + column mapping) or hub",
    )
    builtin: Str | None = Field(
        default=None, description="builtin loader name (source: builtin); defaults to the entry's name"
    )
    path: Str | None = Field(
        default=None,
        description=(
            "data file (or folder) relative to the repository root, or absolute (rules in elicit.datasets); "
            "builtins have a default"
        ),
    )
    format: Format | None = Field(
        default=None, description="source: file: the file format; inferred from the suffix when null"
    )
    hub_path: Str | None = Field(
        default=None, description="source: hub: datasets.load_dataset(hub_path, hub_name, split=split)"
    )
    hub_name: Str | None = Field(default=None, description="source: hub: the dataset's configuration name")
    split: Str | None = Field(default=None, description="source: hub: the split; train when null")
    text_column: Str | None = Field(default=None, description="source: file/hub: the column holding the text")
    label_column: Str | None = Field(
        default=None, description="source: file/hub: the column holding the gold label (null = no gold)"
    )
    consistency_column: Str | None = Field(
        default=None,
        description="source: file/hub: rows with equal values form a consistency group (ints kept, else numbered)",
    )
    positive_values: list[LabelValue] = Field(
        default_factory=lambda: list(DEFAULT_POSITIVE_VALUES),
        description=(
            "raw label values that mean 1 (file/hub); an empty cell means unknown gold. Without negative_values the "
            "other non-empty values mean 0, and a label column with more than 2 distinct values is an error"
        ),
    )
    negative_values: list[LabelValue] | None = Field(
        default=None,
        min_length=1,
        description=(
            "raw label values that mean 0 (file/hub); when set, a label in neither list is an error naming it and "
            "its row, so a typo or a third class ('maybe') cannot silently become gold 0"
        ),
    )
    short_only: Bool = Field(
        default=False,
        description="keep only rows whose is_short column is true (ETHICS commonsense: drops long Reddit posts)",
    )
    max_chars: Int | None = Field(
        default=None, ge=1, description="drop items whose text is longer (whole consistency groups go with them)"
    )
    label_meaning: Str = Field(
        default="",
        description='what label 1 means, in words ("the narrator\'s action is clearly morally wrong"); prompts use it',
    )
    consistency: Consistency = Field(default="none", description="logical rule over the consistency groups")
    licence: Str = Field(default="", description="the data's licence, shown in the report")
    citation: Str = Field(default="", description="how to cite the data, shown in the report")
    templates: Str | None = Field(
        default=None, description="which prompt set of data/templates.yaml to use; null = the dataset's name"
    )
    other_splits: list[NonEmptyStr] = Field(
        default_factory=list,
        description=(
            "other splits of the same dataset (files relative to the repository root, read like path: ETHICS train "
            "files), checked for items that also occur there (data hygiene, elicit.hygiene); never labelled"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _builtin_defaults(cls, data: Any) -> Any:
        """A null key takes its default; a builtin's own defaults fill the keys the entry leaves out."""
        if not isinstance(data, Mapping):
            return data
        values = {k: v for k, v in data.items() if not (v is None and k in _NULL_IS_DEFAULT)}
        if values.get("source", "builtin") == "builtin":
            builtin = values.get("builtin") or values.get("name")
            if not isinstance(builtin, str) or builtin not in BUILTINS:
                fail(("builtin",), f"unknown builtin {builtin!r}; known builtins: {', '.join(BUILTINS)}")
            values["builtin"] = builtin
            for key, default in BUILTINS[builtin].defaults().items():
                if values.get(key) is None:
                    values[key] = default
        return values

    @model_validator(mode="after")
    def _loadable(self) -> Self:
        """Reject combinations that cannot load, naming the key to set."""
        key = f"datasets.{self.name}"
        if self.negative_values is not None:
            both = [v for v in self.negative_values if any(v == p for p in self.positive_values)]
            if both:
                fail(
                    ("negative_values",),
                    f"{both[0]!r} is in both {key}.positive_values and {key}.negative_values; keep it in one",
                )
        if self.source == "file" and not self.path:
            fail((), f"source file needs {key}.path (relative to the repository root)")
        if self.source == "hub" and not self.hub_path:
            fail((), f"source hub needs {key}.hub_path (e.g. 'user/dataset')")
        if self.path and self.path in self.other_splits:
            fail((), f"other_splits lists the dataset's own file {self.path}; remove it there")
        if self.source in ("file", "hub"):
            if not self.text_column:
                fail((), f"source {self.source} needs {key}.text_column (the column holding the text)")
            if not self.label_meaning:
                fail(
                    (),
                    f"'label_meaning' is a required property for source {self.source}: say what label 1 means, "
                    "e.g. 'the claim is true'",
                )
        return self

    @classmethod
    def from_params(cls, name: str, d: Any) -> DatasetConfig:
        """Build from a params.yaml entry; missing keys take defaults (a builtin's own), unknown keys fail."""
        return build(cls, d, f"datasets.{name}", DataError, hidden={"name": name})

    def source_label(self) -> str:
        """Where the items come from, for reports: the data path as configured (only the file name of an absolute
        path, see :func:`shown_path`), else the hub path, else the builtin's name."""
        if self.path:
            return shown_path(self.path)
        return self.hub_path or self.builtin or self.name


DATASET_JSON_SCHEMA: dict[str, Any] = entry_schema(DatasetConfig)
"""JSON schema of one ``datasets.<name>`` entry (generated from DatasetConfig, as in params.schema.yaml)."""


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
