"""Review mends of the CLI, round 23a:

* `aistack status` reads the active jobs through the SDK's ``Client.iter_jobs`` (it paged by
  hand, a copy of the SDK's loop);
* `aistack cancel`, the SDK's ``Client.cancel`` and the API's ``JobCancel`` check a reason and
  a grace period with the same functions (aistack.spec), so their words agree: a
  whitespace-only or over-long reason, and a grace of inf, nan, -1 or 5000 s, are refused with
  the same problem wherever they are given, the CLI's before any request;
* `aistack logs -f` learns each piece's attempt from the piece itself (``LogText.attempt``)
  instead of wrapping ``c.logs``;
* `aistack projects ls` showed a $0.0005 budget as "$0.00" (and `projects set` "1e-05
  USD/month"); an error about ``--budget -1`` said "-1.0";
* `aistack up --help` said "port (default 8765)" whatever AISTACK_PORT said;
* the `aistack --help` list cut the jobs, logs and cancel lines in mid-sentence (typer's rich
  help kept the docstrings' line breaks); `submit --help` gave no help for ten options;
* the jobs table said an allocation as "vm: gpus [] cpus [1]" (Python's lists), `jobs ID` as
  "vm: GPUs -, CPUs 1".
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli import projects as projects_cli
from aistack.cli.main import app
from aistack.client import Client
from aistack.errors import ValidationError

runner = CliRunner()


@pytest.fixture
def cli(api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    monkeypatch.setattr(projects_cli, "client", lambda: api.client)
    monkeypatch.setattr(jobs_cli.console, "_width", 1000)
    monkeypatch.setattr(projects_cli.console, "_width", 1000)
    return api


# -- status: through Client.iter_jobs ------------------------------------------------------------


class _IterOnly:
    """A client with iter_jobs and no list_jobs: status must read through the SDK's pages."""

    url = "http://aistack.test"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def iter_jobs(self, **kw: Any) -> Any:
        self.calls.append(kw)
        yield from ({"id": f"j{i}", "state": "QUEUED" if i else "RUNNING"} for i in range(3))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "version": "0.1.0", "executor": "local", "uptime_s": 5}

    def cluster(self) -> dict[str, Any]:
        totals = {"gpus": 0, "gpus_allocated": 0, "cpus": 8, "cpus_allocated": 1}
        return {"executor": "local", "nodes": [{"name": "vm"}], "totals": totals}


def test_status_reads_the_active_jobs_through_iter_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _IterOnly()
    monkeypatch.setattr(jobs_cli, "client", lambda: fake)
    res = runner.invoke(app, ["status"])
    assert res.exit_code == 0, res.output
    assert "jobs: QUEUED 2, RUNNING 1" in res.output
    assert fake.calls == [{"all": False, "page_size": 10000}]  # active jobs, the largest pages


# -- cancel: one set of checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem", "flag"),
    [
        (["--reason", "   "], "the reason is empty", "--reason"),
        (["--reason", "y" * 1200], "1,200 characters, more than the 500 kept", "--reason"),
        (["--grace", "inf"], "inf is not a number of seconds from 0 to 3,600 s", "--grace"),
        (["--grace", "-0.5"], "-0.5 s is not from 0 to 3,600 s", "--grace"),
        (["--grace", "3600.5"], "3,600.5 s is not from 0 to 3,600 s", "--grace"),
    ],
)
def test_cancel_says_the_apis_own_problem_before_any_request(
    monkeypatch: pytest.MonkeyPatch, args: list[str], problem: str, flag: str
) -> None:
    def no_client() -> Any:
        raise AssertionError("a request was made")

    monkeypatch.setattr(jobs_cli, "client", no_client)
    res = runner.invoke(app, ["cancel", "abc", *args])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == f"{flag}: {problem}"
    # the fix names the option, and says the range with its unit
    if flag == "--grace":
        assert res.exception.hint == (
            "give the seconds between the stop signal and SIGKILL, 0 to 3,600 (0: SIGKILL at "
            "once), or leave --grace out for the server's default"
        )
    else:
        assert res.exception.hint == (
            "say why on one line, in at most 500 characters, or leave --reason out"
        )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"reason": "   "}, "reason: the reason is empty"),  # (was accepted: a blank stop reason)
        ({"reason": "z" * 501}, "reason: 501 characters, more than the 500 kept"),
        ({"grace_s": 3601}, "grace_s: 3,601 s is not from 0 to 3,600 s"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses_in_the_same_words(
    api: Any, body: dict[str, Any], problem: str
) -> None:
    jid = api.client.submit({"command": "true"})["id"]
    r = api.http.post(f"/api/v1/jobs/{jid}/cancel", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["details"]["problems"] == [problem]
    field = next(iter(body))
    assert r.json()["hint"] == (
        "say why on one line, in at most 500 characters, or leave reason out"
        if field == "reason"
        else "give the seconds between the stop signal and SIGKILL, 0 to 3,600 (0: SIGKILL at "
        "once), or leave grace_s out for the server's default"
    )
    assert api.client.get_job(jid)["state"] == "QUEUED"


def _counting_client() -> tuple[Client, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return httpx.Response(200, json={"id": "abc", "state": "CANCELLING"})

    c = Client("http://aistack.test", "t")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(handler))
    return c, sent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grace_s": 5000}, "grace_s: 5,000 s is not from 0 to 3,600 s"),
        ({"reason": "a\nb"}, "reason: control characters (tabs, line breaks) cannot be shown"),
        ({"reason": " "}, "reason: the reason is empty"),
    ],
)
def test_the_sdk_checks_a_cancel_as_the_api_does_before_sending_it(
    kwargs: dict[str, Any], message: str
) -> None:
    c, sent = _counting_client()
    with pytest.raises(ValidationError) as err:
        c.cancel("abc", **kwargs)
    assert err.value.message.startswith(message)
    assert sent == []
    assert c.cancel("abc", grace_s=3600, reason="fine")["state"] == "CANCELLING"
    assert len(sent) == 1


