"""Admission control of a service: ``max_queued_requests`` bounds the queue in front of the
replicas (a 429 with Retry-After beyond it, see the router tests), and the requests it refuses
still drive the autoscaler (a service at zero replicas that refuses everything scales up)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.controller import ServiceController
from aistack.serving.http import HTTPProblem
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ServiceSpec


class _Launcher:
    name = "fake"

    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, *, name: str, **_kw: Any) -> str:
        self.launched.append(name)
        return f"h{len(self.launched)}"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def test_the_spec_field_has_a_default_and_bounds() -> None:
    spec = ServiceSpec(name="s", model="m", model_uri="m")
    assert spec.max_queued_requests == 100
    assert ServiceSpec(name="s", model="m", model_uri="m", max_queued_requests=0)
    with pytest.raises(PydanticValidationError, match="max_queued_requests"):
        ServiceSpec(name="s", model="m", model_uri="m", max_queued_requests=-1)


def test_the_router_enforces_the_spec_and_refusals_scale_a_service_from_zero(
    tmp_path: Path,
) -> None:
    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "max_queued_requests": 0,
            "batching": {"max_batch_size": 3},
            "autoscale": {
                "min_replicas": 0,
                "max_replicas": 2,
                "target_inflight": 1,
                "upscale_delay_s": 0,
            },
        }
    )
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    assert ctl.router.replica_capacity == 3 and ctl.router.max_queued == 0
    with pytest.raises(HTTPProblem) as exc:
        ctl.router.admit()  # no replica, and no queue to wait in
    assert exc.value.status == 429 and exc.value.headers == {"retry-after": "1"}

    async def tick() -> None:
        await ctl.tick()

    asyncio.run(tick())
    # nothing was in flight, yet the refused request is load: a replica is started
    assert ctl.autoscaler.history[-1].action == "up" and ctl.desired == 1
    assert launcher.launched == ["serve-svc-r1"]
    st = ctl.status()
    assert st["max_queued_requests"] == 0 and st["queued"] == 0
    assert st["metrics"]["rejected_total"] == 1


def test_deploy_takes_the_field_and_names_the_flag_in_errors(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.cli.serve import flag_message

    with pytest.raises(ValidationError, match="max_queued_requests") as exc:
        manager.deploy("builtin:echo", max_queued_requests=-5, wait_ready_s=None)
    assert flag_message(exc.value.message, {"max_queued_requests": -5}).startswith(
        "--max-queued -5:"
    )
    specs: list[ServiceSpec] = []

    def spawn(d: Path, name: str, env: Any = None) -> None:
        specs.append(ServiceSpec.model_validate_json((d / "spec.json").read_text()))

    monkeypatch.setattr(manager, "_spawn_controller", spawn)
    monkeypatch.setattr(manager, "status", lambda name: {"name": name})
    manager.deploy("builtin:echo", name="q", max_queued_requests=7, wait_ready_s=None)
    manager.deploy("builtin:echo", name="d", wait_ready_s=None)
    assert [s.max_queued_requests for s in specs] == [7, 100]
