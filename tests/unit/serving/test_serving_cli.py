"""``aistack serve`` in process: errors name the command's flags (``--max``, not
``max_replicas``), and ``serve status`` keeps what stopped replicas served and says when the
autoscaler decided (a wall-clock time, not the controller's monotonic clock)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.controller import TOKEN_HEADER, Replica, ServiceController, build_app
from aistack.serving.launcher import LaunchStatus
from aistack.serving.router import Endpoint
from aistack.serving.spec import ServiceSpec

runner = CliRunner()


def _error(res: Any) -> str:
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    return res.exception.message  # type: ignore[no-any-return]


class _Launcher:
    """Replica processes that have all exited; nothing new is started for real."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, *, name: str, **_kw: Any) -> str:
        self.launched.append(name)
        return f"h{len(self.launched)}"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="exited", exit_code=0, reason="exit code 0")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def _controller(tmp_path: Path) -> ServiceController:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    (tmp_path / "logs").mkdir(exist_ok=True)
    return ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]


@pytest.fixture
def controller_app(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ServiceController:
    """``serve scale`` reaches a real controller app (in process) through manager._post."""
    import httpx
    from starlette.testclient import TestClient

    ctl = _controller(tmp_path)
    client = TestClient(build_app(ctl, "tok"))
    d = manager.service_dir("svc")
    d.mkdir(parents=True)
    (d / "token").write_text("tok")
    monkeypatch.setattr(manager, "status", lambda name: {"name": name})
    monkeypatch.setattr(manager, "_controller", lambda name: {"url": "http://testserver"})

    def post(url: str, *, json: Any, headers: dict[str, str], timeout: float) -> Any:
        assert headers == {TOKEN_HEADER: "tok"}
        return client.post(url, json=json, headers=headers)

    monkeypatch.setattr(httpx, "post", post)
    return ctl


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        # below the bound: the value, the range and what to set (it was pydantic's "Input
        # should be greater than or equal to 1", and the controller's answer had no hint)
        (
            ["--min", "1", "--max", "0"],
            "--max 0: must be a whole number from 1 to 256, got 0",
            "set --max to at least 1; its default is 4",
        ),
        (
            ["--min", "-1"],
            "--min -1: must be a whole number from 0 to 256, got -1",
            "set --min to at least 0; its default is 1",
        ),
        (
            ["--min", "9"],
            "--min 9 is above --max 4; lower --min or raise --max",
            "set --min to at most 4, or --max to at least 9",
        ),
    ],
)
def test_scale_errors_name_the_flags(
    controller_app: ServiceController, args: list[str], message: str, hint: str | None
) -> None:
    res = runner.invoke(serve_cli.app, ["scale", "svc", *args])
    assert _error(res) == message
    assert res.exception.hint == hint  # type: ignore[union-attr]
    assert "_replicas" not in str(res.exception)


