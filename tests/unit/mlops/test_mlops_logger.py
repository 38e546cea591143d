"""BufferedMetricsLogger against fake clients: batching, retries, no point lost, spool, atexit."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("mlflow")

from aistack.errors import BackendError, ValidationError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402

T0 = 1_700_000_000_000  # a timestamp in ms (2023-11-14)


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
        ml.log("x", i, step=i, timestamp=T0 + i)
    deadline = time.monotonic() + 10
    while not client.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(m.value, m.timestamp) for m in client.batches[0]] == [(i, T0 + i) for i in range(10)]
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


# ------------------------------------------------------------- bounded flush, spool failures
def _wait_for(cond, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cond()


class _FullDisk:
    """Stands in for the logger's ``json`` module: the 2nd line of a spool file fails to be
    written, as on a full disk (the 1st was written: a partial file must not be left behind)."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps(self, obj):
        self.calls += 1
        if self.calls % 2 == 0:
            raise OSError(28, "No space left on device")
        return json.dumps(obj)


@pytest.mark.parametrize("how", ["not-a-directory", "disk-full"])
def test_a_spool_write_failure_is_an_error_on_the_next_flush_not_a_hang(tmp_path, monkeypatch, how):
    from aistack.mlops import spool as spool_mod

    if how == "not-a-directory":
        (tmp_path / "blocker").write_text("a file where the spool directory should be")
        spool_dir = tmp_path / "blocker" / "spool"
        reason = "NotADirectoryError"
    else:
        spool_dir = tmp_path / "spool"
        monkeypatch.setattr(spool_mod, "json", _FullDisk())
        reason = "No space left on device"
    client = RefusingClient()
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_interval_s=0.01,
        flush_timeout_s=20,
        close_timeout_s=5,
        spool_dir=spool_dir,
    )
    # a, b, c are refused for good (to be spooled), ok is accepted
    ml.log_many({"a": -1.0, "b": -2.0, "c": -3.0, "ok": 1.0}, step=4)
    with pytest.raises(BackendError) as ei:
        ml.flush()  # the old code waited here forever: the sending thread had died
    msg = ei.value.message
    assert "flush timed out" not in msg  # it said what happened, not that time ran out
    assert "refused 3 metric points of run run1" in msg
    assert f"could not write 3 metric points to the spool file {spool_dir}/run1-" in msg
    assert reason in msg and "3 such points are kept in memory" in msg
    assert ei.value.details == {"pending": 3}
    # nothing was dropped: the refused points are in memory, the good one reached the server
    assert sorted((p["key"], p["value"], p["step"]) for p in ml.unsent()) == [
        ("a", -1.0, 4),
        ("b", -2.0, 4),
        ("c", -3.0, 4),
    ]
    assert client.points() == [("ok", 1.0, 4)]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]  # no partial file
    # the error is raised once; the sender still runs
    ml.log("ok", 2.0, step=5)
    ml.flush(timeout_s=20)
    assert client.points() == [("ok", 1.0, 4), ("ok", 2.0, 5)]
    # close() tries the spool again; while it still fails the points stay in memory
    with pytest.raises(BackendError) as ei:
        ml.close()
    assert ei.value.message.startswith("3 metric points of run run1 were neither sent nor saved")
    assert "call close() again" in ei.value.hint
    assert len(ml.unsent()) == 3 and ml.spooled == []
    with pytest.raises(BackendError, match="closed with 3 points it could not write"):
        ml.flush()
    # once the spool location works, close() again writes them
    if how == "not-a-directory":
        (tmp_path / "blocker").unlink()
    else:
        monkeypatch.setattr(spool_mod, "json", json)
    ml.close()
    (spool,) = ml.spooled
    rows = [json.loads(x) for x in spool.read_text().splitlines()]
    assert [(r["key"], r["value"], r["step"]) for r in rows] == [
        ("a", -1.0, 4),
        ("b", -2.0, 4),
        ("c", -3.0, 4),
    ]
    assert ml.unsent() == []
    ml.close()  # idempotent again


