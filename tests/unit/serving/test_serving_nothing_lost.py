"""Nothing a service has stored is lost, and no state is left that blocks the next call:

* a redeploy over a stopped service whose new controller does not start left the new
  spec.json in place of the old one (the old spec was gone);
* a rollout whose spec.json could not be written stayed "running" forever, and every later
  update was refused as "already rolling out";
* an update or scale while the service is being deleted was told the service "has no running
  controller" and to delete and redeploy it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aistack.serving.controller as controller_mod
from aistack.errors import ConflictError
from aistack.serving import manager
from aistack.serving.controller import Replica, ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ServiceSpec


def _stored(name: str) -> Path:
    """A deployed service whose controller is down (spec, deployer's env, state)."""
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(name=name, model="builtin:echo", model_uri="builtin:echo")
    (d / "spec.json").write_text(spec.model_dump_json(indent=2))
    (d / manager.ENV_FILE).write_text(json.dumps({"MLFLOW_TRACKING_URI": "http://old"}))
    (d / "state.json").write_text(json.dumps({"name": name, "replicas": []}))
    return d


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# -- a redeploy whose controller does not start ----------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ConflictError("the controller of 's' exited at start (code 2)", hint="see the log"),
        OSError(24, "Too many open files"),
    ],
)
def test_a_redeploy_whose_controller_does_not_start_keeps_the_old_spec(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    d = _stored("s")
    before = _files(d)
    seen: list[str] = []

    def spawn(d: Path, name: str, env: Any = None) -> None:
        # the new controller reads the new spec
        seen.append(json.loads((d / "spec.json").read_text())["model_uri"])
        (d / "logs" / "controller.log").write_text("boom: cannot load\n")
        raise failure

    monkeypatch.setattr(manager, "_spawn_controller", spawn)
    with pytest.raises((ConflictError, OSError)) as ei:
        manager.deploy("builtin:tiny-gpt", name="s", launcher="process", wait_ready_s=None)
    assert seen == ["builtin:tiny-gpt"]
    assert json.loads((d / "spec.json").read_text())["model_uri"] == "builtin:echo"
    after = _files(d)
    after.pop("logs/controller.log")
    assert after == before  # spec.json and the deployer's environment as they were
    assert isinstance(ei.value, ConflictError)
    assert ei.value.message.endswith(": boom: cannot load")
    assert (ei.value.hint or "").startswith("nothing was changed: 's' keeps the spec it had")


def test_a_redeploy_whose_controller_starts_replaces_the_spec(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _stored("s")
    monkeypatch.setattr(manager, "_spawn_controller", lambda d, name, env=None: None)
    manager.deploy("builtin:tiny-gpt", name="s", launcher="process", wait_ready_s=None)
    assert json.loads((d / "spec.json").read_text())["model_uri"] == "builtin:tiny-gpt"
    assert json.loads((d / manager.ENV_FILE).read_text()) == dict(os.environ)
    assert not [p.name for p in d.iterdir() if p.name.endswith((".prev", ".tmp"))]


# -- a rollout whose spec.json cannot be written ----------------------------------------------------


class _Launcher:
    name = "fake"

    def __init__(self) -> None:
        self.n = 0

    def launch(self, **_kw: Any) -> str:
        self.n += 1
        return f"h{self.n}"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


async def _roll(ctl: ServiceController, uri: str) -> dict[str, Any]:
    ctl.start_rollout(uri, uri)
    for _ in range(300):  # the fake new replicas are ready as soon as they start
        for r in ctl.replicas.values():
            if r.state == "starting":
                r.state = "ready"
        if ctl.rollout and ctl.rollout["state"] != "running":
            break
        await asyncio.sleep(0.01)
    assert ctl.rollout is not None
    return ctl.rollout


def test_a_rollout_whose_spec_cannot_be_saved_fails_and_the_next_update_proceeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    controller_mod.save_spec(tmp_path, spec)
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    ctl.replicas["r1"] = Replica(
        id="r1",
        model_uri="builtin:echo",
        handle="h0",
        state="ready",
        ready_file=tmp_path / "r1.json",
        log_path=tmp_path / "r1.log",
    )
    ctl._seq = 1
    real_save = controller_mod.save_spec

    def disk_full(*_a: Any, **_kw: Any) -> None:
        raise OSError(28, "No space left on device")

    async def go() -> None:
        monkeypatch.setattr(controller_mod, "save_spec", disk_full)
        ro = await _roll(ctl, "builtin:echo?seed=1")
        assert ro["state"] == "failed", ro
        assert f"cannot save {tmp_path / 'spec.json'}: No space left on device" in ro["message"]
        assert "going back to builtin:echo" in ro["message"]
        # memory says what spec.json says: a restarted controller would do the same
        assert ctl.spec.model_uri == "builtin:echo"
        on_disk = ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text())
        assert on_disk.model_uri == "builtin:echo"
        await ctl.tick()  # the old version comes back (r1 was drained by the rollout)
        assert [r.model_uri for r in ctl.active("builtin:echo")] == ["builtin:echo"]
        # the disk has room again: the same update is not refused as "already rolling out"
        monkeypatch.setattr(controller_mod, "save_spec", real_save)
        ro = await _roll(ctl, "builtin:echo?seed=1")
        assert ro["state"] == "succeeded", ro

    asyncio.run(go())
    on_disk = ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text())
    assert on_disk.model_uri == ctl.spec.model_uri == "builtin:echo?seed=1"


