"""Manager answers that said too little:

* a delete returned only how many replicas it had stopped itself (``orphans_stopped``), so
  ``serve delete`` could not name them: now ``orphans`` lists each (replica, job id or
  PID@START, pid), the count kept;
* ``serve logs --replica r9`` of an unknown replica said the ids "are in its status": now it
  lists the service's replica ids;
* a scale with nothing to change said "the service's present limits are in its status": now
  it says them."""

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
from aistack.errors import ConflictError, NotFoundError, ValidationError
from aistack.serving import manager
from aistack.serving.launcher import process_start
from aistack.serving.spec import AutoscaleConfig, ServiceSpec


@pytest.fixture
def server(aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeJobsServer:
    srv = FakeJobsServer(cancel_to="CANCELLING")
    monkeypatch.setattr(client_mod, "Client", srv)
    return srv


def _stored(
    name: str, launcher: str, replicas: list[dict[str, Any]], *, lo: int = 1, hi: int = 4
) -> Path:
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(
        name=name,
        model="builtin:echo",
        model_uri="builtin:echo",
        autoscale=AutoscaleConfig(min_replicas=lo, max_replicas=hi),
    )
    (d / "spec.json").write_text(spec.model_dump_json(indent=2))
    (d / "state.json").write_text(
        json.dumps({"name": name, "launcher": launcher, "replicas": replicas})
    )
    return d


# -- 1. a delete names the replicas it stopped ---------------------------------------------------


def test_a_delete_lists_the_replica_jobs_it_stopped(server: FakeJobsServer) -> None:
    server.jobs = {"j1": "RUNNING", "j2": "SUCCEEDED", "j3": "RUNNING"}
    _stored(
        "svc",
        "jobs",
        [
            {"id": "r1", "state": "ready", "handle": "j1"},
            {"id": "r2", "state": "stopped", "handle": "j2"},
            {"id": "r3", "state": "stopped", "handle": "j3"},
        ],
    )
    out = manager.delete("svc", timeout_s=5)
    assert out["orphans_stopped"] == 2  # kept for earlier callers
    assert out["orphans"] == [
        {"replica": "r1", "handle": "j1", "pid": None},
        {"replica": "r3", "handle": "j3", "pid": None},
    ]


def test_a_partial_delete_lists_the_ones_it_did_stop(server: FakeJobsServer) -> None:
    server.jobs = {"j1": "RUNNING", "j2": "RUNNING"}
    server.unreachable = {"j2"}
    _stored(
        "svc",
        "jobs",
        [
            {"id": "r1", "state": "ready", "handle": "j1"},
            {"id": "r2", "state": "ready", "handle": "j2"},
        ],
    )
    with pytest.raises(ConflictError) as ei:
        manager.delete("svc", timeout_s=5)
    d = ei.value.details
    assert d["orphans_stopped"] == 1
    assert d["orphans"] == [{"replica": "r1", "handle": "j1", "pid": None}]
    assert [f["handle"] for f in d["not_stopped"]] == ["j2"]


def test_a_delete_lists_the_replica_processes_it_stopped(
    server: FakeJobsServer, tmp_path: Path
) -> None:
    code = f"import time\nopen({str(tmp_path / 'up')!r}, 'w').close()\ntime.sleep(300)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "up").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        handle = f"{proc.pid}@{process_start(proc.pid)}"
        _stored("svc", "process", [{"id": "r1", "state": "ready", "handle": handle}])
        out = manager.delete("svc", timeout_s=5)
        assert out["orphans_stopped"] == 1
        assert out["orphans"] == [{"replica": "r1", "handle": handle, "pid": proc.pid}]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_a_delete_that_stopped_nothing_lists_nothing(server: FakeJobsServer) -> None:
    _stored("svc", "process", [])
    out = manager.delete("svc", timeout_s=5)
    assert (out["orphans_stopped"], out["orphans"]) == (0, [])


# -- 2. logs of an unknown replica lists the replica ids -----------------------------------------


def test_logs_of_an_unknown_replica_lists_the_replica_ids(aistack_home: Path) -> None:
    d = _stored(
        "svc",
        "process",
        [
            {"id": "r2", "state": "ready", "handle": "1@1"},
            {"id": "r10", "state": "starting", "handle": "2@2"},
        ],
    )
    (d / "logs" / "controller.log").write_text("up\n")
    (d / "logs" / "r1.log").write_text("an ended replica\n")  # not in state.json any more
    with pytest.raises(NotFoundError) as ei:
        manager.logs("svc", replica="r9")
    e = ei.value
    assert e.message == "service 'svc' has no replica 'r9'; its replicas: r1, r2, r10"
    assert e.hint == (
        "pass one of them (e.g. `replica` r10) or leave `replica` out for every log; "
        "`aistack serve status svc` (GET /api/v1/services/svc) says which one is which"
    )
    assert e.details == {"field": "replica"}
    assert manager.logs("svc", replica="r1") == {"r1": ["an ended replica"]}


def test_the_cli_names_the_replica_flag(aistack_home: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli import serve as serve_cli

    _stored("svc", "process", [{"id": "r1", "state": "ready", "handle": "1@1"}])
    res = CliRunner().invoke(serve_cli.app, ["logs", "svc", "--replica", "r9"])
    err = res.exception
    assert isinstance(err, NotFoundError), res.output
    assert err.message == "service 'svc' has no replica 'r9'; its replicas: r1"
    assert err.hint is not None and err.hint.startswith("pass one of them (e.g. --replica r1)")


# -- 3. a scale with nothing to change says the present limits ----------------------------------


def test_scale_with_nothing_to_change_says_thepresent_limits(aistack_home: Path) -> None:
    """The service's controller is down (its status is state.json's, without limits): they
    come from spec.json."""
    _stored("svc", "process", [], lo=2, hi=1 + 2)
    with pytest.raises(ValidationError) as ei:
        manager.scale("svc")
    assert ei.value.message == (
        "scale: nothing to change: give min_replicas, max_replicas or both; svc now has min 2 "
        "replicas, max 3 replicas"
    )
    assert ei.value.hint == (
        "e.g. `min_replicas` 1 and `max_replicas` 4 (0 to 256 replicas, the maximum at least 1)"
    )
    assert "present limits are in its status" not in str(ei.value)


def test_scale_of_no_service_is_not_found_first(aistack_home: Path) -> None:
    with pytest.raises(NotFoundError):
        manager.scale("nosuch")


def test_one_replica_is_singular(aistack_home: Path) -> None:
    from aistack.serving.spec import nothing_to_scale

    e = nothing_to_scale(name="svc", present=(1, 1))
    assert e.message.endswith("; svc now has min 1 replica, max 1 replica")
    e = nothing_to_scale(name="svc", present=(0, 1))
    assert e.message.endswith("; svc now has min 0 replicas, max 1 replica")
