"""The serving domain (aistack.serving.manager, the controller) is shared by ``aistack serve``
and the REST API (``/services``): its errors name the field the caller set (``gpus``,
``launcher``, ``to``...), not a CLI option ("--gpus 1: ...", "pass --launcher jobs" reached
REST and SDK users); ``aistack serve`` says them as its options, as it did before."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ConflictError, ValidationError
from aistack.serving import manager

API = "/api/v1"


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


def _deploy_cli(*args: str) -> Any:
    base = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]
    return CliRunner().invoke(serve_cli.app, [*base, *args])


def test_gpus_for_local_processes_the_api_names_fields(api: Any, no_spawn: list[str]) -> None:
    r = api.http.post(
        f"{API}/services", json={"model": "builtin:echo", "gpus": 1, "launcher": "process"}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == "gpus: local-process replicas cannot be given GPUs"
    assert body["hint"] == (
        "start the aistack server (`aistack up --detach`) so the scheduler places replicas as "
        "jobs, or pass `launcher` jobs"
    )
    assert body["details"] == {"field": "gpus"}
    assert no_spawn == [] and manager.list_services() == []


def test_gpus_for_local_processes_the_cli_names_options(
    aistack_home: Path, no_spawn: list[str]
) -> None:
    res = _deploy_cli("--gpus", "1")
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message == "--gpus 1: local-process replicas cannot be given GPUs"  # as before
    assert err.hint == (
        "start the aistack server (`aistack up --detach`) so the scheduler places replicas as "
        "jobs, or pass --launcher jobs"
    )
    assert err.details == {"field": "--gpus"}


def test_an_empty_or_invalid_name_the_api_says_name(api: Any, no_spawn: list[str]) -> None:
    r = api.http.post(f"{API}/services", json={"model": "builtin:echo", "name": " "})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "name: the service name is empty"
    assert "leave `name` out" in r.json()["hint"] and "--" not in r.json()["hint"]
    r = api.http.post(f"{API}/services", json={"model": "builtin:echo", "name": "Bad_Name"})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("name: service name 'Bad_Name' is not valid")
    assert r.json()["message"].endswith("(set `name`)")
    assert r.json()["details"] == {"field": "name"}
    assert no_spawn == []


def test_an_empty_name_the_cli_says_name_option(aistack_home: Path, no_spawn: list[str]) -> None:
    res = CliRunner().invoke(
        serve_cli.app, ["deploy", "builtin:echo", "--name", "", "--launcher", "process"]
    )
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message == "--name: the service name is empty"  # was "--name : ..."
    assert "leave --name out" in (err.hint or "")


def test_min_above_max_says_fields_to_the_api_and_options_to_the_cli(
    api: Any, no_spawn: list[str]
) -> None:
    r = api.http.post(
        f"{API}/services", json={"model": "builtin:echo", "min_replicas": 5, "max_replicas": 2}
    )
    assert r.status_code == 422, r.text
    assert r.json()["message"].endswith(
        "min_replicas (5) is above max_replicas (2); lower `min_replicas` or raise `max_replicas`"
    )
    res = _deploy_cli("--min", "5", "--max", "2")
    assert isinstance(res.exception, ValidationError)
    assert res.exception.message == "--min 5 is above --max 2; lower --min or raise --max"


def test_a_busy_port(aistack_home: Path, no_spawn: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(ValidationError) as ei:
            manager.deploy("builtin:echo", name="p", port=busy, launcher="process")
        assert ei.value.message.startswith(f"port: cannot listen on 127.0.0.1:{busy} (")
        assert ei.value.hint == "pick another port, or leave `port` out to get a free one"
        assert ei.value.details == {"field": "port"}
        res = _deploy_cli("--port", str(busy))
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message.startswith(f"--port {busy}: cannot listen on 127.0.0.1:{busy} (")
    assert err.hint == "pick another port, or leave --port out to get a free one"
    assert no_spawn == []


@pytest.mark.parametrize("wait", ["-1", "nan"])
def test_a_bad_wait_the_cli_says_wait(aistack_home: Path, no_spawn: list[str], wait: str) -> None:
    res = _deploy_cli("--wait", wait)
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message.startswith(f"--wait {wait}: the wait is "), err.message
    assert "wait_ready_s" not in f"{err.message} {err.hint}"
    assert no_spawn == []


def test_a_bad_tail_the_cli_says_tail(aistack_home: Path) -> None:
    res = CliRunner().invoke(serve_cli.app, ["logs", "nope", "--tail", "-3"])
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert (err.message, err.hint) == (
        "--tail -3: give a number of lines, or 0 for all of them",
        "e.g. --tail 100",
    )


def test_an_already_running_service_the_api_says_to(
    api: Any, monkeypatch: pytest.MonkeyPatch, no_spawn: list[str]
) -> None:
    monkeypatch.setattr(manager, "_controller", lambda name: {"pid": 1, "url": "http://x"})
    r = api.http.post(f"{API}/services", json={"model": "builtin:echo", "launcher": "process"})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == "service 'echo' is already running"
    assert r.json()["hint"] == "update 'echo' to the new model instead (`to`), or delete it first"
    res = CliRunner().invoke(serve_cli.app, ["deploy", "builtin:echo", "--launcher", "process"])
    assert isinstance(res.exception, ConflictError), res.output
    assert res.exception.hint == "update 'echo' to the new model instead (--to), or delete it first"


def test_scale_errors_of_the_controller_carry_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller's 400 answers ({message, param}) came back as a ValidationError without
    the field."""

    class Resp:
        status_code = 400
        text = ""

        @staticmethod
        def json() -> dict[str, Any]:
            return {
                "error": {"message": "max_replicas: Input should be ...", "param": "max_replicas"}
            }

    import httpx

    monkeypatch.setattr(manager, "_controller", lambda name: {"pid": 1, "url": "http://x"})
    monkeypatch.setattr(manager, "service_dir", lambda name: _TokenDir())
    monkeypatch.setattr(httpx, "post", lambda *a, **k: Resp())
    with pytest.raises(ValidationError) as ei:
        manager._post("svc", "/-/scale", {"max_replicas": 0})
    assert ei.value.details == {"field": "max_replicas"}


class _TokenDir:
    def __truediv__(self, name: str) -> Any:
        class F:
            @staticmethod
            def read_text() -> str:
                return "tok"

        return F()


def test_no_message_of_the_serving_domain_names_a_cli_option() -> None:
    """A guard for new messages: the modules the REST API calls spell no `--flag` in an error
    text (their own argparse programs, `python -m aistack.serving.replica --port`, aside)."""
    import ast
    import re

    import aistack.serving as pkg

    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
    found = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if not name.endswith(("Error", "Failed")) or name in ("error",):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for const in ast.walk(arg):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        text = const.value.replace("aistack up --detach", "")
                        if flag.search(text):
                            found.append(f"{path.name}:{node.lineno}: {const.value!r}")
    assert found == []
