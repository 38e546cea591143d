"""A restarted controller keeps when each adopted replica started and how long it took to be
ready: `serve status` showed "ready after 0.1 s" for a replica ready 1.8 s after its start
(measured from the restart), and "-" for an ended one. And the 409 of a delete that left
replicas running is in the REST API's schema (/docs)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.serving import controller as controller_mod
from aistack.serving.controller import ServiceController
from aistack.serving.launcher import LaunchStatus
from aistack.serving.spec import ServiceSpec


class _Running:
    name = "fake"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        raise AssertionError("nothing is stopped here")


CREATED = time.time() - 3600.0  # an hour before the restart (at collection)


def _controller(tmp_path: Path, replicas: list[dict[str, Any]]) -> ServiceController:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    (tmp_path / "state.json").write_text(json.dumps({"replicas": replicas, "desired_replicas": 1}))
    ctl = ServiceController(spec, tmp_path, launcher=_Running())  # type: ignore[arg-type]
    ctl.adopt()
    return ctl


def _listed(rid: str, state: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "state": state,
        "handle": f"h-{rid}",
        "model": "builtin:echo",
        "url": "http://127.0.0.1:9",
        **kw,
    }


def test_adopted_replicas_keep_their_start_and_ready_times(tmp_path: Path) -> None:
    ctl = _controller(
        tmp_path,
        [
            _listed("r1", "stopped", created=CREATED, ready_after_s=2.5, stopped=CREATED + 60),
            _listed("r2", "ready", created=CREATED + 1, ready_after_s=1.768),
            _listed("r3", "starting", created=CREATED + 2, ready_after_s=None),
        ],
    )
    pub = {rid: r.public(None) for rid, r in ctl.replicas.items()}
    assert pub["r1"]["created"] == CREATED and pub["r1"]["ready_after_s"] == 2.5
    assert pub["r2"]["created"] == CREATED + 1 and pub["r2"]["ready_after_s"] == 1.768
    assert pub["r3"]["created"] == CREATED + 2 and pub["r3"]["ready_after_s"] is None


@pytest.mark.parametrize("created", ["yesterday", None, True, -5, 1e300, "NaN"])
def test_times_not_written_by_a_controller_count_from_the_adoption(
    tmp_path: Path, created: Any
) -> None:
    before = time.time()
    created = math.nan if created == "NaN" else created
    ctl = _controller(tmp_path, [_listed("r1", "ready", created=created, ready_after_s=1.0)])
    rep = ctl.replicas["r1"]
    assert rep.created_t >= before and rep.ready_t is None


@pytest.mark.parametrize("ready_after", ["1.0", -1.0, True])
def test_a_junk_ready_time_is_left_out(tmp_path: Path, ready_after: Any) -> None:
    ctl = _controller(
        tmp_path, [_listed("r1", "ready", created=CREATED, ready_after_s=ready_after)]
    )
    assert ctl.replicas["r1"].created_t == CREATED and ctl.replicas["r1"].ready_t is None


def _tick_until_ready(ctl: ServiceController, monkeypatch: pytest.MonkeyPatch) -> None:
    async def healthy(_client: Any, _url: str, _timeout: float) -> tuple[bool, Any, Any]:
        return True, {"status": "ok"}, None

    monkeypatch.setattr(controller_mod, "health_check", healthy)
    asyncio.run(ctl.tick())


def test_an_adopted_ready_replica_keeps_its_ready_time_once_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first health check after the restart set ready_t to now: "ready after 0.1 s"."""
    ctl = _controller(tmp_path, [_listed("r2", "ready", created=CREATED, ready_after_s=1.768)])
    _tick_until_ready(ctl, monkeypatch)
    rep = ctl.replicas["r2"]
    assert rep.state == "ready" and "r2" in ctl.router.endpoints
    assert rep.public(None)["ready_after_s"] == 1.768
    said = [e["message"] for e in ctl.events if e.get("replica") == "r2"]
    assert (
        said[-1]
        == "adopted replica r2 healthy: in rotation again (it was ready 1.8 s after its start)"
    )


def test_an_adopted_starting_replica_counts_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its start an hour before now (not before collection: a full run takes longer than 10 min)
    created = time.time() - 3600.0
    ctl = _controller(tmp_path, [_listed("r3", "starting", created=created, ready_after_s=None)])
    _tick_until_ready(ctl, monkeypatch)
    after = ctl.replicas["r3"].public(None)["ready_after_s"]
    assert 3600.0 <= after < 3600.0 + 600.0  # from its start an hour ago, not the restart
    said = [e["message"] for e in ctl.events if e.get("replica") == "r3"]
    assert said[-1].startswith("replica r3 ready after 36")


def test_a_new_replica_is_ready_after_its_own_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(guard: passes on the old code too) a replica this controller started counts as before."""
    from aistack.serving.controller import Replica

    ctl = _controller(tmp_path, [])
    ctl.replicas["r1"] = Replica(
        id="r1",
        model_uri="builtin:echo",
        handle="h-r1",
        url="http://127.0.0.1:9",
        ready_file=tmp_path / "r1.json",
        log_path=tmp_path / "r1.log",
        created_t=time.time() - 2.0,
    )
    ctl.desired = 1
    _tick_until_ready(ctl, monkeypatch)
    assert 2.0 <= ctl.replicas["r1"].public(None)["ready_after_s"] < 600.0
    assert [e["message"] for e in ctl.events][-1].startswith("replica r1 ready after ")


# -- the REST API documents the 409 of a partial delete -----------------------------------------
def test_the_409_of_a_partial_delete_is_in_the_openapi_schema() -> None:
    from fastapi import FastAPI

    from aistack.server.routers.services import router

    api = FastAPI()
    api.include_router(router, prefix="/api/v1")
    spec = api.openapi()
    op = spec["paths"]["/api/v1/services/{name}"]["delete"]
    conflict = op["responses"]["409"]
    assert "could not be stopped" in conflict["description"]
    ref = conflict["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schemas = spec["components"]["schemas"]
    body = schemas[ref]
    assert set(body["required"]) == {"code", "message", "details"}
    details = schemas[body["properties"]["details"]["$ref"].rsplit("/", 1)[-1]]
    assert set(details["properties"]) == {"deleted", "kept_at", "orphans_stopped", "not_stopped"}
    item = schemas[details["properties"]["not_stopped"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(item["properties"]) == {"replica", "handle", "pid", "error"}
    ok = schemas["ServiceDeleted"]["properties"]["orphans_stopped"]
    assert "controller had left running" in ok["description"]


def test_the_409_schema_reads_the_error_a_partial_delete_raises(tmp_path: Path) -> None:
    """The documented body is what the server answers: the manager's ConflictError as the
    app's error handler writes it (ErrorBody.to_dict) validates against it."""
    from aistack.server.schemas.services import ServiceDeletePartial
    from aistack.serving.manager import _not_stopped

    err = _not_stopped(
        "svc",
        "jobs",
        [{"replica": "r2", "handle": "j2", "error": "ConnectionFailed: down"}],
        [{"replica": "r1", "handle": "j1", "pid": None}],  # (r23p: the ones stopped, listed)
        tmp_path,
    )
    assert err.status == 409
    body = ServiceDeletePartial.model_validate(err.to_dict())
    assert body.details.not_stopped[0].handle == "j2" and body.details.orphans_stopped == 1
    err = _not_stopped(
        "svc",
        "process",
        [{"replica": "r1", "handle": "7@1.0", "pid": 7, "error": "e"}],
        [],
        tmp_path,
    )
    assert ServiceDeletePartial.model_validate(err.to_dict()).details.not_stopped[0].pid == 7
