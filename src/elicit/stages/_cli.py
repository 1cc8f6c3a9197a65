"""What every stage CLI shares: the common flags, logging, telemetry, and one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from elicit.config import RunConfig, load_params, resolve_run
from elicit.io import write_json
from elicit.paths import RunPaths

log = logging.getLogger("elicit")

# Errors that carry a user-facing, one-line message. Anything else is a bug and keeps its traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, ConnectionError, RuntimeError)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--run", required=True, help="run name: a key of runs: in params.yaml")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def setup(args: argparse.Namespace) -> tuple[RunConfig, RunPaths]:
    logging.basicConfig(
        level=os.environ.get("ELICIT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    params = load_params(args.params)
    run = resolve_run(params, args.run)
    return run, RunPaths(run.name)


def main(fn: Callable[[], None]) -> None:
    """Run a stage; a user error becomes ``error: <one line>`` and exit code 2, with no partial output."""
    try:
        fn()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except _USER_ERRORS as exc:
        if os.environ.get("ELICIT_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)


@contextmanager
def telemetry(path: Path, job: str) -> Iterator[dict[str, Any]]:
    """Collect wall time (and whatever the stage adds: calls, cache hits, tokens) into ``telemetry/<job>.json``.

    Telemetry is for the report only and is excluded when outputs are compared for determinism.
    """
    record: dict[str, Any] = {"job": job}
    start = time.perf_counter()
    yield record
    record["wall_s"] = round(time.perf_counter() - start, 3)
    write_json(record, path)
