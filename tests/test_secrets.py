"""The API key of a `kind: openai` oracle is sent to the server and written nowhere: not in results, logs,
telemetry, the answer cache (SQLite and its WAL), stdout/stderr, nor any exception message, also when the server
rejects the key (401) and echoes it back in its error body.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from elicit.oracle import OracleConfig, OracleError, ask_sync
from elicit.prompts import Template
from helpers import REPO, TINY, FakeOpenAI, Reply, sh

KEY = "sk-elicit-dummy-0123456789"
ENV = "ELICIT_TEST_API_KEY"
T = Template(id="t1", pos="Is it wrong?", neg="Is it acceptable?", item="Scenario")


def echo_key(status: int) -> Any:
    """A server that rejects every request and, carelessly, echoes the key it got in the error body."""

    def script(n: int, prompt: str) -> Reply:
        return Reply(status, body={"error": {"message": f"Incorrect API key provided: {KEY}", "code": "bad_key"}})

    return script


def files_with_key(root: Path) -> list[str]:
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and KEY.encode() in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


@pytest.mark.parametrize("status", [401, 403, 500])
def test_key_not_in_exception_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.setenv(ENV, KEY)
    items = pd.DataFrame({"item_id": np.arange(2), "text": ["I did a thing.", "I did another."]})
    q = pd.DataFrame(
        [
            {"query_id": f"q{i}", "target_id": i, "framing": "pos", "template_id": "t1", "context_ids": [],
             "context_shown": []}
            for i in range(2)
        ]
    )  # fmt: skip
    with FakeOpenAI(echo_key(status)) as srv:
        cfg = OracleConfig.from_params(
            "remote",
            {"kind": "openai", "base_url": srv.url, "model": "fake-model", "api_key_env": ENV, "max_retries": 1,
             "retry_backoff_s": 0.01},
        )  # fmt: skip
        with pytest.raises(OracleError) as info:
            ask_sync(q, items, cfg, [T], tmp_path / "cache", progress=False)
        assert all(h[3].get("authorization") == f"Bearer {KEY}" for h in srv.requests)  # it was sent
    err = info.value
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert KEY not in text
    assert f"<{ENV}>" in str(err)  # the echoed key was replaced by the variable's name
    if status in (401, 403):
        assert str(err).startswith(f"oracle 'remote': the server rejected the API key (HTTP {status}: ")
        assert str(err).endswith("check the variable named by oracles.remote.api_key_env")
    else:
        assert f"HTTP 500 from {srv.url} after 2 tries" in str(err)
    assert KEY not in repr(cfg)
    assert files_with_key(tmp_path) == []


def test_query_stage_writes_the_key_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage CLIs (load, then query round 0) against a fake server, once accepted and once with a 401."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "tests" / "fixtures").mkdir(parents=True)
    (root / "data" / "templates.yaml").write_bytes((REPO / "data" / "templates.yaml").read_bytes())
    csv = REPO / "tests" / "fixtures" / "ethics_tiny.csv"
    (root / "tests" / "fixtures" / "ethics_tiny.csv").write_bytes(csv.read_bytes())
    (root / "src").symlink_to(REPO / "src")  # helpers.sh puts <cwd>/src on PYTHONPATH

    monkeypatch.setenv(ENV, KEY)
    monkeypatch.setenv("ELICIT_LOG_LEVEL", "DEBUG")  # the chattiest logs (openai, httpx) must not carry it either
    monkeypatch.setenv("HF_DATASETS_CACHE", str(root / ".hf-datasets"))
    with FakeOpenAI() as ok, FakeOpenAI(echo_key(401)) as denied:
        params = yaml.safe_load(TINY.read_text())
        remote = {"kind": "openai", "base_url": ok.url, "model": "fake-model", "api_key_env": ENV,
                  "max_retries": 1, "retry_backoff_s": 0.01, "concurrency": 2}  # fmt: skip
        params["oracles"]["remote"] = remote
        params["oracles"]["remote_denied"] = {**remote, "base_url": denied.url}
        params["runs"]["secret"] = {"dataset": "ethics_tiny", "oracle": "remote", "n": None}
        params["runs"]["secret_denied"] = {"dataset": "ethics_tiny", "oracle": "remote_denied", "n": None}
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        outputs = []
        for run in ("secret", "secret_denied"):
            outputs.append(sh(f"python -m elicit.stages.load --run {run}", root))
            outputs.append(sh(f"python -m elicit.stages.query --run {run} --round 0", root, check=False))
        assert outputs[1].returncode == 0, outputs[1].stderr[-2000:]
        assert outputs[3].returncode == 2
        last = outputs[3].stderr.strip().splitlines()[-1]
        assert last.startswith("error: oracle 'remote_denied': the server rejected the API key (HTTP 401: ")
        assert f"<{ENV}>" in last
        assert len(ok.requests) >= 24 and 1 <= len(denied.requests) <= 2  # 401 is not retried
        assert all(h[3].get("authorization") == f"Bearer {KEY}" for h in ok.requests + denied.requests)

    for proc in outputs:
        assert KEY not in proc.stdout and KEY not in proc.stderr
    preds = pd.read_parquet(root / "results" / "secret" / "round0" / "predictions.parquet")
    assert len(preds) == len(ok.requests) and not preds["missing"].any()
    written = [p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(root / "src")]
    names = {p.name for p in written}
    assert {"predictions.parquet", "query.round0.json", "params.yaml"} <= names
    assert "oracle.sqlite" in names, names
    assert (root / "logs").is_dir()
    assert files_with_key(root) == []
    assert KEY not in os.environ.get("PATH", "")
