"""Impossible or broken services end clearly: ``serve deploy`` refuses requests no node can
hold (and bad sizes) up front, and a service whose replicas cannot start is marked *failed* with
the reason after a bounded number of tries (not retried forever, a traceback per tick)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import ConflictError, ValidationError
from aistack.serving import manager
from aistack.serving.controller import ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ReplicaResources, ServiceSpec


class _Launcher:
    """Replicas that exit at once (a model that cannot load), or a submit that is refused."""

    name = "fake"

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.launched: list[str] = []

    def launch(self, *, name: str, **_kw: Any) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.launched.append(name)
        return str(len(self.launched))

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="exited", exit_code=1, reason="exit code 1")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def _controller(tmp_path: Path, launcher: _Launcher, **kw: Any) -> ServiceController:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo", **kw)
    (tmp_path / "logs").mkdir(exist_ok=True)
    return ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]


def _ticks(ctl: ServiceController, n: int) -> None:
    async def go() -> None:
        for _ in range(n):
            await ctl.tick()
            ctl._next_start_t = 0.0  # skip the backoff wait, not the counting

    asyncio.run(go())


def test_refused_submit_fails_the_service_at_once(tmp_path: Path) -> None:
    why = "resources.gpus: asks for 1 GPUs per node but the largest node has 0"
    launcher = _Launcher(refuse=ValidationError(why))
    ctl = _controller(tmp_path, launcher)
    _ticks(ctl, 5)  # used to raise out of every tick (a traceback in controller.log each time)
    assert ctl.failed is not None and why in ctl.failed
    st = ctl.status()
    assert st["failed"] == ctl.failed and st["replicas"] == []
    assert manager._summary_state(st) == "failed"


def test_crash_loop_ends_failed_after_max_start_failures(tmp_path: Path) -> None:
    launcher = _Launcher()
    ctl = _controller(tmp_path, launcher, max_start_failures=4)
    _ticks(ctl, 30)
    assert len(launcher.launched) == 4  # not one per tick forever
    assert ctl.failed is not None
    assert "4 replica starts failed in a row" in ctl.failed and "exit code 1" in ctl.failed
    # serve scale (or a successful update) clears the failure and tries again
    ctl.clear_failure("serve scale")
    _ticks(ctl, 1)
    assert len(launcher.launched) == 5 and ctl.failed is None


def test_crash_loop_backs_off(tmp_path: Path) -> None:
    import time

    ctl = _controller(tmp_path, _Launcher(), max_start_failures=10)

    async def go() -> None:
        for _ in range(3):
            ctl._next_start_t = 0.0
            await ctl.tick()  # starts a replica
            await ctl.tick()  # sees it exit

    asyncio.run(go())
    assert ctl.failed is None
    assert ctl._next_start_t > time.monotonic()  # the third failure waits before a retry


def test_wait_ready_stops_when_the_service_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def status(name: str) -> dict[str, Any]:
        calls.append(name)
        return {"ready_replicas": 0, "failed": "5 replica starts failed in a row", "replicas": []}

    monkeypatch.setattr(manager, "status", status)
    with pytest.raises(ConflictError, match="failed: 5 replica starts") as ei:
        manager.wait_ready("svc", 1, 60.0)
    assert len(calls) == 1 and "serve delete svc" in (ei.value.hint or "")


def test_check_resources_fit_uses_the_submit_message() -> None:
    node = Node(
        name="n1",
        cpus=2,
        memory_mb=4096,
        gpus=(GpuDevice(index=0, uuid="u", name="H100", memory_mb=80_000),),
    )
    manager.check_resources_fit(ReplicaResources(gpus=1, cpus=2, memory="2GB"), [node])
    with pytest.raises(
        ValidationError, match="asks for 2 GPUs per node but the largest node has 1"
    ):
        manager.check_resources_fit(ReplicaResources(gpus=2), [node])
    with pytest.raises(ValidationError, match="asks for 64 CPUs per node") as ei:
        manager.check_resources_fit(ReplicaResources(cpus=64), [node])
    # the field, not --cpus (the CLI says it as its option), and to what: it said "lower `cpus`
    # (the largest node has 2)", which the CLI printed as "(lower --cpus (the largest node ...))"
    assert ei.value.hint == "lower `cpus` to at most 2"
    assert ei.value.details == {"field": "cpus"}
    with pytest.raises(ValidationError, match="resources.memory") as ei:
        manager.check_resources_fit(ReplicaResources(memory="1TB"), [node])
    assert ei.value.message == (
        "resources.memory: asks for 1,048,576 MB per node but the largest node has 4,096 MB "
        "(each replica is one job on one node)"
    )
    assert ei.value.hint == "lower `memory` to at most 4096MB"


def test_deploy_refuses_impossible_requests_up_front(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Client:
        def __init__(self, **_kw: Any) -> None:
            pass

        def cluster(self) -> dict[str, Any]:
            return {"nodes": [{"name": "n1", "cpus": 2, "memory_mb": 8192, "gpus": []}]}

    monkeypatch.setattr("aistack.client.Client", Client)
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    with pytest.raises(ValidationError, match="resources.memory: cannot read '4XB' as a size"):
        manager.deploy("builtin:echo", name="b10", memory="4XB", launcher="process")
    with pytest.raises(
        ValidationError, match="asks for 1 GPU per node but this cluster has no GPUs"
    ):
        manager.deploy("builtin:echo", name="b8", gpus=1, launcher="jobs")
    with pytest.raises(ValidationError, match="asks for 64 CPUs per node"):
        manager.deploy("builtin:echo", name="b17", cpus=64, launcher="jobs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(ValidationError, match=f"port: cannot listen on 127.0.0.1:{busy}") as ei:
            manager.deploy("builtin:echo", name="b18", port=busy, launcher="process")
        assert ei.value.details == {"field": "port"}
        assert ei.value.hint == "pick another port, or leave `port` out to get a free one"
    assert spawned == []
    assert manager.list_services() == []  # nothing left behind to crash-loop


def test_deploy_whose_controller_cannot_start_leaves_nothing(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def spawn(d: Path, name: str, env: Any = None) -> None:
        (d / "logs" / "controller.log").write_text("ERROR cannot bind 127.0.0.1:1: in use\n")
        raise ConflictError(f"the controller of {name!r} exited at start (code 2)")

    monkeypatch.setattr(manager, "_spawn_controller", spawn)
    with pytest.raises(ConflictError, match="cannot bind") as ei:
        manager.deploy("builtin:echo", name="b19", launcher="process", wait_ready_s=None)
    assert manager.list_services() == []
    kept = Path((ei.value.hint or "").rsplit(" ", 1)[-1])
    assert (kept / "controller.log").exists()
