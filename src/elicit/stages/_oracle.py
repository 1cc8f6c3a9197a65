"""What oracle-calling stages share: the run's oracle config, templates, cache, and one oracle for the stage.

Gold goes to the oracle only when it is the simulator, which generates answers from the truth by design
(DESIGN.md's gold rule; `elicit.oracle.gold_for_simulator`); a real oracle never sees it. So do the run's item
embeddings, for the simulator presets whose copying and difficulty follow item similarity.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from elicit.config import RunConfig
from elicit.oracle import (
    Oracle,
    OracleConfig,
    OracleError,
    ask_sync,
    gold_for_simulator,
    open_oracle,
    oracle_from_params,
)
from elicit.oracle.sim_suite import belief_signs, needs_embeddings
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


def simulator_embeddings(
    cfg: OracleConfig, items: pd.DataFrame, path: Path | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's item embeddings as the simulator reads them ((sorted item ids, rows)), only for a simulated
    oracle whose preset copies from similar items or shares difficulty within topics (the sim_suite presets);
    None for every other oracle, which never reads them."""
    if cfg.kind != "simulated" or cfg.sim is None or not needs_embeddings(cfg.sim):
        return None
    if path is None:
        raise OracleError(
            f"oracle '{cfg.name}': this simulator preset reads the run's embeddings; pass --embeddings (the "
            "embed stage's output)"
        )
    vectors = np.load(path)
    ids = np.sort(items["item_id"].to_numpy())  # the embed stage writes one row per item in item_id order
    if len(vectors) != len(ids):
        raise OracleError(f"{path}: {len(vectors)} rows for {len(ids)} items; re-run the embed stage")
    return ids, vectors


def simulator_diagnostics(run: RunConfig, items: pd.DataFrame, embeddings: Path) -> dict[str, float] | None:
    """What only a simulated oracle can tell about a run: ``belief_ceiling``, the gold accuracy of the model's
    noise-free few-shot belief (at latent_share 0 no method beats it from the oracle's answers alone). None for a
    real oracle or a run without gold."""
    cfg = oracle_config(run)
    truth = gold_for_simulator(items, cfg)
    gold = items[items["gold"].notna()] if "gold" in items else items.iloc[:0]
    if truth is None or cfg.sim is None or gold.empty:
        return None
    ids = gold["item_id"].astype(int).tolist()
    signs = belief_signs(ids, truth, cfg.sim, simulator_embeddings(cfg, items, embeddings))
    y = 2 * gold["gold"].astype(int).to_numpy() - 1
    return {"belief_ceiling": float((signs == y).mean())}


class OracleSession:
    """Ask the run's oracle many times from one stage: one oracle (`open_oracle`) for the whole stage, so an
    embedded server is started once, for the first answer that is not cached (a cached re-run starts none), and
    stopped when the session closes."""

    def __init__(self, run: RunConfig, items: pd.DataFrame, job: str, embeddings: Path | None = None) -> None:
        self.run = run
        self.cfg = oracle_config(run)
        self.templates = templates(run)
        self.items = items[["item_id", "text"]]
        self.gold = gold_for_simulator(items, self.cfg)
        self.embeddings = simulator_embeddings(self.cfg, items, embeddings)
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
                open_oracle(
                    self.cfg, self.cache_dir, gold=self.gold, embeddings=self.embeddings, server_log=self.log_path
                )
            )
        preds, tel = ask_sync(
            queries, self.items, self.cfg, self.templates, self.cache_dir, progress=progress, oracle=self._oracle
        )
        for key in TELEMETRY_KEYS:
            self.telemetry[key] += int(tel.get(key) or 0)
        self.telemetry["model"] = tel.get("model", self.telemetry.get("model"))
        return preds.drop(columns=["cached"], errors="ignore")
