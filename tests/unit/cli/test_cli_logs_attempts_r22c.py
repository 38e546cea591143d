"""`aistack logs` on a job that was retried or requeued: each attempt has its own output, and
the CLI printed them run together (`-f`) or printed the latest one with no word that there
were others (plain `logs`). A line on stderr, "── attempt N (why) ──", now marks where each
attempt after the first begins; stdout keeps only the job's output.

The client is the real SDK (its follow_logs) against a mock transport that plays a job whose
attempt 0 fails with exit code 3 and whose attempt 1 (the retry) runs to its end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.client import Client

runner = CliRunner()

OUT = {0: "attempt 0 says hi\nboom\n", 1: "attempt 1 says hi\n", 2: "attempt 2 no newline"}
EVENTS = [
    {"t": "2026-12-01T10:00:00Z", "kind": "submitted", "message": "queued with priority 0"},
    {"t": "2026-12-01T10:00:01Z", "kind": "started", "message": "attempt 0 on vm"},
    {
        "t": "2026-12-01T10:00:02Z",
        "kind": "retry",
        "message": "attempt 0 failed: exit code 3 — last output: boom",
    },
    {"t": "2026-12-01T10:00:03Z", "kind": "started", "message": "attempt 1 on vm"},
    {"t": "2026-12-01T10:00:04Z", "kind": "warning", "message": "low disk"},
    {
        "t": "2026-12-01T10:00:05Z",
        "kind": "preempted",
        "message": "job hi-1 has priority 100 > 0",
    },
    {"t": "2026-12-01T10:00:06Z", "kind": "started", "message": "attempt 2 on vm"},
]


class _Job:
    """A job that goes through ``states`` (attempt, state), one step after each read of an
    attempt's output that returned text."""

    def __init__(self, states: list[tuple[int, str]]) -> None:
        self.states = states

    @property
    def now(self) -> tuple[int, str]:
        return self.states[0]

    def handler(self, req: httpx.Request) -> httpx.Response:
        attempt, state = self.now
        final = state in ("SUCCEEDED", "FAILED")
        path = req.url.path
        if path.endswith("/logs"):
            att = int(req.url.params.get("attempt", attempt))
            off = int(req.url.params.get("offset", 0))
            data = OUT[att].encode()[off:] if att <= attempt else b""
            if data and len(self.states) > 1:
                self.states.pop(0)
            body = {
                "job_id": "abc",
                "attempt": att,
                "offset": off,
                "next_offset": off + len(data),
                "text": data.decode(),
                "final": final,
            }
            return httpx.Response(200, json=body)
        if path.endswith("/events"):
            return httpx.Response(200, json=EVENTS)
        return httpx.Response(200, json={"id": "abc", "state": state, "attempt": attempt})


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: _Job) -> Client:
    from aistack.settings import Settings

    c = Client("http://aistack.test", "tok", settings=Settings(home=tmp_path))
    c._http.close()
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(job.handler))
    monkeypatch.setattr(jobs_cli, "client", lambda: c)
    return c


def test_follow_marks_where_the_retry_begins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _Job([(0, "RUNNING"), (1, "RUNNING"), (1, "SUCCEEDED")])
    _cli(tmp_path, monkeypatch, job)
    res = runner.invoke(app, ["logs", "abc", "-f"])
    assert res.exit_code == 0, res.output
    # stdout: the output alone, as the job wrote it
    assert res.stdout == OUT[0] + OUT[1]
    # with stderr: the marker between the two attempts, with why the second one began
    assert res.output == (
        OUT[0] + "── attempt 1 (retry after attempt 0 failed: exit code 3) ──\n" + OUT[1]
    )


def test_follow_from_a_later_attempt_says_the_earlier_ones_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _Job([(1, "RUNNING"), (2, "RUNNING"), (2, "FAILED")])
    _cli(tmp_path, monkeypatch, job)
    res = runner.invoke(app, ["logs", "abc", "--follow"])
    assert res.exit_code == 0, res.output
    assert res.stdout == OUT[1] + OUT[2]
    assert res.output == (
        "── attempt 1 (retry after attempt 0 failed: exit code 3); attempt 0's output: "
        "`aistack logs abc --attempt 0` ──\n"
        + OUT[1]
        + "── attempt 2 (preempted: job hi-1 has priority 100 > 0) ──\n"
        + OUT[2]
    )


def test_plain_logs_of_a_retried_job_names_the_attempt_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli(tmp_path, monkeypatch, _Job([(2, "FAILED")]))
    res = runner.invoke(app, ["logs", "abc"])
    assert res.exit_code == 0, res.output
    assert res.stdout == OUT[2]
    assert res.output == (
        "── attempt 2 (preempted: job hi-1 has priority 100 > 0); attempts 0 to 1: "
        "`aistack logs abc --attempt N` ──\n" + OUT[2]
    )
    # an attempt asked for is printed as it is; a job never retried has no marker
    res = runner.invoke(app, ["logs", "abc", "--attempt", "0"])
    assert res.exit_code == 0 and res.output == OUT[0]
    _cli(tmp_path, monkeypatch, _Job([(0, "FAILED")]))
    res = runner.invoke(app, ["logs", "abc"])
    assert res.exit_code == 0 and res.output == OUT[0]


def test_attempt_reasons_from_the_events() -> None:
    events: list[dict[str, Any]] = [
        *EVENTS,
        {"kind": "requeued", "message": "attempt 2 lost: node n1 is gone"},
        {
            "kind": "warning",
            "message": "attempt 3 was launched but never recorded (it was stopped); "
            "starting attempt 4",
        },
    ]
    assert jobs_cli._attempt_reasons(events) == [
        "retry after attempt 0 failed: exit code 3",
        "preempted: job hi-1 has priority 100 > 0",
        "requeued after attempt 2 lost: node n1 is gone",
        "attempt 3 was launched but never recorded (it was stopped)",
    ]
