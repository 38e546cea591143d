"""A replica job's cancel that did not reach the aistack server is sent again by
``JobLauncher.status`` — which the controller asks only of the replicas that still run. The
cancels still to send lived only in the launcher's memory:

* a replica stopped as "failed" (not ready in time, failed health checks) while the server
  was unreachable was never asked about again: its job ran on, unseen;
* a controller restarted over the service lost them: a failed replica's job ran on.

Now the controller asks about every job with a cancel to send, each tick, and keeps them in
``state.json`` (``pending_cancels``), which a restarted controller adopts (with the grace
period and reason they had). ``ProcessLauncher.stop`` refused by the OS (another user's
process) warns with the PID and the command that stops it (it was silent)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serving_fakes import FakeJobsServer

import aistack.serving.launcher as launcher_mod
from aistack.errors import ConnectionFailed
from aistack.serving.controller import Replica, ServiceController
from aistack.serving.launcher import JobLauncher, ProcessLauncher
from aistack.serving.spec import ServiceSpec

WHY = "not ready after 0.01 s"


def _spec() -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "ready_timeout_s": 0.01,
            "autoscale": {"min_replicas": 0, "max_replicas": 1},
        }
    )


def _controller(tmp_path: Path, srv: FakeJobsServer) -> ServiceController:
    return ServiceController(_spec(), tmp_path, launcher=JobLauncher(client=srv))  # type: ignore[arg-type]


def _starting(ctl: ServiceController, tmp_path: Path) -> Replica:
    rep = Replica(
        id="r1",
        model_uri="builtin:echo",
        handle="j1",
        state="starting",
        ready_file=tmp_path / "r1.json",
        log_path=tmp_path / "r1.log",
        run_t=1.0,  # long ago: not ready in time at the next tick
    )
    ctl.replicas["r1"] = rep
    ctl._seq = 1
    ctl.desired = 0
    return rep


def _fail_r1_while_the_cancel_fails(ctl: ServiceController, srv: FakeJobsServer) -> None:
    real = srv.cancel

    def failing(*a: Any, **kw: Any) -> Any:
        raise ConnectionFailed("connection reset")

    srv.cancel = failing  # type: ignore[method-assign]
    asyncio.run(ctl.tick())  # r1 not ready in time: stopped as failed; the cancel fails
    srv.cancel = real  # type: ignore[method-assign]
    assert ctl.replicas["r1"].state == "failed" and srv.jobs["j1"] == "RUNNING"


def test_a_failed_replicas_job_is_cancelled_once_the_server_answers(tmp_path: Path) -> None:
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"
    ctl = _controller(tmp_path, srv)
    _starting(ctl, tmp_path)
    _fail_r1_while_the_cancel_fails(ctl, srv)
    srv.down = True
    asyncio.run(ctl.tick())  # still down: kept
    srv.down = False
    asyncio.run(ctl.tick())
    # old code: [] (a "failed" replica was never asked about: its job ran on)
    assert srv.cancels == [("j1", "stopped by service svc: " + WHY, 10.0)]
    assert srv.jobs["j1"] == "CANCELLED"
    asyncio.run(ctl.tick())
    assert len(srv.cancels) == 1 and ctl.status()["pending_cancels"] == []


def test_a_restarted_controller_sends_the_cancel_its_predecessor_could_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"
    ctl = _controller(tmp_path, srv)
    _starting(ctl, tmp_path)
    _fail_r1_while_the_cancel_fails(ctl, srv)
    ctl.write_state()
    kept = json.loads((tmp_path / "state.json").read_text())["pending_cancels"]
    assert kept == [
        {
            "handle": "j1",
            "grace_s": 10.0,
            "reason": "stopped by service svc: " + WHY,
            "failures": 2,  # (tried again in the same tick)
            "replica": "r1",
        }
    ]
    # the controller dies; a new one (a new launcher: nothing in memory) takes over
    ctl2 = _controller(tmp_path, srv)
    ctl2.adopt()
    assert ctl2.replicas["r1"].state == "failed"  # listed as it ended
    with caplog.at_level(logging.INFO):
        asyncio.run(ctl2.tick())
    # old code: [] (the job of the failed replica ran on after the restart)
    assert srv.cancels == [("j1", "stopped by service svc: " + WHY, 10.0)]
    assert any("after 2 failed tries" in r.getMessage() for r in caplog.records)


def test_a_restarted_controller_stops_an_adopted_stopping_replica_again(
    tmp_path: Path,
) -> None:
    """Guard (passes on the old code too: an adopted "stopping" replica is drained and
    stopped again): its cancel is sent once, with its reason."""
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"
    why = "scaled down by the autoscaler of service svc (2 → 1 replicas)"
    state = {
        "replicas": [{"id": "r1", "state": "stopping", "handle": "j1", "reason": why}],
        "pending_cancels": [{"handle": "j1", "grace_s": 10.0, "reason": why, "failures": 2}],
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    ctl = _controller(tmp_path, srv)
    ctl.adopt()
    asyncio.run(ctl.tick())
    asyncio.run(ctl.tick())
    assert srv.cancels == [("j1", why, 10.0)]
    assert ctl.replicas["r1"].state == "stopped"


@pytest.mark.parametrize(
    "entry",
    [
        "j1",
        {"grace_s": 10.0},
        {"handle": "j1", "grace_s": "soon"},
        {"handle": "j1", "grace_s": float("nan")},
        {"handle": "j1", "grace_s": 7200.0},
        {"handle": "", "grace_s": 1.0},
    ],
)
def test_pending_cancels_not_written_by_a_controller_are_left_out(
    tmp_path: Path, entry: Any
) -> None:
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"
    (tmp_path / "state.json").write_text(json.dumps({"replicas": [], "pending_cancels": [entry]}))
    ctl = _controller(tmp_path, srv)
    ctl.adopt()
    asyncio.run(ctl.tick())
    assert srv.cancels == [] and ctl.status()["pending_cancels"] == []


def test_a_replica_process_that_may_not_be_signalled_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = ProcessLauncher()
    handle = launcher.launch(
        name="svc-r1",
        command=[sys.executable, "-c", "import time; time.sleep(300)"],
        env={},
        resources={},
        priority=0,
        log_path=tmp_path / "r1.log",
    )
    pid = launcher_mod.handle_pid(handle)
    try:

        def refused(pid: int, sig: int) -> None:  # another user's process
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(launcher_mod.os, "killpg", refused)
        with caplog.at_level(logging.INFO, logger="aistack.serving.launcher"):
            launcher.stop(handle, grace_s=0.1, reason="service svc deleted")
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1  # old code: nothing at all
        msg = warned[0].getMessage()
        assert f"cannot stop replica process {handle} (service svc deleted)" in msg
        assert f"SIGTERM to its process group {pid} was refused (Operation not permitted)" in msg
        assert f"`kill -TERM -- -{pid}`" in msg and "stays 'stopping'" in msg
        assert launcher.status(handle).state == "running"
    finally:
        monkeypatch.undo()
        proc: subprocess.Popen[bytes] = launcher._procs[handle]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)


def test_a_tick_during_the_shutdown_starts_no_replica(tmp_path: Path) -> None:
    """`serve delete` of a service: the shutdown stopped its replica while a tick awaited
    health checks; the tick then saw 0 of 1 replicas and started one, which the shutdown had
    already passed over: a replica job left "starting" after the delete (seen by hand)."""
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"

    launched: list[str] = []

    class _Launcher(JobLauncher):
        def launch(self, **kw: Any) -> str:
            launched.append(kw["name"])
            return "j2"

    spec = _spec().model_copy(
        update={"autoscale": _spec().autoscale.model_copy(update={"min_replicas": 1})}
    )
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher(client=srv))  # type: ignore[arg-type]
    rep = _starting(ctl, tmp_path)
    rep.state, rep.run_t = "ready", None
    ctl.desired = 1
    ctl._stopping = True  # what shutdown() sets first
    ctl._stop_replica(rep, "service svc deleted")
    asyncio.run(ctl.tick())
    assert launched == []  # old code: ['serve-svc-r2']
    assert [r.id for r in ctl.replicas.values()] == ["r1"]
