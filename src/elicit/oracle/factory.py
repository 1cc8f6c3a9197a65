"""The one place that picks an oracle by its ``kind``: embedded, openai or simulated.

Everything else sees the `Oracle` interface (base.py): the driver (`client.py`) renders, keys, caches and asks
through it, and the stages open one oracle per job through :func:`open_oracle`.

- ``openai``: `HttpOracle` on ``base_url``; identity = base_url + model name.
- ``embedded``: `HttpOracle` on a llama.cpp server that this module starts (on the first batch that needs an
  answer) and stops on exit; identity = the GGUF file's sha256 (its port changes every start).
- ``simulated``: `SimulatedOracle`, which generates answers from the truth by design; the only kind that is given
  gold (:func:`gold_for_simulator`, DESIGN.md's gold rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd

from elicit.oracle import embedded
from elicit.oracle.base import Oracle, OracleConfig, OracleError
from elicit.oracle.cache import AnswerCache
from elicit.oracle.sim_suite import Embeddings
from elicit.oracle.simulated import SimulatedOracle
from elicit.oracle.transport import HttpOracle

EMBEDDED_HINT = "the embedded llama.cpp server stopped answering; see its log"


def gold_for_simulator(items: pd.DataFrame, cfg: OracleConfig) -> dict[int, int] | None:
    """The truth the oracle may see: the simulator's ``truth_column`` (default gold) as item_id → 0/1; None for
    every other kind (a real oracle never sees gold)."""
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


@contextmanager
def open_oracle(
    cfg: OracleConfig,
    cache_dir: str | Path,
    *,
    gold: Mapping[int, int] | None = None,
    embeddings: Embeddings | None = None,
    server_url: str | None = None,
    server_log: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> Iterator[Oracle]:
    """The oracle ``cfg`` describes, open for any number of batches; an embedded server it started stops on exit.

    gold: only the simulator reads it (:func:`gold_for_simulator`). embeddings: only the simulator reads them, and
    only for presets with topics or similarity copying (the sim_suite presets): (item_ids, matrix) with row r the
    vector of item_ids[r] (results/<run>/embeddings.npy rows are in ascending item_id order), or item_id -> vector;
    see sim_suite.py. server_url: an already running embedded server to use instead of starting one (tests,
    benchmarks). server_log: where a started server writes its log. count_tokens: a tokenizer for the
    tokens_per_min budget (default: chars / 3.5).
    """
    if cfg.kind == "simulated":
        assert cfg.sim is not None
        yield SimulatedOracle(cfg.name, cfg.sim, gold, cfg.preset, embeddings)
    elif cfg.kind == "openai":
        identity = {"base_url": (cfg.base_url or "").rstrip("/"), "model": cfg.model}
        yield HttpOracle(cfg, identity, str(cfg.model), cfg.base_url, count_tokens=count_tokens)
    else:
        gguf = embedded.resolve_gguf(cfg, Path(cache_dir))
        with AnswerCache(cache_dir) as cache:  # the GGUF's hash is memoised next to the answers
            sha = cache.file_sha256(gguf)
        with ExitStack() as stack:

            def start_server() -> str:
                server = embedded.embedded_server(cfg, cache_dir=Path(cache_dir), log_path=server_log)
                return stack.enter_context(server)

            yield HttpOracle(
                cfg,
                {"gguf_sha256": sha},
                gguf.name,
                server_url,
                server_hint=EMBEDDED_HINT,
                broken_hint=EMBEDDED_HINT,
                start_server=start_server if server_url is None else None,
                count_tokens=count_tokens,
            )
