"""A restarted controller adopts the replicas of ``state.json`` even when the launcher cannot
say how they are: it used to raise out of ``adopt()``, before the control loop's first tick,
so the control loop of the service never ran (the lifespan task died unobserved)."""

from __future__ import annotations

import json
from pathlib import Path

from aistack.errors import ConnectionFailed, NotFoundError
from aistack.serving.controller import ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ServiceSpec


class _Launcher:
    """Replica jobs: h1 runs, h2 was deleted, h3 cannot be asked about (server down), h4
    ended."""

    name = "fake"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def status(self, handle: str) -> LaunchStatus:
        self.asked.append(handle)
        if handle == "h2":
            raise NotFoundError("job h2 not found")
        if handle == "h3":
            raise ConnectionFailed("the aistack server at http://127.0.0.1:1 is unreachable")
        return LaunchStatus(state="exited" if handle == "h4" else "running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        raise AssertionError("nothing is stopped by adopt")


def test_adopt_survives_a_launcher_that_cannot_answer(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    listed = [
        {"id": f"r{i}", "state": "ready", "handle": f"h{i}", "model": "builtin:echo"}
        for i in range(1, 5)
    ]
    (tmp_path / "state.json").write_text(json.dumps({"replicas": listed, "desired_replicas": 3}))
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    ctl.adopt()
    assert launcher.asked == ["h1", "h2", "h3", "h4"]
    # r2's job is gone; r3 is kept (it may run: the tick asks again), r4 ended
    assert {rid: r.state for rid, r in ctl.replicas.items()} == {
        "r1": "starting",
        "r3": "starting",
    }
    assert ctl.desired == 2
    # no id the previous controller used (and its events may name) is given again
    assert ctl._seq == 4


def test_the_ids_of_ended_replicas_are_not_reused(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    listed = [{"id": "r7", "state": "ready", "handle": "h4", "model": "builtin:echo"}]
    events = [{"t": 1.0, "kind": "replica", "message": "replica r7 ready after 1.0 s"}]
    (tmp_path / "state.json").write_text(json.dumps({"replicas": listed, "events": events}))
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    ctl.adopt()
    assert ctl.replicas == {}
    assert [e["message"] for e in ctl.events] == ["replica r7 ready after 1.0 s"]
    assert ctl._seq == 7


class _TickLauncher(_Launcher):
    """As _Launcher, and it starts replicas (the tick may replace a failed one)."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[str] = []

    def launch(self, *, name: str, **_kw: object) -> str:
        self.launched.append(name)
        return f"new{len(self.launched)}"

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def test_a_tick_survives_a_launcher_that_cannot_answer(tmp_path: Path) -> None:
    """A replica whose job was deleted is failed with that reason; one the launcher cannot be
    asked about (server down) keeps its state; the others are still looked after. The tick
    used to raise at the first of them, every tick, until the controller was restarted."""
    import asyncio

    from aistack.serving.controller import Replica

    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {"min_replicas": 3, "max_replicas": 3},
        }
    )
    launcher = _TickLauncher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    for rid, handle in (("r2", "h2"), ("r3", "h3"), ("r4", "h4")):
        ctl.replicas[rid] = Replica(
            id=rid,
            model_uri="builtin:echo",
            handle=handle,
            state="ready",
            ready_file=ctl.dir / f"{rid}.json",
            log_path=ctl.dir / f"{rid}.log",
        )
    ctl._seq = 4
    ctl.desired = 3
    asyncio.run(ctl.tick())
    states = {rid: (r.state, r.reason) for rid, r in ctl.replicas.items() if rid in "r2 r3 r4"}
    assert states["r2"] == ("failed", "process ended (its job h2 was deleted)")
    assert states["r3"][0] == "ready"  # unknown this tick: kept
    assert states["r4"][0] == "failed"  # its process ended: seen although r2/r3 came first
