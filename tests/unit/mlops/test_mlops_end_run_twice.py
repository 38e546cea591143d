"""Ending a job's run twice: the same status again is a no-op that keeps the end time; another
status is refused (it rewrote FINISHED as FAILED, end time and all), unless the run was
reopened in between, as a requeued job's code does with ``mlflow.start_run()``."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ConflictError  # noqa: E402
from aistack.mlops import tracking  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _run(uri: str) -> str:
    return tracking.create_job_run(uri, job_id="j1", name="n", project="p", user="u", inputs=[])


def _info(uri: str, rid: str):
    return mlflow.tracking.MlflowClient(uri).get_run(rid).info


def test_ending_again_with_the_same_status_keeps_the_end_time(store):
    rid = _run(store)
    tracking.end_job_run(store, rid, "FINISHED")
    first = _info(store, rid)
    assert first.status == "FINISHED" and first.end_time
    # the old code stored a new end time; force a different clock to tell them apart
    real = tracking.time.time
    tracking.time.time = lambda: real() + 3600  # type: ignore[assignment]
    try:
        tracking.end_job_run(store, rid, "FINISHED")
    finally:
        tracking.time.time = real  # type: ignore[assignment]
    again = _info(store, rid)
    assert (again.status, again.end_time) == ("FINISHED", first.end_time)


def test_ending_again_with_another_status_is_refused_and_history_kept(store):
    rid = _run(store)
    tracking.end_job_run(store, rid, "FINISHED")
    first = _info(store, rid)
    with pytest.raises(ConflictError, match=f"run {rid} already ended FINISHED") as ei:
        tracking.end_job_run(store, rid, "FAILED")
    assert "not rewritten as FAILED" in ei.value.message
    assert "mlflow.start_run(run_id=" in (ei.value.hint or "")
    assert ei.value.details == {"field": "status", "run_status": "FINISHED"}
    after = _info(store, rid)
    assert (after.status, after.end_time) == ("FINISHED", first.end_time)


def test_a_run_reopened_by_a_resumed_job_is_ended_again(store, monkeypatch):
    """A preempted job is requeued with its run; its next attempt's ``mlflow.start_run()``
    resumes MLFLOW_RUN_ID (RUNNING again), and the end of that attempt is recorded."""
    rid = _run(store)
    tracking.end_job_run(store, rid, "FAILED")  # e.g. an attempt's code ended it FAILED
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    try:
        mlflow.start_run(run_id=rid)
        assert _info(store, rid).status == "RUNNING"
        tracking.end_job_run(store, rid, "KILLED")
        assert _info(store, rid).status == "KILLED"
    finally:
        mlflow.end_run("KILLED")  # clear the fluent API's active run (same status)
        mlflow.set_tracking_uri(None)
    assert _info(store, rid).status == "KILLED"


def test_a_running_run_is_ended(store):
    rid = _run(store)
    assert _info(store, rid).status == "RUNNING"
    tracking.end_job_run(store, rid, "KILLED")
    assert _info(store, rid).status == "KILLED"


def test_the_launchers_verdict_replaces_what_the_code_ended_the_run_with(store):
    """The job's code ended its run FINISHED (``with mlflow.start_run():``), then the process
    failed: the server ends the run with the job's state (replace=True), as MLflow Projects
    does; the end time the code gave is kept."""
    rid = _run(store)
    tracking.end_job_run(store, rid, "FINISHED")
    first = _info(store, rid)
    tracking.end_job_run(store, rid, "FAILED", replace=True)
    after = _info(store, rid)
    assert (after.status, after.end_time) == ("FAILED", first.end_time)
