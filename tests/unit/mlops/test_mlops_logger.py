"""BufferedMetricsLogger against fake clients: batching, retries, no point lost, spool, atexit."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("mlflow")

from aistack.errors import BackendError, ValidationError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402


class RecordingClient:
    """Stores every accepted batch; fails a fraction of calls (before storing) when asked."""

    def __init__(self, fail_rate: float = 0.0, seed: int = 0, fail_first: int = 0) -> None:
        self.batches: list[list] = []
        self.calls = 0
        self.fail_rate = fail_rate
        self.fail_first = fail_first
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def log_batch(self, run_id, metrics):
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first or self.rng.random() < self.fail_rate:
                raise ConnectionError("server unavailable")
            assert run_id == "run1"
            self.batches.append(list(metrics))

    def points(self) -> list[tuple]:
        return [(m.key, m.value, m.step) for b in self.batches for m in b]


def test_10000_points_none_lost_with_flaky_server():
    client = RecordingClient(fail_rate=0.3, seed=7)
    with BufferedMetricsLogger(
        run_id="run1", client=client, flush_every=500, flush_interval_s=0.05, max_backoff_s=0.01
    ) as ml:
        for i in range(10_000):
            ml.log("loss", float(i), step=i)
    pts = client.points()
    assert len(pts) == 10_000  # none lost, none duplicated
    assert sorted(p[2] for p in pts) == list(range(10_000))
    assert pts == [("loss", float(i), i) for i in range(10_000)]  # order kept across retries
    assert ml.retries > 0 and ml.retries == client.calls - len(client.batches)
    assert max(len(b) for b in client.batches) <= 1000


def test_batches_are_at_most_1000_and_flush_waits():
    client = RecordingClient()
    ml = BufferedMetricsLogger(
        run_id="run1", client=client, flush_every=100_000, flush_interval_s=60
    )
    ml.log_many({f"m{i}": float(i) for i in range(2500)}, step=3)
    assert client.batches == []  # nothing sent before the interval or a flush
    ml.flush(timeout_s=30)
    assert [len(b) for b in client.batches] == [1000, 1000, 500]
    assert {m.step for b in client.batches for m in b} == {3}
    assert len({m.timestamp for b in client.batches for m in b}) == 1  # one timestamp for log_many
    assert ml.pending == 0
    ml.close()
    ml.close()  # idempotent


def test_flush_every_triggers_send_without_waiting_for_interval():
    client = RecordingClient()
    ml = BufferedMetricsLogger(run_id="run1", client=client, flush_every=10, flush_interval_s=3600)
    for i in range(10):
        ml.log("x", i, step=i, timestamp=1000 + i)
    deadline = time.monotonic() + 10
    while not client.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(m.value, m.timestamp) for m in client.batches[0]] == [(i, 1000 + i) for i in range(10)]
    ml.close()


def test_close_spools_unsent_points_when_server_stays_down(tmp_path):
    client = RecordingClient(fail_rate=1.0)
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_interval_s=0.01,
        max_backoff_s=0.01,
        close_timeout_s=0.3,
        spool_dir=tmp_path,
    )
    for i in range(1234):
        ml.log("acc", i / 10, step=i)
    with pytest.raises(BackendError, match="1234 metric points could not be sent") as ei:
        ml.close()
    assert "replay_spool" in str(ei.value)
    (spool,) = tmp_path.glob("run1-*.jsonl")
    rows = [json.loads(x) for x in spool.read_text().splitlines()]
    assert [(r["key"], r["value"], r["step"]) for r in rows] == [
        ("acc", i / 10, i) for i in range(1234)
    ]


def test_logging_after_close_is_an_error():
    ml = BufferedMetricsLogger(run_id="run1", client=RecordingClient())
    ml.close()
    with pytest.raises(ValidationError, match="closed"):
        ml.log("a", 1.0)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("", 1.0, "key"), (None, 1.0, "key"), ("a", "x", "must be a number"), ("a", None, "number")],
)
def test_bad_points_name_the_field(key, value, match):
    ml = BufferedMetricsLogger(run_id="run1", client=RecordingClient())
    with pytest.raises(ValidationError, match=match):
        ml.log(key, value)
    ml.close()


def test_numpy_scalars_accepted():
    np = pytest.importorskip("numpy")
    client = RecordingClient()
    with BufferedMetricsLogger(run_id="run1", client=client) as ml:
        ml.log("a", np.float32(0.5), step=np.int64(2))
    assert client.points() == [("a", 0.5, 2)]


def test_run_id_required(monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    with pytest.raises(ValidationError, match="run_id: no MLflow run"):
        BufferedMetricsLogger(client=RecordingClient())
    monkeypatch.setenv("MLFLOW_RUN_ID", "run1")
    ml = BufferedMetricsLogger(client=RecordingClient())
    assert ml.run_id == "run1"
    ml.close()


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"flush_every": 0}, "flush_every"), ({"flush_interval_s": 0}, "flush_interval_s")],
)
def test_bad_settings(kw, field):
    with pytest.raises(ValidationError, match=field):
        BufferedMetricsLogger(run_id="r", client=RecordingClient(), **kw)


def test_flushes_at_interpreter_exit(tmp_path):
    """A script that never calls close(): the atexit hook sends every point."""
    out = tmp_path / "sent.jsonl"
    script = f"""
