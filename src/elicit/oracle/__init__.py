"""Oracles: ask an LLM (or the simulator) for True/False log-probabilities, with a cache below.

Public API:
    OracleConfig, OracleError, oracle_from_params   configuration (params.yaml `oracles.<name>`)
    ask, ask_sync                                   the driver: query rows -> predictions, telemetry
    embedded_server                                 start/stop the llama.cpp server (kind embedded)
    simulate, PRESETS, SimParams                    the simulated oracle
"""

from elicit.oracle.base import Answer, OracleConfig, OracleError, oracle_from_params, score_of
from elicit.oracle.client import PREDICTION_COLUMNS, ask, ask_sync
from elicit.oracle.embedded import embedded_server
from elicit.oracle.simulated import PRESETS, SimParams, simulate

__all__ = [
    "PREDICTION_COLUMNS",
    "PRESETS",
    "Answer",
    "OracleConfig",
    "OracleError",
    "SimParams",
    "ask",
    "ask_sync",
    "embedded_server",
    "oracle_from_params",
    "score_of",
    "simulate",
]
