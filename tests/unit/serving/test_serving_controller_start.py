"""A controller that is being started is not "controller down": the server's service watch must
not start a second one beside it (two controllers of one service fought over its state file and
left the demo waiting for a ready replica)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aistack.serving import manager


def _service(name: str) -> Path:
    d = manager.service_dir(name)
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"name": name, "model": "m"}))
    return d


def test_starting_controller_is_not_down_and_not_restarted(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _service("svc")
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda _d, name, **_kw: spawned.append(name))

    assert manager.status("svc")["status"] == "controller down"  # nothing running, no marker

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (d / "controller.starting").write_text(str(child.pid))
        assert manager.status("svc")["status"] == "starting"
        assert [s["status"] for s in manager.list_services()] == ["starting"]
        manager.restart("svc", wait_ready_s=None)
        assert spawned == []  # the watch's restart leaves the starting controller alone
    finally:
        child.kill()
        child.wait()
    # the spawner died without cleaning up: a dead pid in the marker does not count
    assert manager.status("svc")["status"] == "controller down"
    manager.restart("svc", wait_ready_s=None)
    assert spawned == ["svc"]


def test_spawn_keeps_the_marker_only_while_waiting(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _service("svc")
    procs: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def sleeper(_args: object, **kw: object) -> subprocess.Popen[bytes]:
        procs.append(real_popen([sys.executable, "-c", "import time; time.sleep(30)"]))
        return procs[-1]

    seen: list[str] = []

    def fake_controller(name: str) -> dict[str, object] | None:
        seen.append((d / "controller.starting").read_text())
        return {"pid": procs[-1].pid, "url": "http://127.0.0.1:1"}

    monkeypatch.setattr(manager.subprocess, "Popen", sleeper)
    monkeypatch.setattr(manager, "_controller", fake_controller)
    try:
        manager._spawn_controller(d, "svc")
        assert seen == [str(procs[0].pid)]  # the child's pid while the spawner waited
        assert not (d / "controller.starting").exists()
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_restarted_controller_gets_the_deployers_environment(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's watch restarts a dead controller from the server's own environment; the
    controller (and its replicas) must still see what the deploying shell had, e.g. the
    MLflow tracking URI that resolves a ``models:/`` model."""
    import os
    import stat

    d = _service("svc")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    manager._record_env(d)
    assert stat.S_IMODE((d / manager.ENV_FILE).stat().st_mode) == 0o600
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("ONLY_IN_SERVER", "1")
    envs: list[dict[str, str]] = []
    real_popen = subprocess.Popen

    def capture(_args: object, **kw: object) -> subprocess.Popen[bytes]:
        envs.append(kw["env"])  # type: ignore[arg-type]
        return real_popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(manager.subprocess, "Popen", capture)
    with pytest.raises(Exception, match="exited at start"):
        manager.restart("svc", wait_ready_s=None)  # the stand-in child exits at once
    assert envs[0]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    assert envs[0]["ONLY_IN_SERVER"] == "1" and envs[0]["PATH"] == os.environ["PATH"]


def test_restarted_controller_keeps_the_service_url(tmp_path: Path) -> None:
    """A controller restarted (by `serve restart` or the server's watch) listens where the one
    before it did: clients keep their URL. A port taken meanwhile falls back to a free one."""
    from aistack.serving.controller import bind_service_socket
    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    first = bind_service_socket(spec, tmp_path)  # nothing ran before: any free port
    port = first.getsockname()[1]
    (tmp_path / "state.json").write_text(json.dumps({"url": f"http://127.0.0.1:{port}"}))
    first.close()  # the old controller died
    again = bind_service_socket(spec, tmp_path)
    try:
        assert again.getsockname()[1] == port
        other = bind_service_socket(spec, tmp_path)  # the port is taken now
        assert other.getsockname()[1] not in (0, port)
        other.close()
    finally:
        again.close()
    (tmp_path / "state.json").write_text(json.dumps({"url": None}))
    bind_service_socket(spec, tmp_path).close()
