"""What oracle-calling stages share: the run's oracle config, templates, cache, and one server for the stage.

Gold goes to the oracle only when it is the simulator, which generates answers from the truth by design
(DESIGN.md's gold rule); a real oracle never sees it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from elicit.config import RunConfig
from elicit.oracle import OracleConfig, OracleError, ask_sync, embedded_server, oracle_from_params
from elicit.paths import LOGS
from elicit.prompts import Template, load_templates

TEMPLATES = Path("data/templates.yaml")
TELEMETRY_KEYS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "missing")


def oracle_config(run: RunConfig) -> OracleConfig:
    params = {"oracles": {run.oracle: run.oracle_params}, "oracle": run.section("oracle")}
    return oracle_from_params(params, run.oracle)


def templates(run: RunConfig) -> list[Template]:
    """The dataset's prompt set: ``datasets.<name>.templates`` if set, else the one named like the dataset."""
    return load_templates(TEMPLATES, run.dataset_params.get("templates") or run.dataset)


def gold_for_simulator(items: pd.DataFrame, cfg: OracleConfig) -> dict[int, int] | None:
    if cfg.kind != "simulated":
        return None
    col = cfg.truth_column
    if col not in items.columns:
        raise OracleError(
            f"oracles.{cfg.name}.truth_column: items have no column '{col}'; use gold or one of "
            f"{', '.join(c for c in items.columns if c not in ('item_id', 'text'))}"
        )
    known = items[items[col].notna()]
    return {int(i): int(g) for i, g in zip(known["item_id"], known[col], strict=True)}


def cache_dir(run: RunConfig) -> Path:
    return Path(run.section("oracle").get("cache_dir", ".cache/elicit"))


class OracleSession:
    """Ask the run's oracle many times from one stage; an embedded server is started once, on first need."""

    def __init__(self, run: RunConfig, items: pd.DataFrame, job: str, persistent: bool = True) -> None:
        """persistent: keep one embedded server for many asks (ICM, bootstrap); False lets each ask start a
        server only when some answer is not cached (a single big ask, so a cached re-run starts none)."""
        self.run = run
        self.persistent = persistent
        self.cfg = oracle_config(run)
        self.templates = templates(run)
        self.items = items[["item_id", "text"]]
        self.gold = gold_for_simulator(items, self.cfg)
        self.cache_dir = cache_dir(run)
        self.log_path = LOGS / run.name / f"{job}.server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.telemetry: dict[str, Any] = dict.fromkeys(TELEMETRY_KEYS, 0)
        self._stack = ExitStack()
        self._url: str | None = None

    def __enter__(self) -> OracleSession:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._stack.close()

    def ask(self, queries: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
        """Predictions for query rows, in order; the `cached` flag goes to telemetry, not to the table."""
        if self.persistent and self.cfg.kind == "embedded" and self._url is None:
            self._url = self._stack.enter_context(
                embedded_server(self.cfg, cache_dir=self.cache_dir, log_path=self.log_path)
            )
        preds, tel = ask_sync(
            queries,
            self.items,
            self.cfg,
            self.templates,
            self.cache_dir,
            self.gold,
            progress,
            server_url=self._url,
            server_log=self.log_path,
        )
        for key in TELEMETRY_KEYS:
            self.telemetry[key] += int(tel.get(key) or 0)
        self.telemetry["model"] = tel.get("model", self.telemetry.get("model"))
        return preds.drop(columns=["cached"], errors="ignore")
