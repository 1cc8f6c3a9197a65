"""Remote parity: the same llama.cpp model asked through the embedded path (the stage starts its server) and
through `kind: openai` (a server started by hand, as a user would run vLLM or llama.cpp elsewhere) gives the same
scores. Each path gets a fresh, empty cache so the cache cannot answer for either.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elicit.oracle import OracleConfig, ask_sync
from elicit.oracle import embedded as emb
from elicit.prompts import Template
from helpers import alive

REPO = Path(__file__).resolve().parents[1]
T = Template(
    id="ethics_wrong",
    pos="Is the narrator's action clearly morally wrong?",
    neg="Is the narrator's action morally acceptable?",
    item="Scenario",
)
EMBEDDED = {"kind": "embedded", "n_threads": 2, "n_ctx": 1024, "startup_timeout_s": 90}
ALIAS = "smollm2-by-hand"


def tiny_items(n: int = 4) -> pd.DataFrame:
    raw = pd.read_csv(REPO / "tests" / "fixtures" / "ethics_tiny.csv").head(n)
    return pd.DataFrame({"item_id": np.arange(len(raw)), "text": raw["input"].astype(str).tolist()})


def six_queries() -> pd.DataFrame:
    """Zero-shot on items 0 and 1 (both framings) and few-shot on item 3 with items 0-2 shown (both framings)."""
    rows = []
    for i in (0, 1):
        for f in ("pos", "neg"):
            rows.append({"query_id": f"z{i}{f}", "target_id": i, "framing": f, "template_id": T.id,
                         "context_ids": [], "context_shown": []})  # fmt: skip
    for f in ("pos", "neg"):
        rows.append({"query_id": f"f3{f}", "target_id": 3, "framing": f, "template_id": T.id,
                     "context_ids": [0, 1, 2], "context_shown": [0, 1, 0]})  # fmt: skip
    return pd.DataFrame(rows)


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 90) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the hand-started server exited with {proc.returncode}"
        try:
            with opener.open(f"{url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the hand-started server did not answer {url}/models within {timeout}s")


@pytest.mark.slow
def test_remote_openai_path_matches_embedded(tmp_path: Path) -> None:
    items, q = tiny_items(), six_queries()
    emb_cfg = OracleConfig.from_params("smol", EMBEDDED)
    t0 = time.perf_counter()
    embedded, tel_e = ask_sync(q, items, emb_cfg, [T], tmp_path / "cache-embedded", progress=False)
    t_embedded = time.perf_counter() - t0

    # the same server command and settings (n_ctx, threads, logits_all) as the embedded path, started by hand
    gguf = emb.resolve_gguf(emb_cfg)
    port = emb.free_port()
    cmd = emb.server_command(OracleConfig.from_params("smol", {**EMBEDDED, "model": ALIAS}), gguf, port)
    assert cmd[cmd.index("--model_alias") + 1] == ALIAS
    log = (tmp_path / "remote-server.log").open("wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        t1 = time.perf_counter()
        wait_ready(proc, url)
        remote_cfg = OracleConfig.from_params(
            "by_hand", {"kind": "openai", "base_url": url, "model": ALIAS, "n_ctx": 1024, "max_retries": 0}
        )
        remote, tel_r = ask_sync(q, items, remote_cfg, [T], tmp_path / "cache-remote", progress=False)
        t_remote = time.perf_counter() - t1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert not alive(proc.pid), "the hand-started llama.cpp server outlived the test"

    for tel in (tel_e, tel_r):
        assert tel["calls"] == 6 and tel["cache_hits"] == 0 and tel["missing"] == 0
    assert tel_r["kind"] == "openai" and tel_e["kind"] == "embedded"
    assert list(remote["query_id"]) == list(embedded["query_id"])
    assert list(remote["prompt_sha256"]) == list(embedded["prompt_sha256"])  # the same prompts went out
    assert list(remote["prompt_tokens"]) == list(embedded["prompt_tokens"])
    cols = ["lp_true", "lp_false", "score"]
    a, b = embedded[cols].to_numpy(float), remote[cols].to_numpy(float)
    # measured: llama.cpp at temperature 0 with the same settings and the same request order is bit-identical
    diff = float(np.abs(a - b).max())
    print(f"max |embedded - remote| = {diff:.3g}; embedded {t_embedded:.1f}s, remote {t_remote:.1f}s")
    np.testing.assert_array_equal(a, b)
    assert set(remote["model"]) == {ALIAS} and set(embedded["model"]) == {gguf.name}
