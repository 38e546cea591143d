"""`aistack submit|cancel|jobs|up` against the app in process: bad specs are one-line errors,
several ids are reported one by one, and `up --detach` only reports its own server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    assert f"{a}: cancelled while queued: it never ran" in res.stdout  # (the server's words)
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

    def json(self) -> dict[str, Any]:
        return {"status": "ok"}


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
        # the sleep stands in for the server: down signals only a pid confirmed as the server
        # (its URL answers and that pid holds the port; see the tests below)
        mp = pytest.MonkeyPatch()
        mp.setattr(jobs_cli, "_health", lambda _url: {"status": "ok", "pid": server.pid})
        mp.setattr(jobs_cli, "_holds_port", lambda _proc, _port: True)
        try:
            res = runner.invoke(app, ["down", "--timeout", "1"])
        finally:
            mp.undo()
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
    assert "exit code 3; boom" in _job_row(failed)
    plain = {**base, "state": "SUCCEEDED", "exit_code": 0}
    assert not any("stopped" in str(c) for c in _job_row(plain))


# -- down: only the recorded server, confirmed, is ever signalled ----------------------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless process in its own process group (pgid = pid): the stand-in for an unrelated
    program that got a crashed server's pid."""
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def answering_url() -> Iterator[str]:
    """Something that answers /healthz with 200 and no pid (another program, or an aistack
    server of a version whose /healthz did not say its pid), as `down` sees it."""
    yield from _answering(b'{"status": "ok"}')


@pytest.fixture
def answering_url_with_pid() -> Iterator[str]:
    """An aistack server of this test's process: its /healthz says its pid, as the app does."""
    yield from _answering(json.dumps({"status": "ok", "pid": os.getpid()}).encode())


