"""`aistack serve` as a first-time user reads it: delete says which replicas it stopped
itself, scale and restart count in words ("1 replica"), status shows which job (or process)
each replica is."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.main import app, main
from aistack.errors import ConflictError

runner = CliRunner()


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    """``aistack serve ARGV`` through the real entry point (errors are its ``error:`` line,
    exit 2): (exit code, stdout, stderr), each with its whitespace runs made one space."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["aistack", "serve", *argv])
    capture = _capsys.get()
    capture.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out = capture.readouterr()
    code = ended.value.code
    code = code if isinstance(code, int) else 0 if code is None else 1
    return code, " ".join(out.out.split()), " ".join(out.err.split())


class _Capsys:
    """The running test's capsys (set by the autouse fixture below)."""

    cap: pytest.CaptureFixture[str] | None = None

    def get(self) -> pytest.CaptureFixture[str]:
        assert self.cap is not None
        return self.cap


_capsys = _Capsys()


@pytest.fixture(autouse=True)
def _use_capsys(capsys: pytest.CaptureFixture[str]) -> None:
    _capsys.cap = capsys


# -- delete ---------------------------------------------------------------------------------
def _deleted(n: int) -> Any:
    return lambda name: {
        "name": name,
        "deleted": True,
        "orphans_stopped": n,
        "kept_at": "/h/services/.deleted/echo-1",
    }


@pytest.mark.parametrize(
    ("n", "said"),
    [
        (2, "deleted echo; stopped 2 replicas its controller had left running (logs kept at "),
        (1, "deleted echo; stopped 1 replica its controller had left running (logs kept at "),
        (0, "deleted echo (logs kept at /h/services/.deleted/echo-1)"),
    ],
)
def test_delete_says_the_replicas_it_stopped_itself(
    monkeypatch: pytest.MonkeyPatch, n: int, said: str
) -> None:
    """It printed 'deleted echo (logs kept at …)' alone: the replicas whose controller had
    died, which the delete stopped, went unsaid (orphans_stopped was in --json only)."""
    monkeypatch.setattr("aistack.serving.manager.delete", _deleted(n))
    code, out, err = _run(monkeypatch, "delete", "echo")
    assert (code, err) == (0, "")
    assert said in out
    if n == 0:
        assert "stopped" not in out


def test_delete_names_the_replicas_it_stopped_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """orphans (which replicas) was returned but only their count was printed."""
    orphans = [
        {"replica": "r1", "handle": "j1", "pid": None},
        {"replica": "r3", "handle": "j3", "pid": None},
    ]
    monkeypatch.setattr(
        "aistack.serving.manager.delete",
        lambda name: {**_deleted(2)(name), "orphans": orphans},
    )
    code, out, err = _run(monkeypatch, "delete", "echo")
    assert (code, err) == (0, "")
    assert "stopped 2 replicas its controller had left running (r1, r3) (logs kept at" in out


def test_delete_response_model_keeps_the_orphans() -> None:
    from aistack.server.schemas.services import ServiceDeleted

    body = ServiceDeleted(
        name="echo",
        deleted=True,
        orphans_stopped=1,
        orphans=[{"replica": "r2", "handle": "123@456", "pid": 123}],
        kept_at="/h/x",
    ).model_dump()
    assert body["orphans"] == [{"replica": "r2", "handle": "123@456", "pid": 123}]


def test_a_partial_delete_says_the_replicas_it_did_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    def delete(name: str) -> Any:
        raise ConflictError(
            f"service {name!r} was deleted, but 1 of its replicas could not be stopped: r2 "
            "(job j2): ConnectionFailed: down",
            hint="they may still run and hold their resources: stop them with `aistack cancel j2`",
            deleted=True,
            kept_at="/h/x",
            orphans_stopped=1,
            not_stopped=[{"replica": "r2", "handle": "j2", "error": "down"}],
        )

    monkeypatch.setattr("aistack.serving.manager.delete", delete)
    code, out, err = _run(monkeypatch, "delete", "echo")
    assert code == 2
    assert "could not be stopped: r2 (job j2): ConnectionFailed: down; 1 other replica was " in err
    assert "stopped (they may still run" in err and "aistack cancel j2" in err


