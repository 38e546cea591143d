"""`serve scale` applied the new limits before writing them: when spec.json or state.json
could not be written, the limits were live (and lost at the next restart) while the call
failed with a plain 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_fakes import RunningLauncher

import aistack.serving.controller as controller_mod
from aistack.errors import AistackError
from aistack.serving.controller import ServiceController
from aistack.serving.spec import AutoscaleConfig, ServiceSpec


def _controller(tmp_path: Path) -> ServiceController:
    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {"min_replicas": 1, "max_replicas": 4},
        }
    )
    controller_mod.save_spec(tmp_path, spec)
    ctl = ServiceController(spec, tmp_path, launcher=RunningLauncher())  # type: ignore[arg-type]
    ctl.failed = "replica r1 failed to start 3 times"
    return ctl


def _disk_full(*_a: Any, **_kw: Any) -> None:
    raise OSError(28, "No space left on device")


def _assert_old_limits(ctl: ServiceController, tmp_path: Path, events_before: int) -> None:
    assert (ctl.spec.autoscale.min_replicas, ctl.spec.autoscale.max_replicas) == (1, 4)
    assert (ctl.autoscaler.cfg.min_replicas, ctl.autoscaler.cfg.max_replicas) == (1, 4)
    assert ctl.manual_max is None
    assert ctl.failed == "replica r1 failed to start 3 times"  # not retried: nothing changed
    assert len(ctl.events) == events_before  # no "limits set to …"
    on_disk = ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text())
    assert on_disk.autoscale.max_replicas == 4


def test_spec_json_not_written_keeps_the_old_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = _controller(tmp_path)
    monkeypatch.setattr(controller_mod, "save_spec", _disk_full)
    with pytest.raises(AistackError) as err:
        ctl.set_limits(AutoscaleConfig(min_replicas=0, max_replicas=2))
    assert err.value.status == 500
    msg = str(err.value)
    assert "spec.json" in msg and "No space left on device" in msg
    assert "the limits stay min 1, max 4" in msg
    assert err.value.hint == (
        f"free disk space or make {tmp_path} writable, then scale the service again"
    )
    _assert_old_limits(ctl, tmp_path, 0)


def test_state_json_not_written_rolls_back_memory_and_spec_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = _controller(tmp_path)
    monkeypatch.setattr(ServiceController, "write_state", _disk_full)
    with pytest.raises(AistackError) as err:
        ctl.set_limits(AutoscaleConfig(min_replicas=0, max_replicas=2))
    assert "state.json" in str(err.value) and "No space left on device" in str(err.value)
    _assert_old_limits(ctl, tmp_path, 0)


def test_limits_written_apply(tmp_path: Path) -> None:
    ctl = _controller(tmp_path)
    ctl.set_limits(AutoscaleConfig(min_replicas=0, max_replicas=2))
    assert ctl.spec.autoscale.max_replicas == 2 and ctl.autoscaler.cfg.max_replicas == 2
    assert ctl.manual_max == (4, 2)
    assert ctl.failed is None
    on_disk = ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text())
    assert on_disk.autoscale.max_replicas == 2
    assert '"max_replicas": 2' in (tmp_path / "state.json").read_text()


def test_the_scale_route_answers_the_error_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve scale` sees the reason: the controller's /-/scale answers the error in its JSON
    shape (it was Starlette's plain "Internal Server Error", which the CLI could not read)."""
    from starlette.testclient import TestClient

    from aistack.serving.controller_app import TOKEN_HEADER, build_app

    ctl = _controller(tmp_path)
    monkeypatch.setattr(controller_mod, "save_spec", _disk_full)
    client = TestClient(build_app(ctl, "tok"), raise_server_exceptions=False)
    r = client.post("/-/scale", json={"max_replicas": 2}, headers={TOKEN_HEADER: "tok"})
    assert r.status_code == 500
    err = r.json()["error"]
    assert "No space left on device" in err["message"] and "min 1, max 4" in err["message"]
    _assert_old_limits(ctl, tmp_path, 0)