def test_a_log_after_a_spool_failure_raises_and_does_not_queue_its_point(tmp_path):
    (tmp_path / "blocker").write_text("")
    client = RefusingClient()
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_interval_s=0.01,
        close_timeout_s=5,
        spool_dir=tmp_path / "blocker" / "spool",
    )
    ml.log("bad", -1.0, step=1)
    _wait_for(lambda: ml.rejected == 1)
    with pytest.raises(BackendError, match="could not write 1 metric points to the spool file"):
        ml.log("x", 5.0, step=2)  # raised: this point was not queued
    ml.log_many({"y": 6.0}, step=3)
    ml.flush(timeout_s=20)
    assert client.points() == [("y", 6.0, 3)]
    assert [(p["key"], p["step"]) for p in ml.unsent()] == [("bad", 1)]
    with pytest.raises(BackendError, match="1 metric points of run run1 were neither sent"):
        ml.close()


def test_flush_times_out_by_default_and_says_how_many_points_are_pending(tmp_path):
    client = RecordingClient(fail_rate=1.0)
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_interval_s=0.01,
        max_backoff_s=0.01,
        flush_timeout_s=0.3,
        close_timeout_s=0.3,
        spool_dir=tmp_path,
    )
    for i in range(7):
        ml.log("loss", float(i), step=i)
    with pytest.raises(BackendError) as ei:
        ml.flush()  # no timeout given: flush_timeout_s applies (the old flush() waited forever)
    err = ei.value
    assert err.message.startswith(
        "flush timed out after 0.3 s: 7 metric points of run run1 are still pending, buffered in "
        "memory and retried in the background (last error: ConnectionError: server unavailable)"
    )
    assert f"spool file in {tmp_path}" in err.hint
    assert err.details == {"pending": 7}
    assert [p["step"] for p in ml.unsent()] == list(range(7))
    with pytest.raises(BackendError, match="7 metric points could not be sent"):
        ml.close()
    (spool,) = ml.spooled
    assert [json.loads(x)["step"] for x in spool.read_text().splitlines()] == list(range(7))


class _Crash(BaseException):
    """Not an Exception: escapes the sender's retry handling (like a bug or MemoryError)."""


class CrashingClient(RecordingClient):
    def log_batch(self, run_id, metrics):
        raise _Crash("sender bug")


def test_a_crashed_sender_is_an_error_on_flush_and_log_and_close_spools_everything(tmp_path):
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=CrashingClient(),
        flush_interval_s=0.01,
        flush_timeout_s=60,
        close_timeout_s=5,
        spool_dir=tmp_path,
    )
    for i in range(5):
        ml.log("loss", float(i), step=i)
    with pytest.raises(BackendError) as ei:
        ml.flush()
    assert ei.value.message == (
        "the metrics sender of run run1 stopped (_Crash: sender bug); 5 points are pending"
    )
    with pytest.raises(BackendError, match="the metrics sender of run run1 stopped"):
        ml.log("loss", 9.0, step=9)
    assert [p["step"] for p in ml.unsent()] == list(range(5))  # the chunk in flight is back
    with pytest.raises(BackendError, match="5 metric points could not be sent"):
        ml.close()
    (spool,) = ml.spooled
    assert [json.loads(x)["step"] for x in spool.read_text().splitlines()] == list(range(5))


def test_flush_timeout_setting_is_checked():
    with pytest.raises(ValidationError, match="flush_timeout_s: must be > 0, got 0"):
        BufferedMetricsLogger(run_id="r", client=RecordingClient(), flush_timeout_s=0)


class BlockingClient(RecordingClient):
    """The first ``log_batch`` blocks until ``release`` is set, then succeeds (or fails when
    ``fail_blocked``); ``get_metric_history`` answers from what was stored, like a server."""

    def __init__(self, fail_blocked: bool = False) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_blocked = fail_blocked

    def log_batch(self, run_id, metrics):
        if not self.started.is_set():
            self.started.set()
            assert self.release.wait(timeout=30)
            if self.fail_blocked:
                raise ConnectionError("the request timed out")
        super().log_batch(run_id, metrics)

    def get_metric_history(self, run_id, key):
        assert run_id == "run1"
        return [m for b in self.batches for m in b if m.key == key]


