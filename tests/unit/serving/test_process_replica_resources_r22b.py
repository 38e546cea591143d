"""Local-process replicas and the spec's resources: ``memory`` and ``priority`` were taken and
ignored (no scheduler reserves or orders a local process), ``cpus`` was not applied (a replica
ran torch on one thread whatever it said, under the jobs launcher too) and could ask for more
cores than the machine has. Now ``cpus`` is the replica's thread count (``--threads``), and a
deploy of local-process replicas refuses what it cannot honour, naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.controller import ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ServiceSpec

HOW = (
    "run the replicas as jobs, which the scheduler places: `launcher` jobs (or auto) with the "
    "aistack server up (`aistack up --detach`)"
)


@pytest.fixture
def no_spawn(aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    monkeypatch.setattr(manager, "_usable_cores", lambda: 2, raising=False)
    return spawned


def test_memory_is_refused_for_process_replicas(no_spawn: list[str]) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.deploy(
            "builtin:echo", name="m", memory="4GB", launcher="process", wait_ready_s=None
        )
    assert ei.value.message == (
        "memory: local-process replicas cannot be held to 4GB: nothing reserves or limits a "
        "local process's memory"
    )
    assert ei.value.hint == f"leave `memory` out, or {HOW}, where the scheduler reserves it"
    assert ei.value.details == {"field": "memory"}
    assert no_spawn == [] and manager.list_services() == []


def test_priority_is_refused_for_process_replicas(no_spawn: list[str]) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.deploy(
            "builtin:echo", name="p", priority=500, launcher="process", wait_ready_s=None
        )
    assert ei.value.message == (
        "priority: local-process replicas have no scheduler to order them by priority 500"
    )
    assert ei.value.hint == f"leave `priority` out, or {HOW}"
    assert ei.value.details == {"field": "priority"}
    assert no_spawn == []


def test_more_cpus_than_the_machine_has_is_refused(no_spawn: list[str]) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="c", cpus=3, launcher="process", wait_ready_s=None)
    assert ei.value.message == (
        "cpus: local-process replicas run on this machine, which has 2 CPU cores; 3 were asked "
        "for per replica"
    )
    assert ei.value.hint == f"set `cpus` to at most 2, or {HOW}"
    assert no_spawn == []


def test_cli_names_the_flags(no_spawn: list[str]) -> None:
    args = ["deploy", "builtin:echo", "--name", "m", "--launcher", "process", "--wait", "0"]
    res = CliRunner().invoke(serve_cli.app, [*args, "--memory", "4GB"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message.startswith("--memory 4GB: local-process replicas cannot")
    assert res.exception.hint == (
        "leave --memory out, or run the replicas as jobs, which the scheduler places: "
        "--launcher jobs (or auto) with the aistack server up (`aistack up --detach`), where "
        "the scheduler reserves it"
    )


class _Launcher:
    name = "fake"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def launch(self, *, command: list[str], **_kw: Any) -> str:
        self.commands.append(command)
        return f"h{len(self.commands)}"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def _threads(tmp_path: Path, **spec: Any) -> str | None:
    s = ServiceSpec.model_validate(
        {"name": "svc", "model": "builtin:echo", "model_uri": "builtin:echo", **spec}
    )
    (tmp_path / "logs").mkdir(parents=True, exist_ok=True)
    launcher = _Launcher()
    ctl = ServiceController(s, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    ctl._new_replica("builtin:echo")
    cmd = launcher.commands[0]
    return cmd[cmd.index("--threads") + 1] if "--threads" in cmd else None


def test_replica_threads_follow_cpus(tmp_path: Path) -> None:
    assert _threads(tmp_path, resources={"cpus": 3}) == "3"
    assert _threads(tmp_path / "b") == "1"
    # a spec that sets the replica's threads itself keeps them
    assert (
        _threads(tmp_path / "c", resources={"cpus": 3}, env={"AISTACK_SERVE_THREADS": "2"}) is None
    )
