"""replay_spool against real local MLflow stores: a replay whose progress file is gone checks the
run's history first, so each point ends on the server as often as the spool has it.

Two stores: SQLite (aistack's own; it stores identical points once) and MLflow's file store (it
keeps every copy, so a point sent twice shows as two).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import BackendError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger, replay_spool  # noqa: E402

KEYS = ("m0", "m1", "m2")


@pytest.fixture(params=["sqlite", "file"])
def store(request, tmp_path, monkeypatch):
    """``(kind, tracking uri, run id)`` of a new run in a real local store."""
    if request.param == "file":
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses it otherwise
        uri = f"file://{tmp_path / 'mlruns'}"
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = mlflow.tracking.MlflowClient(uri).create_run("0")
    return request.param, uri, run.info.run_id


def _write_spool(directory, run_id, rows):
    path = directory / f"{run_id}-4242-1700000000000-0.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n):
    return [
        {"key": KEYS[i % 3], "value": i / 7, "timestamp": 1000 + i, "step": i} for i in range(n)
    ]


def _fail_log_batch_call(monkeypatch, n, landed=False):
    """MlflowClient.log_batch call ``n`` raises (after storing the batch when ``landed``)."""
    orig = mlflow.tracking.MlflowClient.log_batch
    calls = []

    def log_batch(self, run_id, metrics=(), *args, **kwargs):
        calls.append(len(metrics))
        if len(calls) == n and not landed:
            raise ConnectionError("server went away")
        out = orig(self, run_id, metrics, *args, **kwargs)
        if len(calls) == n:
            raise ConnectionError("read timed out")
        return out

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_batch", log_batch)
    return calls


def _counts(uri, run_id, keys=KEYS):
    """How many copies of each point the server has: {(key, step, value, timestamp): n}."""
    client = mlflow.tracking.MlflowClient(uri)
    return Counter(
        (m.key, m.step, m.value, m.timestamp)
        for key in keys
        for m in client.get_metric_history(run_id, key)
    )


def _partial_replay_then_lose_progress(monkeypatch, spool, uri, landed=False):
    """A replay that stops at its second chunk, then its progress file is deleted."""
    with monkeypatch.context() as m:
        _fail_log_batch_call(m, 2, landed=landed)
        with pytest.raises(BackendError, match="replay of .* stopped"):
            replay_spool(spool, tracking_uri=uri)
    progress = spool.with_name(spool.name + ".progress")
    assert spool.exists() and progress.exists()
    progress.unlink()


@pytest.mark.parametrize("landed", [False, True], ids=["failed", "landed-answer-lost"])
def test_a_replay_without_its_progress_file_sends_each_point_once(
    store, tmp_path, monkeypatch, landed
):
    kind, uri, run_id = store
    rows = _rows(2500)
    spool = _write_spool(tmp_path, run_id, rows)
    _partial_replay_then_lose_progress(monkeypatch, spool, uri, landed=landed)
    on_server = 2000 if landed else 1000
    assert sum(_counts(uri, run_id).values()) == on_server

    calls = _fail_log_batch_call(monkeypatch, 0)  # count what the second replay sends
    assert replay_spool(spool, tracking_uri=uri) == 2500 - on_server  # only what was missing
    assert sum(calls) == 2500 - on_server
    counts = _counts(uri, run_id)
    assert counts == {(r["key"], r["step"], r["value"], r["timestamp"]): 1 for r in rows}
    assert Counter((k, st) for k, st, _, _ in counts.elements()) == Counter(
        (r["key"], r["step"]) for r in rows
    )  # each key/step exactly once
    assert list(tmp_path.glob("*.jsonl*")) == []


def test_points_logged_twice_on_purpose_keep_their_copies(store, tmp_path, monkeypatch):
    # a point the spool has n times is on the server n times after the replay (multiset rule):
    # P once in the chunk that was accepted and once after it, Q twice in it, R twice after it
    kind, uri, run_id = store
    rows = _rows(1500)
    p, q, r = ({"key": "m0", "value": 0.5, "timestamp": 7, "step": 10_000 + j} for j in range(3))
    rows[10], rows[1200] = p, p
    rows[20], rows[21] = q, q
    rows[1100], rows[1101] = r, r
    spool = _write_spool(tmp_path, run_id, rows)
    _partial_replay_then_lose_progress(monkeypatch, spool, uri)

    sent = replay_spool(spool, tracking_uri=uri)
    counts = _counts(uri, run_id)
    if kind == "file":  # keeps every copy: exactly the spool's
        assert sent == 500
        assert counts == Counter((d["key"], d["step"], d["value"], d["timestamp"]) for d in rows)
        assert [counts[("m0", 10_000 + j, 0.5, 7)] for j in range(3)] == [2, 2, 2]
    else:  # SQLite stores identical points once: Q's second copy is sent again, harmlessly
        assert sent == 501
        assert set(counts.values()) == {1}
        assert set(counts) == {(d["key"], d["step"], d["value"], d["timestamp"]) for d in rows}
    assert not spool.exists()


def test_a_first_replay_reads_each_keys_history_once(store, tmp_path, monkeypatch):
    kind, uri, run_id = store
    rows = _rows(2500)
    rows[5] = dict(rows[4], step=99_999)  # one point already on the server before the replay
    mlflow.tracking.MlflowClient(uri).log_batch(
        run_id, metrics=[mlflow.entities.Metric("m1", 4 / 7, 1004, 99_999)]
    )
    spool = _write_spool(tmp_path, run_id, rows)
    orig = mlflow.tracking.MlflowClient.get_metric_history
    read = []

    def spy(self, run_id, key):
        read.append(key)
        return orig(self, run_id, key)

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "get_metric_history", spy)
    assert replay_spool(spool, tracking_uri=uri) == 2499
    assert read == list(KEYS)  # one history read per key, not per point or per chunk
    monkeypatch.undo()
    counts = _counts(uri, run_id)
    assert len(counts) == 2500 and set(counts.values()) == {1}


def test_in_flight_points_of_another_process_are_replayed_with_a_warning(store, tmp_path, caplog):
    kind, uri, run_id = store
    rows = [dict(d, in_flight=True) if d["step"] < 3 else d for d in _rows(5)]
    spool = _write_spool(tmp_path, run_id, rows)  # written by process 4242, not this one
    with caplog.at_level(logging.WARNING, logger="aistack.mlops.logger"):
        assert replay_spool(spool, tracking_uri=uri) == 5
    assert "3 points of" in caplog.text and "process 4242" in caplog.text
    assert "logged twice" in caplog.text and "has exited" in caplog.text
    assert set(_counts(uri, run_id).values()) == {1}


def test_close_says_how_to_replay_a_spool_with_a_send_still_running(tmp_path):
    started, release = threading.Event(), threading.Event()

    class Hanging:
        def log_batch(self, run_id, metrics):
            started.set()
            release.wait(timeout=30)
            raise ConnectionError("the request timed out")

    ml = BufferedMetricsLogger(
        run_id="run1",
        client=Hanging(),
        flush_every=4,
        flush_interval_s=3600,
        close_timeout_s=0.2,
        spool_dir=tmp_path,
    )
    try:
        for i in range(4):
            ml.log("loss", i / 10, step=i, timestamp=1_700_000_000_000 + i)
        assert started.wait(timeout=10)  # the thread is sending those 4 now
        for i in range(4, 6):
            ml.log("loss", i / 10, step=i, timestamp=1_700_000_000_000 + i)
        with pytest.raises(BackendError, match="6 metric points could not be sent") as ei:
            ml.close()
    finally:
        release.set()
        ml._thread.join(timeout=10)
    assert "4 of them were still being sent" in ei.value.hint
    assert "from another process replay only after this one has exited" in ei.value.hint
