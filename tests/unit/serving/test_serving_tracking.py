"""Replica jobs are not experiments: the server opens no MLflow run for a job of kind
``service`` (each replica used to get one, left KILLED when the autoscaler or a rollout
stopped it), while batch jobs keep theirs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("mlflow")

from aistack.executors.base import ExecStatus  # noqa: E402
from aistack.server.db.models import Job  # noqa: E402
from aistack.server.services import tracking as tracking_svc  # noqa: E402


def test_service_jobs_get_the_registry_but_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.mlops import tracking

    opened: list[str] = []
    closed: list[tuple[str, str]] = []

    def create_job_run(uri: str, **kw: Any) -> str:
        opened.append(kw["job_id"])
        return f"run-{kw['job_id']}"

    monkeypatch.setattr(tracking, "create_job_run", create_job_run)
    monkeypatch.setattr(
        tracking_svc,
        "_close_run",
        lambda ctx, job_id, run_id, status: closed.append((run_id, status)),
    )

    class _Now:  # run the "background" close at once
        @staticmethod
        def submit(fn: Any, *args: Any) -> None:
            fn(*args)

    monkeypatch.setattr(tracking_svc, "_BG", _Now)
    ctx = SimpleNamespace(
        settings=SimpleNamespace(mlflow_enabled=True, host="127.0.0.1", port=8765),
        extras={"mlflow": True},
        token="tok",
    )
    job_env, on_finish = tracking_svc.tracking_hooks(ctx)  # type: ignore[arg-type]
    assert job_env is not None and on_finish is not None

    def job(jid: str, kind: str) -> Job:
        return Job(
            id=jid,
            name=f"serve-svc-{jid}",
            project="default",
            user="u",
            kind=kind,
            spec={"command": "python -m aistack.serving.replica"},
            state="RUNNING",
        )

    replica, batch = job("r1", "service"), job("b1", "batch")
    env = job_env(replica)
    # the replica can still load registered models ...
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:8765/mlflow"
    assert env["MLFLOW_TRACKING_TOKEN"] == "tok"
    # ... but has no run of its own
    assert "MLFLOW_RUN_ID" not in env and replica.mlflow_run_id is None
    assert job_env(batch)["MLFLOW_RUN_ID"] == "run-b1" and batch.mlflow_run_id == "run-b1"
    # no MLflow download/upload progress bars in either job's log
    assert env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert job_env(batch)["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    assert opened == ["b1"]

    replica.state = batch.state = "CANCELLED"  # stopped by the autoscaler / cancelled
    on_finish(replica, ExecStatus(state="cancelled"))
    on_finish(batch, ExecStatus(state="cancelled"))
    assert closed == [("run-b1", "KILLED")]  # no KILLED run left by the replica
