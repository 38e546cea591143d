"""Per-job tracking with bad arguments: a run id, samples, inputs or a tracking URI that cannot
work is a ValidationError naming it, before MLflow answers with its own text."""

from __future__ import annotations

import time

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops import tracking  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _run(uri: str, **kw) -> str:
    return tracking.create_job_run(
        uri, job_id="j1", name="n", project="p", user="u", **{"inputs": [], **kw}
    )


@pytest.mark.parametrize(
    ("run_id", "match"),
    [
        # was 'end MLflow run : Run with id= not found' / 'Invalid value "" for parameter ...'
        ("", "run_id: the run id is empty"),
        (" ", "run_id: the run id ' ' is only whitespace"),
        (None, "run_id: expected a run id, got None"),
        ("../x", "run_id: '../x' is not an MLflow run id"),
    ],
)
def test_a_bad_run_id_is_named(store, run_id, match):
    with pytest.raises(ValidationError, match=match) as ei:
        tracking.end_job_run(store, run_id, "FINISHED")
    assert ei.value.details["field"] == "run_id"
    with pytest.raises(ValidationError, match=match):
        tracking.log_system_metrics(store, run_id, [{"t": time.time(), "cpu_percent": 1.0}])


@pytest.mark.parametrize("t", [-1.0, 1e300])
def test_a_sample_time_mlflow_cannot_store_is_named(store, t):
    """-1 was MLflow's 'Timestamp must be a nonnegative long', 1e300 SQLite's 'Python int too
    large to convert to SQLite INTEGER' (a BackendError)."""
    rid = _run(store)
    samples = [{"t": time.time(), "cpu_percent": 5.0}, {"t": t, "cpu_percent": 1.0}]
    with pytest.raises(ValidationError, match=r"^samples\[1\]\.t: .* is not a time MLflow"):
        tracking.log_system_metrics(store, rid, samples)
    assert mlflow.tracking.MlflowClient(store).get_run(rid).data.metrics == {}  # none logged


def test_inputs_given_as_one_string_are_refused(store):
    """Each character of 'webtext@3' became a dataset input of the run."""
    with pytest.raises(ValidationError, match="^inputs: expected a list") as ei:
        _run(store, inputs="webtext@3")
    assert ei.value.details["field"] == "inputs"
    client = mlflow.tracking.MlflowClient(store)
    assert not any(client.search_runs([e.experiment_id]) for e in client.search_experiments())
    rid = _run(store, inputs=("webtext@3",))  # any other iterable still works
    run = client.get_run(rid)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["webtext"]


@pytest.mark.parametrize("uri", ["not a uri", "ftp://host/path"])
def test_a_tracking_uri_mlflow_cannot_open_is_named(uri):
    """A bare path (MLflow's retired file store) or a scheme without a store raised MLflow's own
    exception (not an aistack error) from the client's constructor."""
    with pytest.raises(ValidationError, match="^tracking_uri: MLflow cannot open") as ei:
        _run(uri)
    assert ei.value.details["field"] == "tracking_uri"
    with pytest.raises(ValidationError, match="^tracking_uri: "):
        tracking.end_job_run(uri, "a" * 32, "FINISHED")