# -- update or scale while the service is being deleted --------------------------------------------


def test_update_and_scale_during_a_delete_say_it_is_being_deleted(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _stored("s")
    (d / "token").write_text("tok")
    # a "controller" that does not answer HTTP (it is stopping) and ends on SIGTERM
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (d / "controller.json").write_text(json.dumps({"pid": proc.pid, "url": "http://127.0.0.1:9"}))
    seen: dict[str, Any] = {}
    real_signal = manager._signal

    def attempts(when: str) -> None:
        for what, call in (
            ("scale", lambda: manager.scale("s", min_replicas=2)),
            ("update", lambda: manager.update("s", "builtin:tiny-gpt", wait_s=None)),
        ):
            with pytest.raises(Exception) as ei:  # noqa: PT011 - the type is asserted below
                call()
            seen[f"{what} {when}"] = ei.value
        r = api.http.post("/api/v1/services/s/scale", json={"min_replicas": 2})
        seen[f"api {when}"] = (r.status_code, r.json())

    def signal(pid: int, sig: int) -> None:
        attempts("while the controller stops")
        real_signal(pid, sig)
        proc.wait(10)
        attempts("once it is gone")

    monkeypatch.setattr(manager, "_signal", signal)
    try:
        out = manager.delete("s", timeout_s=5)
    finally:
        proc.kill()
        proc.wait()
    assert out["deleted"] is True
    assert len(seen) == 6
    # (the audit's case first: the controller gone, the folder not yet moved)
    for key, err in sorted(seen.items(), key=lambda kv: "once" not in kv[0]):
        if key.startswith("api"):
            status, body = err
            assert status == 409, (key, body)
            assert body["message"] == "service 's' is being deleted", key
            continue
        assert isinstance(err, ConflictError), (key, err)
        assert err.message == "service 's' is being deleted", key
        assert "redeploy" not in (err.hint or "") and "nothing was changed" in (err.hint or "")
    assert not (Path(out["kept_at"]) / manager.DELETING).exists()
    # once deleted: the name is free
    with pytest.raises(manager.NotFoundError):
        manager.scale("s", min_replicas=2)


def test_a_delete_that_fails_leaves_no_marker(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _stored("s")

    def fail(*_a: Any) -> Path:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(manager, "_bury", fail)
    with pytest.raises(OSError):
        manager.delete("s")
    assert not (d / manager.DELETING).exists()


def test_the_controller_refuses_update_and_scale_while_it_stops(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, build_app

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    controller_mod.save_spec(tmp_path, spec)
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    ctl._stopping = True  # what shutdown() sets: the delete stops every replica
    client = TestClient(build_app(ctl, "tok"))  # no lifespan: the control loop does not run
    h = {TOKEN_HEADER: "tok"}
    for path, body in (
        ("/-/scale", {"min_replicas": 2}),
        ("/-/update", {"model_uri": "builtin:tiny-gpt"}),
    ):
        r = client.post(path, json=body, headers=h)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"]["message"] == "service 'svc' is being deleted"
    assert ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text()) == spec
