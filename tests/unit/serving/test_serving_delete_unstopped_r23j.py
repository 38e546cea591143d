"""``serve delete`` of a service whose controller has died left replicas running, unseen:

* replica jobs: each ``Client().cancel(...)`` swallowed every error (``except Exception:
  pass``), sent no grace period (the server's default applied) and counted nothing, so a
  job whose cancel failed ran on after a delete that said "deleted"; and a replica the
  controller listed as "stopped" (its shutdown says so once its grace period is over, ended
  or not) was not asked about at all;
* replica processes: SIGKILL after the grace period came from a daemon thread of the process
  that ran the delete (the CLI), which exited at once: a replica that ignored SIGTERM ran on.

Now a delete cancels every replica job that still runs (with the grace period and reason
the controller gives), waits for the processes it stopped, and a replica it could not stop
makes the delete an error (the service is deleted) that names it, the error and the command
that stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from serving_fakes import FakeJobsServer

import aistack.client as client_mod
from aistack.errors import ConflictError
from aistack.serving import manager
from aistack.serving.launcher import process_start
from aistack.serving.spec import ServiceSpec


@pytest.fixture
def server(aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeJobsServer:
    srv = FakeJobsServer(cancel_to="CANCELLING")
    monkeypatch.setattr(client_mod, "Client", srv)
    return srv


def _stored(name: str, launcher: str, replicas: list[dict[str, Any]]) -> Path:
    """A deployed service whose controller is dead, with the replicas its state.json lists."""
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(name=name, model="builtin:echo", model_uri="builtin:echo")
    (d / "spec.json").write_text(spec.model_dump_json(indent=2))
    state = {"name": name, "launcher": launcher, "replicas": replicas}
    (d / "state.json").write_text(json.dumps(state))
    return d


def test_a_replica_job_whose_cancel_fails_makes_the_delete_an_error(
    server: FakeJobsServer,
) -> None:
    server.jobs = {"j1": "RUNNING", "j2": "RUNNING", "j3": "SUCCEEDED"}
    server.unreachable = {"j1"}
    _stored(
        "svc",
        "jobs",
        [
            {"id": "r1", "state": "ready", "handle": "j1"},
            # the dead controller's shutdown listed it "stopped": its job still runs
            {"id": "r2", "state": "stopped", "handle": "j2"},
            {"id": "r3", "state": "failed", "handle": "j3"},
        ],
    )
    with pytest.raises(ConflictError) as err:  # old code: {"deleted": True, ...}, no word
        manager.delete("svc")
    e = err.value
    assert e.message.startswith("service 'svc' was deleted, but 1 of its replicas could not")
    assert "r1 (job j1): ConnectionFailed: cannot reach the aistack server" in e.message
    assert e.hint is not None and "`aistack cancel j1`" in e.hint
    assert "aistack up --detach" in e.hint
    assert e.details["not_stopped"] == [
        {"replica": "r1", "handle": "j1", "error": e.details["not_stopped"][0]["error"]}
    ]
    assert e.details["deleted"] is True and e.details["orphans_stopped"] == 1
    # j2 cancelled with the grace period the controller gives a replica it stops; j3 ended
    assert server.cancels == [("j2", "service svc deleted", manager.REPLICA_STOP_GRACE_S)]
    assert not manager.service_dir("svc").exists()  # deleted all the same
    assert Path(e.details["kept_at"]).is_dir()


def test_jobs_cancelled_are_counted_and_a_stopping_one_is_left_alone(
    server: FakeJobsServer,
) -> None:
    server.jobs = {"j1": "RUNNING", "j2": "CANCELLING", "j4": "RUNNING"}
    _stored(
        "svc",
        "jobs",
        [
            {"id": "r1", "state": "stopping", "handle": "j1"},
            {"id": "r2", "state": "stopping", "handle": "j2"},  # its cancel went through
        ],
    )
    # a cancel the dead controller could not send, for a replica it no longer listed
    d = manager.service_dir("svc")
    st = json.loads((d / "state.json").read_text())
    st["pending_cancels"] = [{"handle": "j4", "grace_s": 10.0, "reason": "x", "replica": "r4"}]
    (d / "state.json").write_text(json.dumps(st))
    out = manager.delete("svc", timeout_s=5)
    assert out["deleted"] is True and out["orphans_stopped"] == 2
    # the grace period is at most the delete's own timeout
    assert server.cancels == [
        ("j1", "service svc deleted", 5.0),
        ("j4", "service svc deleted", 5.0),
    ]


def _replica_process(tmp_path: Path, ignore_term: bool) -> subprocess.Popen[bytes]:
    code = (
        "import signal, time\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
        + f"open({str(tmp_path / 'up')!r}, 'w').close()\n"
        + "time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_a_replica_process_that_ignores_sigterm_is_killed_before_the_delete_returns(
    server: FakeJobsServer, tmp_path: Path
) -> None:
    proc = _replica_process(tmp_path, ignore_term=True)
    try:
        handle = f"{proc.pid}@{process_start(proc.pid)}"
        _stored("svc", "process", [{"id": "r1", "state": "ready", "handle": handle}])
        out = manager.delete("svc", timeout_s=1)
        assert out["orphans_stopped"] == 1
        # old code: SIGTERM only, the SIGKILL left to a daemon thread of the (exiting) CLI
        assert proc.poll() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_a_replica_process_that_cannot_be_signalled_is_named_with_how_to_stop_it(
    server: FakeJobsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _replica_process(tmp_path, ignore_term=False)
    try:
        handle = f"{proc.pid}@{process_start(proc.pid)}"
        _stored("svc", "process", [{"id": "r1", "state": "ready", "handle": handle}])
        import aistack.serving.launcher as launcher_mod

        def refused(pid: int, sig: int) -> None:  # another user's process
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(launcher_mod.os, "killpg", refused)
        with pytest.raises(ConflictError) as err:  # old code: returned "deleted", silent
            manager.delete("svc", timeout_s=0.5)
        e = err.value
        assert f"r1 (pid {proc.pid}): still running 5.5 s after SIGTERM" in e.message
        assert e.hint is not None and f"`kill -KILL -- -{proc.pid}`" in e.hint
        assert e.details["not_stopped"][0]["pid"] == proc.pid
        assert proc.poll() is None
    finally:
        monkeypatch.undo()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
