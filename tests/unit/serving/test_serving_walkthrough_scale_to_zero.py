"""`serve scale NAME --min 0` on a service deployed with --min 1 kept the router's 10 s wait
for a ready replica: once the autoscaler had scaled to zero, the request that woke the
service was refused with 503 "no ready replica (waited 10 s)" while the replica it started
took longer than that to load. A service deployed with --min 0 waits a whole start-up
(``ready_timeout_s``); one scaled to --min 0 now waits the same, and one scaled back to
--min 1 goes back to 10 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_fakes import RunningLauncher

import aistack.serving.controller as controller_mod
from aistack.errors import AistackError
from aistack.serving.controller import ServiceController
from aistack.serving.spec import AutoscaleConfig, ServiceSpec


def _controller(tmp_path: Path, min_replicas: int) -> ServiceController:
    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "ready_timeout_s": 90,
            "autoscale": {"min_replicas": min_replicas, "max_replicas": 4},
        }
    )
    controller_mod.save_spec(tmp_path, spec)
    return ServiceController(spec, tmp_path, launcher=RunningLauncher())  # type: ignore[arg-type]


def test_deployed_with_min_zero_waits_a_whole_start(tmp_path: Path) -> None:
    assert _controller(tmp_path, 0).router.wait_for_replica_s == 90.0
    assert _controller(tmp_path, 1).router.wait_for_replica_s == 10.0


def test_scaled_to_zero_waits_a_whole_start_and_back(tmp_path: Path) -> None:
    ctl = _controller(tmp_path, 1)
    ctl.set_limits(AutoscaleConfig(min_replicas=0, max_replicas=4))
    assert ctl.router.wait_for_replica_s == 90.0
    ctl.set_limits(AutoscaleConfig(min_replicas=1, max_replicas=4))
    assert ctl.router.wait_for_replica_s == 10.0


def test_limits_not_saved_keep_the_old_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = _controller(tmp_path, 1)

    def disk_full(*_a: Any, **_kw: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ctl, "write_state", disk_full)
    with pytest.raises(AistackError):
        ctl.set_limits(AutoscaleConfig(min_replicas=0, max_replicas=4))
    assert ctl.spec.autoscale.min_replicas == 1
    assert ctl.router.wait_for_replica_s == 10.0