def test_a_partial_delete_that_stopped_none_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def delete(name: str) -> Any:
        raise ConflictError("x could not be stopped", deleted=True, orphans_stopped=0)

    monkeypatch.setattr("aistack.serving.manager.delete", delete)
    code, _out, err = _run(monkeypatch, "delete", "echo")
    assert (code, err) == (2, "error: x could not be stopped")


# -- scale ----------------------------------------------------------------------------------
def test_scale_counts_replicas_in_words_and_says_what_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """'echo: min 1 replicas, max 1 replicas'."""
    monkeypatch.setattr(
        "aistack.serving.manager.status",
        lambda name: {"name": name, "min_replicas": 2, "max_replicas": 3},
    )
    monkeypatch.setattr(
        "aistack.serving.manager.scale",
        lambda name, min_replicas, max_replicas: {"min_replicas": 1, "max_replicas": 1},
    )
    code, out, _ = _run(monkeypatch, "scale", "echo", "--min", "1", "--max", "1")
    assert code == 0
    assert out == "echo: min 1 replica, max 1 replica (was min 2 replicas, max 3 replicas)"


def test_scale_to_the_same_limits_says_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "aistack.serving.manager.status", lambda name: {"min_replicas": 0, "max_replicas": 4}
    )
    monkeypatch.setattr(
        "aistack.serving.manager.scale",
        lambda name, min_replicas, max_replicas: {"min_replicas": 0, "max_replicas": 4},
    )
    code, out, _ = _run(monkeypatch, "scale", "echo", "--max", "4")
    assert (code, out) == (0, "echo: min 0 replicas, max 4 replicas (unchanged)")


def test_scale_with_no_flag_says_the_present_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """It said 'the service's present limits are in its status' (another command to run)."""
    monkeypatch.setattr(
        "aistack.serving.manager.status", lambda name: {"min_replicas": 1, "max_replicas": 4}
    )
    code, out, err = _run(monkeypatch, "scale", "echo")
    assert (code, out) == (2, "")
    assert err.startswith(
        "error: scale: nothing to change: give --min, --max or both (echo now has min 1 "
        "replica, max 4 replicas) (e.g. `aistack serve scale echo --min 1 --max 4`"
    )


@pytest.mark.parametrize(
    ("limits", "said"),
    [
        ((2, 3), "(echo now has min 2 replicas, max 3 replicas)"),
        (None, "(echo's limits are unknown)"),
    ],
)
def test_scale_with_no_flag_and_its_controller_down(
    monkeypatch: pytest.MonkeyPatch, limits: Any, said: str
) -> None:
    """A controller that is down has no limits in its status: 'min None replicas' was said."""
    monkeypatch.setattr("aistack.serving.manager.status", lambda name: {"status": "down"})
    monkeypatch.setattr("aistack.serving.manager.present_limits", lambda name, st: limits)
    code, out, err = _run(monkeypatch, "scale", "echo")
    assert (code, out) == (2, "")
    assert said in err and "None" not in err


# -- restart, deploy ------------------------------------------------------------------------
def test_restart_counts_one_replica_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "aistack.serving.manager.restart",
        lambda name: {"url": "http://127.0.0.1:9", "ready_replicas": 1},
    )
    code, out, _ = _run(monkeypatch, "restart", "echo")
    assert (code, out) == (0, "echo: controller up at http://127.0.0.1:9, 1 replica ready")


def test_deploy_counts_one_replica_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "aistack.serving.manager.deploy",
        lambda model, **kw: {
            "name": "echo",
            "model_uri": model,
            "url": "http://127.0.0.1:9",
            "ready_replicas": 1,
            "desired_replicas": 1,
        },
    )
    code, out, _ = _run(monkeypatch, "deploy", "builtin:echo", "--wait", "0")
    assert code == 0
    assert "serving builtin:echo at http://127.0.0.1:9 (1/1 replica ready)" in out


