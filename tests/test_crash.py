"""Crash safety (kill -9): the query stage on the real embedded server, an optimize job mid-fit, and the whole Snakemake
run, each killed at seeded random points a bounded number of times and then re-run.

After the re-run every Parquet output is byte-identical to an uninterrupted run's (telemetry aside); no answered oracle
call is asked again; no Parquet file or answer cache is corrupt; no llama.cpp server outlives its stage.

What a user sees after `kill -9` of Snakemake: its lock stays in .snakemake/locks, so the next run stops with
"Directory cannot be locked"; `snakemake --unlock` (then the same command; the profile has rerun-incomplete) resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import REPO, make_copy, sh

pytestmark = pytest.mark.slow

SEED = 83  # issue 8, item 3
RUN = "results/tiny"
TARGET = f"{RUN}/report.html"
SNAKEMAKE = f"snakemake --cores 2 {TARGET}"
LOCKED = "Directory cannot be locked"
EMB = "results/tiny_embedded"
N_ITEMS = 4  # of the 12 of tiny_embedded: 16 prompts (2 templates x 2 framings), a few seconds on 2 free cores
CRASH = f"{EMB}/crash"  # inside the run's folder: a stage refuses to write outside it
QUERY = (
    f"python -m elicit.stages.query --run tiny_embedded --round 0 --items {CRASH}/items.parquet "
    f"--out {CRASH}/predictions.parquet"
)
OPTIMIZE = (
    f"python -m elicit.stages.optimize --run tiny --config full --items {RUN}/items.parquet "
    f"--priors {RUN}/priors.parquet --tuples {RUN}/tuples.parquet --out {RUN}/labels/full"
)
CACHE = Path(".cache/elicit/oracle.sqlite")
SERVER_LOG = Path("logs/tiny_embedded/query.round0.server.log")


# --- processes ---------------------------------------------------------------------------------------------------


def start(cmd: str, cwd: Path) -> subprocess.Popen[bytes]:
    """``cmd`` in the copy (the environment of helpers.sh) as the leader of its own process group."""
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(cwd / "src")
    (cwd / "logs").mkdir(exist_ok=True)
    log = open(cwd / "logs" / "crash-test.log", "ab")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {cmd}"], cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True
    )
    log.close()
    return proc


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def processes_in(copy: Path, needle: str = "") -> list[tuple[int, str]]:
    """Live processes (not zombies) whose working folder is inside ``copy`` and whose command line has ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, PermissionError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X") and (cwd == str(copy) or cwd.startswith(f"{copy}/")) and needle in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def wait_gone(copy: Path, needle: str = "", timeout: float = 10.0) -> list[tuple[int, str]]:
    """The processes still alive after ``timeout`` s (an orphan would stay forever)."""
    deadline = time.monotonic() + timeout
    while (left := processes_in(copy, needle)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_until(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> bool:
    """Poll until ``ready()`` (True) or the process exits / the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.02)
    return False


def sleep_or_exit(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Sleep; True if the process is still running afterwards."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


# --- outputs -----------------------------------------------------------------------------------------------------


def parquet_bytes(folder: Path) -> dict[str, str]:
    """sha256 of every Parquet/NumPy file under ``folder`` (telemetry is JSON: excluded by construction)."""
    files = sorted(folder.rglob("*.parquet")) + sorted(folder.rglob("*.npy"))
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def assert_readable(folder: Path) -> None:
    """Every Parquet file under ``folder`` is whole (footer and all row groups decode)."""
    for f in folder.rglob("*.parquet"):
        pq.read_table(f)


def cache_rows(copy: Path) -> int:
    path = copy / CACHE
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


def assert_cache_ok(copy: Path) -> None:
    path = copy / CACHE
    if path.exists():
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()


def answered_calls(copy: Path) -> int:
    """Completions the server answered (uvicorn's access log), over every attempt: the log is appended to."""
    log = copy / SERVER_LOG
    return log.read_text(errors="replace").count('"POST /v1/completions HTTP/1.1" 200') if log.exists() else 0


def telemetry(copy: Path, run: str, job: str) -> dict[str, int]:
    return json.loads((copy / run / "telemetry" / f"{job}.json").read_text())


# --- the reference: one uninterrupted tiny run, shared -------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A copy with the uninterrupted tiny run, and its wall time in seconds."""
    repo = make_copy(tmp_path_factory.mktemp("crash") / "reference")
    t0 = time.monotonic()
    sh(SNAKEMAKE, repo, timeout=1500)
    return repo, time.monotonic() - t0


# --- the tests ---------------------------------------------------------------------------------------------------


def test_query_stage_killed_with_a_real_server(tmp_path: Path) -> None:
    """kill -9 the query stage (its process only: the server must die with it) after some answers, 3 times."""
    repo = make_copy(tmp_path / "repo")
    rng = random.Random(SEED)
    sh(f"snakemake --cores 1 {EMB}/items.parquet", repo)
    items = pd.read_parquet(repo / EMB / "items.parquet")
    (repo / CRASH).mkdir()
    items[items["item_id"] < N_ITEMS].to_parquet(repo / CRASH / "items.parquet", index=False)
    preds = repo / CRASH / "predictions.parquet"

    sh(QUERY, repo, timeout=600)  # the uninterrupted reference
    reference = preds.read_bytes()
    n = cache_rows(repo)  # distinct prompts
    assert n >= 8 and telemetry(repo, EMB, "query.round0")["calls"] == n == answered_calls(repo)
    shutil.rmtree(repo / CACHE.parent)
    preds.unlink()
    (repo / SERVER_LOG).unlink()

    kills, lost = [], 0
    for attempt in range(3):
        before, answered_before = cache_rows(repo), answered_calls(repo)
        target = rng.randint(before + 1, max(before + 1, n - 2))  # kill after this many answers are cached ...
        delay = rng.uniform(0.0, 0.4)  # ... plus a moment: mid-call, mid-commit or between calls
        proc = start(QUERY, repo)
        try:
            running = wait_until(proc, lambda t=target: cache_rows(repo) >= t, timeout=300)
            running = running and sleep_or_exit(proc, delay)
            servers = processes_in(repo, "llama_cpp.server")
            if running:
                os.kill(proc.pid, signal.SIGKILL)  # the stage alone: the server must follow it by itself
                proc.wait()
                orphans = wait_gone(repo, "llama_cpp.server")
                assert not orphans, f"llama.cpp server orphaned by kill -9 of the query stage: {orphans}"
        finally:
            kill_group(proc)
        if not running:  # it finished first: nothing left to kill
            break
        assert servers, "the kill came while no server was running"
        assert not preds.exists(), "a killed query stage left a predictions file"
        assert_cache_ok(repo)
        added, answered = cache_rows(repo) - before, answered_calls(repo) - answered_before
        # every answer the server sent was committed, except at most the one that was in flight at the kill
        assert added <= answered <= added + 1, (added, answered)
        lost += answered - added
        kills.append((attempt, target, round(delay, 3), cache_rows(repo)))
    assert kills, "the query stage finished before any kill"

    cached = cache_rows(repo)
    sh(QUERY, repo, timeout=600)  # resume
    tel = telemetry(repo, EMB, "query.round0")
    assert tel["cache_hits"] == cached and tel["calls"] == n - cached, (tel, cached)  # no cached answer asked again
    assert answered_calls(repo) == n + lost, (answered_calls(repo), n, lost, kills)
    assert cache_rows(repo) == n
    assert preds.read_bytes() == reference, f"resumed predictions differ from an uninterrupted run (kills {kills})"
    assert_cache_ok(repo)
    assert not wait_gone(repo, "llama_cpp.server")
    print(f"query kills (attempt, answers wanted, delay s, answers cached): {kills}; answers lost in flight: {lost}")


def test_optimize_killed_mid_fit(reference: tuple[Path, float], tmp_path: Path) -> None:
    """kill -9 an optimize job while it fits (once right after a seed's files appear, once at a random time)."""
    reference, _ = reference
    repo = tmp_path / "repo"
    shutil.copytree(reference, repo, symlinks=True)
    out = repo / RUN / "labels" / "full"
    shutil.rmtree(out)  # as DVC does before a stage (the stage removes it too)

    def seed0_written() -> bool:  # in the output folder or in a temporary one next to it
        return (out / "seed0.nuisance.json").exists() or any(out.parent.glob(".full.*/seed0.nuisance.json"))

    want = parquet_bytes(reference / RUN / "labels" / "full")
    assert any(name.startswith("seed1") for name in want), "tiny must fit two seeds for a mid-fit kill"
    rng = random.Random(SEED + 1)

    kills = []
    for attempt in range(2):
        proc = start(OPTIMIZE, repo)
        try:
            if attempt == 0:  # after seed 0 is written, while seed 1 fits
                running = wait_until(proc, seed0_written, timeout=600)
                delay = rng.uniform(0.0, 0.3)  # a seed's fit takes a second or more
            else:  # anywhere from the imports to the first fit
                running, delay = True, rng.uniform(2.0, 8.0)
            running = running and sleep_or_exit(proc, delay)
            if running:
                kill_group(proc)
        finally:
            kill_group(proc)
        kills.append((attempt, round(delay, 2), running))
        # the output folder is absent or complete, never some seeds only; every Parquet file is whole
        assert not out.exists() or parquet_bytes(out) == want, f"partial labels/full: {sorted(out.iterdir())}"
        assert_readable(repo / RUN)
    assert any(k[2] for k in kills), f"optimize finished before any kill: {(repo / 'logs/crash-test.log').read_text()}"

    sh(OPTIMIZE, repo, timeout=600)
    assert parquet_bytes(out) == want
    assert not list(out.parent.glob(".*")), "temporary folders left behind"
    print(f"optimize kills (attempt, delay s, killed): {kills}")


def test_snakemake_killed_and_resumed(reference: tuple[Path, float], tmp_path: Path) -> None:
    """kill -9 the whole Snakemake process group at 2 random points, unlock as its message says, re-run."""
    reference, ref_wall = reference
    repo = make_copy(tmp_path / "repo")
    rng = random.Random(SEED + 2)
    kills = []
    for attempt, (lo, hi) in enumerate(((0.3, 0.6), (0.1, 0.4))):  # fractions of the uninterrupted run's time
        delay = rng.uniform(lo, hi) * max(ref_wall, 30.0)
        proc = start(SNAKEMAKE, repo)
        try:
            running = sleep_or_exit(proc, delay)
            jobs = [cmd for _, cmd in processes_in(repo, "elicit.stages.")]
        finally:
            kill_group(proc)
        if not running:
            assert proc.returncode == 0
            break
        kills.append((attempt, round(delay, 1), sorted({c.split("elicit.stages.")[1].split()[0] for c in jobs})))
        assert not wait_gone(repo, timeout=5), "processes of the killed run are still alive"
        assert_readable(repo / RUN)
        assert_cache_ok(repo)
        if attempt == 0:  # what a user sees: the stale lock blocks the next run and the message names --unlock
            blocked = sh(SNAKEMAKE, repo, check=False, timeout=300)
            said = blocked.stdout + blocked.stderr
            assert blocked.returncode != 0 and LOCKED in said and "--unlock" in said, said[-2000:]
        sh(f"{SNAKEMAKE} --unlock", repo)
    assert kills, "Snakemake finished before any kill"

    sh(SNAKEMAKE, repo, timeout=1500)  # the profile has rerun-incomplete
    got, want = parquet_bytes(repo / RUN), parquet_bytes(reference / RUN)
    assert sorted(got) == sorted(want)
    assert [f for f in want if got[f] != want[f]] == [], f"outputs differ from an uninterrupted run (kills {kills})"
    assert "Nothing to be done" in sh(f"snakemake -n --cores 2 {TARGET}", repo).stdout
    litter = sorted(str(f.relative_to(repo)) for f in (repo / RUN).rglob(".*.tmp"))  # temp files of killed writes
    print(f"snakemake kills (attempt, after s, stages running): {kills}; temp files left: {litter}")
