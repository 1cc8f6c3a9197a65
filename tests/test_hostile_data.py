"""Hostile data (the data side of the hostile-input issue): a data file swapped under the same mtime, a dataset whose
labels are all negatives, data paths outside the repository, and small leaks (a literal ``runs.<run>.n`` in a message,
NUL bytes in texts).

Rows call the library (``load_items`` / ``load_other_splits``); the rows that matter to a user also run the load
stage CLI on a tmp params file (as tests/test_bad_input.py does): ``error: ...`` on one line, or an items.parquet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from elicit.datasets import DataError, DatasetConfig, load_items, load_other_splits
from elicit.export import export_labels, to_jsonl
from helpers import REPO, TINY, own


def load(tmp: Path, entry: dict[str, Any], counts: dict[str, int] | None = None) -> pd.DataFrame:
    cfg = DatasetConfig.from_params("own", entry)
    return load_items(cfg, tmp) if counts is None else load_items(cfg, tmp, counts)


def load_stage(tmp: Path, entry: dict[str, Any], n: int | None = 2) -> subprocess.CompletedProcess[str]:
    """Run the load stage CLI in ``tmp`` (the repository root: params.yaml and the data) for a run 'hostile'."""
    params = yaml.safe_load(TINY.read_text())
    params["datasets"]["own"] = entry
    params["runs"]["hostile"] = {"dataset": "own", "oracle": next(iter(params["oracles"])), "n": n}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp / "hf")}
    env.pop("ELICIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "elicit.stages.load", "--run", "hostile", "--data-root", str(tmp)],
        cwd=tmp,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed stage prints (and that nothing else, no traceback, came with it)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ")
    return lines[-1]


# ------------------------------------------------------------------------ case 2: a file swapped under the same mtime


def _write_csv(path: Path, texts: list[str]) -> None:
    pd.DataFrame({"text": texts, "label": [1, 0]}).to_csv(path, index=False)


def _write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(texts, [1, 0], strict=True)))


def _write_parquet(path: Path, texts: list[str]) -> None:
    pd.DataFrame({"text": texts, "label": [1, 0]}).to_parquet(path, index=False)


def _write_folder(path: Path, texts: list[str]) -> None:
    path.mkdir(exist_ok=True)
    _write_jsonl(path / "train.jsonl", texts)


SWAPS: list[tuple[str, str, Callable[[Path, list[str]], None]]] = [
    ("csv", "claims.csv", _write_csv),
    ("jsonl", "claims.jsonl", _write_jsonl),
    ("parquet", "claims.parquet", _write_parquet),
    ("folder", "claims", _write_folder),
]


@pytest.mark.parametrize(("name", "write"), [pytest.param(n, w, id=i) for i, n, w in SWAPS])
def test_swapped_file_with_the_old_mtime_loads_the_new_rows(
    tmp_path: Path, private_cache: None, name: str, write: Callable[[Path, list[str]], None]
) -> None:
    """`cp -p` / `rsync -a` of new content keeps the old mtime; the loaded rows must still follow the bytes."""
    path = tmp_path / name
    write(path, ["The sky is blue.", "Fire is cold."])
    stamped = path / "train.jsonl" if path.is_dir() else path
    before = stamped.stat()
    assert load(tmp_path, own(name))["text"].tolist() == ["The sky is blue.", "Fire is cold."]
    write(path, ["Snow is white.", "Ice is hot!!"])
    os.utime(stamped, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stamped.stat().st_mtime_ns == before.st_mtime_ns
    assert load(tmp_path, own(name))["text"].tolist() == ["Snow is white.", "Ice is hot!!"]


# ------------------------------------------------------------------------ case 7: every label a negative

ONE_CLASS: list[tuple[str, str, str, dict[str, Any], list[Any]]] = [
    ("all 0, default mapping", "zeros.csv", "text,label\na,0\nb,0\nc,0\n", {}, [0, 0, 0]),
    ("all 0, negative_values [0]", "zeros.csv", "text,label\na,0\nb,0\nc,0\n", {"negative_values": [0]}, [0, 0, 0]),
    (
        "all false (JSON booleans)",
        "f.jsonl",
        '{"text": "a", "label": false}\n{"text": "b", "label": false}\n',
        {},
        [0, 0],
    ),
    ("all 0 with an empty cell", "gap.csv", "text,label\na,0\nb,\nc,0\n", {}, [0, pd.NA, 0]),
    (
        "all 'no', negative_values ['no']",
        "no.csv",
        "text,label\na,no\nb,no\n",
        {"positive_values": ["yes"], "negative_values": ["no"]},
        [0, 0],
    ),
]


@pytest.mark.parametrize(("name", "data", "extra", "gold"), [pytest.param(*r[1:], id=r[0]) for r in ONE_CLASS])
def test_all_negative_labels_load_as_one_class(
    tmp_path: Path, private_cache: None, name: str, data: str, extra: dict[str, Any], gold: list[Any]
) -> None:
    (tmp_path / name).write_text(data)
    assert load(tmp_path, own(name, **extra))["gold"].tolist() == gold


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        pytest.param("text,label\na,no\nb,no\n", {"positive_values": ["yes"]}, id="all 'no', no negative_values"),
        pytest.param("text,label\na,no\nb,yes\n", {}, id="yes/no, default positive_values"),
    ],
)
def test_no_positive_match_names_both_fixes(tmp_path: Path, private_cache: None, data: str, extra: Any) -> None:
    (tmp_path / "c.csv").write_text(data)
    with pytest.raises(DataError) as info:
        load(tmp_path, own("c.csv", **extra))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("dataset 'own': no value of column 'label' is in positive_values")
    assert msg.endswith(
        "set datasets.own.positive_values to the values that mean 1, or, if every row is a negative, "
        "list these values in datasets.own.negative_values"
    )


def test_load_stage_writes_items_for_an_all_negative_dataset(tmp_path: Path) -> None:
    (tmp_path / "rare.csv").write_text("text,label\n" + "".join(f"event {i},0\n" for i in range(6)))
    proc = load_stage(tmp_path, own("rare.csv", negative_values=[0]), n=4)
    assert proc.returncode == 0, proc.stderr
    items = pd.read_parquet(tmp_path / "results" / "hostile" / "items.parquet")
    assert len(items) == 4 and items["gold"].tolist() == [0, 0, 0, 0]
    assert "are label 0 (one class: no positives)" in proc.stderr


# ------------------------------------------------------------------------ case 9: paths outside the repository

PATHS: list[tuple[str, dict[str, Any], str]] = [
    (
        "relative path up out of the repository",
        own("../../../etc/passwd"),
        r"^dataset 'own': datasets\.own\.path \.\./\.\./\.\./etc/passwd leads outside the repository \(.*\) through "
        r"'\.\.'; use a path inside it, or use an absolute path if you mean a file outside the repository$",
    ),
    (
        "relative path up and back down out of it",
        own("data/../../outside.csv"),
        r"datasets\.own\.path data/\.\./\.\./outside\.csv leads outside the repository",
    ),
    (
        "other_splits up out of the repository",
        own("ok.csv", other_splits=["../ok.csv"]),
        r"^dataset 'own': datasets\.own\.other_splits \.\./ok\.csv leads outside the repository",
    ),
    (
        "/etc/passwd (not a data file)",
        own("/etc/passwd"),
        r"^dataset 'own': datasets\.own\.path /etc/passwd is not a data file \(an absolute path must name a folder or "
        r"a regular file ending in \.csv, .*\); point datasets\.own\.path at the data file$",
    ),
    (
        "/etc/passwd with format: csv",
        own("/etc/passwd", format="csv"),
        r"datasets\.own\.path /etc/passwd is not a data file",
    ),
    ("a device", own("/dev/null"), r"datasets\.own\.path /dev/null is not a data file"),
]


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
@pytest.mark.parametrize(("entry", "pattern"), [pytest.param(e, p, id=n) for n, e, p in PATHS])
def test_data_paths_outside_the_repository_are_refused(
    tmp_path: Path, private_cache: None, entry: dict[str, Any], pattern: str
) -> None:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "ok.csv").write_text("text,label\na,1\nb,0\n")
    (tmp_path / "ok.csv").write_text("text,label\na,1\nb,0\n")
    (tmp_path / "outside.csv").write_text("text,label\na,1\nb,0\n")
    cfg = DatasetConfig.from_params("own", entry)
    with pytest.raises(DataError, match=pattern) as info:
        load_items(cfg, repo)
        load_other_splits(cfg, repo)
    assert "\n" not in str(info.value)


def test_load_stage_refuses_etc_passwd_in_one_line(tmp_path: Path) -> None:
    line = error_line(load_stage(tmp_path, own("/etc/passwd", format="csv")))
    assert line.startswith("error: dataset 'own': datasets.own.path /etc/passwd is not a data file")
    assert not (tmp_path / "results" / "hostile" / "items.parquet").exists()


def test_absolute_path_to_a_csv_works_and_outputs_name_only_the_file(tmp_path: Path) -> None:
    """An absolute data path (and other split) is read; items.parquet, hygiene.json and the report's source name
    carry the file name, never the absolute path."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "private" / "home"
    (repo / "data").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    (elsewhere / "claims.csv").write_text("text,label\nThe sky is blue.,1\nFire is cold.,0\nWater is wet.,1\n")
    (elsewhere / "train.csv").write_text("text,label\nFire is cold.,0\nSnow is white.,1\n")
    (repo / "inside.csv").write_text("text,label\nx,1\n")
    entry = own(str(elsewhere / "claims.csv"), other_splits=[str(elsewhere / "train.csv"), "data/../inside.csv"])
    cfg = DatasetConfig.from_params("own", entry)
    assert load_items(cfg, repo)["text"].tolist() == ["The sky is blue.", "Fire is cold.", "Water is wet."]
    assert list(load_other_splits(cfg, repo)) == ["train.csv", "data/../inside.csv"]
    assert cfg.source_label() == "claims.csv"
    proc = load_stage(repo, entry, n=None)
    assert proc.returncode == 0, proc.stderr
    out = repo / "results" / "hostile"
    hygiene = json.loads((out / "hygiene.json").read_text())
    assert hygiene["other_splits"]["train.csv"]["exact_items"] == 1
    for written in (out / "items.parquet", out / "hygiene.json"):
        assert b"private" not in written.read_bytes(), written