# -- status ---------------------------------------------------------------------------------
def _status(launcher: str, handles: list[str | None]) -> dict[str, Any]:
    return {
        "name": "echo",
        "status": "running",
        "model_uri": "builtin:echo",
        "url": "http://127.0.0.1:9",
        "launcher": launcher,
        "ready_replicas": 1,
        "desired_replicas": 1,
        "min_replicas": 1,
        "max_replicas": 2,
        "inflight": 1,
        "queued": 1,
        "metrics": {"requests_total": 1, "retries_total": 1, "rejected_total": 1},
        "replicas": [
            {"id": f"r{i}", "state": "ready", "model": "builtin:echo", "handle": h}
            for i, h in enumerate(handles, start=1)
        ],
    }


def _row(out: str, rid: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(f"│ {rid} "))
    return [c.strip() for c in line.strip("│").split("│")]


def test_status_shows_each_replicas_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """With replicas as jobs, which job is which replica was in --json only."""
    monkeypatch.setattr(
        "aistack.serving.manager.status",
        lambda name: _status("jobs", ["c18e6292ec6e", "9658606146f0", None]),
    )
    monkeypatch.setenv("COLUMNS", "250")
    r = runner.invoke(app, ["serve", "status", "echo"], prog_name="aistack")
    assert r.exit_code == 0, r.output
    head = next(line for line in r.stdout.splitlines() if "┃ id" in line)
    assert [c.strip() for c in head.strip("┃").split("┃")][:3] == ["id", "job", "state"]
    assert _row(r.stdout, "r1")[:2] == ["r1", "c18e6292ec6e"]
    assert _row(r.stdout, "r2")[:2] == ["r2", "9658606146f0"]
    assert _row(r.stdout, "r3")[:2] == ["r3", "-"]  # not launched yet
    out = " ".join(r.stdout.split())
    assert "(min 1, max 2), as aistack jobs in flight 1 request" in out


def test_status_shows_each_replicas_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "aistack.serving.manager.status",
        lambda name: _status("process", ["4321@1796124480.698", "77"]),
    )
    monkeypatch.setenv("COLUMNS", "250")
    r = runner.invoke(app, ["serve", "status", "echo"], prog_name="aistack")
    assert r.exit_code == 0, r.output
    head = next(line for line in r.stdout.splitlines() if "┃ id" in line)
    assert [c.strip() for c in head.strip("┃").split("┃")][:2] == ["id", "pid"]
    assert _row(r.stdout, "r1")[:2] == ["r1", "4321"]
    assert _row(r.stdout, "r2")[:2] == ["r2", "77"]  # an older controller's handle
    assert "as local processes" in " ".join(r.stdout.split())


def test_status_counts_one_request_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """'total 1 requests', 'in flight 1 requests', '1 retries'."""
    monkeypatch.setattr("aistack.serving.manager.status", lambda name: _status("jobs", []))
    code, out, _ = _run(monkeypatch, "status", "echo")
    assert code == 0
    assert "in flight 1 request" in out and "in flight 1 requests" not in out
    assert "total 1 request, 0 5xx, 0 4xx, 1 retry" in out
    assert "queued 1 request (" in out and "refused 1 request (429)" in out


def test_status_of_a_dead_controller_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """It said 'controller down' in the header alone, above a table of replicas listed as
    ready (the dead controller's last state.json)."""
    st = {**_status("jobs", ["j1"]), "status": "controller down", "ready_replicas": 0}
    monkeypatch.setattr("aistack.serving.manager.status", lambda name: st)
    code, out, _ = _run(monkeypatch, "status", "echo")
    assert code == 0
    assert (
        "controller down: its process is not running, so nothing routes requests to "
        "http://127.0.0.1:9; the replicas above are as it last listed them and may still run. "
        "`aistack serve restart echo` starts it again and adopts the ones that do; "
        "`aistack serve delete echo` stops them"
    ) in out


def test_status_of_a_running_controller_says_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(guard: passes on the old code too)"""
    monkeypatch.setattr("aistack.serving.manager.status", lambda name: _status("jobs", ["j1"]))
    code, out, _ = _run(monkeypatch, "status", "echo")
    assert code == 0 and "controller down" not in out and "serve restart" not in out
