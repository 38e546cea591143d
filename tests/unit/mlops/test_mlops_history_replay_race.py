"""The replay race: a spool file with in-flight points replayed from another process while the
process that wrote it is still sending those points.

close() gives up on a send that is still running and spools its chunk marked ``in_flight``.
A replay from another process used to check the run's history at once and send what the history
lacked; when the writer's send then landed, those points were on the server twice (MLflow's file
store keeps every copy). The writer now holds a shared lock on the spool file until its send has
ended, and a replay that finds it held sends nothing and says why.

The writer is a real second process whose send waits for a file the test creates, so the order
(spool written, replay tried, send lands, writer exits, replay again) is fixed, not timed.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import BackendError  # noqa: E402
from aistack.mlops.logger import replay_spool  # noqa: E402

T0 = 1_700_000_000_000

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import mlflow
    from aistack.errors import BackendError
    from aistack.mlops.logger import BufferedMetricsLogger

    uri, run_id, spool_dir, go, started, stay = sys.argv[1:7]
    T0 = 1_700_000_000_000

    class SlowClient:
        # a request that the server answers only after the test says so
        def __init__(self):
            self.real = mlflow.tracking.MlflowClient(uri)

        def log_batch(self, run_id, metrics):
            Path(started).touch()
            while not Path(go).exists():
                time.sleep(0.01)
            self.real.log_batch(run_id, metrics=metrics)

    ml = BufferedMetricsLogger(
        run_id=run_id, client=SlowClient(), flush_every=4, flush_interval_s=3600,
        close_timeout_s=0.2, spool_dir=spool_dir,
    )
    for i in range(4):
        ml.log("loss", i / 10, step=i, timestamp=T0 + i)
    while not Path(started).exists():
        time.sleep(0.01)
    for i in range(4, 6):
        ml.log("loss", i / 10, step=i, timestamp=T0 + i)
    try:
        ml.close()
    except BackendError:
        pass
    print(ml.spooled[0], flush=True)
    ml._thread.join()  # the send of the first 4 points lands once `go` exists
    while stay != "-" and not Path(stay).exists():  # keep running after the send ended
        time.sleep(0.01)
    """
)


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """(tracking uri, run id) in MLflow's file store, which keeps every copy of a point."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"file://{tmp_path / 'mlruns'}"
    return uri, mlflow.tracking.MlflowClient(uri).create_run("0").info.run_id


def _counts(uri, run_id):
    hist = mlflow.tracking.MlflowClient(uri).get_metric_history(run_id, "loss")
    return Counter((m.step, m.value, m.timestamp) for m in hist)


def _start_writer(tmp_path, uri, run_id, stay="-"):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go, started = tmp_path / "go", tmp_path / "started"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            uri,
            run_id,
            str(tmp_path / "spool"),
            str(go),
            str(started),
            str(stay),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # printed after close() spooled the 6 points
    assert line, f"the writer printed no spool path (exit {proc.wait(timeout=30)})"
    return proc, Path(line), go


def test_a_replay_while_the_writers_send_runs_sends_nothing_and_no_point_twice(
    tmp_path, file_store
):
    uri, run_id = file_store
    proc, spool, go = _start_writer(tmp_path, uri, run_id)
    try:
        rows = [json.loads(x) for x in spool.read_text().splitlines()]
        assert sum(1 for r in rows if r.get("in_flight")) == 4 and len(rows) == 6

        # the writer's request has not landed yet: a replay now could send those 4 again
        with pytest.raises(BackendError, match=rf"\(process {proc.pid}\) is still sending") as ei:
            replay_spool(spool, tracking_uri=uri)
        assert "nothing was sent" in ei.value.message
        assert "exited" in ei.value.hint
        assert _counts(uri, run_id) == Counter()
        assert spool.exists()

        go.touch()  # the writer's request lands now, then it exits
        assert proc.wait(timeout=60) == 0
    finally:
        go.touch()
        proc.kill()
        proc.wait(timeout=30)
    assert replay_spool(spool, tracking_uri=uri) == 2  # the 4 in flight landed; 2 were missing
    counts = _counts(uri, run_id)
    assert counts == {(i, i / 10, T0 + i): 1 for i in range(6)}  # each point once
    assert not spool.exists()


def test_the_writers_lock_is_released_when_its_send_ends_while_it_keeps_running(
    tmp_path, file_store
):
    # the lock lasts as long as the send, not the process: a writer that keeps running after
    # its send ended does not block the replay
    uri, run_id = file_store
    stay = tmp_path / "stay"
    proc, spool, go = _start_writer(tmp_path, uri, run_id, stay)
    try:
        go.touch()
        deadline = time.monotonic() + 60
        while True:  # the send lands, the writer's thread ends and releases the lock
            with spool.open("rb") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, "the writer kept its lock"
                    time.sleep(0.02)
        assert proc.poll() is None  # the writer still runs
        assert replay_spool(spool, tracking_uri=uri) == 2
        assert _counts(uri, run_id) == {(i, i / 10, T0 + i): 1 for i in range(6)}
    finally:
        stay.touch()
        proc.kill()
        proc.wait(timeout=30)


def test_a_second_replay_still_says_another_replay_holds_the_file(tmp_path, file_store):
    # the exclusive lock of a replay is told apart from the shared lock of a writer's send
    uri, run_id = file_store
    spool = tmp_path / f"{run_id}-4242-{T0}-0.jsonl"
    spool.write_text(json.dumps({"key": "loss", "value": 1.0, "timestamp": T0, "step": 0}) + "\n")
    with spool.open("rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BackendError, match="being replayed by another call"):
            replay_spool(spool, tracking_uri=uri)
    assert replay_spool(spool, tracking_uri=uri) == 1
