"""Bad input to ``aistack serve`` (and /api/v1/services) is refused before anything runs, with
the flag or field to fix; a name that is not a service is "no service", whatever the call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.serving import manager


def test_negative_wait_is_refused_before_deploying(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    with pytest.raises(ValidationError, match="--wait -1: the wait is in seconds"):
        manager.deploy("builtin:echo", name="w", launcher="process", wait_ready_s=-1)
    assert spawned == [] and manager.list_services() == []  # nothing was deployed
    with pytest.raises(ValidationError, match="--wait -5"):
        manager.update("w", "builtin:echo", wait_s=-5)


def test_scale_and_logs_of_an_unknown_service_are_not_found(aistack_home: Path) -> None:
    with pytest.raises(NotFoundError, match="no service named 'nope'"):
        manager.scale("nope", min_replicas=1)  # was a 409 "has no running controller"
    with pytest.raises(ValidationError, match="--tail -3"):
        manager.logs("nope", tail=-3)


@pytest.mark.parametrize("name", ["..", ".deleted", "../other-home", "a/b", "UPPER"])
def test_names_that_are_not_services_never_reach_outside_services_dir(
    aistack_home: Path, name: str
) -> None:
    graveyard = manager.services_dir() / ".deleted"
    graveyard.mkdir()
    (graveyard / "spec.json").write_text("{}")  # a stray file must not make it a service
    for call in (manager.status, manager.delete, manager.logs):
        with pytest.raises(NotFoundError, match="no service named"):
            call(name)


def test_scale_errors_name_the_field(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, ServiceController, build_app
    from aistack.serving.spec import ServiceSpec

    class Launcher:
        name = "fake"

        def launch(self, **_kw: Any) -> str:
            raise AssertionError("no replica is started here")

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=Launcher())  # type: ignore[arg-type]
    client = TestClient(build_app(ctl, "tok"))  # no lifespan: the control loop does not run
    h = {TOKEN_HEADER: "tok"}
    r = client.post("/-/scale", json={"min_replicas": -1}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("min_replicas: Input should be greater")
    r = client.post("/-/scale", json={"min_replicas": 9}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "min_replicas (9) is above max_replicas (4); lower --min or raise --max"
    )
    r = client.post("/-/scale", json={"min_replicas": 2, "max_replicas": 3}, headers=h)
    assert r.status_code == 200 and (r.json()["min_replicas"], r.json()["max_replicas"]) == (2, 3)
    assert json.loads((tmp_path / "spec.json").read_text())["autoscale"]["min_replicas"] == 2


def test_delete_refuses_while_the_server_that_runs_its_replica_jobs_is_down(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a service whose replicas are jobs while `aistack down`: the jobs could not be
    cancelled and ran on after the service was gone ('deleted' was printed all the same)."""
    from aistack.errors import ConnectionFailed

    d = manager.service_dir("js")
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"name": "js", "model": "builtin:echo"}))
    replica = {"id": "r1", "state": "ready", "handle": "6be282adbbda", "log": "x"}
    (d / "state.json").write_text(json.dumps({"launcher": "jobs", "replicas": [replica]}))

    class Down:
        def __init__(self, **_kw: Any) -> None:
            pass

        def health(self) -> dict[str, Any]:
            raise ConnectionFailed("cannot reach the aistack server at http://127.0.0.1:1")

        def cancel(self, job_id: str) -> None:
            raise ConnectionFailed("cannot reach the aistack server at http://127.0.0.1:1")

    monkeypatch.setattr("aistack.client.Client", Down)
    with pytest.raises(ConnectionFailed, match="6be282adbbda.*does not answer") as ei:
        manager.delete("js")
    assert "aistack up" in (ei.value.hint or "")
    assert (d / "spec.json").exists()  # nothing was deleted: delete again once the server is up


def test_a_tick_that_keeps_failing_is_not_a_log_flood(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    from aistack.serving.controller import ServiceController
    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(
        name="svc", model="builtin:echo", model_uri="builtin:echo", health_interval_s=0.01
    )
    ctl = ServiceController(spec, tmp_path, launcher=object())  # type: ignore[arg-type]

    async def tick() -> None:
        raise ConnectionError("cannot reach the aistack server")

    ctl.tick = tick  # type: ignore[method-assign]

    async def go() -> None:
        task = asyncio.create_task(ctl.run())
        await asyncio.sleep(0.5)  # ~50 failed ticks
        ctl._stopping = True
        await task

    with caplog.at_level(logging.WARNING, logger="aistack.serving.controller"):
        asyncio.run(go())
    lines = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(lines) == 1  # the first, with its traceback; repeats at most once a minute


def test_the_deploy_hint_names_the_endpoint_the_model_has() -> None:
    from aistack.cli.serve import try_it

    st = {"url": "http://127.0.0.1:1", "replicas": []}
    assert "/v1/completions" in try_it(st)  # not known yet: a text model is the usual case
    st["replicas"] = [{"batches": {"invocations": {}}}]
    assert "/invocations" in try_it(st) and "not a text model" in try_it(st)
    st["replicas"] = [{"batches": {"completions": {}, "invocations": {}}}]
    assert "/v1/completions" in try_it(st)