def _same_point(key, value, timestamp, step) -> tuple:
    return (key, "nan" if math.isnan(value) else value, timestamp, step)


def _close_while_a_chunk_is_in_flight(client, tmp_path, release: bool = True):
    """10 points in flight (one NaN), 5 more buffered; close() gives up and spools all 15
    (then the send close() gave up on ends, unless ``release`` is False)."""
    ml = BufferedMetricsLogger(
        run_id="run1",
        client=client,
        flush_every=10,
        flush_interval_s=3600,
        close_timeout_s=0.2,
        spool_dir=tmp_path,
    )
    for i in range(10):
        ml.log("loss", float("nan") if i == 3 else i / 10, step=i, timestamp=T0 + i)
    assert client.started.wait(timeout=10)  # the thread is sending those 10 now
    for i in range(10, 15):
        ml.log("loss", i / 10, step=i, timestamp=T0 + i)
    with pytest.raises(BackendError, match="15 metric points could not be sent"):
        ml.close()
    (spool,) = tmp_path.glob("run1-*.jsonl")
    rows = [json.loads(x) for x in spool.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(15))
    if release:
        client.release.set()  # the send close() gave up on ends now
        ml._thread.join(timeout=10)
        assert not ml._thread.is_alive()
    return spool, ml


EXPECTED = [_same_point("loss", float("nan") if i == 3 else i / 10, T0 + i, i) for i in range(15)]


def test_a_chunk_sent_after_close_spooled_it_is_not_logged_twice_by_replay(tmp_path, monkeypatch):
    from aistack.mlops import spool as spool_mod

    client = BlockingClient()
    spool, _ = _close_while_a_chunk_is_in_flight(client, tmp_path)
    assert len(client.points()) == 10  # the in-flight chunk reached the server after all
    monkeypatch.setattr(spool_mod, "mlflow_client", lambda uri=None: client)
    assert spool_mod.replay_spool(spool) == 5  # only the 5 points never sent
    assert not spool.exists()
    logged = [_same_point(m.key, m.value, m.timestamp, m.step) for b in client.batches for m in b]
    assert sorted(logged, key=lambda p: p[3]) == EXPECTED  # each point exactly once


def test_a_chunk_whose_send_fails_after_close_spooled_it_is_replayed(tmp_path, monkeypatch):
    from aistack.mlops import spool as spool_mod

    client = BlockingClient(fail_blocked=True)
    spool, _ = _close_while_a_chunk_is_in_flight(client, tmp_path)
    assert client.points() == []  # nothing reached the server
    monkeypatch.setattr(spool_mod, "mlflow_client", lambda uri=None: client)
    assert spool_mod.replay_spool(spool) == 15  # none lost
    logged = [_same_point(m.key, m.value, m.timestamp, m.step) for b in client.batches for m in b]
    assert sorted(logged, key=lambda p: p[3]) == EXPECTED


def test_replay_waits_for_the_in_flight_send_close_gave_up_on(tmp_path, monkeypatch):
    # replayed while that send still hangs, the history lacks its points: sending them now
    # would log them twice when it lands, so replay refuses until it ended
    from aistack.mlops import spool as spool_mod

    client = BlockingClient()
    spool, ml = _close_while_a_chunk_is_in_flight(client, tmp_path, release=False)
    monkeypatch.setattr(spool_mod, "mlflow_client", lambda uri=None: client)
    try:
        with pytest.raises(BackendError, match="has not ended yet") as ei:
            spool_mod.replay_spool(spool)
        assert "replay from a new process" in ei.value.hint
        assert client.points() == [] and spool.exists()
    finally:
        client.release.set()
        ml._thread.join(timeout=10)
    assert len(client.points()) == 10  # it landed
    assert spool_mod.replay_spool(spool) == 5
    logged = [_same_point(m.key, m.value, m.timestamp, m.step) for b in client.batches for m in b]
    assert sorted(logged, key=lambda p: p[3]) == EXPECTED  # each point exactly once
