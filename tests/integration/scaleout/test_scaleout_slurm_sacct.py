"""`aistack sim --format slurm` on a real Slurm cluster's own accounting; and the Slurm
executor's last source of a job's end when slurmctld no longer knows the job (``sacct``).

A private cluster with slurmdbd and MariaDB (``start_slurm(accounting=True)``) runs a few jobs
with fake GPUs under two accounts; ``sacct`` exports them in the documented format
(``SACCT_COMMAND``), and the simulator reads that output as a trace: every finished job with its
GPUs (from AllocTRES), user, account, time limit and End − Start runtime; a running and a pending
job skipped and counted; step rows skipped without ``-X``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import sim
from aistack.scheduler.simulator.trace import SACCT_COMMAND, read_csv_trace

pytestmark = pytest.mark.slurm

FORMAT = SACCT_COMMAND.split("--format=")[1]
NO_TIMES = "jobs without a start or an end time"
STEPS = "job steps (sacct without -X)"


@pytest.fixture(scope="module")
def acct() -> Iterator[Any]:
    from aistack.testing.slurm import slurm_unavailable_reason, start_slurm

    reason = slurm_unavailable_reason(accounting=True)
    if reason:
        pytest.skip(reason)
    cluster = start_slurm(gpus=4, accounting=True)
    try:
        cluster.run("sacctmgr", "-i", "add", "account", "vision,nlp")
        cluster.run("sacctmgr", "-i", "add", "user", "root", "account=vision,nlp")
        yield cluster
    finally:
        cluster.stop()


def _sbatch(cluster: Any, *args: str) -> str:
    out = cluster.run("sbatch", "--parsable", "-o", "/dev/null", "--mem=64M", *args).stdout
    return str(out.strip().split(";")[0])


def _wait_sacct(cluster: Any, job: str, ok: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = cluster.sacct("-X", "-n", "-a", "--parsable2", "--format=JobID,Start", "-j", job)
        if any(ok(r.split("|")[1]) for r in rows.splitlines()):
            return
        assert time.monotonic() < deadline, f"job {job}: {rows!r}\n{cluster.logs()}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def history(acct: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four finished jobs (1, 2, 0 and 4 GPUs; the 4-GPU one must wait for the others), then a
    running and a pending one; sacct's output with and without -X."""
    done = {
        _sbatch(acct, "-A", "vision", "-t", "5", "--gres=gpu:1", "--wrap", "sleep 2"): (
            1,
            "vision",
        ),
        _sbatch(acct, "-A", "nlp", "-t", "4", "--gres=gpu:2", "--wrap", "sleep 1"): (2, "nlp"),
        _sbatch(acct, "-A", "nlp", "-t", "3", "--wrap", "sleep 1"): (0, "nlp"),
        _sbatch(acct, "-A", "vision", "-t", "2", "--gres=gpu:4", "--wrap", "sleep 2"): (
            4,
            "vision",
        ),
    }
    acct.wait_accounted(list(done))
    running = _sbatch(acct, "-A", "nlp", "-t", "10", "--gres=gpu:1", "--wrap", "sleep 300")
    # the running job's start must be in the accounting (records arrive asynchronously)
    _wait_sacct(acct, running, lambda start: start not in ("", "Unknown"))
    # waits for the running job's GPU: pending, no start time yet, but in the accounting
    waiting = _sbatch(acct, "-A", "vision", "-t", "10", "--gres=gpu:4", "--wrap", "true")
    _wait_sacct(acct, waiting, lambda start: start == "Unknown")
    window = ("--starttime", "now-1days")
    out = tmp_path_factory.mktemp("sacct")
    with_x = out / "history.txt"
    with_x.write_text(acct.sacct("-X", "-a", "--parsable2", *window, f"--format={FORMAT}"))
    steps = out / "steps.txt"
    steps.write_text(acct.sacct("-a", "--parsable2", *window, f"--format={FORMAT}"))
    elapsed = acct.sacct("-X", "-n", "-a", "--parsable2", *window, "--format=JobID,ElapsedRaw")
    acct.run("scancel", running, waiting, check=False)
    return {
        "done": done,
        "skipped": {running, waiting},
        "file": with_x,
        "steps": steps,
        "elapsed": dict(line.split("|") for line in elapsed.splitlines()),
    }


def test_sacct_output_reads_as_a_trace(history: dict[str, Any]) -> None:
    jobs, skipped = read_csv_trace(history["file"], fmt="slurm")
    assert skipped == {NO_TIMES: 2}  # the running and the pending job
    by_id = {j.id: j for j in jobs}
    assert set(by_id) == set(history["done"])
    for jid, (gpus, account) in history["done"].items():
        j = by_id[jid]
        assert (j.gpus, j.user, j.project) == (gpus, "root", account)
        # End − Start is what Slurm itself counts as the elapsed time
        assert j.duration == float(history["elapsed"][jid])
        assert j.duration >= 1
    limits = [by_id[jid].max_runtime for jid in history["done"]]
    assert limits == [300.0, 240.0, 180.0, 120.0]  # -t 5, 4, 3, 2 (minutes)
    assert [j.id for j in jobs] == sorted(by_id, key=lambda i: (by_id[i].submit, i))


