"""The jobs CLI/API surface, round 22b:

* `aistack jobs ID...` shows one job in detail (as `scontrol show job`): there was no way to see
  a job's request, attempts, times or MLflow run from the CLI; `--json` prints the API object;
* `aistack cancel --reason` (the API took a reason; the CLI could not give one);
* a cancel's own grace period (``grace_s`` in the API, the SDK, ``--grace``, and the service
  launcher's ``stop(grace_s=...)``, which was dropped: the server's 10 s applied);
* a second cancel of a job already CANCELLING added a second "SIGKILL after 10 s" event (and
  signalled again), as if the kill clock had restarted;
* GPUs whose memory the engine does not report (Slurm GRES, Ray) showed "0 GiB": the API
  says null, the CLI and the dashboard "unknown";
* a ``workdir`` that does not exist: refused at submit by a local executor's server (it runs
  the job on its own host), warned about by the CLI for the others.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.compute.resources import GpuDevice, Node
from aistack.errors import NotFoundError, ValidationError
from aistack.serving.launcher import JobLauncher

runner = CliRunner()


@pytest.fixture
def cli(api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    monkeypatch.setattr(jobs_cli.console, "_width", 1000)
    return api


@pytest.fixture
def cancels(api: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """The executor's cancel calls: (handle, grace_s)."""
    calls: list[tuple[str, float]] = []
    real = api.ctx.executor.cancel

    def cancel(handle: str, grace_s: float = 10.0) -> None:
        calls.append((handle, grace_s))
        real(handle, grace_s)

    monkeypatch.setattr(api.ctx.executor, "cancel", cancel)
    return calls


def _running(api: Any, **spec: Any) -> str:
    jid = api.client.submit(
        {"command": "sleep 600", "env": {"AISTACK_FAKE_DURATION_S": "600"}, **spec}
    )["id"]
    api.ctx.loop.run_once()  # started
    api.ctx.loop.run_once()  # seen running
    assert api.client.get_job(jid)["state"] == "RUNNING"
    return jid


def _lines(out: str) -> dict[str, str]:
    """``label  value`` lines of `aistack jobs ID` as {label: value}."""
    rows = {}
    for line in out.splitlines():
        if line.strip():
            rows[line[:13].strip()] = line[13:]
    return rows


# -- 1. aistack jobs ID ---------------------------------------------------------------------------


