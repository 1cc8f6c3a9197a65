"""What oracle-calling stages share: the run's oracle config, templates, cache, and one oracle for the stage.

Gold goes to the oracle only when it is the simulator, which generates answers from the truth by design
(DESIGN.md's gold rule; `elicit.oracle.gold_for_simulator`); a real oracle never sees it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from elicit.config import RunConfig
from elicit.oracle import Oracle, OracleConfig, ask_sync, gold_for_simulator, open_oracle, oracle_from_params
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


def cache_dir(run: RunConfig) -> Path:
    return Path(run.section("oracle").get("cache_dir", ".cache/elicit"))


class OracleSession:
    """Ask the run's oracle many times from one stage: one oracle (`open_oracle`) for the whole stage, so an
    embedded server is started once, for the first answer that is not cached (a cached re-run starts none), and
    stopped when the session closes."""

    def __init__(self, run: RunConfig, items: pd.DataFrame, job: str) -> None:
        self.run = run
        self.cfg = oracle_config(run)
        self.templates = templates(run)
        self.items = items[["item_id", "text"]]
        self.gold = gold_for_simulator(items, self.cfg)
        self.cache_dir = cache_dir(run)
        self.log_path = LOGS / run.name / f"{job}.server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.telemetry: dict[str, Any] = dict.fromkeys(TELEMETRY_KEYS, 0)
        self._stack = ExitStack()
        self._oracle: Oracle | None = None

    def __enter__(self) -> OracleSession:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._stack.close()

    def ask(self, queries: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
        """Predictions for query rows, in order; the `cached` flag goes to telemetry, not to the table."""
        if self._oracle is None:
            self._oracle = self._stack.enter_context(
                open_oracle(self.cfg, self.cache_dir, gold=self.gold, server_log=self.log_path)
            )
        preds, tel = ask_sync(
            queries, self.items, self.cfg, self.templates, self.cache_dir, progress=progress, oracle=self._oracle
        )
        for key in TELEMETRY_KEYS:
            self.telemetry[key] += int(tel.get(key) or 0)
        self.telemetry["model"] = tel.get("model", self.telemetry.get("model"))
        return preds.drop(columns=["cached"], errors="ignore")
