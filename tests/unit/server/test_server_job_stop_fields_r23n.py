"""The job's API view says how it is stopped: ``stop_signal`` (the spec's, SIGTERM by
default), ``grace_s`` (seconds from it to SIGKILL on a cancel or preemption: the cancel's, else
the server's AISTACK_CANCEL_GRACE_S) and ``max_runtime_grace_s`` (the job's AISTACK_GRACE_S,
else the server's; None without max_runtime). The API had none of them: a client could not
tell a job that traps SIGINT from one that traps SIGTERM, nor how long it would get."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from aistack.server.db.models import Job, utcnow
from aistack.server.schemas.jobs import JobPublic


def _submit(api: Any, **spec: Any) -> str:
    res = api.http.post("/api/v1/jobs", json={"command": "sleep 600", **spec})
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _run(api: Any, jid: str) -> None:
    with api.ctx.sessions() as s:
        s.execute(
            update(Job)
            .where(Job.id == jid)
            .values(state="RUNNING", handle=f"h-{jid}", started_at=utcnow())
        )
        s.commit()


def _get(api: Any, jid: str) -> dict[str, Any]:
    res = api.http.get(f"/api/v1/jobs/{jid}")
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_the_view_says_the_stop_signal_and_the_grace_periods(api: Any) -> None:
    plain = _submit(api)
    own = _submit(api, stop_signal="SIGUSR1", max_runtime="2h", env={"AISTACK_GRACE_S": "90"})
    assert {k: _get(api, plain)[k] for k in ("stop_signal", "grace_s", "max_runtime_grace_s")} == {
        "stop_signal": "SIGTERM",
        "grace_s": 10.0,
        "max_runtime_grace_s": None,
    }
    got = _get(api, own)
    assert (got["stop_signal"], got["grace_s"], got["max_runtime_grace_s"]) == (
        "SIGUSR1",
        10.0,
        90.0,
    )
    # the server's setting, in every view (get, list, submit)
    api.ctx.settings.cancel_grace_s = 25.0
    assert _get(api, plain)["grace_s"] == 25.0
    listed = {j["id"]: j for j in api.http.get("/api/v1/jobs").json()}
    assert listed[plain]["grace_s"] == 25.0 and listed[own]["max_runtime_grace_s"] == 90.0
    new = api.http.post("/api/v1/jobs", json={"command": "x", "max_runtime": 60}).json()
    assert (new["grace_s"], new["max_runtime_grace_s"]) == (25.0, 25.0)


def test_a_cancels_grace_is_the_jobs_and_a_shorter_second_one_lowers_it(api: Any) -> None:
    jid = _submit(api)
    _run(api, jid)
    first = api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 60}).json()
    assert (first["state"], first["grace_s"]) == ("CANCELLING", 60.0)
    assert _get(api, jid)["grace_s"] == 60.0
    api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 2})
    # counted from the first SIGTERM: its SIGKILL is 2 s after this cancel, a few s after it
    assert 2.0 <= _get(api, jid)["grace_s"] <= 30.0
    api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 50})
    assert _get(api, jid)["grace_s"] <= 30.0  # never postponed


def test_a_preempted_job_has_the_servers_grace(api: Any) -> None:
    api.ctx.settings.cancel_grace_s = 15.0
    jid = _submit(api)
    with api.ctx.sessions() as s:
        s.execute(
            update(Job)
            .where(Job.id == jid)
            .values(state="PREEMPTING", handle="h", preempt_requested=True, kill_at=utcnow())
        )
        s.commit()
    got = _get(api, jid)
    assert (got["state"], got["grace_s"], got["kill_at"] is not None) == ("PREEMPTING", 15.0, True)


def test_the_schema_documents_them() -> None:
    props = JobPublic.model_json_schema()["properties"]
    assert "SIGINT or SIGUSR1" in props["stop_signal"]["description"]
    assert "AISTACK_CANCEL_GRACE_S" in props["grace_s"]["description"]
    assert "AISTACK_GRACE_S in the job's env" in props["max_runtime_grace_s"]["description"]


def test_to_public_without_the_servers_setting_says_10_s() -> None:
    from aistack.server.services.jobs import stop_grace_s, to_public

    row = Job(
        id="j1",
        name="n",
        project="default",
        user="u",
        kind="batch",
        state="RUNNING",
        priority=0,
        attempt=0,
        retries_left=0,
        spec={
            "command": "x",
            "stop_signal": "SIGINT",
            "max_runtime": "1h",
            "env": {"AISTACK_GRACE_S": "junk"},  # (refused at submit now; an older row)
        },
        submitted_at=utcnow(),
        cancel_requested=True,
        cancel_grace_s=None,
        preempt_count=0,
        attained_service_s=0.0,
    )
    pub = to_public(row)
    assert (pub.stop_signal, pub.grace_s, pub.max_runtime_grace_s) == ("SIGINT", 10.0, 10.0)
    assert stop_grace_s(row, 12.0) == 12.0  # a cancel without its own grace: the server's
