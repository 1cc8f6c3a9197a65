"""Bad input, as a table (issue 8): each malformed file, label, filter or params entry gives one clear error line
naming the problem and the fix, or a documented, counted outcome; never a silently wrong number.

Rows call the library (``load_items`` / ``load_params`` / ``DatasetConfig.from_params``); two rows also run the load
stage CLI to show what the user sees: ``error: ...`` on one line, exit code 2, and an earlier output left alone.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from elicit.config import load_params
from elicit.datasets import DataError, DatasetConfig, load_items
from elicit.hygiene import HygieneConfig, apply_hygiene
from helpers import own

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "params.tiny.yaml"
ETHICS_HEAD = REPO / "data" / "ethics" / "commonsense" / "cm_test.csv"


def write(name: str, data: bytes | str, **extra: Any) -> Callable[[Path], dict[str, Any]]:
    """A row maker: write ``data`` to ``tmp/name`` and return the dataset entry reading it."""

    def make(tmp: Path) -> dict[str, Any]:
        (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
        return own(name, **extra)

    return make


def builtin_copy(name: str, edit: Callable[[pd.DataFrame], None], builtin: str) -> Callable[[Path], dict[str, Any]]:
    """A row maker: the first rows of a builtin's own file, edited, under its builtin loader."""

    def make(tmp: Path) -> dict[str, Any]:
        frame = pd.read_csv(ETHICS_HEAD, nrows=6) if builtin == "ethics_commonsense" else _truthfulqa_head()
        edit(frame)
        if name.endswith(".json"):
            (tmp / name).write_text(json.dumps(frame.to_dict(orient="records")))
        else:
            frame.to_csv(tmp / name, index=False)
        return {"source": "builtin", "builtin": builtin, "path": name}

    return make


def _truthfulqa_head() -> pd.DataFrame:
    rows = json.loads((REPO / "data" / "icm" / "train_truthfulqa.json").read_text())[:4]
    return pd.DataFrame(rows)


def _set(frame: pd.DataFrame, row: int, col: str, value: Any) -> None:
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value


LATIN1 = "text,label\nThe sky is blue,1\nCaf\xe9 au lait is cold,0\n".encode("latin1")
UTF16 = "text,label\nThe sky is blue,1\nFire is cold,0\n".encode("utf-16")
JSONL_BROKEN = '{"text": "a", "label": 1}\n{"text": "b", "label": 0\n{"text": "c", "label": 1}\n'