import json
from aistack.mlops.logger import BufferedMetricsLogger
class C:
    def log_batch(self, run_id, metrics):
        with open({str(out)!r}, "a") as f:
            for m in metrics:
                f.write(json.dumps([m.key, m.value, m.step]) + "\\n")
ml = BufferedMetricsLogger(run_id="r", client=C(), flush_every=10**9, flush_interval_s=3600)
for i in range(3000):
    ml.log("m", i, step=i)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows == [["m", float(i), i] for i in range(3000)]


def test_invalid_metric_name_is_refused_at_log_time():
    ml = BufferedMetricsLogger(run_id="run1", client=RecordingClient())
    with pytest.raises(ValidationError, match="not a valid MLflow metric name"):
        ml.log("loss/../x", 1.0)
    with pytest.raises(ValidationError, match="not a valid MLflow metric name"):
        ml.log_many({"ok": 1.0, "/abs": 2.0})
    ml.log("train/loss", 1.0)
    ml.close()


class RefusingClient(RecordingClient):
    """Refuses batches containing a poisoned value for good (like a deleted run)."""

    def log_batch(self, run_id, metrics):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if any(m.value < 0 for m in metrics):
            raise MlflowException("run is deleted", error_code=INVALID_PARAMETER_VALUE)
        super().log_batch(run_id, metrics)


def test_permanently_refused_batch_is_spooled_and_the_rest_flows(tmp_path):
    client = RefusingClient()
    ml = BufferedMetricsLogger(
        run_id="run1", client=client, flush_every=10, flush_interval_s=0.01, spool_dir=tmp_path
    )
    ml.log_many({f"m{i}": -1.0 for i in range(10)})
    ml.flush(timeout_s=30)
    ml.log_many({f"m{i}": 1.0 for i in range(10)})
    ml.close()
    assert ml.rejected == 10 and len(client.points()) == 10
    (spool,) = ml.spooled
    assert [json.loads(x)["value"] for x in spool.read_text().splitlines()] == [-1.0] * 10


class SlowDownClient(RecordingClient):
    """Every call takes ``delay`` seconds and then fails (a server that times out)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def log_batch(self, run_id, metrics):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        raise ConnectionError("server down")


def test_close_spools_the_chunk_in_flight(tmp_path):
    # close() times out while the thread is still sending: that chunk is spooled too, and the
    # thread does not put it back afterwards
    client = SlowDownClient(delay=1.5)
    ml = BufferedMetricsLogger(
        run_id="run1", client=client, close_timeout_s=0.5, flush_interval_s=0.05, spool_dir=tmp_path
    )
    for i in range(10):
        ml.log("loss", float(i), step=i)
    deadline = time.monotonic() + 10
    while client.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(BackendError, match="10 metric points could not be sent"):
        ml.close()
    (spool,) = tmp_path.glob("run1-*.jsonl")
    assert ml.spooled == [spool]
    steps = [json.loads(x)["step"] for x in spool.read_text().splitlines()]
    assert steps == list(range(10))
    time.sleep(1.5)  # the send in flight fails now: nothing is requeued, the thread ends
    ml._thread.join(timeout=5)
    assert not ml._thread.is_alive()
    assert len(ml._buf) == 0


@pytest.mark.parametrize(
    ("step", "timestamp", "match"),
    [
        (2**63, None, "step of 'x': 9223372036854775808 is outside"),
        (-(2**63) - 1, None, "step of 'x'"),
        (1, 2**63, "timestamp of 'x'"),
        ("ten", None, "step of 'x': must be an integer"),
    ],
)
def test_steps_and_timestamps_outside_int64_are_refused_at_log_time(step, timestamp, match):
    client = RecordingClient()
    ml = BufferedMetricsLogger(run_id="run1", client=client, flush_interval_s=0.01)
    with pytest.raises(ValidationError, match=match):
        ml.log("x", 1.0, step=step, timestamp=timestamp)
    with pytest.raises(ValidationError, match="step"):
        ml.log_many({"x": 1.0, "y": 2.0}, step=step if timestamp is None else 2**64)
    ml.log("good", 10.0, step=2**63 - 1)
    ml.log("neg", 1.0, step=-(2**63))
    ml.close()
    assert client.points() == [("good", 10.0, 2**63 - 1), ("neg", 1.0, -(2**63))]


class EncodingClient(RecordingClient):
    """Raises ValueError (as protobuf does for a value it cannot encode) for value 13."""

    def log_batch(self, run_id, metrics):
        if any(m.value == 13.0 for m in metrics):
            with self.lock:
                self.calls += 1
            raise ValueError("Value out of range: 13")
        super().log_batch(run_id, metrics)


def test_a_point_the_client_cannot_encode_does_not_poison_the_batch(tmp_path):
    client = EncodingClient()
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_interval_s=0.01,
        close_timeout_s=5,
        max_backoff_s=0.01,
        spool_dir=tmp_path,
    )
    ml.log("good", 10.0, step=10)
    ml.log("bad", 13.0, step=11)
    ml.log("good", 12.0, step=12)
    t0 = time.monotonic()
    ml.close()  # no retry loop: returns at once
    assert time.monotonic() - t0 < 4
    assert client.points() == [("good", 10.0, 10), ("good", 12.0, 12)]
    assert ml.rejected == 1 and ml.retries == 0
    (spool,) = ml.spooled
    assert [json.loads(x)["value"] for x in spool.read_text().splitlines()] == [13.0]
