"""replay_spool against an in-memory server: resumable after a failure part way, each point once."""

from __future__ import annotations

import fcntl
import json
import logging

import pytest

pytest.importorskip("mlflow")

from aistack.errors import BackendError, ValidationError  # noqa: E402
from aistack.mlops import spool as spool_mod  # noqa: E402


class _Crash(BaseException):
    """The replaying process dies here (not an Exception: nothing in replay_spool catches it)."""


class Server:
    """What a tracking server stores, shared by the clients of successive replays."""

    def __init__(self) -> None:
        self.points: list[tuple] = []


class Client:
    """log_batch stores in ``server``; get_metric_history answers from it. Call ``fail_on``
    (1-based) raises ``exc`` before storing, or after storing when ``landed`` (the request
    reached the server, the answer was lost)."""

    def __init__(self, server, fail_on=None, landed=False, exc=None) -> None:
        self.server = server
        self.calls = 0
        self.sizes: list[int] = []
        self.fail_on = fail_on
        self.landed = landed
        self.exc = exc if exc is not None else ConnectionError("server went away")

    def log_batch(self, run_id, metrics):
        assert run_id == "run1"
        self.calls += 1
        failing = self.calls == self.fail_on
        if failing and not self.landed:
            raise self.exc
        self.server.points.extend((m.key, m.value, m.timestamp, m.step) for m in metrics)
        self.sizes.append(len(metrics))
        if failing:
            raise self.exc

    def get_metric_history(self, run_id, key):
        from mlflow.entities import Metric

        assert run_id == "run1"
        return [Metric(k, v, ts, st) for k, v, ts, st in self.server.points if k == key]


def _spool(tmp_path, n: int = 2500):
    path = tmp_path / "run1-4242-1700000000000-0.jsonl"
    rows = [
        {"key": f"m{i % 3}", "value": i / 7, "timestamp": 1000 + i, "step": i} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = sorted((r["key"], r["value"], r["timestamp"], r["step"]) for r in rows)
    return path, expected


def _use(monkeypatch, client) -> None:
    monkeypatch.setattr(spool_mod, "mlflow_client", lambda uri=None: client)


def _first_replay_fails_on_chunk_2(tmp_path, monkeypatch, **kw):
    server = Server()
    spool, expected = _spool(tmp_path)
    _use(monkeypatch, Client(server, fail_on=2, **kw))
    return server, spool, expected


def test_a_replay_that_fails_part_way_resumes_where_it_stopped(tmp_path, monkeypatch):
    server, spool, expected = _first_replay_fails_on_chunk_2(tmp_path, monkeypatch)
    with pytest.raises(BackendError) as ei:
        spool_mod.replay_spool(spool)
    err = ei.value
    assert "1000 of 2500 points were accepted" in err.message
    assert "spool file is kept" in err.message
    assert f"replay_spool({str(spool)!r}) again" in err.hint
    assert err.details["pending"] == 1500
    assert len(server.points) == 1000 and spool.exists()
    progress = spool.with_name(spool.name + ".progress")
    assert json.loads(progress.read_text())["done"] == 1000

    again = Client(server)
    _use(monkeypatch, again)
    assert spool_mod.replay_spool(spool) == 1500  # only what was not accepted
    assert again.sizes == [1000, 500]
    assert sorted(server.points) == expected  # every point exactly once
    assert not spool.exists() and not progress.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "exc", [ConnectionError("read timed out"), _Crash()], ids=["timeout", "crash"]
)
def test_a_chunk_accepted_before_progress_was_written_is_not_sent_twice(tmp_path, monkeypatch, exc):
    # chunk 2 reaches the server, then the answer is lost (timeout) or the process dies before
    # the progress file says so: the next replay finds those points in the run's history
    server, spool, expected = _first_replay_fails_on_chunk_2(
        tmp_path, monkeypatch, landed=True, exc=exc
    )
    with pytest.raises(BackendError if isinstance(exc, Exception) else _Crash):
        spool_mod.replay_spool(spool)
    assert len(server.points) == 2000
    _use(monkeypatch, Client(server))
    assert spool_mod.replay_spool(spool) == 500
    assert sorted(server.points) == expected
    assert not spool.exists()


@pytest.mark.parametrize(
    "content",
    ["not json", '{"done": 1000}', '{"done": -5, "sending_to": null, "spool_bytes": 1}', ""],
    ids=["garbage", "fields-missing", "bad-values", "empty"],
)
def test_a_corrupt_progress_file_loses_nothing_and_says_so(tmp_path, monkeypatch, caplog, content):
    server, spool, expected = _first_replay_fails_on_chunk_2(tmp_path, monkeypatch)
    with pytest.raises(BackendError):
        spool_mod.replay_spool(spool)
    spool.with_name(spool.name + ".progress").write_text(content)
    _use(monkeypatch, Client(server))
    with caplog.at_level(logging.WARNING, logger="aistack.mlops.logger"):
        assert spool_mod.replay_spool(spool) == 1500
    assert sorted(server.points) == expected  # nothing lost, nothing twice (history checked)
    assert "ignoring it and checking all points" in caplog.text


def test_a_progress_file_of_other_spool_content_is_ignored(tmp_path, monkeypatch, caplog):
    server, spool, expected = _first_replay_fails_on_chunk_2(tmp_path, monkeypatch)
    with pytest.raises(BackendError):
        spool_mod.replay_spool(spool)
    with spool.open("a") as f:  # edited by hand after the failed replay
        f.write(json.dumps({"key": "m0", "value": 1.5, "timestamp": 9, "step": 9999}) + "\n")
    expected = sorted([*expected, ("m0", 1.5, 9, 9999)])
    _use(monkeypatch, Client(server))
    with caplog.at_level(logging.WARNING, logger="aistack.mlops.logger"):
        assert spool_mod.replay_spool(spool) == 1501
    assert sorted(server.points) == expected
    assert "written for a" in caplog.text


def test_two_replays_of_one_file_at_once_are_refused(tmp_path, monkeypatch):
    server = Server()
    spool, expected = _spool(tmp_path, n=10)
    _use(monkeypatch, Client(server))
    with spool.open("rb") as other:  # another replay holds the file
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BackendError, match="being replayed by another call"):
            spool_mod.replay_spool(spool)
    assert server.points == [] and spool.exists()
    assert spool_mod.replay_spool(spool) == 10
    assert sorted(server.points) == expected


def test_a_bad_spool_line_is_named_and_nothing_is_sent(tmp_path, monkeypatch):
    server = Server()
    spool, _ = _spool(tmp_path, n=5)
    lines = spool.read_text().splitlines()
    lines[3] = '{"key": "loss", "value": 1.0}'
    spool.write_text("\n".join(lines) + "\n")
    _use(monkeypatch, Client(server))
    with pytest.raises(ValidationError, match=r"line 4: not a metric point") as ei:
        spool_mod.replay_spool(spool)
    assert "fix or delete that line" in ei.value.hint
    assert server.points == [] and spool.exists()


def test_progress_that_cannot_be_written_stops_before_sending(tmp_path, monkeypatch):
    server = Server()
    spool, expected = _spool(tmp_path, n=10)
    _use(monkeypatch, Client(server))

    def no_fsync(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(spool_mod.os, "fsync", no_fsync)
        with pytest.raises(BackendError, match="could not record replay progress") as ei:
            spool_mod.replay_spool(spool)
    assert "replay the copy" in ei.value.hint
    assert server.points == [] and spool.exists()
    assert spool_mod.replay_spool(spool) == 10
    assert sorted(server.points) == expected