# (name, make(tmp) -> dataset entry, expected message regex): every row is one DataError line
ERRORS: list[tuple[str, Callable[[Path], dict[str, Any]], str]] = [
    (
        "non-UTF-8 CSV (Latin-1)",
        write("latin1.csv", LATIN1),
        r"^dataset 'own': latin1\.csv is not UTF-8 text \(byte 0xe9 on line 3\); re-save it as UTF-8, "
        r"e\.g\. `iconv -f latin1 -t utf-8 latin1\.csv > utf8_latin1\.csv`.*point datasets\.own\.path at the new file$",
    ),
    ("UTF-16 CSV", write("utf16.csv", UTF16), r"is not UTF-8 text \(byte 0xff on line 1\).*`iconv -f utf-16 -t utf-8"),
    (
        "CSV row with an extra field",
        write("extra.csv", "text,label\na,1\nb,0,zzz\nc,1\n"),
        r"^dataset 'own': extra\.csv has a malformed CSV row \(Expected 2 fields in line 3, saw 3\); fix that line",
    ),
    (
        "CSV with an unterminated quote",
        write("quote.csv", 'text,label\n"a,1\nb,0\n'),
        r"quote\.csv has a malformed CSV row \(EOF inside string starting at row 1\)",
    ),
    (
        "broken JSON Lines",
        write("broken.jsonl", JSONL_BROKEN),
        r"^dataset 'own': broken\.jsonl is not valid JSON \(line 2: Expecting ',' delimiter at column 25\); fix it",
    ),
    (
        "truncated JSON array",
        write("broken.json", '[{"text": "a", "label": 1},\n {"text": '),
        r"broken\.json is not valid JSON \(line 2: Expecting value",
    ),
    ("CSV read as JSON (format: json)", write("claims.csv", "text,label\na,1\n", format="json"), r"is not valid JSON"),
    (
        "not a Parquet file",
        write("bad.parquet", b"PAR1 not really"),
        r"bad\.parquet could not be read as parquet \(ArrowInvalid: Parquet magic bytes.*set datasets\.own\.format$",
    ),
    (
        "CSV with a header and no rows",
        write("header.csv", "text,label\n"),
        r"^dataset 'own': header\.csv has no rows \(empty, or a header only\); "
        r"add data rows or fix datasets\.own\.path$",
    ),
    ("empty CSV file", write("empty.csv", b""), r"empty\.csv has no rows \(the file is empty\)"),
    ("empty JSON Lines file", write("empty.jsonl", b""), r"empty\.jsonl has no rows"),
    ("JSON Lines with blank lines only", write("blank.jsonl", "\n\n"), r"blank\.jsonl has no rows"),
    (
        "a third label value, no negative_values",
        write("maybe.csv", "text,label\na,yes\nb,no\nc,maybe\n", positive_values=["yes"]),
        r"^dataset 'own': label column 'label' has 3 distinct values \['maybe', 'no', 'yes'\]; list the ones that "
        r"mean 1 in datasets\.own\.positive_values and the ones that mean 0 in datasets\.own\.negative_values$",
    ),
    (
        "a label 2 in a 0/1 column (default positive_values)",
        write("two.csv", "text,label\na,1\nb,0\nc,2\n"),
        r"label column 'label' has 3 distinct values \[0, 1, 2\]",
    ),
    (
        "a label in neither positive_values nor negative_values",
        write("neither.csv", "text,label\na,yes\nb,no\nc,maybe\n", positive_values=["yes"], negative_values=["no"]),
        r"^dataset 'own': label 'maybe' in source row 2 of neither\.csv \(column 'label', 1 such rows\) is in neither "
        r"datasets\.own\.positive_values \['yes'\] nor datasets\.own\.negative_values \['no'\]; add it to one of them",
    ),
    (
        "a value in both label lists",
        write("both.csv", "text,label\na,yes\n", positive_values=["yes"], negative_values=["no", "yes"]),
        r"'yes' is in both datasets\.own\.positive_values and datasets\.own\.negative_values; keep it in one",
    ),
    (
        "negative_values not a list",
        write("neg.csv", "text,label\na,yes\n", negative_values="no"),
        r"datasets\.own\.negative_values: 'no' is not of type 'array'",
    ),
    (
        "a list-valued label (JSON Lines)",
        write("listy.jsonl", '{"text": "a", "label": [1]}\n{"text": "b", "label": [0]}\n'),
        r"label column 'label' of listy\.jsonl holds a (list|ndarray) in source row 0",
    ),
    (
        "missing text (empty cell)",
        write("notext.csv", "text,label\na,1\n,0\nc,1\n"),
        r"^dataset 'own': source row 1 has an empty text \(1 such rows\); fill or remove them, "
        r"or fix datasets\.own\.text_column$",
    ),
    (
        "blank text (spaces only)",
        write("blank.csv", 'text,label\na,1\n"   ",0\n"  ",1\n'),
        r"source row 1 has an empty text \(2 such rows\)",
    ),
    (
        "text column absent",
        write("cols.csv", "statement,label\na,1\n"),
        r"cols\.csv has no column 'text' \(has: statement, label\); fix datasets\.own\.\*_column",
    ),
    (
        "no items left after filters (max_chars)",
        write("long.csv", "text,label\na long text,1\nanother long one,0\n", max_chars=3),
        r"^dataset 'own': no items left after filters; relax datasets\.own\.short_only / max_chars$",
    ),
    (
        "no items left after filters (short_only)",
        write("short.csv", "text,label,is_short\na,1,false\nb,0,false\n", short_only=True),
        r"no items left after filters",
    ),
    (
        "builtin file with a label that is not 0/1",
        builtin_copy("cm.csv", lambda f: _set(f, 1, "label", 2), "ethics_commonsense"),
        r"^dataset 'own': cm\.csv: label 2 in source row 1 is not 0/1 \(1 such rows\); restore the original file",
    ),
    (
        "builtin file with a missing text field",
        builtin_copy("tqa.json", lambda f: _set(f, 2, "question", None), "truthfulqa"),
        r"^dataset 'own': tqa\.json: source row 2 has an empty 'question' \(1 such rows\); restore the original file",
    ),
    (
        "unknown dataset key",
        write("ok.csv", "text,label\na,1\n", labelcolumn="label"),
        r"datasets\.own\.labelcolumn: unknown key 'labelcolumn'; did you mean 'label_column'\? .*negative_values",
    ),
]


