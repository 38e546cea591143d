"""`aistack cancel` and `aistack jobs ID` after the server learnt to say when a stopping job's
SIGKILL is due (0a2971c: JobPublic.kill_at, the cancel's ``message``):

- `cancel` printed "ID: CANCELLING" whatever the cancel did (a second, shorter cancel that
  brought the SIGKILL forward and one that left the first one's read the same): it prints
  the server's message ("ID: SIGTERM sent; SIGKILL at 11:26:12 UTC (in 60 s) unless it ends
  before"), and the state alone against a server without one;
- `jobs ID` of a CANCELLING/PREEMPTING job did not say when the SIGKILL comes; of a running
  one, what a cancel or a preemption would send and how long it would wait (the API's new
  ``stop_signal``, ``grace_s`` and ``max_runtime_grace_s``);
- `cancel --grace 1e9` said "1e+09 s is not from 0 to 3600 s" (CLI, SDK and API): numbers
  as they are read, "1,000,000,000 s is not from 0 to 3,600 s"; an int grace too large for
  a float made the API answer 500 and the SDK raise OverflowError."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.errors import ValidationError
from aistack.server.db.models import Job, utcnow

runner = CliRunner()

CLOCK = r"\d\d:\d\d:\d\d UTC"


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    return api


def _running(api: Any, **spec: Any) -> str:
    """A job the (loop-less) server takes for running: it has a handle."""
    body = {"command": "sleep 600", **spec}
    res = api.http.post("/api/v1/jobs", json=body)
    assert res.status_code == 201, res.text
    jid = str(res.json()["id"])
    with api.ctx.sessions() as s:
        s.execute(
            update(Job)
            .where(Job.id == jid)
            .values(state="RUNNING", handle=f"h-{jid}", started_at=utcnow())
        )
        s.commit()
    return jid


def _in_s(text: str) -> int:
    m = re.search(r"\(in (\d+) s\)", text)
    assert m, text
    return int(m.group(1))


# -- cancel prints what the cancel did -------------------------------------------------------


def test_cancel_prints_the_servers_message_for_each_cancel(cli: Any) -> None:
    jid = _running(cli)
    first = runner.invoke(app, ["cancel", jid, "--grace", "60"])
    assert first.exit_code == 0, first.output
    assert re.fullmatch(
        rf"{jid}: SIGTERM sent; SIGKILL at {CLOCK} \(in \d+ s\) unless it ends before\n",
        first.stdout,
    ), first.stdout
    assert 50 <= _in_s(first.stdout) <= 60

    sooner = runner.invoke(app, ["cancel", jid, "--grace", "2"])
    assert sooner.exit_code == 0, sooner.output
    assert re.fullmatch(
        rf"{jid}: already cancelling: SIGKILL at {CLOCK} \(in \d+ s\), brought forward from "
        rf"{CLOCK} by this cancel's 2 s grace period\n",
        sooner.stdout,
    ), sooner.stdout
    assert _in_s(sooner.stdout) <= 2

    later = runner.invoke(app, ["cancel", jid, "--grace", "30"])
    assert later.exit_code == 0, later.output
    assert later.stdout.startswith(f"{jid}: already cancelling: the first cancel's SIGKILL at ")
    assert "stands (a cancel never postpones it; this one's 30 s grace period" in later.stdout


def test_cancel_json_keeps_the_whole_answer(cli: Any) -> None:
    jid = _running(cli, stop_signal="SIGINT")
    res = runner.invoke(app, ["cancel", jid, "--grace", "45", "--json"])
    assert res.exit_code == 0, res.output
    (out,) = json.loads(res.stdout)
    assert out["state"] == "CANCELLING"
    assert out["message"].startswith("SIGINT sent; SIGKILL at ")
    assert out["kill_at"] and out["stop_signal"] == "SIGINT" and out["grace_s"] == 45.0


def test_cancel_of_a_queued_job_says_it_never_ran(cli: Any) -> None:
    jid = str(cli.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"])
    res = runner.invoke(app, ["cancel", jid])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"{jid}: cancelled while queued: it never ran\n"


def test_cancel_against_an_older_server_prints_the_state(monkeypatch: Any) -> None:
    """A server before 0a2971c answers the job alone: the old line (a guard: passes on both)."""

    class Old:
        def cancel(self, job_id: str, **kw: Any) -> dict[str, Any]:
            return {"id": job_id, "state": "CANCELLING"}

    monkeypatch.setattr(jobs_cli, "client", lambda: Old())
    res = runner.invoke(app, ["cancel", "abc"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "abc: CANCELLING\n"


def test_the_sdk_returns_the_message(cli: Any) -> None:
    jid = _running(cli)
    out = cli.client.cancel(jid, grace_s=20)
    assert out["message"].startswith("SIGTERM sent; SIGKILL at ") and out["grace_s"] == 20.0
    assert "changes neither" not in (type(cli.client).cancel.__doc__ or "")
    assert "brought forward" in (type(cli.client).cancel.__doc__ or "")


# -- jobs ID: the SIGKILL time, the stop signal and grace period -----------------------------


def _details(jid: str) -> dict[str, str]:
    res = runner.invoke(app, ["jobs", jid], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    rows: dict[str, str] = {}
    for line in res.stdout.splitlines():
        if line[:1].strip():
            rows[line[:13].strip()] = line[13:]
    return rows


def test_jobs_id_of_a_cancelling_job_says_when_the_sigkill_is_due(cli: Any) -> None:
    jid = _running(cli)
    assert runner.invoke(app, ["cancel", jid, "--grace", "60"]).exit_code == 0
    rows = _details(jid)
    assert rows["state"] == "CANCELLING"
    assert rows["stopping"] == "cancelled by user"
    assert re.fullmatch(
        rf"SIGKILL at {CLOCK} \(in \d+ s\), 60 s after its SIGTERM, unless it ends before",
        rows["kill"],
    ), rows
    assert 40 <= _in_s(rows["kill"]) <= 60
    assert "stop signal" not in rows  # (it got it: the kill line says when the SIGKILL is)
    # a second, shorter cancel: its SIGKILL 2 s from now, ~2 s after the first SIGTERM
    assert runner.invoke(app, ["cancel", jid, "--grace", "2"]).exit_code == 0
    kill = _details(jid)["kill"]
    assert _in_s(kill) <= 2 if "(in " in kill else "due" in kill, kill
    m = re.search(r", ([\d.]+) s after its SIGTERM", kill)
    assert m and float(m.group(1)) <= 30, kill


def test_jobs_id_of_a_preempting_job_says_when_the_sigkill_is_due(cli: Any) -> None:
    jid = _running(cli)
    kill_at = utcnow() + dt.timedelta(seconds=10)
    with cli.ctx.sessions() as s:
        s.execute(
            update(Job)
            .where(Job.id == jid)
            .values(state="PREEMPTING", preempt_requested=True, kill_at=kill_at)
        )
        s.commit()
    rows = _details(jid)
    assert rows["state"] == "PREEMPTING"
    assert re.fullmatch(
        rf"SIGKILL at {CLOCK} \(in \d+ s\), 10 s after its SIGTERM, unless it ends before",
        rows["kill"],
    ), rows
    assert _in_s(rows["kill"]) <= 10


def test_jobs_id_of_a_running_job_says_its_stop_signal_and_grace(cli: Any) -> None:
    plain = _running(cli)
    assert _details(plain)["stop signal"] == (
        "on cancel/preemption: SIGTERM, then SIGKILL after 10 s"
    )
    assert "kill" not in _details(plain)
    cli.ctx.settings.cancel_grace_s = 25.0  # the server's AISTACK_CANCEL_GRACE_S
    own = _running(cli, stop_signal="SIGUSR1", max_runtime="1h", env={"AISTACK_GRACE_S": "90"})
    assert _details(own)["stop signal"] == (
        "on cancel/preemption: SIGUSR1, then SIGKILL after 25 s; at max runtime: after 90 s "
        "(the job's AISTACK_GRACE_S)"
    )
    # max_runtime's grace the server's too: said once
    same = _running(cli, max_runtime="1h")
    assert _details(same)["stop signal"] == (
        "on cancel/preemption: SIGTERM, then SIGKILL after 25 s"
    )


def test_jobs_id_of_an_ended_job_or_an_older_server_says_nothing_of_it(cli: Any) -> None:
    jid = str(cli.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"])
    runner.invoke(app, ["cancel", jid])
    rows = _details(jid)
    assert rows["state"] == "CANCELLED" and "stop signal" not in rows and "kill" not in rows
    old = {
        "state": "CANCELLING",
        "kill_at": None,
        "id": "a",
        "stop_reason": "cancelled by user",
    }
    assert jobs_cli._stop_rows(old) == []
    assert jobs_cli._stop_rows({**old, "state": "RUNNING"}) == []


def test_kill_time_due_now_and_overdue() -> None:
    now = dt.datetime.now(dt.UTC)
    assert jobs_cli._kill_when(now.isoformat()).endswith("(due now)")
    past = jobs_cli._kill_when((now - dt.timedelta(seconds=3)).isoformat())
    assert re.fullmatch(rf"SIGKILL at {CLOCK} \(due [34] s ago\)", past), past
    later = jobs_cli._kill_when((now + dt.timedelta(seconds=3700)).isoformat())
    assert re.search(r"\(in 3,(699|700) s\)$", later), later
    # another day: the date too
    assert re.fullmatch(
        r"SIGKILL at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in [\d,]+ s\)",
        jobs_cli._kill_when((now + dt.timedelta(days=2)).isoformat()),
    )


# -- numbers in the grace period's errors ------------------------------------------------------


def test_a_large_grace_is_written_readably_in_the_cli_sdk_and_api(cli: Any) -> None:
    jid = _running(cli)
    res = runner.invoke(app, ["cancel", jid, "--grace", "1e9"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == "--grace: 1,000,000,000 s is not from 0 to 3,600 s"
    assert "0 to 3,600 (0: SIGKILL at once)" in (res.exception.hint or "")
    with pytest.raises(ValidationError) as err:
        cli.client.cancel(jid, grace_s=1e9)
    assert err.value.message == "grace_s: 1,000,000,000 s is not from 0 to 3,600 s"
    r = cli.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 1e9})
    assert r.status_code == 422 and "1,000,000,000 s is not from 0 to 3,600 s" in r.text, r.text


def test_an_int_grace_too_large_for_a_float_is_refused_not_a_crash(cli: Any) -> None:
    jid = _running(cli)
    with pytest.raises(ValidationError) as err:
        cli.client.cancel(jid, grace_s=10**400)
    assert err.value.message == "grace_s: 1e400 s is not from 0 to 3,600 s"
    r = cli.http.post(
        f"/api/v1/jobs/{jid}/cancel",
        content='{"grace_s": 1' + "0" * 400 + "}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert "1e400 s is not from 0 to 3,600 s" in r.text
    # the SDK's other durations: a ValidationError, not OverflowError
    with pytest.raises(ValidationError) as err:
        cli.client.wait(jid, timeout=10**400)
    assert err.value.message == "timeout: 1e400 s is more seconds than a float holds"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e9, "1,000,000,000"),
        (3600.5, "3,600.5"),
        (0.25, "0.25"),
        (10**400, "1e400"),
        (-5 * 10**400, "-5e400"),
        (float("inf"), "inf"),
    ],
    ids=["1e9", "3600.5", "0.25", "10**400", "-5*10**400", "inf"],
)
def test_fmt_number_lives_with_short_repr(value: float, text: str) -> None:
    from aistack.errors import fmt_number

    assert fmt_number(value) == text
