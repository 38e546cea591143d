"""A system-metrics sample's ``t`` is Unix seconds: one that cannot be (1.0 was logged as a point
in January 1970; time.time() * 1000 as one in the year 55,000) is a ValidationError that names
the unit, before anything is logged, as a metric timestamp in seconds is for the metrics
logger (``MIN_TIMESTAMP_MS``)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops import tracking  # noqa: E402
from aistack.mlops.logger import MIN_TIMESTAMP_MS  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _run(uri: str) -> str:
    return tracking.create_job_run(uri, job_id="j1", name="n", project="p", user="u", inputs=[])


def _logged(uri: str, rid: str) -> dict[str, float]:
    return mlflow.tracking.MlflowClient(uri).get_run(rid).data.metrics  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "t",
    [
        1.0,  # a step count, or seconds since start
        0,
        12_345.6,  # time.monotonic() on a machine up for a few hours
        MIN_TIMESTAMP_MS / 1000 - 1,  # 1973-03-02
    ],
)
def test_a_sample_time_before_1973_is_refused_as_not_unix_seconds(store, t):
    rid = _run(store)
    samples = [{"t": time.time(), "cpu_percent": 5.0}, {"t": t, "cpu_percent": 1.0}]
    with pytest.raises(ValidationError, match=r"^samples\[1\]\.t: .* is not Unix seconds") as ei:
        tracking.log_system_metrics(store, rid, samples)
    assert "Unix seconds" in (ei.value.hint or "") and "time.time()" in (ei.value.hint or "")
    assert ei.value.details["field"] == "samples[1].t"
    assert _logged(store, rid) == {}  # the good sample before it was not logged either


@pytest.mark.parametrize("t", [1.796e12, 1e11, 1e15])  # time.time() * 1000: 1.796e12
def test_a_sample_time_in_milliseconds_is_refused(store, t):
    rid = _run(store)
    with pytest.raises(ValidationError, match=r"^samples\[0\]\.t: .* reads as milliseconds") as ei:
        tracking.log_system_metrics(store, rid, [{"t": t, "cpu_percent": 1.0}])
    assert "divide milliseconds by 1000" in (ei.value.hint or "")
    assert _logged(store, rid) == {}


def test_what_the_project_samples_is_accepted(store):
    """The server logs a job's usage rows (UTC datetimes, naive ones read as UTC; see
    server/services/tracking.py) and the supervisor samples time.time(): both are logged."""
    rid = _run(store)
    now = dt.datetime.now(dt.UTC)
    samples = [
        {"t": now.timestamp(), "cpu_percent": 10.0},
        {"t": now.replace(tzinfo=None).replace(tzinfo=dt.UTC).timestamp() + 1, "rss_mb": 1.5},
        {"t": time.time() + 2, "gpu_util": [50, 60]},
        {"t": MIN_TIMESTAMP_MS / 1000, "cpu_percent": 1.0},  # the earliest time taken
    ]
    assert tracking.log_system_metrics(store, rid, samples) == 5
    assert _logged(store, rid)["system/gpu_1_utilization_percentage"] == 60.0


@pytest.mark.parametrize(
    ("sample", "match"),
    [
        ({"t": -1.0}, r"^samples\[0\]\.t: .* is not a time MLflow"),  # as before
        ({"t": "now"}, r"^samples\[0\]\.t: must be a unix time in seconds"),
        ("x", r"^samples\[0\]: expected a mapping"),
    ],
)
def test_other_bad_times_keep_their_messages(store, sample, match):
    rid = _run(store)
    with pytest.raises(ValidationError, match=match):
        tracking.log_system_metrics(store, rid, [sample])
