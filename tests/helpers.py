"""Test helpers: run commands in a temporary git copy of the repo with the tiny params file over params.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "params.tiny.yaml"
# What a copy needs: code, workflow, data, params. Results, caches and the venv stay behind.
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "results",
    "logs",
    ".snakemake",
    ".cache",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "runs",
    "tmp",
)


def sh(cmd: str, cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the copy with the project's venv first on PATH, as `uv run` would."""
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(Path(cwd) / "src")  # the copy runs its own code, not the checkout's
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_copy(dest: Path, params: Path = TINY) -> Path:
    """A git repo copy of the project with ``params`` as params.yaml and dvc.yaml re-written for it."""
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    shutil.copy(params, dest / "params.yaml")
    sh("python -m elicit.pipeline dvc", dest)
    sh("git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm copy", dest)
    return dest
