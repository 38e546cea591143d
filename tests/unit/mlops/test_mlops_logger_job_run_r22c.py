"""A job whose code ran ``with mlflow.start_run():`` and then creates a BufferedMetricsLogger:
MLflow took MLFLOW_RUN_ID out of the environment at start_run(), so the logger found no run
("set MLFLOW_RUN_ID (aistack jobs have it)"); it now logs into the job's run, which that block
ended."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402


@pytest.fixture
def job_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(tracking URI, run id) of a job's run, as the server opens it: tagged with the job's id,
    MLFLOW_RUN_ID and AISTACK_JOB_ID in the environment."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.create_experiment("proj", artifact_location=(tmp_path / "art").as_uri())
    rid = client.create_run(exp, tags={"aistack.job_id": "job123"}).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", rid)
    monkeypatch.setenv("AISTACK_JOB_ID", "job123")
    yield uri, rid
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_a_logger_after_a_with_start_run_block_logs_into_the_jobs_run(
    job_run: tuple[str, str], tmp_path: Path
) -> None:
    uri, rid = job_run
    with mlflow.start_run() as run:
        assert run.info.run_id == rid
        mlflow.log_metric("plain", 1.0)
    assert "MLFLOW_RUN_ID" not in os.environ  # MLflow's doing
    ml = BufferedMetricsLogger(tracking_uri=uri, spool_dir=tmp_path / "spool")
    assert ml.run_id == rid
    ml.log("loss", 0.25, step=7)
    ml.close()
    hist = mlflow.tracking.MlflowClient(uri).get_metric_history(rid, "loss")
    assert [(m.value, m.step) for m in hist] == [(0.25, 7)]


def test_another_jobs_run_is_not_taken_and_the_error_says_what_to_do(
    job_run: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, _ = job_run
    with mlflow.start_run():
        pass
    monkeypatch.setenv("AISTACK_JOB_ID", "otherjob")  # the run ended is not this job's
    with pytest.raises(ValidationError) as exc:
        BufferedMetricsLogger(tracking_uri=uri)
    assert exc.value.message.startswith(
        "run_id: no MLflow run to log into: MLFLOW_RUN_ID is not set in job otherjob"
    )
    assert "inside the `with mlflow.start_run():` block" in (exc.value.hint or "")
    assert exc.value.details["field"] == "run_id"
