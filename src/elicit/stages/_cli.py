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

from elicit.config import SNAPSHOT_ENV, ParamsError, RunConfig, load_params, read_snapshot, resolve_run
from elicit.errors import ElicitError
from elicit.io import confine_writes, write_json
from elicit.paths import RunPaths

log = logging.getLogger("elicit")

# Errors that carry a user-facing, one-line message (a missing input file: run the stage that writes it). Anything
# else, a plain ValueError or RuntimeError included, is a bug and keeps its traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ElicitError, FileNotFoundError)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--run", required=True, help="run name: a key of runs: in params.yaml")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


_planned: dict[str, Any] = {}
"""What ``setup`` read, so ``main`` can tell whether params.yaml changed while the job ran."""


def _stage_name() -> str | None:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return name.rsplit(".", 1)[1] if name.startswith("elicit.stages.") else None


def _tracked(params: dict[str, Any], args: argparse.Namespace) -> Any:
    from elicit import tracking

    stage = _stage_name()
    if stage not in tracking.STAGE_PARAMS:
        return None
    return tracking.tracked_params(params, stage, args.run, getattr(args, "config", None))


def setup(args: argparse.Namespace) -> tuple[RunConfig, RunPaths]:
    """Read the params the job was planned with, resolve the run, and confine the job's writes to its folder.

    Under Snakemake the params are the snapshot it took when it started (``ELICIT_PARAMS_SNAPSHOT``), so a
    params.yaml edited mid-run changes nothing of this run. Without a snapshot (DVC, by hand) the job re-reads
    params.yaml when it ends and fails if a value it tracks changed while it ran (``main``).
    """
    logging.basicConfig(
        level=os.environ.get("ELICIT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    snapshot = os.environ.get(SNAPSHOT_ENV)
    from_snapshot = bool(snapshot) and args.params == "params.yaml" and Path(str(snapshot)).is_file()
    params = read_snapshot(str(snapshot)) if from_snapshot else load_params(args.params)
    run = resolve_run(params, args.run)  # an unknown run is one line, before anything looks it up
    if not from_snapshot:
        _planned.update(path=args.params, args=args, tracked=_tracked(params, args))
    paths = RunPaths(run.name)
    confine_writes(paths.dir)
    return run, paths


def _check_params_unchanged() -> None:
    """DVC runs each job with the params.yaml of the moment; a value this job tracks that changed while it ran
    means its outputs match neither version."""
    if not _planned or _planned["tracked"] is None:
        return
    try:
        now = _tracked(load_params(_planned["path"]), _planned["args"])
    except (ParamsError, KeyError):
        now = None
    if now != _planned["tracked"]:
        raise ParamsError(f"{_planned['path']} changed during the run; re-run the command")


def main(fn: Callable[[], None]) -> None:
    """Run a stage; a user error becomes ``error: <one line>`` and exit code 2, with no partial output."""
    try:
        fn()
        _check_params_unchanged()
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


def optional_input(given: list[Path] | None, default: Path) -> Path:
    """A flag whose job declares its file only for some runs (``nargs="*"``: the simulator's embeddings): the path
    it names, else the run's default."""
    return given[0] if given else default
