"""Wires jobs to MLflow (when the mlops extra and the embedded tracking server are there): each
job gets its own MLflow run (MLFLOW_TRACKING_URI / MLFLOW_RUN_ID in its environment) and, when
it ends, its sampled system metrics and final status.

Service jobs (``kind: service``, the replicas of a model service) get no run: a replica serves
a registered model version, it is not an experiment, and every replica stopped by the
autoscaler or a rollout would leave a KILLED run behind. They get the tracking URI and token
only, to load the model from the registry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from sqlalchemy import select

from aistack.executors.base import ExecStatus
from aistack.server.context import ServerContext
from aistack.server.db.models import Job, UsageSampleRow

log = logging.getLogger(__name__)
_BG = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aistack-lineage")


def _record_edge(ctx: ServerContext, src: str, dst: str) -> None:
    ds = ctx.datasets()
    if ds is None:
        return
    try:
        ds.record_edge(src, dst)
    except Exception:  # noqa: BLE001
        log.warning("could not record lineage %s → %s", src, dst)


def _close_run(
    ctx: ServerContext, job_id: str, run_id: str, status: Literal["FINISHED", "FAILED", "KILLED"]
) -> None:
    """Log the job's sampled system metrics into its MLflow run and end the run."""
    import datetime as dt

    from aistack.mlops import tracking

    uri = tracking_uri(ctx)
    try:
        with ctx.sessions() as s:
            rows = (
                s.execute(
                    select(UsageSampleRow)
                    .where(UsageSampleRow.job_id == job_id)
                    .order_by(UsageSampleRow.t)
                )
                .scalars()
                .all()
            )
            samples: list[dict[str, Any]] = [
                {
                    "t": (r.t if r.t.tzinfo else r.t.replace(tzinfo=dt.UTC)).timestamp(),
                    "cpu_percent": r.cpu_percent,
                    "rss_mb": r.rss_mb,
                    "gpu_util": r.gpu_util,
                    "gpu_mem_mb": r.gpu_mem_mb,
                }
                for r in rows
            ]
        if samples:
            tracking.log_system_metrics(uri, run_id, samples, token=ctx.token)
        # the job's final state is the run's, over what its code ended the run with
        tracking.end_job_run(uri, run_id, status, token=ctx.token, replace=True)
    except Exception:  # noqa: BLE001
        log.exception("could not close MLflow run %s of job %s", run_id, job_id)


def tracking_uri(ctx: ServerContext) -> str:
    s = ctx.settings
    return f"http://{s.host if s.host not in ('0.0.0.0', '::') else '127.0.0.1'}:{s.port}/mlflow"


def tracking_hooks(
    ctx: ServerContext,
) -> tuple[Callable[[Job], dict[str, str]] | None, Callable[[Job, ExecStatus], None] | None]:
    if not ctx.settings.mlflow_enabled:
        return None, None
    try:
        from aistack.mlops import tracking
    except ImportError:
        return None, None

    def job_env(job: Job) -> dict[str, str]:
        from aistack.mlops.quiet import PROGRESS_BAR_ENV

        if not ctx.extras.get("mlflow"):
            return {}
        uri = tracking_uri(ctx)
        env = {
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_TRACKING_TOKEN": ctx.token,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # no tqdm bars in the job log per artifact; the job spec's env can turn them on
            PROGRESS_BAR_ENV: "false",
        }
        if job.kind == "service":
            return env  # no run (see the module docstring)
        if not job.mlflow_run_id:
            spec = job.spec or {}
            job.mlflow_run_id = tracking.create_job_run(
                uri,
                job_id=job.id,
                name=job.name,
                project=job.project,
                user=job.user,
                inputs=list(spec.get("inputs") or []),
                command=spec.get("command") or spec.get("script") or "",
                token=ctx.token,
                code_dir=spec.get("workdir"),
            )
            if spec.get("inputs"):
                # lineage: dataset version → job → run (→ model version, by the registry); in the
                # background, since the scheduling pass holds the SQLite write lock until it commits
                _BG.submit(_record_edge, ctx, f"job:{job.id}", f"run:{job.mlflow_run_id}")
        env["MLFLOW_RUN_ID"] = job.mlflow_run_id
        env["MLFLOW_EXPERIMENT_NAME"] = job.project
        return env

    def on_finish(job: Job, st: ExecStatus) -> None:
        if not job.mlflow_run_id or job.state == "QUEUED":
            return
        status: Literal["FINISHED", "FAILED", "KILLED"] = (
            "FINISHED"
            if job.state == "SUCCEEDED"
            else "KILLED"
            if job.state == "CANCELLED"
            else "FAILED"
        )
        # HTTP calls to MLflow off the scheduling pass (it must not wait on them)
        _BG.submit(_close_run, ctx, job.id, job.mlflow_run_id, status)

    return job_env, on_finish