def test_step_rows_without_dash_x_are_skipped(history: dict[str, Any]) -> None:
    jobs, skipped = read_csv_trace(history["steps"], fmt="slurm")
    assert {j.id for j in jobs} == set(history["done"])
    assert skipped[NO_TIMES] == 2
    steps = [ln for ln in history["steps"].read_text().splitlines() if "." in ln.split("|")[0]]
    assert skipped[STEPS] == len(steps) >= 4  # a .batch step per finished job at least


def test_sim_run_replays_the_history(history: dict[str, Any]) -> None:
    """The CLI replays it on the same 1 node × 4 GPUs: the CPU-only job is dropped, the others
    are simulated, every policy's average JCT is at least the mean runtime, and the accounts
    are the projects Jain's fairness index is taken over."""
    runner = CliRunner()
    args = ["run", "--trace", str(history["file"]), "--format", "slurm", "--nodes", "1"]
    args += ["--gpus-per-node", "4", "--policy", "fifo,easy,default"]
    res = runner.invoke(sim.app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    jobs, _ = read_csv_trace(history["file"], fmt="slurm")
    gpu_jobs = [j for j in jobs if j.gpus > 0]
    mean_runtime = sum(j.duration for j in gpu_jobs) / len(gpu_jobs)
    assert [r["policy"] for r in rows] == ["fifo", "easy", "default"]
    for r in rows:
        assert (r["jobs"], r["dropped"]) == (3, 1), r
        assert r["avg_jct"] >= mean_runtime
        # two accounts (projects), one user: fairness across the accounts only
        assert 0.5 <= r["jain_projects"] <= 1.0
        assert "jain_users" not in r
    text = runner.invoke(sim.app, args, env={"COLUMNS": "250"}).output
    assert f"2 {NO_TIMES}" in text
    assert "1 CPU-only jobs skipped" in text


def test_whatif_on_the_history(history: dict[str, Any]) -> None:
    """`sim whatif --trace FILE --format slurm`: with 4 more GPUs (a second node) the same
    three GPU jobs are replayed, and the waits can only shrink."""
    runner = CliRunner()
    base = ["whatif", "--trace", str(history["file"]), "--format", "slurm", "--nodes", "1"]
    base += ["--gpus-per-node", "4", "--json"]
    res = runner.invoke(sim.app, [*base, "--gpus-delta", "4"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["gpus_today"], data["gpus_whatif"]) == (4, 8)
    before, after = data["today"], data["whatif"]
    assert before["jobs"] == after["jobs"] == 3
    assert after["avg_wait"] <= before["avg_wait"]
    assert after["avg_jct"] <= before["avg_jct"]


def test_the_executor_asks_sacct_once_slurmctld_forgot_the_job(acct: Any, tmp_path: Path) -> None:
    """A job cancelled from outside aistack (an admin's scancel) leaves no exit code in its
    job directory; once slurmctld has lost its state (restarted without it), only the
    accounting knows how it ended: the executor reads it from sacct, not "lost"."""
    from aistack.executors.base import LaunchRequest
    from aistack.executors.slurm import SlurmExecutor
    from aistack.scheduler.types import Allocation, NodeAlloc

    ex = SlurmExecutor(slurm_conf=acct.conf_path)
    try:
        node = ex.inventory()[0]
        req = LaunchRequest(
            job_id="admin-cancelled",
            attempt=1,
            command="sleep 120",
            allocation=Allocation(nodes={node.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=64)}),
            job_dir=tmp_path / "admin-cancelled",
        )
        handle = ex.launch(req)
        job_id = handle.split(":")[1]
        deadline = time.monotonic() + 60
        while ex.poll(handle).state != "running":
            assert time.monotonic() < deadline, ex.poll(handle)
            time.sleep(0.3)
        acct.run("scancel", job_id)
        acct.wait_accounted([job_id])
        # the accounting has the end as soon as the job is cancelled; slurmctld says
        # COMPLETING (the executor: running) until the job's processes are gone
        before = ex.poll(handle)
        while before.state == "running":
            assert time.monotonic() < deadline + 60, before
            time.sleep(0.3)
            before = ex.poll(handle)
        assert before.state == "cancelled", before
        acct.restart_controller(clear_state=True)
        assert ex.job_info(job_id) is None  # slurmctld no longer knows it
        after = ex.poll(handle)
        assert after.state == "cancelled", after  # from sacct; the files alone say "lost"
        # (the batch script, SIGTERMed by scancel, may or may not write exit_code before it
        # is killed: a race of the machine's load, so not asserted)
    finally:
        ex.close()