@pytest.mark.parametrize(("make", "pattern"), [pytest.param(m, p, id=n) for n, m, p in ERRORS])
def test_bad_data_is_one_clear_line(
    tmp_path: Path, private_cache: None, make: Callable[[Path], dict[str, Any]], pattern: str
) -> None:
    entry = make(tmp_path)
    with pytest.raises(DataError, match=pattern) as info:
        load_items(DatasetConfig.from_params("own", entry), tmp_path)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- counted, not errors


def test_empty_label_is_unknown_gold_counted_in_the_log(
    tmp_path: Path, private_cache: None, caplog: pytest.LogCaptureFixture
) -> None:
    entry = write("gaps.csv", "text,label\na,yes\nb,\nc,no\nd\n", positive_values=["yes"], negative_values=["no"])
    with caplog.at_level(logging.INFO, logger="elicit.datasets"):
        items = load_items(DatasetConfig.from_params("own", entry(tmp_path)), tmp_path)
    assert items["text"].tolist() == ["a", "b", "c", "d"]  # nothing skipped
    assert items["gold"].tolist() == [1, pd.NA, 0, pd.NA]
    assert "dataset 'own': 2 of 4 rows have an empty label in column 'label' (gold unknown, items kept)" in caplog.text


def test_negative_values_and_two_valued_columns_still_load(tmp_path: Path, private_cache: None) -> None:
    (tmp_path / "yn.csv").write_text("text,label\na,yes\nb,no\nc,yes\n")
    two = load_items(DatasetConfig.from_params("own", own("yn.csv", positive_values=["yes"])), tmp_path)
    assert two["gold"].tolist() == [1, 0, 1]
    both = own("yn.csv", positive_values=["yes"], negative_values=["no"])
    assert load_items(DatasetConfig.from_params("own", both), tmp_path)["gold"].tolist() == [1, 0, 1]


def test_duplicate_rows_and_ids_are_kept_and_counted_by_hygiene(tmp_path: Path, private_cache: None) -> None:
    """File datasets have no id column: item_id/source_row are always unique, a repeated id in the file is just
    data (a repeated consistency_column value is a group, by design). Duplicate texts are kept by load_items and
    counted by hygiene (flagged, or dropped with action: drop), including pairs whose gold labels disagree."""
    rows = [
        ("7", "The sky is blue.", "yes"),
        ("7", "Fire is cold.", "no"),
        ("8", "The sky is blue.", "no"),  # same text as row 0, other label, repeated id
        ("9", "Water is wet.", "yes"),
    ]
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(tmp_path / "dups.csv", index=False)
    cfg = DatasetConfig.from_params("own", own("dups.csv", positive_values=["yes"]))
    items = load_items(cfg, tmp_path)
    assert items["item_id"].tolist() == [0, 1, 2, 3] and items["source_row"].is_unique
    flagged, report = apply_hygiene(items, HygieneConfig(action="flag", near_threshold=None))
    assert flagged["dup_within"].tolist() == [False, False, True, False]
    assert report["within"]["exact_items"] == 1 and report["within"]["conflicting_gold_pairs"] == 1
    dropped, report = apply_hygiene(items, HygieneConfig(action="drop", near_threshold=None))
    assert report["dropped"] == 1 and dropped["item_id"].tolist() == [0, 1, 2]
    grouped = load_items(
        DatasetConfig.from_params("own", {**own("dups.csv"), "label_column": None, "consistency_column": "id"}),
        tmp_path,
    )
    assert grouped["consistency_id"].tolist() == [7, 7, 8, 9]


