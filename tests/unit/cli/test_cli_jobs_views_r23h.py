"""First-use mends of `aistack logs/jobs/cancel/up` and of every command's help:

- `logs --attempt 5` of a job with one attempt said "attempt: job X has attempts 0..0, not
  5": it now says "--attempt 5: job X has only attempt 0" (the API: "attempt 5: ...");
- the jobs table said "exit -15: cancelled by user" where `jobs ID` said "-15 (ended by
  SIGTERM)", and "0 GPU/1 CPU" where `jobs ID` said "0 GPUs, 1 CPU": one function each;
- a number in an option's error read "-1e+09";
- every flag's help read as if it took a value ("--detach -d <bool>", "--help <bool>");
- `import aistack.cli.main` (every command, every --help) loaded pydantic, pydantic-settings
  and PyYAML through aistack.settings and aistack.spec."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.errors import ValidationError
from aistack.server.db.models import Job

runner = CliRunner()


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    return api


def _job(api: Any, *, attempt: int = 0) -> str:
    jid = str(api.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"])
    with api.ctx.sessions() as s:
        s.execute(update(Job).where(Job.id == jid).values(state="FAILED", attempt=attempt))
        s.commit()
    for a in range(attempt + 1):
        d = api.ctx.settings.jobs_dir / jid / str(a)
        d.mkdir(parents=True)
        (d / "output.log").write_text(f"attempt {a}\n")
    return jid


# -- logs --attempt ------------------------------------------------------------------------


def test_logs_attempt_out_of_range_names_the_option_and_reads_naturally(cli: Any) -> None:
    jid = _job(cli)
    res = runner.invoke(app, ["logs", jid, "--attempt", "5"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == f"--attempt 5: job {jid} has only attempt 0"
    assert res.exception.hint == "leave out --attempt for the latest one, attempt 0"
    assert res.exception.details["field"] == "--attempt"
    three = _job(cli, attempt=2)
    res = runner.invoke(app, ["logs", three, "--attempt", "7"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == f"--attempt 7: job {three} has attempts 0 to 2"
    ok = runner.invoke(app, ["logs", three, "--attempt", "1"])
    assert ok.exit_code == 0 and ok.stdout == "attempt 1\n"


def test_the_sdk_and_the_api_say_it_with_the_field_name(cli: Any) -> None:
    jid = _job(cli, attempt=1)
    with pytest.raises(ValidationError) as err:
        cli.client.logs(jid, attempt=4)
    assert err.value.message == f"attempt 4: job {jid} has attempts 0 to 1"
    assert err.value.hint == "leave attempt out for the latest one, attempt 1"
    assert err.value.details.get("field") == "attempt"


# -- the table and `jobs ID` say an exit and a request the same way ---------------------------


def _stored(**over: Any) -> dict[str, Any]:
    job = {
        "id": "abc123",
        "name": "n",
        "project": "p",
        "user": "u",
        "kind": "batch",
        "state": "CANCELLED",
        "priority": 0,
        "exit_code": -15,
        "failure_reason": "cancelled by user",
        "attempt": 0,
        "resources": {"gpus": 0, "cpus": 1, "memory": None, "nodes": 1},
        "command": "sleep 9",
        "submitted_at": "2026-12-01T10:00:00Z",
    }
    return {**job, **over}


def _details(job: dict[str, Any]) -> dict[str, str]:
    return dict(jobs_cli._job_details(job, "http://x"))


def test_an_exit_by_a_signal_reads_the_same_in_the_table_and_in_jobs_id() -> None:
    job = _stored()
    assert jobs_cli._job_row(job)[6] == "exit code -15 (ended by SIGTERM); cancelled by user"
    assert _details(job)["exit code"] == "-15 (ended by SIGTERM)"
    failed = _stored(state="FAILED", exit_code=3, failure_reason="boom")
    assert jobs_cli._job_row(failed)[6] == "exit code 3; boom"
    assert _details(failed)["exit code"] == "3"
    assert jobs_cli._job_row(_stored(failure_reason=None))[6] == "exit code -15 (ended by SIGTERM)"


@pytest.mark.parametrize(
    ("resources", "text"),
    [
        # a bare number is MB as the spec and the scheduler count them: binary (MiB)
        ({"gpus": 0, "cpus": 1, "memory": 5, "nodes": 1}, "0 GPUs, 1 CPU, 5 MiB memory"),
        ({"gpus": 1, "cpus": 4, "memory": "16GB", "nodes": 1}, "1 GPU, 4 CPUs, 16 GiB memory"),
        (
            {"gpus": 8, "cpus": 64, "memory": "1000TB", "nodes": 2, "gpu_type": "H100"},
            "8 GPUs (H100), 64 CPUs, 1,024,000 GiB memory per node × 2 nodes",
        ),
    ],
)
def test_a_request_reads_the_same_in_the_table_and_in_jobs_id(
    resources: dict[str, Any], text: str
) -> None:
    job = _stored(state="RUNNING", exit_code=None, resources=resources)
    assert jobs_cli._job_row(job)[4] == text
    assert _details(job)["request"] == text


def test_a_request_without_memory_says_so_only_in_jobs_id() -> None:
    job = _stored(state="RUNNING", exit_code=None)
    assert jobs_cli._job_row(job)[4] == "0 GPUs, 1 CPU"
    assert _details(job)["request"] == "0 GPUs, 1 CPU, memory not set"


# -- numbers in errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e9, "1,000,000,000"),
        (-1e9, "-1,000,000,000"),
        (3600.5, "3,600.5"),
        (0.25, "0.25"),
        (10, "10"),
        (1e20, "1e20"),
        (float("inf"), "inf"),
    ],
)
def test_fmt_number(value: float, text: str) -> None:
    from aistack.cli._common import fmt_number

    assert fmt_number(value) == text


def test_a_huge_duration_in_an_error_is_readable(aistack_home: Any) -> None:
    res = runner.invoke(app, ["up", "--timeout", "-1e9"])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith(
        "--timeout -1,000,000,000: expected a finite number of seconds greater than 0"
    )


# -- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["--help"], ["up", "--help"], ["jobs", "--help"], ["data", "--help"]]
)
def test_help_shows_no_type_after_a_flag(aistack_home: Any, argv: list[str]) -> None:
    res = runner.invoke(app, argv, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output
    assert "--help" in res.output and "Show this message and exit." in res.output
    if argv[0] == "up":  # (options that take a value keep their type)
        assert "<float>" in res.output and "--detach" in res.output


def test_jobs_usage_has_no_doubled_brackets(aistack_home: Any) -> None:
    res = runner.invoke(app, ["jobs", "--help"], env={"COLUMNS": "200"})
    assert "[OPTIONS] [JOB_ID]..." in res.output and "[[JOB_ID]" not in res.output


def test_a_flag_still_parses(cli: Any) -> None:
    _job(cli)
    res = runner.invoke(app, ["jobs", "--all", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 1


# -- what every command pays for at its start ------------------------------------------------


def test_the_cli_module_does_not_load_pydantic_settings_or_yaml(aistack_home: Any) -> None:
    code = (
        "import json, sys, aistack.cli.main; "
        "print(json.dumps(sorted(m for m in ('pydantic', 'pydantic_settings', 'yaml', "
        "'aistack.settings', 'aistack.spec', 'torch', 'mlflow', 'fastapi', 'sqlalchemy', "
        "'ray', 'pandas', 'httpx') if m in sys.modules)))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(p.stdout) == []


def test_cancel_help_gives_the_specs_longest_grace(aistack_home: Any) -> None:
    from aistack.spec import CANCEL_GRACE_MAX_S

    assert jobs_cli._GRACE_MAX_S == CANCEL_GRACE_MAX_S
    res = runner.invoke(app, ["cancel", "--help"], env={"COLUMNS": "300"})
    assert f"0 to {CANCEL_GRACE_MAX_S:,.0f} (default" in res.output
