"""Dataset loaders: the pure core of the `load` stage.

A dataset becomes an *items* table, one row per item to label (columns: :mod:`elicit.datasets.items`). Every
dataset states what label 1 means (``label_meaning``), so prompts can ask a True/False question whose "True"
means label 1. Only :func:`load_items` (and :func:`load_other_splits`) touch files; everything else is pure.

The modules, each one seam:

- :mod:`~elicit.datasets.config`: ``datasets.<name>`` of params.yaml (:class:`DatasetConfig`), its checks and
  JSON schema, and the data-path rule below;
- :mod:`~elicit.datasets.builtins`: the builtin datasets (ETHICS, TruthfulQA, GSM8K, ...) and their converters;
- :mod:`~elicit.datasets.readers`: local files, the hub, the column and label mapping of ``source: file/hub``,
  and the entry points :func:`load_items` / :func:`load_other_splits`;
- :mod:`~elicit.datasets.diagnosis`: a failed read as one line naming the file, the cause and the fix;
- :mod:`~elicit.datasets.items`: the items table (canonical frame, filters and numbering, schema check);
- :mod:`~elicit.datasets.sampling`: a run's seeded subsample of ``n`` items.

Data paths (``path`` and ``other_splits`` of a dataset entry):

- A relative path is resolved against the repository root (the folder of params.yaml: the load stage's working
  directory, or ``--data-root``) and must stay inside it: a path that climbs out with ``..``
  (``../../etc/passwd``) is refused in one line; use an absolute path if you mean a file outside the repository.
  The check is on the path's text, so a symlink inside the repository (e.g. ``data/`` on another disk) works.
- An absolute path is read (the user asked for that file), but it must be a regular file with a data suffix
  (``SUFFIX_FORMATS``: .csv, .tsv, .json, .jsonl, .ndjson, .parquet, .pq), whatever ``format`` says, or a folder;
  anything else (``/etc/passwd``, a device, a FIFO) is refused in one line before it is opened.
- A folder is read as the concatenation of its data files (the train split where file names name splits, see
  :func:`~elicit.datasets.readers._folder_files`); other files in it are never opened.
- Loading keeps only what it parses into items (text, gold, groups, ``source_row``): no output carries a file's
  raw contents or an absolute path; ``hygiene.json`` and the report name an absolute path by its file name only
  (:func:`shown_path`, :meth:`DatasetConfig.source_label`).

Local files are read straight from their bytes with pandas / pyarrow, never through a cache, so replacing a file
(even with the same mtime: ``cp -p``, ``rsync -a``) changes what is loaded. Texts lose any NUL bytes at load
(counted). A label column in which every labelled row is a negative loads (one class; see
:func:`~elicit.datasets.readers._labels`).
"""

from elicit.datasets.builtins import BUILTINS, Builtin
from elicit.datasets.config import (
    CONSISTENCY_RULES,
    DATASET_JSON_SCHEMA,
    DEFAULT_NEGATIVE_VALUES,
    DEFAULT_POSITIVE_VALUES,
    FORMATS,
    SOURCES,
    SUFFIX_FORMATS,
    DatasetConfig,
    shown_path,
)
from elicit.datasets.items import ITEM_COLUMNS, OPTIONAL_COLUMNS, DataError, validate_items
from elicit.datasets.readers import load_items, load_other_splits
from elicit.datasets.sampling import subsample

__all__ = [
    "BUILTINS",
    "CONSISTENCY_RULES",
    "DATASET_JSON_SCHEMA",
    "DEFAULT_NEGATIVE_VALUES",
    "DEFAULT_POSITIVE_VALUES",
    "FORMATS",
    "ITEM_COLUMNS",
    "OPTIONAL_COLUMNS",
    "SOURCES",
    "SUFFIX_FORMATS",
    "Builtin",
    "DataError",
    "DatasetConfig",
    "load_items",
    "load_other_splits",
    "shown_path",
    "subsample",
    "validate_items",
]
