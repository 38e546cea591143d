"""BufferedMetricsLogger with hostile arguments: each is refused at the call naming the argument,
before anything is queued, and no setting can stop or spin the sending thread."""

from __future__ import annotations

import math
import threading

import pytest

pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402


class Client:
    def __init__(self) -> None:
        self.points: list[tuple] = []

    def log_batch(self, run_id, metrics):
        self.points.extend((m.key, m.value, m.timestamp, m.step) for m in metrics)


class DownClient:
    def __init__(self) -> None:
        self.calls = 0

    def log_batch(self, run_id, metrics):
        self.calls += 1
        raise ConnectionError("server unavailable")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"step": 2.7}, r"step of 'loss': must be an integer, got 2\.7"),
        ({"step": "2.5"}, "step of 'loss'"),
        # time.time() is seconds (and a fraction): int() made it a point in January 1970
        ({"timestamp": 1_700_000_000.25}, "timestamp of 'loss': must be an integer"),
        ({"timestamp": -1}, "timestamp of 'loss': -1 is before 1970"),
    ],
)
def test_fractional_steps_and_timestamps_are_refused_not_cut(kw, match):
    client = Client()
    ml = BufferedMetricsLogger(run_id="run1", client=client, flush_interval_s=0.01)
    with pytest.raises(ValidationError, match=match) as ei:
        ml.log("loss", 1.0, **kw)
    assert ei.value.details["field"] in kw
    with pytest.raises(ValidationError, match=match.replace("loss", "a")):
        ml.log_many({"a": 1.0, "b": 2.0}, **kw)
    ml.log("loss", 0.5, step=3.0, timestamp=1_700_000_000_000.0)  # whole floats still do
    ml.log("loss", 0.25, step="4")
    ml.close()
    assert [(k, v, st) for k, v, _, st in client.points] == [("loss", 0.5, 3), ("loss", 0.25, 4)]
    assert client.points[0][2] == 1_700_000_000_000


@pytest.mark.parametrize("metrics", [[("loss", 1.0)], None, "loss"])
def test_log_many_of_something_not_a_dict_names_metrics(metrics):
    ml = BufferedMetricsLogger(run_id="run1", client=Client())
    with pytest.raises(ValidationError, match="metrics: expected a dict") as ei:
        ml.log_many(metrics)
    assert ei.value.details["field"] == "metrics"
    assert ml.pending == 0
    ml.close()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"flush_every": 2.5}, "flush_every"),  # was cut to 2
        ({"flush_every": True}, "flush_every"),  # was 1
        ({"flush_every": "10"}, "flush_every"),  # was a TypeError
        ({"flush_interval_s": math.inf}, "flush_interval_s"),  # stopped the sender
        ({"max_backoff_s": math.nan}, "max_backoff_s"),  # retried without pause
        ({"max_backoff_s": -1}, "max_backoff_s"),  # waited until the next log()
        ({"max_backoff_s": 0}, "max_backoff_s"),  # retried without pause
        ({"close_timeout_s": math.nan}, "close_timeout_s"),  # close() raised ValueError
        ({"close_timeout_s": -1}, "close_timeout_s"),
        ({"flush_timeout_s": "300"}, "flush_timeout_s"),
        ({"run_id": " "}, "run_id"),
        ({"run_id": 5}, "run_id"),  # was a TypeError
        ({"run_id": "../x"}, "run_id"),  # refused by the server, in the background
    ],
)
def test_bad_settings_are_refused_naming_them(kw, field):
    args = {"run_id": "run1", "client": Client(), **kw}
    with pytest.raises(ValidationError, match=f"^{field}: ") as ei:
        BufferedMetricsLogger(**args)
    assert ei.value.details["field"] == field


def test_a_run_id_from_the_environment_is_checked(monkeypatch):
    monkeypatch.setenv("MLFLOW_RUN_ID", "not a run id")
    with pytest.raises(ValidationError, match="^MLFLOW_RUN_ID: 'not a run id' is not an MLflow"):
        BufferedMetricsLogger(client=Client())


@pytest.mark.parametrize("timeout_s", [math.nan, -1, "soon"])
def test_flush_with_a_timeout_that_is_no_duration_is_refused(timeout_s):
    """NaN waited forever with the server down (never past the deadline); -1 'timed out'."""
    ml = BufferedMetricsLogger(
        run_id="run1", client=DownClient(), max_backoff_s=0.05, close_timeout_s=0
    )
    ml.log("loss", 1.0)
    out: list[BaseException] = []

    def flush() -> None:
        try:
            ml.flush(timeout_s=timeout_s)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            out.append(exc)

    th = threading.Thread(target=flush, daemon=True)
    th.start()
    th.join(timeout=5)
    assert not th.is_alive(), "flush() hung"
    assert isinstance(out[0], ValidationError)
    assert out[0].message.startswith("timeout_s: must be >= 0")
    assert ml.unsent()[0]["key"] == "loss"  # still buffered
    ml._client = Client()  # the server is back
    ml.flush(timeout_s=math.inf)  # no limit
    ml.close()
    assert ml.sent == 1


def test_an_infinite_close_timeout_waits_for_the_server():
    """close() joined the sender with float('inf') and raised OverflowError, every time (at exit
    too), so the points were neither sent nor spooled."""
    client = Client()
    ml = BufferedMetricsLogger(
        run_id="run1", client=client, close_timeout_s=math.inf, flush_interval_s=3600
    )
    ml.log_many({"loss": 1.0, "acc": 0.5}, step=1)
    ml.close()
    assert sorted(k for k, *_ in client.points) == ["acc", "loss"]


@pytest.mark.parametrize("seconds", [1_764_000_000, 1_764_000_000.0, 0, 99_999_999_999])
def test_whole_second_timestamps_are_refused_not_filed_under_1970(seconds):
    """int(time.time()) passed where milliseconds are expected was a point in January 1970."""
    client = Client()
    ml = BufferedMetricsLogger(run_id="run1", client=client, flush_interval_s=0.01)
    with pytest.raises(ValidationError, match="timestamp of 'loss': .* reads as seconds") as ei:
        ml.log("loss", 1.0, timestamp=seconds)
    assert ei.value.details["field"] == "timestamp"
    assert "multiply seconds by 1000" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="timestamp of 'a': .* reads as seconds"):
        ml.log_many({"a": 1.0, "b": 2.0}, timestamp=seconds)
    ml.log("loss", 0.5, timestamp=100_000_000_000)  # 1973-03-03: the first one taken
    ml.log("loss", 0.25, timestamp=int(seconds) * 1000 or 1_764_000_000_000)
    ml.close()
    assert [(k, v, ts) for k, v, ts, _ in client.points] == [
        ("loss", 0.5, 100_000_000_000),
        ("loss", 0.25, int(seconds) * 1000 or 1_764_000_000_000),
    ]