def test_scale_that_is_valid_still_scales(controller_app: ServiceController) -> None:
    res = runner.invoke(serve_cli.app, ["scale", "svc", "--min", "2", "--max", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["min_replicas"], out["max_replicas"]) == (2, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max", "0"], "--max 0: must be a whole number from 1 to 256, got 0"),
        (["--min", "3", "--max", "2"], "--min 3 is above --max 2; lower --min or raise --max"),
        (
            ["--target-inflight", "0"],
            "--target-inflight 0: must be a number > 0 and <= 1000000, got 0",
        ),
        (
            ["--cooldown", "-1"],
            "--cooldown -1: must be a number of seconds from 0 to 86400, got -1",
        ),
        (
            ["--max-batch-size", "0"],
            "--max-batch-size 0: must be a whole number from 1 to 1024, got 0",
        ),
        (
            ["--max-wait-ms", "-2.5"],
            "--max-wait-ms -2.5: must be a number of milliseconds from 0 to 10000, got -2.5",
        ),
        (["--cpus", "0"], "--cpus 0: must be a whole number from 1 to 1000000, got 0"),
        (["--memory", "4XB"], "--memory 4XB: cannot read '4XB' as a size"),
        (["--port", "70000"], "--port 70000: must be a whole number from 0 to 65535, got 70000"),
    ],
)
def test_deploy_errors_name_the_flags(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    def spawn(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a bad deploy must not start a controller")

    monkeypatch.setattr(manager, "_spawn_controller", spawn)
    res = runner.invoke(
        serve_cli.app,
        ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0", *args],
    )
    assert _error(res).startswith(message)
    for field in ("_replicas", "target_inflight", "cooldown_s", "batch_size", "resources."):
        assert field not in str(res.exception)


def test_stopped_replica_keeps_its_served_count(tmp_path: Path) -> None:
    ctl = _controller(tmp_path)
    for rid, state in (("r1", "draining"), ("r2", "ready")):
        rep = Replica(
            id=rid,
            model_uri="builtin:echo",
            handle=f"old-{rid}",
            state=state,  # type: ignore[arg-type]
            url=f"http://127.0.0.1:1/{rid}",
            ready_file=tmp_path / f"{rid}.json",
            log_path=tmp_path / f"{rid}.log",
        )
        ctl.replicas[rid] = rep
        ctl.router.add(Endpoint(id=rid, url=str(rep.url)))
    ctl.router.endpoints["r1"].served = 7
    ctl.router.endpoints["r2"].served = 3
    ctl._seq = 2

    asyncio.run(ctl.tick())  # r1 (draining) exited: stopped; r2 (ready) exited: failed

    reps = {r["id"]: r for r in ctl.status()["replicas"]}
    assert reps["r1"]["state"] == "stopped" and reps["r1"]["served"] == 7  # was 0
    assert reps["r2"]["state"] == "failed" and reps["r2"]["served"] == 3
    # a controller started over this one (it adopts running replicas) keeps the count too
    ctl.write_state()
    saved = json.loads((tmp_path / "state.json").read_text())["replicas"]
    assert {r["id"]: r["served"] for r in saved} == {"r1": 7, "r2": 3, "r3": 0}


def test_autoscaler_decisions_have_a_wall_clock_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = _controller(tmp_path)
    before = time.time()
    ctl.last_decision = ctl.autoscaler.decide(time.monotonic(), 0)  # below the minimum: up
    after = time.time()
    st = ctl.status()
    [d] = st["autoscaler"]["decisions"]
    assert d["action"] == "up"
    assert before - 1 <= d["t"] <= after + 1  # was the monotonic clock (e.g. 55373.64)
    when = dt.datetime.fromisoformat(d["time"])
    assert when.tzinfo is not None and abs(when.timestamp() - d["t"]) < 0.01
    assert before - 1 <= st["autoscaler"]["last"]["t"] <= after + 1

    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert res.exit_code == 0, res.output
    hhmmss = dt.datetime.fromtimestamp(d["t"]).strftime("%H:%M:%S")
    assert f"{hhmmss}   up scale up 0 → 1" in res.output

    res = runner.invoke(serve_cli.app, ["status", "svc", "--json"])
    assert json.loads(res.output)["autoscaler"]["decisions"][0]["time"] == d["time"]


def test_status_of_an_old_state_file_without_decision_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    st = {
        "name": "svc",
        "replicas": [],
        "autoscaler": {"decisions": [{"t": 55373.64, "action": "up", "reason": "scale up"}]},
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert res.exit_code == 0, res.output
    assert "up scale up" in res.output


def test_status_text_shows_queued_and_refused_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """They were only in --json (queued, max_queued_requests, metrics.rejected_total)."""
    st = {
        "name": "svc",
        "replicas": [],
        "queued": 7,
        "max_queued_requests": 100,
        "metrics": {"rejected_total": 42},
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert res.exit_code == 0, res.output
    assert "queued 7 requests (max 100); refused 42 requests (429) since start" in res.output
    st.update(queued=0, max_queued_requests=0, metrics={})
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert "queued 0 requests (no queue); refused 0 requests (429) since start" in res.output


def test_status_text_counts_the_windows_client_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """'0 errors' was printed while 23 requests were refused (429) in the window."""
    st = {
        "name": "svc",
        "replicas": [],
        "metrics": {
            "qps": 3.0,
            "errors_window": 0,
            "client_errors_window": 23,
            "requests_total": 107,
            "errors_total": 0,
            "client_errors_total": 84,
        },
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert (
        "0 server errors (5xx), 23 client errors (4xx, incl. 429 refused); "
        "total 107 requests, 0 5xx, 84 4xx" in text
    )
    assert " 0 errors;" not in text


def test_status_of_a_service_failed_by_its_job_spec_does_not_suggest_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service stored before deploy checked --project failed with "invalid job spec" and
    `serve status` said `serve scale` retries: no scale changes the project."""
    st = {
        "name": "s2",
        "replicas": [],
        "failed": "replica r1 could not start: invalid job spec (spec): project: 'bad name' "
        "is not a valid name",
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "s2"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "serve scale" not in text
    assert "`aistack serve delete s2`, then deploy again" in text
    st["failed"] = "replica r1 exited 5 times in a row"
    res = runner.invoke(serve_cli.app, ["status", "s2"], env={"COLUMNS": "300"})
    assert "serve scale s2 --min N" in " ".join(res.output.split())
