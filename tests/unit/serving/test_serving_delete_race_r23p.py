"""A race between the server's watch and ``aistack serve delete``: kill -9 a service's
controller, delete it ~2 s later. Meanwhile the watch (server/services/watch.py) called
``manager.restart``, which started a new controller, and the delete moved the service folder
away under it: that controller ran on without its folder ("control loop tick failed:
FileNotFoundError .../state.tmp"), started a new replica, recreated ``services/NAME/`` without
``spec.json`` (``serve ls`` did not show it) and kept the service's port.

Now a spawn (restart, deploy) and a delete's marker are taken under one lock
(``services/.locks/NAME.lock``, flock: the server's process and the CLI's alike): a restart
refuses a service being deleted, a delete stops a controller still starting, the watch leaves
a service being deleted alone ("deleting"), and a controller whose folder is gone stops itself
and its replicas."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError
from aistack.serving import manager
from aistack.serving.controller import ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import AutoscaleConfig, ServiceSpec

_POPEN = subprocess.Popen  # (the fixture replaces subprocess.Popen: the manager's is the module's)


def _stored(name: str = "svc") -> Path:
    """A deployed service (local processes) whose controller is dead and listed no replica."""
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(name=name, model="builtin:echo", model_uri="builtin:echo")
    (d / "spec.json").write_text(spec.model_dump_json(indent=2))
    (d / "state.json").write_text(json.dumps({"name": name, "launcher": "process", "replicas": []}))
    return d


class _Spawns:
    """``subprocess.Popen`` of the manager: each controller it is asked for is a real process
    that sleeps (its command line names aistack.serving.controller, as a controller's does)
    and never writes controller.json, as a controller still starting."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        assert argv[1:3] == ["-m", "aistack.serving.controller"], argv
        code = "import time\ntime.sleep(120)"
        proc = _POPEN(
            [sys.executable, "-c", code, "aistack.serving.controller", *argv[3:]],
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc


@pytest.fixture
def spawns(aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spawns]:
    s = _Spawns()
    monkeypatch.setattr(manager.subprocess, "Popen", s)
    yield s
    for p in s.procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def _wait(cond: Any, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def _restart_until_starting() -> tuple[threading.Thread, list[Any]]:
    """The watch's restart of "svc" in a thread (its answer or error in the list), once its
    controller is starting (``controller.starting`` holds the child's pid)."""
    outcome: list[Any] = []

    def restart() -> None:
        try:
            outcome.append(manager.restart("svc", wait_ready_s=None))
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    starting = manager.service_dir("svc") / "controller.starting"
    assert _wait(lambda: starting.exists() and int(starting.read_text() or 0) != os.getpid())
    return t, outcome


def test_a_restart_between_the_delete_steps_starts_no_controller(
    spawns: _Spawns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch's restart while the delete runs (here: just before it moves the folder)."""
    _stored()
    seen: list[Any] = []
    bury = manager._bury

    def restart_then_bury(d: Path) -> Path:
        try:
            seen.append(manager.restart("svc", wait_ready_s=None))
        except ConflictError as exc:
            seen.append(exc)
        return bury(d)

    monkeypatch.setattr(manager, "_bury", restart_then_bury)
    out = manager.delete("svc", timeout_s=5)
    assert out["deleted"] is True
    # old code: a controller was spawned (and ran on without its folder)
    assert spawns.procs == []
    assert len(seen) == 1 and isinstance(seen[0], ConflictError)
    assert seen[0].message == "service 'svc' is being deleted"
    assert not manager.service_dir("svc").exists()


def test_a_delete_stops_a_controller_a_restart_is_starting(spawns: _Spawns) -> None:
    """The watch's restart spawned a controller that has not written controller.json yet when
    the delete begins: the delete stops it (old code: it ran on, the folder moved away)."""
    _stored()
    t, outcome = _restart_until_starting()
    assert manager.status("svc")["status"] == "starting"
    child = spawns.procs[0]
    out = manager.delete("svc", timeout_s=10)
    assert out["deleted"] is True
    assert child.poll() is not None, "the starting controller runs on after the delete"
    t.join(timeout=40)
    assert not t.is_alive()
    # the restart is told why its controller did not come up
    assert isinstance(outcome[0], ConflictError)
    assert outcome[0].message == "service 'svc' is being deleted"
    assert len(spawns.procs) == 1
    assert not manager.service_dir("svc").exists()


def test_a_spawner_that_gives_up_at_once_leaves_its_child_to_the_delete(
    spawns: _Spawns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spawner sees the delete's marker and removes controller.starting (its child not
    yet up) the moment the marker is written: the delete must know the child all the same
    (it read controller.starting after writing its marker, and missed it)."""
    d = _stored()
    spawner = manager.service_dir("svc") / "controller.starting"
    write_text = Path.write_text

    def write_then_give_up(self: Path, data: str, *a: Any, **kw: Any) -> int:
        n = write_text(self, data, *a, **kw)
        if self.name == manager.DELETING:
            spawner.unlink(missing_ok=True)
        return n

    child = spawns(
        [sys.executable, "-m", "aistack.serving.controller", "--dir", str(d)]
    )  # a controller a restart spawned: its pid in controller.starting
    spawner.write_text(str(child.pid))
    monkeypatch.setattr(Path, "write_text", write_then_give_up)
    manager.delete("svc", timeout_s=10)
    monkeypatch.undo()
    assert child.poll() is not None, "the starting controller runs on after the delete"


def test_restart_and_spawn_refuse_a_service_being_deleted(spawns: _Spawns) -> None:
    d = _stored()
    (d / manager.DELETING).write_text(str(os.getpid()))  # a delete runs (this process)
    assert manager.status("svc")["status"] == "deleting"  # was "controller down"
    with pytest.raises(ConflictError) as ei:
        manager.restart("svc", wait_ready_s=None)
    assert ei.value.message == "service 'svc' is being deleted"
    with pytest.raises(ConflictError):  # the check under the lock, whoever spawns
        manager._spawn_controller(d, "svc")
    assert spawns.procs == []
    assert (d / manager.DELETING).exists()  # not taken for one a killed delete left


def test_a_marker_left_by_a_killed_delete_does_not_block_a_restart(spawns: _Spawns) -> None:
    """Guard (passes on the old code too): a dead deleter's marker is stale."""
    d = _stored()
    dead = _POPEN([sys.executable, "-c", "pass"])
    dead.wait()
    (d / manager.DELETING).write_text(str(dead.pid))
    assert manager.status("svc")["status"] == "controller down"
    t = threading.Thread(target=lambda: _quiet(manager.restart, "svc"), daemon=True)
    t.start()
    assert _wait(lambda: len(spawns.procs) == 1)
    spawns.procs[0].kill()
    t.join(timeout=40)


def _quiet(fn: Any, *a: Any) -> None:
    try:
        fn(*a, wait_ready_s=None)
    except Exception:  # noqa: BLE001 - the spawned stand-in is killed: "exited at start"
        pass


def test_the_watch_leaves_a_service_being_deleted_alone(spawns: _Spawns) -> None:
    from aistack.server.services.watch import ServiceWatch

    d = _stored()
    (d / manager.DELETING).write_text(str(os.getpid()))
    ServiceWatch(interval_s=0.0)()
    assert spawns.procs == []  # old code: restarted it ("controller down")


def test_two_restarts_at_once_start_one_controller(spawns: _Spawns) -> None:
    """The server's watch and `aistack serve restart` together: each saw no controller and
    started one (old code); the check is now taken under the spawn's lock."""
    _stored()
    ts = [
        threading.Thread(target=lambda: _quiet(manager.restart, "svc"), daemon=True)
        for _ in range(2)
    ]
    go = threading.Barrier(2)

    def both(t: threading.Thread) -> None:
        go.wait()
        t.run()

    runners = [threading.Thread(target=both, args=(t,), daemon=True) for t in ts]
    for r in runners:
        r.start()
    assert _wait(lambda: len(spawns.procs) >= 1)
    time.sleep(1.0)  # room for a second spawn, if any
    n = len(spawns.procs)
    for p in spawns.procs:
        p.kill()
    for r in runners:
        r.join(timeout=40)
    assert n == 1


# -- the controller whose folder is gone stops itself and its replicas ----------------------------


class _Launcher:
    name = "fake"

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.stopped: list[tuple[str, str | None]] = []

    def launch(self, **kw: Any) -> str:
        self.launched.append(kw["name"])
        return f"h{len(self.launched)}"

    def status(self, handle: str) -> LaunchStatus:
        gone = any(h == handle for h, _ in self.stopped)
        return LaunchStatus(state="exited" if gone else "running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        self.stopped.append((handle, reason))


def test_a_controller_whose_folder_is_gone_stops_with_its_replicas(tmp_path: Path) -> None:
    d = tmp_path / "services" / "svc"
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(
        name="svc",
        model="builtin:echo",
        model_uri="builtin:echo",
        health_interval_s=0.05,
        autoscale=AutoscaleConfig(min_replicas=1, max_replicas=2),
    )
    (d / "spec.json").write_text(spec.model_dump_json())
    launcher = _Launcher()
    ctl = ServiceController(spec, d, launcher=launcher)  # type: ignore[arg-type]
    exits: list[bool] = []
    ctl.exit_process = lambda: exits.append(True)

    async def scenario() -> None:
        task = asyncio.create_task(ctl.run())
        for _ in range(400):
            if launcher.launched:
                break
            await asyncio.sleep(0.05)
        assert launcher.launched == ["serve-svc-r1"]
        # the delete moves the folder away (the controller was not stopped first)
        os.rename(d, tmp_path / "services" / "deleted-svc")
        # old code: the loop runs on for ever ("control loop tick failed: FileNotFoundError")
        await asyncio.wait_for(task, timeout=30)

    asyncio.run(scenario())
    assert exits == [True]
    assert launcher.stopped == [("h1", "service svc deleted")]
    assert launcher.launched == ["serve-svc-r1"]  # no replica after the folder went
    assert not d.exists()  # nothing recreated services/svc/
    assert ctl.replicas["r1"].state == "stopped"


def test_a_controller_starts_no_replica_once_its_folder_is_gone(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    launcher = _Launcher()
    d = tmp_path / "svc"
    d.mkdir()
    (d / "spec.json").write_text(spec.model_dump_json())
    ctl = ServiceController(spec, d, launcher=launcher)  # type: ignore[arg-type]
    (d / "spec.json").unlink()  # the delete moved it away
    assert ctl._try_new_replica() is False
    assert launcher.launched == [] and ctl._consecutive_start_failures == 0


def test_a_restart_that_missed_the_marker_still_says_the_service_is_being_deleted(
    spawns: _Spawns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restart's wait slept through the whole delete (a loaded CI machine): the marker
    moved away with the folder before it looked again, and it saw only its controller exit
    (code -15). It said "exited at start" (CI run of b0bd5da); the service is being deleted."""
    _stored()
    deleting = manager._deleting
    deleted = threading.Event()

    def asleep_in_the_restart(name: str) -> bool:
        # the restart's check after its spawn: it wakes up once the delete is over
        if threading.current_thread() is not threading.main_thread() and spawns.procs:
            assert deleted.wait(30)
        return deleting(name)

    monkeypatch.setattr(manager, "_deleting", asleep_in_the_restart)
    t, outcome = _restart_until_starting()
    assert manager.delete("svc", timeout_s=10)["deleted"] is True
    assert spawns.procs[0].poll() is not None
    deleted.set()
    t.join(timeout=40)
    assert not t.is_alive()
    assert isinstance(outcome[0], ConflictError)
    assert outcome[0].message == "service 'svc' is being deleted"
    assert not manager.service_dir("svc").exists()