def _answering(body: bytes) -> Iterator[str]:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _down(home: Path) -> subprocess.CompletedProcess[str]:
    """`aistack down` in a process of its own session: a down that signalled pid 0 (its process
    group) kills only itself, not the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISTACK_")}
    env["AISTACK_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "aistack", "down", "--timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )


def _record(home: Path, **info: Any) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "server.json").write_text(json.dumps(info))
    return home / "server.json"


@pytest.mark.parametrize("pid", ["missing", "sleeper", "-sleeper", "abc", True])
def test_down_with_a_stale_record_signals_nothing(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], pid: object
) -> None:
    """Nothing answers at the recorded URL: whatever the pid (none, an unrelated process that
    got the crashed server's pid, a process group, not a number), nothing is signalled; the
    stale record is reported and removed."""
    port = _port()  # free: nothing answers there
    info: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "port": port}
    if pid != "missing":
        info["pid"] = {"sleeper": sleeper.pid, "-sleeper": -sleeper.pid}.get(pid, pid)  # type: ignore[arg-type]
    record = _record(tmp_path / "home", **info)
    res = _down(tmp_path / "home")
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    out = " ".join(res.stdout.split())
    assert "Traceback" not in res.stderr and "stopped the aistack server" not in out
    assert f"nothing answers at http://127.0.0.1:{port}" in out, out
    assert "removed the stale record" in out and not record.exists()
    if pid == "sleeper":
        assert f"pid {sleeper.pid} is now another program" in out and "sleep 60" in out
    else:
        assert "records no valid pid" in out
    assert sleeper.poll() is None, "down signalled a process that is not the server"


@pytest.mark.parametrize("pid", ["sleeper", "missing", "-sleeper", "gone"])
def test_down_does_not_signal_a_pid_that_is_not_the_answering_server(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], answering_url: str, pid: str
) -> None:
    """A server answers at the recorded URL, but the recorded pid is not that server (it does
    not hold the port, or is missing, negative, not running): refused, nothing signalled, and
    the record kept (it may be the only note of where the server is)."""
    port = int(answering_url.rsplit(":", 1)[1])
    info: dict[str, Any] = {"url": answering_url, "port": port}
    if pid != "missing":
        info["pid"] = {"sleeper": sleeper.pid, "-sleeper": -sleeper.pid, "gone": 2**22 + 9}[pid]
    record = _record(tmp_path / "home", **info)
    res = _down(tmp_path / "home")
    err = " ".join(res.stderr.split())
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in err and "nothing was stopped" in err, err
    if pid == "sleeper":
        assert f"the recorded pid {sleeper.pid} does not hold port {port}" in err
    assert record.exists() and json.loads(record.read_text()) == info
    assert sleeper.poll() is None, "down signalled a process that is not the server"


_HOLD_PORT = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.2", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_down_does_not_signal_a_pid_that_is_not_the_pid_healthz_gives(
    tmp_path: Path, answering_url_with_pid: str
) -> None:
    """The recorded pid holds the recorded port (on another address, 127.0.0.2) and a server
    answers at the recorded URL, but that server's /healthz says it is another pid: it is not
    the recorded server, so nothing is signalled (the port check alone let it through)."""
    port = int(answering_url_with_pid.rsplit(":", 1)[1])
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_PORT, str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        info: dict[str, Any] = {"url": answering_url_with_pid, "port": port, "pid": holder.pid}
        record = _record(tmp_path / "home", **info)
        res = _down(tmp_path / "home")
        err = " ".join(res.stderr.split())
        assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
        assert (
            f"a server answers at {answering_url_with_pid}, but it is pid {os.getpid()}, not "
            f"the recorded pid {holder.pid}" in err
        ), err
        assert "nothing was stopped" in err and "Traceback" not in err
        assert record.exists() and json.loads(record.read_text()) == info
        assert holder.poll() is None, "down signalled a process that is not the server"
    finally:
        holder.kill()
        holder.wait()


def test_down_with_an_unreadable_record_is_a_clear_error(aistack_home: Path) -> None:
    aistack_home.mkdir(parents=True)
    record = aistack_home / "server.json"
    record.write_text("{not json")
    res = runner.invoke(app, ["down"])
    assert "not readable" in _error(res) and record.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_down_timeout_must_be_a_finite_number(aistack_home: Path, value: str) -> None:
    res = runner.invoke(app, ["down", "--timeout", value])
    assert f"--timeout {value}: expected a finite number" in _error(res)


# -- wait, up: numbers that mean something ---------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_wait_timeout_must_be_finite_and_not_negative(cli, value: str) -> None:  # type: ignore[no-untyped-def]
    jid = cli.client.submit({"command": "sleep 20"})["id"]

    def no_wait(*_a: Any, **_kw: Any) -> None:  # (nan: waited until the job ended)
        raise AssertionError("wait() called with --timeout " + value)

    cli.client.wait = no_wait
    for extra in ([], ["--json"]):
        res = runner.invoke(app, ["wait", jid, "--timeout", value, *extra])
        msg = _error(res)
        assert f"--timeout {value}: expected a finite number of seconds" in msg


def test_wait_timeout_zero_checks_once(cli) -> None:  # type: ignore[no-untyped-def]
    jid = cli.client.submit({"command": "sleep 20"})["id"]
    res = runner.invoke(app, ["wait", jid, "--timeout", "0"])
    assert res.exit_code == 124 and "still QUEUED after 0 s" in res.stderr


@pytest.mark.parametrize("value", ["nan", "-1", "0"])
def test_up_detach_timeout_must_be_positive(fake_spawn, value: str) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100, record=True)
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port()), "--timeout", value])
    assert f"--timeout {value}: expected a finite number of seconds" in _error(res)
    assert fake_spawn.spawned == []  # refused before a server was started


def test_up_detach_timeout_says_the_server_may_still_start(fake_spawn) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(10**9)  # answers never come from this child: it does not record itself
    res = runner.invoke(app, ["up", "--detach", "--port", str(_port()), "--timeout", "0.3"])
    assert res.exit_code == 1
    err = " ".join(res.stderr.split())
    assert f"the server (pid {_FakeChild.pid}) did not answer within 0.3 s" in err
    assert f"kill {_FakeChild.pid}" in err


@pytest.mark.parametrize(
    ("port", "expected"),
    [("99999", "not a TCP port"), ("-1", "not a TCP port"), ("0", "0 would be any free port")],
)
@pytest.mark.parametrize("detach", [True, False])
def test_up_refuses_a_port_out_of_range(
    fake_spawn, monkeypatch: pytest.MonkeyPatch, port: str, expected: str, detach: bool
) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100, record=True)
    served: list[int] = []  # the foreground server (a `--port 0` once served on 8765)
    monkeypatch.setattr("aistack.server.main.run", lambda _s, _h, p, **_kw: served.append(p))
    res = runner.invoke(app, ["up", "--port", port, *(["--detach"] if detach else [])])
    msg = _error(res)
    assert f"--port {port}: {expected}" in msg and "1 to 65535" in msg
    assert fake_spawn.spawned == [] and served == []


@pytest.mark.parametrize("detach", [True, False])
def test_up_on_an_unresolvable_host_is_not_a_port_in_use(fake_spawn, detach: bool) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100, record=True)
    res = runner.invoke(
        app,
        ["up", "--host", "nonexistent.invalid", "--port", str(_port())]
        + (["--detach"] if detach else []),
    )
    msg = _error(res)
    assert "'nonexistent.invalid' does not resolve" in msg and "in use" not in msg
    assert "--host" in msg
    assert fake_spawn.spawned == []


def test_up_on_an_address_of_another_machine_is_not_a_port_in_use(fake_spawn) -> None:  # type: ignore[no-untyped-def]
    fake_spawn(100, record=True)
    res = runner.invoke(app, ["up", "--detach", "--host", "192.0.2.1", "--port", str(_port())])
    msg = _error(res)  # 192.0.2.1: TEST-NET-1, never an address of this machine
    assert "192.0.2.1 is not an address of this machine" in msg and "in use" not in msg


@pytest.mark.parametrize("args", [["up", "--detach"], ["data", "ls"]])
def test_aistack_home_that_is_a_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    from aistack.settings import reset_settings_cache

    f = tmp_path / "not-a-dir"
    f.write_text("keep me\n")
    monkeypatch.setenv("AISTACK_HOME", str(f))
    reset_settings_cache()
    try:
        res = runner.invoke(app, args)
    finally:
        reset_settings_cache()
    msg = _error(res)
    assert "AISTACK_HOME" in msg and "is not a directory" in msg
    assert f.read_text() == "keep me\n"


# -- submit: every bad file is a clear error -------------------------------------------------------


def test_a_directory_or_a_non_utf8_job_file_is_a_clear_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "jobs"
    d.mkdir()
    assert "is a directory" in _error(runner.invoke(app, ["submit", str(d)]))
    f = tmp_path / "latin1.yaml"
    f.write_bytes("command: echo caf\u00e9\n".encode("latin-1"))
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert "latin1.yaml: not UTF-8" in msg and "byte 0xe9" in msg
    assert cli.client.list_jobs() == []


@pytest.mark.parametrize("flags", [["--env", "B=2"], []])
@pytest.mark.parametrize("env", ["[A=1]", "A=1", "5"])
def test_env_that_is_not_a_mapping_is_a_clear_error(
    cli, tmp_path: Path, env: str, flags: list[str]
) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "e1.yaml"
    f.write_text(f"command: echo hi\nenv: {env}\n")
    msg = _error(runner.invoke(app, ["submit", str(f), *flags]))
    assert "e1.yaml" in msg and "env: expected a mapping" in msg and "{A: '1'}" in msg
    assert cli.client.list_jobs() == []


def test_env_numbers_in_a_job_file_are_submitted_as_text(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\nenv: {A: 1, B: 0.5}\n")
    res = runner.invoke(app, ["submit", str(f), "--env", "C=3"])
    assert res.exit_code == 0, res.output
    from aistack.server.db.models import Job

    (job,) = cli.client.list_jobs()
    with cli.ctx.sessions() as s:
        assert s.get(Job, job["id"]).spec["env"] == {"A": "1", "B": "0.5", "C": "3"}
    f.write_text("command: echo hi\nenv: {A: 1, DEBUG: yes}\n")
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert 'env.DEBUG: true is a YAML boolean; quote it ("true") if you mean the string' in msg
    assert "job.yaml" in msg and "yes/no/on/off are booleans" in msg
    assert len(cli.client.list_jobs()) == 1


def test_env_flags_still_merge_into_the_files_env(tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\nenv: {A: '1', B: x}\n")
    data = jobs_cli._spec_from_args(str(f), None, {"env": ["B=2", "C=3"]})
    assert data["env"] == {"A": "1", "B": "2", "C": "3"}


def test_a_resource_key_at_the_top_level_says_where_it_belongs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\ngpus: 1\n")
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert "unknown key 'gpus': it belongs under resources" in msg


# -- ids that cannot be routed ---------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [["logs"], ["events"], ["wait"], ["logs", "--follow"]])
def test_an_id_with_a_slash_is_a_job_not_found(cli, cmd: list[str]) -> None:  # type: ignore[no-untyped-def]
    from aistack.errors import NotFoundError

    res = runner.invoke(app, [*cmd, "a/b"])
    msg = _error(res, NotFoundError)
    assert "job 'a/b' not found" in msg and "no such endpoint" not in msg


def test_job_row_request_names_its_units() -> None:
    """The req column printed '2G/8C×2': G read as gigabytes (a job asks for memory too)."""
    from aistack.cli.jobs import _job_row

    job = {"id": "j1", "name": "r", "project": "p", "state": "QUEUED"}
    job["submitted_at"] = "2026-11-29T10:00:00+00:00"
    assert _job_row({**job, "resources": {"gpus": 2, "cpus": 8, "nodes": 2}})[4] == (
        "2 GPUs, 8 CPUs per node × 2 nodes"
    )
    assert _job_row({**job, "resources": {"cpus": 1}})[4] == "0 GPUs, 1 CPU"


def test_submit_errors_name_the_options_given_and_the_files_fields_otherwise(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    """The README says the CLI names its options in errors: submit named the job spec's fields
    ("resources.gpus: ...") for its flags too. A field from the job file keeps the file's name."""
    msg = _error(runner.invoke(app, ["submit", "--cmd", "true", "--gpus", "64"]))
    assert msg.startswith("--gpus: asks for 64 GPUs per node but ")
    assert msg.endswith("(lower --gpus, or use --nodes to spread over several nodes)")
    msg = _error(runner.invoke(app, ["submit", "--cmd", "true", "--max-runtime", "forever"]))
    assert msg.startswith("invalid job spec (--cmd): --max-runtime: ")
    f = tmp_path / "job.yaml"
    f.write_text("command: echo hi\nresources: {gpus: 64}\n")
    msg = _error(runner.invoke(app, ["submit", str(f)]))
    assert msg.startswith("resources.gpus: asks for 64 GPUs per node but ")
    # the flag overrides the file's value, so the error is about the flag
    msg = _error(runner.invoke(app, ["submit", str(f), "--gpus", "32"]))
    assert msg.startswith("--gpus: asks for 32 GPUs per node but ")
    assert cli.client.list_jobs(all=True) == []
