"""The server with real processes: submit, logs, cancel, timeout, retry, waiting with a reason,
bad input, and kill -9 of the server while jobs run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aistack.errors import AuthError, NotFoundError, ValidationError


def wait_state(c: Any, jid: str, states: set[str], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = c.get_job(jid)
        if j["state"] in states:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {jid} did not reach {states}: {c.get_job(jid)}")


def test_submit_runs_and_logs(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    job = c.submit(
        {
            "name": "hello",
            "command": "echo hello-$AISTACK_JOB_ID; echo err >&2; sleep 0.5",
            "workdir": str(tmp_path),
        }
    )
    assert job["state"] == "QUEUED"
    j = wait_state(c, job["id"], {"RUNNING", "SUCCEEDED"})
    assert j["devices"] and len(next(iter(j["devices"].values()))["cpus"]) == 1
    j = c.wait(job["id"], timeout=30)
    assert j["state"] == "SUCCEEDED" and j["exit_code"] == 0
    text = c.logs(job["id"])["text"]
    assert f"hello-{job['id']}" in text and "err" in text
    kinds = [e["kind"] for e in c.events(job["id"])]
    assert kinds[:2] == ["submitted", "started"] and kinds[-1] == "succeeded"
    allocs = c.allocations()
    assert any(a["job_id"] == job["id"] and a["cpus"] == 1 and a["end"] for a in allocs)


def test_cancel_timeout_retry_and_not_found(server) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    long = c.submit(
        {"command": "trap 'echo stopping; exit 0' TERM; echo ready; while true; do sleep 0.1; done"}
    )
    wait_state(c, long["id"], {"RUNNING"})
    deadline = time.monotonic() + 30
    while "ready" not in c.logs(long["id"])["text"] and time.monotonic() < deadline:
        time.sleep(0.1)
    c.cancel(long["id"])
    j = c.wait(long["id"], timeout=30)
    assert j["state"] == "CANCELLED"
    assert "stopping" in c.logs(long["id"])["text"]

    to = c.submit({"command": "sleep 60", "max_runtime": "1s"})
    j = c.wait(to["id"], timeout=30)
    assert j["state"] == "TIMEOUT" and "max_runtime" in j["failure_reason"]

    flaky = c.submit({"command": 'test "$AISTACK_ATTEMPT" = 1 || exit 7', "retries": 2})
    j = c.wait(flaky["id"], timeout=30)
    assert j["state"] == "SUCCEEDED" and j["attempt"] == 1 and j["retries_left"] == 1

    nf = c.submit({"command": "definitely-not-a-command --flag"})
    j = c.wait(nf["id"], timeout=30)
    assert j["state"] == "FAILED" and j["exit_code"] == 127
    assert "command not found" in j["failure_reason"]


def test_waits_with_reason_then_starts(server) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    big = c.submit({"name": "big", "command": "sleep 30", "resources": {"cpus": 2}})
    wait_state(c, big["id"], {"RUNNING"})
    small = c.submit({"name": "small", "command": "echo ran", "resources": {"cpus": 1}})
    time.sleep(1.0)
    j = c.get_job(small["id"])
    assert j["state"] == "QUEUED"
    assert "CPU" in j["pending_reason"], j["pending_reason"]
    listed = {x["id"]: x for x in c.list_jobs(all=False)}
    assert listed[small["id"]]["pending_reason"] == j["pending_reason"]
    c.cancel(big["id"])
    j = c.wait(small["id"], timeout=30)
    assert j["state"] == "SUCCEEDED"


def test_bad_input(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.url + "/api/v1/jobs", json={"command": "x"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert str(server.home / "token") in r.json()["hint"]  # this server's home, not ~/.aistack
    assert httpx.get(server.url + "/healthz").status_code == 200
    from aistack.client import Client

    with pytest.raises(AuthError):
        Client(server.url, "wrong-token").list_jobs()
    c = server.client()
    with pytest.raises(ValidationError, match="unknown key 'resources.gpu'"):
        c.request("POST", "/jobs", json={"command": "x", "resources": {"gpu": 1}})
    with pytest.raises(ValidationError, match="this cluster has no GPUs"):
        c.submit({"command": "x", "resources": {"gpus": 4}})
    with pytest.raises(ValidationError, match="resources.cpus"):
        c.submit({"command": "x", "resources": {"cpus": 64}})
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 200 and "aistack_jobs" in r.text
    # counts since start are counters (rate() works on them), not gauges
    assert "# TYPE aistack_scheduler_passes_total counter" in r.text
    assert "aistack_scheduler_passes_total " in r.text


def test_restart_after_kill9_loses_nothing(server) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    done = c.submit({"command": "echo finished-before; exit 3"})
    c.wait(done["id"], timeout=30)
    running = c.submit({"command": "sleep 3; echo survived", "resources": {"cpus": 1}})
    finishes_while_down = c.submit(
        {"command": "sleep 1; echo while-down", "resources": {"cpus": 1}}
    )
    wait_state(c, running["id"], {"RUNNING"})
    wait_state(c, finishes_while_down["id"], {"RUNNING"})
    queued = c.submit({"command": "echo queued-ran", "resources": {"cpus": 2}})
    time.sleep(0.3)
    assert c.get_job(queued["id"])["state"] == "QUEUED"
    server.kill9()
    time.sleep(1.5)
    server.start()
    c = server.client()
    j = c.get_job(done["id"])
    assert (
        j["state"] == "FAILED"
        and j["exit_code"] == 3
        and "finished-before" in c.logs(done["id"])["text"]
    )
    assert c.get_job(running["id"])["state"] in ("RUNNING", "SUCCEEDED")  # re-adopted, not lost
    assert c.wait(finishes_while_down["id"], timeout=30)["state"] == "SUCCEEDED"
    assert c.wait(running["id"], timeout=30)["state"] == "SUCCEEDED"
    assert "survived" in c.logs(running["id"])["text"]
    assert c.wait(queued["id"], timeout=30)["state"] == "SUCCEEDED"


def test_job_inputs_record_lineage(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    from aistack.errors import NotFoundError
    from aistack.settings import Settings
    from aistack.storage import Datasets

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    ds = Datasets.from_settings(
        Settings(home=server.home, database_url=server.env.get("AISTACK_DATABASE_URL"))
    )
    v = ds.add("corpus", str(data), message="first")
    c = server.client()
    with pytest.raises(NotFoundError):
        c.submit({"command": "true", "inputs": ["corpus@v9"]})
    # `latest` is pinned at submit, and the job is told which version to read
    check = 'test "$AISTACK_INPUTS" = corpus@v1 && test "$AISTACK_INPUT_CORPUS" = corpus@v1'
    job = c.submit({"command": check, "inputs": ["corpus@latest"]})
    assert c.get_job(job["id"])["inputs"] == ["corpus@v1"]
    assert c.wait(job["id"], timeout=30)["state"] == "SUCCEEDED", c.logs(job["id"])
    graph = ds.lineage(v.ref)
    ids = {n["id"] for n in graph["nodes"]}
    assert any(job["id"] in i for i in ids), graph
    refs = ds.references(v.ref)
    assert any(r["kind"] == "job" and r["id"] == job["id"] for r in refs)
    assert os.path.isdir(server.home)


def test_lost_supervisor_is_marked_and_requeued(server) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import signal

    c = server.client()
    job = c.submit({"command": 'test "$AISTACK_ATTEMPT" = 1 || sleep 60', "retries": 0})
    wait_state(c, job["id"], {"RUNNING"})
    jdir = server.home / "jobs" / job["id"] / "0"
    deadline = time.monotonic() + 10
    while not (jdir / "status.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    sup = json.loads((jdir / "supervisor.pid").read_text())["pid"]
    pgid = json.loads((jdir / "status.json").read_text())["pgid"]
    os.kill(sup, signal.SIGKILL)  # the machine "lost" the job's supervisor
    os.killpg(pgid, signal.SIGKILL)
    j = c.wait(job["id"], timeout=30)
    assert j["state"] == "SUCCEEDED" and j["attempt"] == 1
    ev = c.events(job["id"])
    # lost by the machine: requeued without using a retry
    assert any(
        e["kind"] == "requeued" and "supervisor process is gone" in e["message"] for e in ev
    ), ev
    assert j["retries_left"] == 0


def test_ids_with_a_slash_or_a_literal_percent_2f_are_jobs_not_found(server) -> None:  # type: ignore[no-untyped-def]
    """Through uvicorn, which decodes %2F before routing: 'a/b' cannot be routed, so the client
    says it is not found (not "no such endpoint"); a literal 'a%2Fb' reaches its route."""
    c = server.client()
    for jid in ("a/b", "a%2Fb"):
        with pytest.raises(NotFoundError) as exc:
            c.logs(jid)
        assert f"job {jid!r} not found" in str(exc.value)


def _aistack(srv, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "aistack", *args],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # a down that signalled its own group would end only itself
    )


def test_down_stops_the_server_only_when_the_recorded_pid_is_it(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    record = srv.home / "server.json"
    info = json.loads(record.read_text())
    assert info["pid"] == srv.proc.pid and info["port"] == srv.port
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # a wrong pid in the record (e.g. the server crashed, restarted by hand, the pid was
        # reused): the live server answers, but that pid does not hold its port
        for pid in (sleeper.pid, -sleeper.pid, "abc", None):
            bad = {**info, "pid": pid} if pid is not None else {"url": info["url"]}
            record.write_text(json.dumps(bad))
            res = _aistack(srv, "down", "--timeout", "5")
            err = " ".join(res.stderr.split())
            assert res.returncode == 2 and "nothing was stopped" in err, (pid, res)
            assert "Traceback" not in err
            assert json.loads(record.read_text()) == bad  # kept
            assert sleeper.poll() is None and srv.proc.poll() is None
            assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        sleeper.kill()
        sleeper.wait()
    record.write_text(json.dumps(info))
    res = _aistack(srv, "down", "--timeout", "20")
    assert res.returncode == 0, res
    assert f"stopped the aistack server (pid {srv.proc.pid})" in " ".join(res.stdout.split())
    assert srv.proc.wait(30) is not None
    assert not record.exists()
    # nothing recorded now: nothing to stop
    res = _aistack(srv, "down")
    assert res.returncode == 0 and "nothing to stop" in " ".join(res.stdout.split())
