"""MLOps: MLflow tracking embedded in the aistack server, per-job runs, a buffered metrics logger,
the model registry with promotion gates, and lineage.

==========================  ================================================================
module                      what
==========================  ================================================================
``mlops.server``            ``mount_mlflow(app, settings)``: MLflow under /mlflow (same process)
``mlops.tracking``          ``create_job_run`` / ``log_system_metrics`` / ``end_job_run``
``mlops.logger``            ``BufferedMetricsLogger``: batched, retrying, bounded flush, spool
``mlops.spool``             spool files of unsent points; ``replay_spool`` (resumable, each
                            point once: checked against the run's history)
``mlops.registry``          ``register_from_run``, aliases, ``promote`` (gates), ``lineage``;
                            listings read every page of MLflow's searches
``mlops.quiet``             ``quiet_mlflow()``: no artifact progress bars, no known-noise warnings
``mlops.testing``           ``TrackingServer``: a real embedded server in a subprocess
==========================  ================================================================

Importing this package does not import MLflow; each function imports it when called.
"""

from aistack.mlops.logger import BufferedMetricsLogger, replay_spool
from aistack.mlops.registry import (
    PromotionResult,
    delete_alias,
    lineage,
    list_models,
    promote,
    register_from_run,
    set_alias,
    show_model,
)
from aistack.mlops.tracking import create_job_run, end_job_run, job_env, log_system_metrics

__all__ = [
    "BufferedMetricsLogger",
    "PromotionResult",
    "create_job_run",
    "delete_alias",
    "end_job_run",
    "job_env",
    "lineage",
    "list_models",
    "log_system_metrics",
    "promote",
    "register_from_run",
    "replay_spool",
    "set_alias",
    "show_model",
]