# ------------------------------------------------------------------------ case 10: small leaks


def test_n_too_large_names_the_run(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("text,label\na,1\nb,0\nc,1\n")
    line = error_line(load_stage(tmp_path, own("c.csv"), n=50))
    assert line == "error: run asks for n=50 but dataset 'own' has 3 items after filters; lower runs.hostile.n"


NUL: list[tuple[str, str, bytes]] = [
    ("CSV", "nul.csv", b"text,label\nThe sky\x00 is blue.,1\nFire is cold.,0\nWa\x00ter\x00 is wet.,1\n"),
    (
        "JSON Lines (\\u0000 escapes)",
        "nul.jsonl",
        b'{"text": "The sky\\u0000 is blue.", "label": 1}\n{"text": "Fire is cold.", "label": 0}\n'
        b'{"text": "Wa\\u0000ter\\u0000 is wet.", "label": 1}\n',
    ),
]


@pytest.mark.parametrize(("name", "data"), [pytest.param(n, d, id=i) for i, n, d in NUL])
def test_nul_bytes_are_stripped_at_load_and_counted(
    tmp_path: Path, private_cache: None, caplog: pytest.LogCaptureFixture, name: str, data: bytes
) -> None:
    (tmp_path / name).write_bytes(data)
    counts: dict[str, int] = {}
    items = load(tmp_path, own(name), counts)
    assert items["text"].tolist() == ["The sky is blue.", "Fire is cold.", "Water is wet."]
    assert counts == {"nul_texts": 2}
    assert "removed NUL bytes from 2 of 3 texts" in caplog.text
    labels = pd.DataFrame({"item_id": items["item_id"], "p_true": [0.9, 0.1, 0.8]})
    exported = to_jsonl(export_labels(labels, items))
    assert "\\u0000" not in exported and "\x00" not in exported


def test_load_stage_records_the_nul_count_in_hygiene_json(tmp_path: Path) -> None:
    (tmp_path / "nul.csv").write_bytes(NUL[0][2])
    proc = load_stage(tmp_path, own("nul.csv"), n=None)
    assert proc.returncode == 0, proc.stderr
    hygiene = json.loads((tmp_path / "results" / "hostile" / "hygiene.json").read_text())
    assert hygiene["nul_texts"] == 2
    items = pd.read_parquet(tmp_path / "results" / "hostile" / "items.parquet")
    assert not items["text"].str.contains("\x00").any()
