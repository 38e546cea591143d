"""`aistack submit` with a relative workdir, and `aistack events` times (found by walking
through the platform core as a Slurm user).

* ``--workdir sub`` (or ``workdir: sub`` in a job file) was sent as it was: the supervisor
  runs in another folder, so the job failed at its start with "working directory 'sub' does
  not exist". A relative folder is now the current one's, as ``sbatch --chdir`` takes it.
* ``aistack events`` printed the API's UTC clock time ("03:14:56") with no date and no zone,
  read as local time by everyone east or west of Greenwich; it prints the date, the local
  time and the zone now.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app

runner = CliRunner()


def test_a_relative_workdir_option_is_the_current_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = jobs_cli._spec_from_args(None, "pwd", {"workdir": "sub"})
    assert data["workdir"] == str(tmp_path / "sub")
    data = jobs_cli._spec_from_args(None, "pwd", {"workdir": "./a/../b"})
    assert data["workdir"] == str(tmp_path / "b")
    # an absolute one, and the default, are kept
    assert jobs_cli._spec_from_args(None, "pwd", {"workdir": "/srv/x"})["workdir"] == "/srv/x"
    assert jobs_cli._spec_from_args(None, "pwd", {})["workdir"] == str(tmp_path)


def test_a_relative_workdir_in_a_job_file_is_the_current_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "job.yaml"
    f.write_text("name: t\nworkdir: sub\nscript: |\n  pwd\n  echo hi\n")
    data = jobs_cli._spec_from_args(str(f), None, {})
    assert data["workdir"] == str(tmp_path / "sub")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    f.write_text("name: t\nworkdir: ~/runs\ncommand: pwd\n")
    assert jobs_cli._spec_from_args(str(f), None, {})["workdir"] == str(tmp_path / "home/runs")


def test_submit_sends_the_absolute_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    class Fake:
        def submit(self, spec: Any) -> dict[str, Any]:
            sent.append(spec)
            return {"id": "abc"}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(jobs_cli, "client", lambda: Fake())
    res = runner.invoke(app, ["submit", "--cmd", "pwd", "--workdir", "sub"])
    assert res.exit_code == 0, res.output
    assert sent[0].workdir == str(tmp_path / "sub")


@pytest.fixture
def tokyo() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_events_print_the_local_date_time_and_zone(
    tokyo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Fake:
        def events(self, _job_id: str) -> list[dict[str, Any]]:
            return [
                {"t": "2026-12-01T23:14:56.424163Z", "kind": "submitted", "message": "queued"},
                {"t": "2026-12-01T23:15:00", "kind": "failed", "message": "exit code 7"},
            ]

    monkeypatch.setattr(jobs_cli, "client", lambda: Fake())
    res = runner.invoke(app, ["events", "abc"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    # 23:14 UTC is 08:14 the next day in Tokyo (UTC+9)
    assert lines[0].startswith("2026-12-02 08:14:56 JST  submitted")
    assert lines[1].startswith("2026-12-02 08:15:00 JST  failed")


class _Logs:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def logs(self, job_id: str, *, offset: int = 0, attempt: int | None = None) -> dict[str, Any]:
        self.calls.append(("logs", attempt))
        return {"text": "", "next_offset": offset, "attempt": attempt or 0, "final": True}

    def follow_logs(self, job_id: str) -> Iterator[str]:
        self.calls.append(("follow", None))
        yield "latest attempt's output\n"


def test_logs_follow_with_an_attempt_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # -f printed the latest attempt and ignored --attempt
    fake = _Logs()
    monkeypatch.setattr(jobs_cli, "client", lambda: fake)
    res = runner.invoke(app, ["logs", "abc", "--attempt", "0", "-f"])
    assert res.exit_code != 0
    assert "--attempt 0 with --follow" in str(res.exception)
    assert fake.calls == []
    res = runner.invoke(app, ["logs", "abc", "--attempt", "0"])
    assert res.exit_code == 0 and fake.calls == [("logs", 0)]


def test_logs_a_negative_attempt_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # was the SDK's message: "attempt: -1 is not a whole number >= 0 (... or None)"
    fake = _Logs()
    monkeypatch.setattr(jobs_cli, "client", lambda: fake)
    res = runner.invoke(app, ["logs", "abc", "--attempt", "-1"])
    assert res.exit_code == 2
    assert "--attempt" in res.output and "None" not in res.output
    assert fake.calls == []