# -- logs -f: the attempt comes with the text -----------------------------------------------------


class _Piece(str):
    """What Client.follow_logs yields (aistack.client.LogText): text with its attempt."""

    attempt: int


def _piece(text: str, attempt: int) -> _Piece:
    p = _Piece(text)
    p.attempt = attempt
    return p


class _Following:
    """follow_logs yields pieces that say their attempt; there is no ``logs`` to wrap."""

    def follow_logs(self, job_id: str) -> Any:
        yield _piece("first try\n", 0)
        yield _piece("second try\n", 1)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return [{"kind": "retry", "message": "attempt 0 failed: exit code 3"}]


def test_logs_follow_marks_an_attempt_from_the_text_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs_cli, "client", _Following)
    res = runner.invoke(app, ["logs", "-f", "abc"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "first try\nsecond try\n"
    assert res.stderr.strip() == "── attempt 1 (retry after attempt 0 failed: exit code 3) ──"


# -- projects: small budgets keep their digits ----------------------------------------------------


def _table_rows(out: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def test_a_small_budget_keeps_its_digits_and_its_unit(cli: Any) -> None:
    res = runner.invoke(app, ["projects", "set", "tiny", "--budget", "0.0005"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith("budget $0.0005/month")  # (was "0.0005 USD/month")
    res = runner.invoke(app, ["projects", "set", "tinier", "--budget", "0.00001"])
    assert res.stdout.strip().endswith("budget $0.00001/month")  # (was "1e-05 USD/month")
    runner.invoke(app, ["projects", "set", "big", "--budget", "1234567.891"])
    runner.invoke(app, ["projects", "set", "half", "--budget", "0.5"])
    res = runner.invoke(app, ["projects", "ls"])
    assert res.exit_code == 0, res.output
    budgets = {r[0]: r[3] for r in _table_rows(res.stdout)}
    assert budgets == {
        "big": "$1,234,567.89",
        "half": "$0.50",
        "tinier": "$0.00001",
        "tiny": "$0.0005",  # (was "$0.00")
    }


def test_a_bad_budget_is_said_as_it_was_typed(cli: Any) -> None:
    res = runner.invoke(app, ["projects", "set", "p", "--budget", "-1"])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith("--budget -1: must be")  # (was "--budget -1.0")


# -- help ------------------------------------------------------------------------------------------


def test_up_help_says_the_port_comes_from_aistack_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISTACK_PORT", "18931")
    res = runner.invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "port (default: $AISTACK_PORT, else 8765)" in res.output
    assert "address to bind (default: $AISTACK_HOST, else 127.0.0.1)" in res.output


def test_the_command_list_is_not_cut_in_mid_sentence() -> None:
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "│ jobs " in ln)
    assert "with job ids, show each in detail (as `scontrol show job`)" in line
    line = next(ln for ln in res.output.splitlines() if "│ cancel " in ln)
    assert "then SIGKILL after the grace period). A job already stopping" in line


def test_every_submit_option_says_what_it_takes() -> None:
    res = runner.invoke(app, ["submit", "--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    for said in (
        "GPUs per node (default: 0)",
        "CPU cores per node (default: 1)",
        "memory per node, e.g. 16GB",
        "time limit, e.g. 90s, 30m, 2h, 1d",
        "runs again after a failure, 0 to 100 (default: 0)",
        "GPU model, e.g. H100 (default: any)",
    ):
        assert said in res.output


# -- the jobs table's allocation ---------------------------------------------------------------------


def test_the_jobs_table_says_an_allocation_as_jobs_id_does(cli: Any) -> None:
    jid = cli.client.submit(
        {
            "command": "sleep 600",
            "env": {"AISTACK_FAKE_DURATION_S": "600"},
            "resources": {"gpus": 2},
        }
    )["id"]
    cli.ctx.loop.run_once()
    res = runner.invoke(app, ["jobs"])
    assert res.exit_code == 0, res.output
    row = next(r for r in _table_rows(res.stdout) if r[0] == jid)
    node = next(iter(cli.client.get_job(jid)["devices"]))
    assert row[-1].startswith(f"{node}: GPU ids 0,1 and CPU cores ")  # (was "gpus [0, 1] cpus [0]")
    detail = runner.invoke(app, ["jobs", jid]).stdout
    assert f"allocated    {row[-1]}" in detail


# -- submit --memory, jobs --state -----------------------------------------------------------------


@pytest.mark.parametrize("bare", ["5", "16", "0.5"])
def test_a_memory_without_its_unit_is_refused(cli: Any, bare: str) -> None:
    res = runner.invoke(app, ["submit", "--cmd", "true", "--memory", bare])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == f"--memory {bare}: the size has no unit"  # (was 5 MB)
    assert res.exception.hint == f"give one, e.g. --memory {bare}GB (or {bare}MB)"
    assert cli.client.list_jobs() == []
    res = runner.invoke(app, ["submit", "--cmd", "true", "--memory", f"{bare}GB"])
    assert res.exit_code == 0, res.output


def test_an_unknown_state_names_the_option(cli: Any) -> None:
    res = runner.invoke(app, ["jobs", "--state", "bogus"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message.startswith("--state: unknown state 'bogus'")
    assert "QUEUED" in str(res.exception.hint)
