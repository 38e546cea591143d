"""A replica job whose cancel did not reach the aistack server (down, restarting, failing)
kept running: ``JobLauncher.stop`` caught every error and logged it at INFO as if the job had
already ended, the controller marked the replica "stopping" and never asked again, so a
scaled-down replica held its GPUs with no warning. Now the failure is a WARNING naming the
job, why it was stopped and the error, and the cancel is sent again when the controller next
asks the replica's status (each tick), until it goes through or the job has ended."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from serving_fakes import FakeJobsServer

from aistack.errors import ConflictError, ConnectionFailed, NotFoundError
from aistack.serving.controller import Replica, ServiceController
from aistack.serving.launcher import JobLauncher
from aistack.serving.spec import ServiceSpec

WHY = "scaled down by the autoscaler of service svc (2 → 1 replicas)"


def test_a_cancel_that_cannot_reach_the_server_is_a_warning_and_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv = FakeJobsServer()
    srv.jobs["j1"] = "RUNNING"
    launcher = JobLauncher(client=srv)
    srv.down = True
    with caplog.at_level(logging.INFO, logger="aistack.serving.launcher"):
        launcher.stop("j1", grace_s=30.0, reason=WHY)  # never raises
    [rec] = [r for r in caplog.records if r.name == "aistack.serving.launcher"]
    assert rec.levelno == logging.WARNING  # old code: INFO
    msg = rec.getMessage()
    assert "replica job j1" in msg and WHY in msg and "cannot reach the aistack server" in msg
    assert "may still be running" in msg and "`aistack cancel j1`" in msg
    # the server is back: the next status check sends the cancel again, with its grace/reason
    srv.down = False
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aistack.serving.launcher"):
        assert launcher.status("j1").state == "running"  # (the job was running when asked)
    assert srv.cancels == [("j1", WHY, 30.0)]  # old code: [] (the replica ran on)
    assert any("after 1 failed tries" in r.getMessage() for r in caplog.records)
    assert launcher.status("j1").state == "exited"
    assert srv.cancels == [("j1", WHY, 30.0)]  # sent once


def test_a_cancel_that_keeps_failing_is_sent_each_check_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv = FakeJobsServer()
    srv.jobs["j2"] = "RUNNING"
    srv.cancel_error = RuntimeError("500 internal server error")
    launcher = JobLauncher(client=srv)
    with caplog.at_level(logging.INFO, logger="aistack.serving.launcher"):
        launcher.stop("j2", grace_s=5.0, reason=WHY)
        for _ in range(3):
            assert launcher.status("j2").state == "running"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # not one per tick
    srv.cancel_error = None
    launcher.status("j2")
    assert srv.cancels == [("j2", WHY, 5.0)]


def test_a_job_that_ended_meanwhile_is_not_cancelled_again() -> None:
    srv = FakeJobsServer()
    srv.jobs["j3"] = "RUNNING"
    launcher = JobLauncher(client=srv)
    srv.down = True
    launcher.stop("j3", reason=WHY)
    srv.down = False
    srv.jobs["j3"] = "SUCCEEDED"  # it ended by itself
    assert launcher.status("j3").state == "exited"
    assert srv.cancels == []


@pytest.mark.parametrize(
    "error", [NotFoundError("job j4 not found"), ConflictError("job j4 is already SUCCEEDED")]
)
def test_nothing_to_stop_is_no_warning(caplog: pytest.LogCaptureFixture, error: Exception) -> None:
    srv = FakeJobsServer()
    srv.jobs["j4"] = "SUCCEEDED"
    srv.cancel_error = error
    launcher = JobLauncher(client=srv)
    with caplog.at_level(logging.INFO, logger="aistack.serving.launcher"):
        launcher.stop("j4", reason=WHY)
        assert launcher.status("j4").state == "exited"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert srv.cancels == []


def test_a_scaled_down_replica_is_stopped_once_the_server_is_back(tmp_path: Path) -> None:
    """Through the controller: the scale-down happens while the aistack server is down; the
    replica stays "stopping" and its job is cancelled (and the replica then stopped) once
    the server answers again."""
    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {
                "min_replicas": 1,
                "max_replicas": 2,
                "downscale_cooldown_s": 0,
                "upscale_delay_s": 0,
            },
        }
    )
    srv = FakeJobsServer()
    launcher = JobLauncher(client=srv)
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    for i in (1, 2):
        srv.jobs[f"j{i}"] = "RUNNING"
        ctl.replicas[f"r{i}"] = Replica(
            id=f"r{i}",
            model_uri="builtin:echo",
            handle=f"j{i}",
            state="ready",
            ready_file=tmp_path / f"r{i}.json",
            log_path=tmp_path / f"r{i}.log",
        )
    ctl._seq = 2
    ctl.desired = 2

    async def go() -> None:
        await ctl.tick()  # no load: 2 → 1, one replica draining
        draining = [r for r in ctl.replicas.values() if r.state == "draining"]
        assert len(draining) == 1
        srv.down = True
        await ctl.tick()  # status unknown this tick: nothing decided
        srv.down = False
        # the status check works but the cancel does not reach the server
        real_cancel = srv.cancel

        def failing(*a: Any, **kw: Any) -> Any:
            raise ConnectionFailed("connection reset")

        srv.cancel = failing  # type: ignore[method-assign]
        await ctl.tick()  # drained: stopped (the cancel failed)
        assert draining[0].state == "stopping" and srv.jobs[str(draining[0].handle)] == "RUNNING"
        srv.cancel = real_cancel  # type: ignore[method-assign]
        await ctl.tick()  # the cancel is sent again (old code: never; it ran on)
        assert srv.jobs[str(draining[0].handle)] == "CANCELLED"
        await ctl.tick()
        assert draining[0].state == "stopped"

    asyncio.run(go())
