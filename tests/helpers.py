"""Test helpers: run commands in a temporary git copy of the repo with the tiny params file over params.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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


def copy_env(cwd: Path) -> dict[str, str]:
    """The environment of a command in the copy: the project's venv first on PATH, as `uv run` would."""
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(Path(cwd) / "src")  # the copy runs its own code, not the checkout's
    return env


def sh(cmd: str, cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the copy with the project's venv first on PATH, as `uv run` would."""
    env = copy_env(cwd)
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def own(path: str, **extra: Any) -> dict[str, Any]:
    """A ``source: file`` dataset entry with a text and a label column."""
    return {
        "source": "file",
        "path": path,
        "text_column": "text",
        "label_column": "label",
        "label_meaning": "the statement is true",
        **extra,
    }


def make_copy(dest: Path, params: Path = TINY) -> Path:
    """A git repo copy of the project with ``params`` as params.yaml and dvc.yaml re-written for it."""
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    shutil.copy(params, dest / "params.yaml")
    sh("python -m elicit.pipeline dvc", dest)
    sh("git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm copy", dest)
    return dest


# --------------------------------------------------------------------------------------------------
# A scriptable fake OpenAI-compatible server (loopback, no model) for oracle fault, secret and throttle tests.

import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


class Reply:
    """What the fake server sends for one request (defaults: a normal completion with logprobs).

    status/headers: the HTTP status and extra headers. body: raw bytes or a JSON-able object to send instead of
    the completion. top: token -> logprob of the completion (None: the server's `top`). no_logprobs: a completion
    without logprobs. delay: seconds to wait before answering. cut: send only the first `cut` bytes of the body
    (with the full Content-Length) and close the connection.
    """

    def __init__(
        self,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        top: dict[str, float] | None = None,
        no_logprobs: bool = False,
        delay: float = 0.0,
        cut: int | None = None,
    ) -> None:
        self.status, self.headers, self.body, self.top = status, dict(headers or {}), body, top
        self.no_logprobs, self.delay, self.cut = no_logprobs, delay, cut


class FakeOpenAI:
    """`with FakeOpenAI() as srv:` serves /v1/models, /v1/completions and /v1/chat/completions on 127.0.0.1.

    script(n, prompt) -> Reply | None decides each POST (n counts POSTs from 1; None: a normal completion).
    Every POST is recorded in `requests` as (monotonic time, prompt, body, lower-cased headers).
    """

    def __init__(
        self,
        script: Callable[[int, str], Reply | None] | None = None,
        model: str = "fake-model",
        top: Callable[[str], dict[str, float]] | None = None,
    ) -> None:
        self.script = script
        self.model = model
        self.top = top or _fake_top
        self.requests: list[tuple[float, str, dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _fake_handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def prompts(self) -> list[str]:
        with self.lock:
            return [p for _, p, _, _ in self.requests]

    def times(self) -> list[float]:
        with self.lock:
            return [t for t, _, _, _ in self.requests]


def _fake_prompt(body: dict[str, Any]) -> str:
    if "messages" in body:
        return json.dumps(body["messages"], sort_keys=True)
    return str(body.get("prompt"))


def _fake_top(prompt: str) -> dict[str, float]:
    """Top logprobs that depend on the prompt (so mix-ups would show)."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    p_true = 0.1 + 0.8 * h
    return {" True": math.log(p_true * 0.9), " False": math.log((1 - p_true) * 0.9), " the": math.log(0.05)}


def _fake_completion(srv: FakeOpenAI, path: str, prompt: str, reply: Reply) -> dict[str, Any]:
    top = reply.top if reply.top is not None else srv.top(prompt)
    best = max(top, key=lambda t: top[t]) if top else " True"
    usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1, "total_tokens": len(prompt) // 4 + 1}
    if path.endswith("/chat/completions"):
        lp: Any = None
        if not reply.no_logprobs:
            alts = [{"token": t, "logprob": v, "bytes": None} for t, v in top.items()]
            lp = {"content": [{"token": best, "logprob": top.get(best, -1.0), "bytes": None, "top_logprobs": alts}]}
        message = {"role": "assistant", "content": best}
        choice = {"index": 0, "message": message, "logprobs": lp, "finish_reason": "length"}
        obj = "chat.completion"
    else:
        lp = None
        if not reply.no_logprobs:
            lp = {"tokens": [best], "token_logprobs": [top.get(best, -1.0)], "top_logprobs": [top], "text_offset": [0]}
        choice = {"text": best, "index": 0, "logprobs": lp, "finish_reason": "length"}
        obj = "text_completion"
    return {"id": "x", "object": obj, "created": 0, "model": srv.model, "choices": [choice], "usage": usage}


def _fake_handler(srv: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, reply: Reply, data: bytes) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data if reply.cut is None else data[: reply.cut])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            if reply.cut is not None:
                self.close_connection = True

        def do_GET(self) -> None:
            self._send(Reply(), json.dumps({"object": "list", "data": [{"id": srv.model}]}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = _fake_prompt(body)
            with srv.lock:
                srv.requests.append((time.monotonic(), prompt, body, {k.lower(): v for k, v in self.headers.items()}))
                n = len(srv.requests)
            reply = (srv.script(n, prompt) if srv.script else None) or Reply()
            if reply.delay:
                time.sleep(reply.delay)
            if reply.body is not None:
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            elif reply.status != 200:
                data = json.dumps({"error": {"message": f"fake error {reply.status}"}}).encode()
            elif body.get("model") != srv.model:
                reply = Reply(404)
                data = json.dumps({"error": {"message": f"model '{body.get('model')}' not found"}}).encode()
            else:
                data = json.dumps(_fake_completion(srv, self.path, prompt, reply)).encode()
            self._send(reply, data)

    return Handler


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def fake_oracle_cfg(url: str, **kw: Any) -> Any:
    """An `openai`-kind oracle config for a fake local server: fast retries, short timeout."""
    from elicit.oracle import OracleConfig

    d: dict[str, Any] = {
        "kind": "openai",
        "base_url": url,
        "model": "fake-model",
        "max_retries": 2,
        "retry_backoff_s": 0.01,
        "timeout_s": 10,
    }
    d.update(kw)
    return OracleConfig.from_params("fake", d)
