"""Trace-driven simulator: replays a job trace on N nodes × G GPUs with a virtual clock,
driving the same ``aistack.scheduler`` policy objects as the server.

>>> from aistack.scheduler import get_policy
>>> from aistack.scheduler.simulator import SimConfig, load_itp, simulate, with_estimates
>>> trace = with_estimates(load_itp("../shared/data/traces/itp/cluster02.csv"))  # doctest: +SKIP
>>> res = simulate(trace, get_policy("default", explain=False), SimConfig(nodes=12, gpus_per_node=8))  # doctest: +SKIP
>>> res.metrics["avg_jct"]  # doctest: +SKIP
"""

from __future__ import annotations

from aistack.scheduler.simulator.engine import (
    InvariantViolation,
    SimConfig,
    SimResult,
    check_invariants,
    simulate,
)
from aistack.scheduler.simulator.metrics import compute_metrics, jain
from aistack.scheduler.simulator.queueing import erlang_c, mmc_mean_wait
from aistack.scheduler.simulator.trace import (
    FORMATS,
    SACCT_COMMAND,
    TraceJob,
    columns_for,
    history_from_rows,
    load_csv,
    load_history,
    load_itp,
    offered_load,
    read_csv_trace,
    synthetic_mix,
    synthetic_mmc,
    with_estimates,
)

__all__ = [
    "FORMATS",
    "SACCT_COMMAND",
    "InvariantViolation",
    "SimConfig",
    "SimResult",
    "TraceJob",
    "check_invariants",
    "columns_for",
    "compute_metrics",
    "erlang_c",
    "history_from_rows",
    "jain",
    "load_csv",
    "load_history",
    "load_itp",
    "mmc_mean_wait",
    "offered_load",
    "read_csv_trace",
    "simulate",
    "synthetic_mix",
    "synthetic_mmc",
    "with_estimates",
]