# ------------------------------------------------------------------------------------- params


def first_run(p: dict[str, Any]) -> dict[str, Any]:
    return p["runs"][next(iter(p["runs"]))]


def file_dataset(p: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in p["datasets"].values() if d.get("source") == "file")


PARAMS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "run with an unknown oracle",
        lambda p: first_run(p).update(oracle="nope"),
        r"runs\.\w+\.oracle: unknown oracle 'nope'; use one of: ",
    ),
    (
        "run with n: -5",
        lambda p: first_run(p).update(n=-5),
        r"runs\.\w+\.n: -5 is less than the minimum of 1; fix this key",
    ),
    (
        "run with an unknown dataset",
        lambda p: first_run(p).update(dataset="nope"),
        r"runs\.\w+\.dataset: unknown dataset 'nope'",
    ),
    (
        "dataset without label_meaning",
        lambda p: file_dataset(p).pop("label_meaning"),
        r"datasets\.\w+: 'label_meaning' is a required property",
    ),
    (
        "dataset with a bad source",
        lambda p: file_dataset(p).update(source="web"),
        r"datasets\.\w+\.source: 'web' is not allowed; use one of: builtin, file, hub",
    ),
    # DatasetConfig checks each entry, at load (elicit.config.validate_params) as in every stage
    (
        "dataset with an unknown key",
        lambda p: file_dataset(p).update(labelcolumn="x"),
        r"datasets\.\w+\.labelcolumn: unknown key 'labelcolumn'; did you mean 'label_column'\? known keys: ",
    ),
    (
        "positive_values not a list",
        lambda p: file_dataset(p).update(positive_values="yes"),
        r"datasets\.\w+\.positive_values: 'yes' is not of type 'array'",
    ),
    (
        "negative_values overlapping",
        lambda p: file_dataset(p).update(positive_values=[1], negative_values=[0, 1]),
        r"1 is in both datasets\.\w+\.positive_values and",
    ),
]


@pytest.mark.parametrize(("edit", "pattern"), [pytest.param(e, p, id=n) for n, e, p in PARAMS])
def test_bad_params_are_one_clear_line(tmp_path: Path, edit: Callable[[dict[str, Any]], None], pattern: str) -> None:
    params = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=pattern) as info:
        loaded = load_params(path)
        for name, entry in loaded["datasets"].items():
            DatasetConfig.from_params(name, entry)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- what the user sees


@pytest.mark.parametrize(
    ("name", "data", "extra", "message"),
    [
        ("latin1.csv", LATIN1, {}, "latin1.csv is not UTF-8 text (byte 0xe9 on line 3); re-save it as UTF-8"),
        (
            "maybe.csv",
            b"text,label\na,yes\nb,no\nc,maybe\n",
            {"positive_values": ["yes"]},
            "label column 'label' has 3 distinct values ['maybe', 'no', 'yes']",
        ),
    ],
)
def test_load_stage_prints_one_error_line_and_keeps_earlier_output(
    tmp_path: Path, name: str, data: bytes, extra: dict[str, Any], message: str
) -> None:
    (tmp_path / name).write_bytes(data)
    params = yaml.safe_load(TINY.read_text())
    params["datasets"]["bad"] = own(name, **extra)
    params["runs"]["bad"] = {"dataset": "bad", "oracle": next(iter(params["oracles"])), "n": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    earlier = tmp_path / "results" / "bad" / "items.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's items")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "hf"),
    }
    env.pop("ELICIT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "elicit.stages.load", "--run", "bad", "--data-root", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == lines[-1].strip() and lines[-1].startswith("error: dataset 'bad': ")
    assert message in lines[-1]
    assert "Traceback" not in proc.stderr and "Failed to read" not in proc.stderr
    assert earlier.read_bytes() == b"an earlier run's items"
    assert not (tmp_path / "results" / "bad" / "hygiene.json").exists()
