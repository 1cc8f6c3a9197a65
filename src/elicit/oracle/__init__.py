"""Oracles: ask an LLM (or the simulator) for True/False log-probabilities, with a cache below.

Public API:
    OracleConfig, OracleError, oracle_from_params   configuration (params.yaml `oracles.<name>`)
    open_oracle, gold_for_simulator                 the one factory that picks an oracle by kind (factory.py)
    ask, ask_sync                                   the driver: query rows -> predictions, telemetry (client.py)
    embedded_server                                 start/stop the llama.cpp server (kind embedded)
    simulate, PRESETS, SimParams                    the simulated oracle
The HTTP transport (retries, timeouts, response parsing, key scrubbing) is transport.py, its rate limits
throttle.py, and failures.py says what went wrong with a request.
"""

from typing import TYPE_CHECKING

from elicit._lazy import lazy_exports

if TYPE_CHECKING:
    from elicit.oracle.base import Answer, Oracle, OracleConfig, OracleError, oracle_from_params, score_of
    from elicit.oracle.client import PREDICTION_COLUMNS, ask, ask_sync
    from elicit.oracle.embedded import embedded_server
    from elicit.oracle.factory import gold_for_simulator, open_oracle
    from elicit.oracle.simulated import PRESETS, SimParams, simulate

__getattr__ = lazy_exports(
    __name__,
    {
        "elicit.oracle.base": (
            "Answer",
            "Oracle",
            "OracleConfig",
            "OracleError",
            "oracle_from_params",
            "score_of",
        ),
        "elicit.oracle.client": (
            "PREDICTION_COLUMNS",
            "ask",
            "ask_sync",
        ),
        "elicit.oracle.embedded": ("embedded_server",),
        "elicit.oracle.factory": (
            "gold_for_simulator",
            "open_oracle",
        ),
        "elicit.oracle.simulated": (
            "PRESETS",
            "SimParams",
            "simulate",
        ),
    },
)

__all__ = [
    "PREDICTION_COLUMNS",
    "PRESETS",
    "Answer",
    "Oracle",
    "OracleConfig",
    "OracleError",
    "SimParams",
    "ask",
    "ask_sync",
    "embedded_server",
    "gold_for_simulator",
    "open_oracle",
    "oracle_from_params",
    "score_of",
    "simulate",
]