def test_jobs_id_shows_a_waiting_job_in_detail(cli: Any) -> None:
    # 8 CPUs on the in-memory node: the first job takes them all (with a max_runtime, so the
    # scheduler can say when the second one may start)
    _running(cli, resources={"cpus": 8}, max_runtime="1h")
    jid = cli.client.submit(
        {
            "name": "waiter",
            "command": "python train.py",
            "resources": {"gpus": 2, "cpus": 4, "memory": "16GB", "gpu_type": "FakeGPU"},
            "priority": 5,
            "max_runtime": "90m",
            "retries": 2,
        }
    )["id"]
    cli.ctx.loop.run_once()
    job = cli.client.get_job(jid)
    assert job["state"] == "QUEUED" and job["pending_reason"] and job["estimated_start"]
    res = runner.invoke(app, ["jobs", jid[:6]])  # a unique prefix, as everywhere
    assert res.exit_code == 0, res.output
    rows = _lines(res.stdout)
    assert rows["job"] == f"{jid}  waiter"
    assert rows["state"] == "QUEUED"
    assert rows["pending"] == job["pending_reason"]
    assert rows["est. start"].startswith(jobs_cli._local_time(job["estimated_start"]))
    assert "(in " in rows["est. start"]
    assert rows["request"] == "2 GPUs (FakeGPU), 4 CPUs, 16 GiB memory"
    assert rows["priority"] == "5 (preemptible)"
    assert rows["max runtime"] == "1.5 h"
    assert rows["attempt"] == "0 (0 is the first); 2 retries left; preempted 0 times"
    assert rows["command"] == "python train.py"
    assert rows["mlflow run"] == "-"
    assert "exit code" not in rows and "started" not in rows
    # --json: the API object, as GET /jobs/{id} returns it
    res = runner.invoke(app, ["jobs", jid, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == job


def test_jobs_id_shows_a_finished_job_its_exit_times_and_run(cli: Any) -> None:
    jid = _running(cli, resources={"cpus": 2, "nodes": 1})
    cli.client.cancel(jid, reason="wrong data")
    cli.ctx.loop.run_once()
    job = cli.client.get_job(jid)
    assert job["state"] == "CANCELLED"
    res = runner.invoke(app, ["jobs", jid])
    rows = _lines(res.stdout)
    assert rows["exit code"] == "-15 (ended by SIGTERM)"
    assert rows["reason"] == "wrong data"
    assert rows["allocated"].startswith("mem0: no GPU and CPU cores ")
    assert rows["run time"].endswith(" s") and "so far" not in rows["run time"]
    assert rows["finished"].startswith(jobs_cli._local_time(job["finished_at"]))
    # a job's MLflow run: its id and where to open it
    got = jobs_cli._job_details({**job, "mlflow_run_id": "abc123"}, "http://h:1/")
    assert dict(got)["mlflow run"] == "abc123  http://h:1/mlflow/#/runs/abc123"


def test_jobs_with_a_wrong_id_is_a_clear_error_and_the_others_are_shown(cli: Any) -> None:
    res = runner.invoke(app, ["jobs", "nosuchjob"])
    assert isinstance(res.exception, NotFoundError)
    assert "job 'nosuchjob' not found" in str(res.exception)
    a = cli.client.submit({"command": "true"})["id"]
    res = runner.invoke(app, ["jobs", "nosuchjob", a])
    assert res.exit_code == 2
    assert _lines(res.stdout)["job"] == f"{a}  job"
    assert "nosuchjob: job 'nosuchjob' not found" in res.stderr
    res = runner.invoke(app, ["jobs", a, "nosuchjob", "--json"])
    out = json.loads(res.stdout)
    assert res.exit_code == 2 and [o["id"] for o in out] == [a, "nosuchjob"]
    assert out[1]["error"] == "not_found"


def test_jobs_ids_with_listing_options_is_an_error(cli: Any) -> None:
    a = cli.client.submit({"command": "true"})["id"]
    res = runner.invoke(app, ["jobs", a, "--state", "QUEUED", "--limit", "3"])
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception).startswith("--state, --limit: only for a listing, not with job ids")
    assert runner.invoke(app, ["jobs", a, "--all"]).exit_code == 0  # (--all changes nothing)


# -- 2. cancel --reason; 3. a cancel's grace period ------------------------------------------------


def test_cancel_reason_and_grace_reach_the_job_and_the_executor(
    cli: Any, cancels: list[tuple[str, float]]
) -> None:
    jid = _running(cli)
    res = runner.invoke(app, ["cancel", jid, "--reason", "bad learning rate", "--grace", "2.5"])
    assert res.exit_code == 0, res.output
    out = res.stdout.strip()  # (the server's message, r23n)
    assert out.startswith(f"{jid}: SIGTERM sent; SIGKILL at ") and "(in " in out, out
    assert out.endswith(" unless it ends before"), out
    job = cli.client.get_job(jid)
    assert job["stop_reason"] == "bad learning rate"
    assert [g for _, g in cancels] == [2.5]
    msgs = [e["message"] for e in cli.client.events(jid) if e["kind"] == "cancelling"]
    # (with the SIGKILL time since 0a2971c, which left this assertion failing)
    assert len(msgs) == 1 and re.fullmatch(
        r"SIGTERM, then SIGKILL after 2\.5 s, at \d\d:\d\d:\d\d UTC \(bad learning rate\)", msgs[0]
    ), msgs
    # without --grace: the server's (AISTACK_CANCEL_GRACE_S, 10 s)
    other = _running(cli)
    cli.client.cancel(other)
    assert cancels[-1][1] == 10.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--reason", ""], "--reason: the reason is empty"),
        (["--reason", "a\tb"], "--reason: control characters"),
        (["--reason", "x" * 501], "--reason: 501 characters, more than the 500 kept"),
        # (the API's words: aistack.spec's cancel checks)
        (["--grace", "5000"], "--grace: 5,000 s is not from 0 to 3,600 s"),
        (["--grace", "-1"], "--grace: -1 s is not from 0 to 3,600 s"),
        (["--grace", "nan"], "--grace: nan is not a number of seconds from 0 to 3,600 s"),
    ],
)
def test_cancel_bad_reason_or_grace_is_refused_before_anything_is_cancelled(
    cli: Any, args: list[str], expected: str
) -> None:
    jid = cli.client.submit({"command": "true"})["id"]
    res = runner.invoke(app, ["cancel", jid, *args])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith(expected)
    assert cli.client.get_job(jid)["state"] == "QUEUED"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"grace_s": 5000}, "grace_s: 5,000 s is not from 0 to 3,600 s"),
        ({"grace_s": -1}, "grace_s: -1 s is not from 0 to 3,600 s"),
        ({"grace_s": "10"}, 'grace_s: must be a number of seconds, got "10"'),
        ({"grace_s": True}, "grace_s: must be a number of seconds, got true"),
        ({"reason": "a\nb"}, "reason: control characters (tabs, line breaks) cannot be shown"),
    ],
)
def test_cancel_api_refuses_a_bad_grace_with_its_unit(
    api: Any, body: dict[str, Any], problem: str
) -> None:
    jid = api.client.submit({"command": "true"})["id"]
    r = api.http.post(f"/api/v1/jobs/{jid}/cancel", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["details"]["problems"][0].startswith(problem)
    assert "Value error" not in r.json()["message"]
    assert r.json()["hint"] != "the API is described at /api/v1/docs"  # says how to fix it
    assert api.client.get_job(jid)["state"] == "QUEUED"


def test_sdk_cancel_takes_a_grace_and_checks_it(api: Any, cancels: list[tuple[str, float]]) -> None:
    jid = _running(api)
    with pytest.raises(ValidationError, match="grace_s: -1 s is not from 0 to 3,600 s"):
        api.client.cancel(jid, grace_s=-1)
    assert api.client.cancel(jid, grace_s=0)["state"] == "CANCELLING"
    assert [g for _, g in cancels] == [0.0]  # 0: SIGKILL at once


def test_the_job_launcher_passes_its_grace_period_on(
    api: Any, cancels: list[tuple[str, float]]
) -> None:
    jid = _running(api)
    JobLauncher(client=api.client).stop(jid, grace_s=3.0, reason="service s deleted")
    assert [g for _, g in cancels] == [3.0]
    assert api.client.get_job(jid)["stop_reason"] == "service s deleted"

    class Old:  # an older SDK without grace_s: the job is stopped all the same
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
            self.calls.append({"id": job_id, "reason": reason})
            return {}

    old = Old()
    JobLauncher(client=old).stop("j1", grace_s=3.0, reason="r")
    assert old.calls == [{"id": "j1", "reason": "r"}]

    class Refusing:  # a server that does not know grace_s: the reason still goes
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def cancel(self, job_id: str, reason: str | None = None, **kw: Any) -> dict[str, Any]:
            if kw:
                raise ValidationError("invalid request: unknown key 'grace_s'")
            self.calls.append({"id": job_id, "reason": reason})
            return {}

    refusing = Refusing()
    JobLauncher(client=refusing).stop("j2", grace_s=3.0, reason="r")
    assert refusing.calls == [{"id": "j2", "reason": "r"}]


# -- 4. a second cancel of a job already CANCELLING ------------------------------------------------


def test_a_second_cancel_of_a_cancelling_job_keeps_its_reason_and_never_postpones(
    api: Any, cancels: list[tuple[str, float]]
) -> None:
    # (0a2971c: a shorter second cancel brings the SIGKILL forward; this test, written when
    # a second cancel changed nothing, was left failing there)
    jid = _running(api)
    api.client.cancel(jid, reason="first", grace_s=5)
    again = api.client.cancel(jid, reason="second", grace_s=1)
    assert again["state"] == "CANCELLING" and again["stop_reason"] == "first"
    assert [g for _, g in cancels] == [5.0, 1.0]  # the shorter one reaches the executor
    later = api.client.cancel(jid, grace_s=30)
    assert [g for _, g in cancels] == [5.0, 1.0]  # a longer one does not: nothing postponed
    assert "stands" in later["message"]
    events = [(e["kind"], e["message"]) for e in api.client.events(jid)]
    first = [m for k, m in events if k == "cancelling"][0]
    assert first.startswith("SIGTERM, then SIGKILL after 5 s, at ") and first.endswith(
        " UTC (first)"
    ), first


# -- 5. GPU memory the engine does not report ------------------------------------------------------

NO_MEMORY = Node(
    name="gpu-01",
    cpus=16,
    memory_mb=64_000,
    gpus=(
        GpuDevice(index=0, uuid="g0", name="a100", memory_mb=0),
        GpuDevice(index=1, uuid="g1", name="a100", memory_mb=81_920),
    ),
)


def test_gpu_memory_not_reported_is_null_and_unknown(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.ctx.executor, "inventory", lambda: [NO_MEMORY])
    monkeypatch.setattr(cli.ctx.loop, "nodes", lambda: [NO_MEMORY])
    gpus = cli.client.cluster()["nodes"][0]["gpus"]
    assert [g["memory_mb"] for g in gpus] == [None, 81_920]
    res = runner.invoke(app, ["cluster"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if "GPU " in line]
    assert "unknown" in rows[0] and "0 GiB" not in rows[0]
    assert "80 GiB" in rows[1]


def test_dashboard_cluster_page_says_unknown_gpu_memory(tmp_path: Path) -> None:
    path = Path(__file__).parents[1] / "web" / "test_web_dashboard_r22.py"
    spec = importlib.util.spec_from_file_location("_dash_r22", path)
    assert spec is not None and spec.loader is not None
    dash = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dash)
    node = {
        "name": "gpu-01",
        "cpus": 16,
        "memory_mb": 64_000,
        "cpu_jobs": {},
        "cpu_percent": None,
        "gpus": [
            {"index": 0, "name": "a100", "memory_mb": None, "job": None, "util_percent": None},
            {"index": 1, "name": "a100", "memory_mb": 81_920, "job": None, "util_percent": None},
        ],
    }
    answers = {**dash.CLUSTER, "/cluster": {**dash.CLUSTER["/cluster"], "nodes": [node]}}
    html = dash._run(
        'document.querySelector("#nodes").innerHTML', tmp_path, hash="#/cluster", answers=answers
    )
    assert "unknown" in html and "0 GiB" not in html.replace("80 GiB", "")
    assert "80 GiB" in html


# -- 6. a workdir that does not exist --------------------------------------------------------------


def test_a_local_executor_refuses_a_missing_workdir_at_submit(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli.ctx.executor, "name", "local")
    gone = tmp_path / "gone"
    res = runner.invoke(app, ["submit", "--cmd", "pwd", "--workdir", str(gone)])
    assert isinstance(res.exception, ValidationError), res.output
    msg = str(res.exception)
    assert msg.startswith(f"--workdir '{gone}' does not exist on ")  # (said as the option)
    assert "where the local executor runs jobs" in msg and "create it" in msg
    (tmp_path / "file").write_text("x")
    r = cli.http.post("/api/v1/jobs", json={"command": "pwd", "workdir": str(tmp_path / "file")})
    assert r.status_code == 422 and "is not a folder" in r.json()["message"]
    assert cli.client.list_jobs(all=True) == []
    assert cli.client.submit({"command": "pwd", "workdir": str(tmp_path)})["state"] == "QUEUED"


def test_other_executors_take_the_workdir_and_the_cli_warns(cli: Any, tmp_path: Path) -> None:
    gone = tmp_path / "on-the-cluster-only"
    res = runner.invoke(app, ["submit", "--cmd", "pwd", "--workdir", str(gone)])
    assert res.exit_code == 0, res.output
    jid = res.stdout.strip()
    assert cli.client.get_job(jid)["workdir"] == str(gone)
    assert f"warning: job {jid}: the workdir {gone} is not a folder on this machine" in res.stderr
    res = runner.invoke(app, ["submit", "--cmd", "pwd", "--workdir", str(tmp_path)])
    assert res.exit_code == 0 and "warning" not in res.stderr


# -- a first-time user's findings ------------------------------------------------------------------


def test_events_and_wait_print_one_line_each_in_a_pipe(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a pipe is 80 columns to rich: an event of a failed job's last output was cut in two, so
    # `aistack events ID | grep failed` found half of it)
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    monkeypatch.setattr(jobs_cli.console, "_width", 80)
    monkeypatch.setattr(jobs_cli.err_console, "_width", 80)
    why = "the data loader could not open /data/shards/part-00017.bin: no such file " * 2
    jid = _running(api)
    api.client.cancel(jid, reason=why.strip())
    api.ctx.loop.run_once()
    res = runner.invoke(app, ["events", jid])
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert len(lines) == 4 and lines[-1].endswith(f"cancelled   {why.strip()}")
    res = runner.invoke(app, ["wait", jid])
    assert res.exit_code == 1
    assert res.stderr == f"job {jid} CANCELLED exit code -15 ({why.strip()})\n"


@pytest.mark.parametrize("cmd", ["", "  "])
def test_an_empty_cmd_says_so(cli: Any, cmd: str) -> None:
    # it said "nothing to submit (aistack submit job.yaml, or ... --cmd ...)", as if --cmd was
    # not given
    res = runner.invoke(app, ["submit", "--cmd", cmd])
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception).startswith("--cmd: the command is empty")
    assert cli.client.list_jobs(all=True) == []


def test_jobs_id_shows_a_script_under_its_label(cli: Any) -> None:
    jid = cli.client.submit({"script": "echo one\necho two\n"})["id"]
    out = runner.invoke(app, ["jobs", jid]).stdout
    assert "command      echo one\n             echo two\nworkdir" in out
