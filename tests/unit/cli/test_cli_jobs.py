"""`aistack submit|cancel|jobs|up` against the app in process: bad specs are one-line errors,
several ids are reported one by one, and `up --detach` only reports its own server."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.errors import ConflictError, ValidationError

runner = CliRunner()


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    return api


def _error(res: Any, cls: type = ValidationError) -> str:
    assert isinstance(res.exception, cls), (res.exception, res.output)
    return str(res.exception)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: x\ncommand: [unclosed\n  foo: : :\n", "not valid YAML"),
        ("command: echo hi\nresources: 4\n", "resources: expected a mapping"),
        ("command: echo hi\nresources: [1, 2]\n", "resources: expected a mapping"),
        ("command: echo hi\nmax_runtime: .nan\n", "max_runtime: must be a finite"),
        ("command: echo hi\nmax_runtime: .inf\n", "max_runtime: must be a finite"),
        ("command: echo hi\npriority: 100000000000000000000000\n", "priority"),
    ],
)
def test_bad_job_files_are_clear_errors(cli, tmp_path: Path, content: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text(content)
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert expected in msg and "job.yaml" in msg
    assert cli.client.list_jobs() == []


def test_yaml_error_names_the_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\ncommand: [unclosed\n  foo: : :\n")
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert "line 3" in msg and "\n" not in msg


def test_resource_flags_still_merge_into_the_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\nresources: {cpus: 2}\n")
    res = runner.invoke(app, ["submit", str(f), "--gpus", "1", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["resources"]
    assert (r["gpus"], r["cpus"]) == (1, 2)


def test_cancel_reports_every_id(cli) -> None:  # type: ignore[no-untyped-def]
    a = cli.client.submit({"command": "sleep 20"})["id"]
    res = runner.invoke(app, ["cancel", a, "nosuchjob"])
    assert res.exit_code == 2
    assert f"{a}: CANCELLED" in res.stdout
    assert "nosuchjob" in res.stderr and "not found" in res.stderr
    assert cli.client.get_job(a)["state"] == "CANCELLED"
    b = cli.client.submit({"command": "sleep 20"})["id"]
    res = runner.invoke(app, ["cancel", "nosuchjob", b, "--json"])
    out = json.loads(res.stdout)
    assert res.exit_code == 2 and [o["id"] for o in out] == ["nosuchjob", b]
    assert out[0]["error"] == "not_found" and out[1]["state"] == "CANCELLED"


def test_jobs_table_shows_no_exit_none_and_the_whole_reason(cli) -> None:  # type: ignore[no-untyped-def]
    a = cli.client.submit({"command": "sleep 20"})["id"]
    cli.client.cancel(a)
    row = jobs_cli._job_row(cli.client.get_job(a))
    assert row[-1] == "cancelled by user while queued"
    reason = "x" * 150 + " the end says what to do"
    job = {**cli.client.get_job(a), "state": "QUEUED", "pending_reason": reason}
    assert jobs_cli._job_row(job)[-1] == reason


# -- up --detach ----------------------------------------------------------------------------------


class _FakeChild:
    """Popen stand-in: lives ``polls`` polls, then exits with 1 (as a server that lost the port
    race would); ``on_start`` runs when it is created (e.g. it records server.json)."""

    pid = 424242

    def __init__(self, polls: int) -> None:
        self.polls, self.returncode = polls, None

    def poll(self) -> int | None:
        self.polls -= 1
        if self.polls < 0:
            self.returncode = 1
        return self.returncode


class _Ok:
    status_code = 200


@pytest.fixture
def fake_spawn(aistack_home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    spawned: list[_FakeChild] = []

    def spawn(polls: int, *, record: bool = False) -> None:
        def popen(*_a: Any, **_kw: Any) -> _FakeChild:
            child = _FakeChild(polls)
            spawned.append(child)
            if record:  # what `aistack up` writes once it holds the lease
                (aistack_home / "server.json").write_text(json.dumps({"pid": child.pid}))
            return child

        monkeypatch.setattr(jobs_cli.subprocess, "Popen", popen)
        monkeypatch.setattr(jobs_cli.time, "sleep", lambda _s: None)
        monkeypatch.setattr("httpx.get", lambda *_a, **_kw: _Ok())  # some server answers

    spawn.spawned = spawned  # type: ignore[attr-defined]
    return spawn


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_detach_refuses_a_port_in_use_before_spawning(fake_spawn) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        res = runner.invoke(app, ["up", "--detach", "--host", "127.0.0.1", "--port", str(port)])
    msg = _error(res, ConflictError)
    assert f"port {port} on 127.0.0.1 is in use" in msg
    assert fake_spawn.spawned == []


def test_up_detach_refuses_when_this_home_has_a_server(fake_spawn, aistack_home: Path) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100)
    aistack_home.mkdir(parents=True, exist_ok=True)
    (aistack_home / "server.json").write_text(
        json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:1"})
    )
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port())])
    assert f"already runs for {aistack_home} (pid {os.getpid()}" in _error(res, ConflictError)
    assert fake_spawn.spawned == []


def test_up_detach_ignores_an_answer_from_another_server(fake_spawn, aistack_home: Path) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(3)  # /healthz answers (another server), our child exits without recording itself
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port())])
    assert res.exit_code == 1, res.output
    assert "the server exited (code 1)" in res.stderr
    assert "server running" not in res.stdout


def test_up_detach_failure_shows_only_this_starts_log(fake_spawn, aistack_home: Path) -> None:  # type: ignore[no-untyped-def]
    aistack_home.mkdir(parents=True, exist_ok=True)
    (aistack_home / "server.log").write_text("an old start's error: EARLIER\n")

    def popen(*_a: Any, stdout: Any = None, **_kw: Any) -> _FakeChild:
        stdout.write(b"this start: bad policy option 'bogus'\n")
        stdout.flush()
        return _FakeChild(0)

    fake_spawn(0)
    jobs_cli.subprocess.Popen = popen  # type: ignore[assignment]  # (undone by monkeypatch)
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port())])
    assert res.exit_code == 1
    assert "bad policy option 'bogus'" in res.stderr and "EARLIER" not in res.stderr


def test_up_detach_reports_its_own_child(fake_spawn) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100, record=True)
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port())])
    assert res.exit_code == 0, res.output
    assert f"(pid {_FakeChild.pid})" in res.stdout


def test_jobs_list_says_how_to_get_the_next_page(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    ids = [cli.client.submit({"command": "x"})["id"] for _ in range(3)]
    # a narrow terminal; _width (not the width property) so that undo puts back None, not a
    # fixed width that would then hold for every later test sharing this console
    monkeypatch.setattr(jobs_cli.console, "_width", 60)
    res = runner.invoke(app, ["jobs", "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert (
        f"--limit 2 --before {ids[1]}" in res.output
        and ids[0] not in res.output.split("next page")[0]
    )
    table = res.output.split("next page")[0]
    assert ids[2] in table and ids[1] in table  # whole, not folded over two lines
    res = runner.invoke(app, ["jobs", "--limit", "2", "--before", ids[1], "--json"])
    assert [j["id"] for j in json.loads(res.stdout)] == [ids[0]]


def test_down_says_which_services_keep_running(aistack_home: Path) -> None:
    import subprocess

    from aistack.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(["sleep", "30"])
    controller = subprocess.Popen(["sleep", "30"])
    try:
        settings.server_file.write_text(json.dumps({"pid": server.pid}))
        for name, pid in (("live-svc", controller.pid), ("gone-svc", 2**22 + 7)):
            d = settings.home / "services" / name
            d.mkdir(parents=True)
            (d / "spec.json").write_text(json.dumps({"name": name, "model": "builtin:echo"}))
            (d / "controller.json").write_text(json.dumps({"pid": pid}))
        res = runner.invoke(app, ["down", "--timeout", "1"])
        assert res.exit_code == 0, res.output
        assert "stopped the aistack server" in res.output
        assert "1 service(s) keep running: live-svc" in " ".join(res.output.split())
        assert "gone-svc" not in res.output
    finally:
        for p in (server, controller):
            p.kill()
            p.wait()


def test_job_row_shows_why_a_stopped_job_stopped() -> None:
    """A job asked to stop that did not fail (still stopping, or exited 0 when stopped) shows
    its stop reason; a failed or cancelled one its failure reason, as before."""
    from aistack.cli.jobs import _job_row

    base = {"id": "j1", "name": "r", "project": "p", "user": "u", "resources": {"cpus": 1}}
    base["submitted_at"] = "2026-11-29T10:00:00+00:00"
    stopped = {**base, "state": "SUCCEEDED", "exit_code": 0, "stop_reason": "scaled down"}
    assert "stopped: scaled down" in _job_row(stopped)
    stopping = {**base, "state": "CANCELLING", "stop_reason": "cancelled by user"}
    assert "stopped: cancelled by user" in _job_row(stopping)
    cancelled = {
        **base,
        "state": "CANCELLED",
        "failure_reason": "rollout",
        "stop_reason": "rollout",
    }
    assert "rollout" in _job_row(cancelled)
    failed = {**base, "state": "FAILED", "exit_code": 3, "failure_reason": "boom"}
    assert "exit 3: boom" in _job_row(failed)
    plain = {**base, "state": "SUCCEEDED", "exit_code": 0}
    assert not any("stopped" in str(c) for c in _job_row(plain))
