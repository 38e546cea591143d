"""The Slurm executor against real Slurm daemons (munged, slurmctld, slurmd) on this machine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


def _wait(ex: SlurmExecutor, handle: str, pred, timeout_s: float = 60) -> ExecStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        st = ex.poll(handle)
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


@pytest.fixture
def ex(slurm) -> SlurmExecutor:  # type: ignore[no-untyped-def]
    executor = SlurmExecutor(slurm_conf=slurm.conf_path)
    yield executor
    executor.close()


def _req(ex: SlurmExecutor, tmp_path: Path, name: str, command: str, **kw: object) -> LaunchRequest:
    node = ex.inventory()[0]
    alloc = kw.pop("allocation", None) or Allocation(
        nodes={node.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256)}
    )
    return LaunchRequest(
        job_id=name,
        attempt=1,
        command=command,
        allocation=alloc,
        job_dir=tmp_path / name,
        **kw,  # type: ignore[arg-type]
    )


def test_inventory_shows_the_node_and_fake_gpus(ex: SlurmExecutor, slurm) -> None:  # type: ignore[no-untyped-def]
    nodes = ex.inventory()
    assert [n.name for n in nodes] == [slurm.host]
    assert len(nodes[0].gpus) == 2 and nodes[0].cpus >= 1 and nodes[0].memory_mb > 0
    assert nodes[0].labels["partitions"] == "debug"


def test_job_runs_and_its_output_comes_back(ex: SlurmExecutor, tmp_path: Path) -> None:
    req = _req(
        ex,
        tmp_path,
        "hello",
        "echo hello from $SLURM_JOB_ID rank=$AISTACK_RANK; echo $GREETING",
        env={"GREETING": "hi there"},
    )
    handle = ex.launch(req)
    assert handle.startswith("slurm:")
    st = _wait(ex, handle, lambda s: s.final)
    assert st.state == "succeeded" and st.exit_code == 0, st
    text = req.log_path.read_text()
    slurm_id = handle.split(":")[1]
    assert f"hello from {slurm_id} rank=0" in text and "hi there" in text
    script = (req.job_dir / "job.sbatch").read_text()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --mem=256M" in script


def test_failure_keeps_the_exit_code(ex: SlurmExecutor, tmp_path: Path) -> None:
    handle = ex.launch(_req(ex, tmp_path, "fail", "echo oops >&2; exit 3"))
    st = _wait(ex, handle, lambda s: s.final)
    assert (st.state, st.exit_code) == ("failed", 3)


def test_distributed_ranks_get_their_env(ex: SlurmExecutor, tmp_path: Path) -> None:
    node = ex.inventory()[0]
    req = _req(
        ex,
        tmp_path,
        "ddp-env",
        "echo RANKINFO $RANK/$WORLD_SIZE local=$LOCAL_RANK master=$MASTER_ADDR:$MASTER_PORT",
        allocation=Allocation(
            nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=(0, 1), memory_mb=256)}
        ),
        distributed="torch",
    )
    handle = ex.launch(req)
    st = _wait(ex, handle, lambda s: s.final)
    assert st.state == "succeeded", (st, req.log_path.read_text())
    lines = sorted(
        x.split("RANKINFO ", 1)[1] for x in req.log_path.read_text().splitlines() if "RANKINFO" in x
    )
    port = [
        x for x in (req.job_dir / "job.sbatch").read_text().splitlines() if "MASTER_PORT=" in x
    ][0].split("=")[1]
    assert lines == [
        f"0/2 local=0 master={node.name}:{port}",
        f"1/2 local=1 master={node.name}:{port}",
    ]


def test_pending_reason_then_cancel_running_and_pending(ex: SlurmExecutor, tmp_path: Path) -> None:
    node = ex.inventory()[0]
    everything = Allocation(
        nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=tuple(range(node.cpus)), memory_mb=256)}
    )
    h1 = ex.launch(
        _req(
            ex,
            tmp_path,
            "long",
            "trap 'echo got TERM; exit 143' TERM; echo started; sleep 300 & wait",
            allocation=everything,
        )
    )
    h2 = ex.launch(_req(ex, tmp_path, "waiting", "echo should not run", allocation=everything))
    st1 = _wait(ex, h1, lambda s: s.state == "running")
    assert st1.state == "running"
    st2 = ex.poll(h2)
    assert st2.state == "starting"
    assert st2.reason is not None and "waiting for resources" in st2.reason
    ex.cancel(h2, grace_s=5)
    assert _wait(ex, h2, lambda s: s.final, 20).state == "cancelled"
    log = tmp_path / "long" / "output.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "started" not in (
        log.read_text() if log.exists() else ""
    ):
        time.sleep(0.1)  # the trap is set once the task printed "started" (RUNNING comes earlier)
    assert "started" in log.read_text()
    t0 = time.monotonic()
    ex.cancel(h1, grace_s=5)
    st1 = _wait(ex, h1, lambda s: s.final, 30)
    assert st1.state == "cancelled", st1
    assert time.monotonic() - t0 < 20
    assert "got TERM" in log.read_text()
    assert not (tmp_path / "waiting" / "output.log").exists()


def test_through_the_aistack_server_on_postgresql(slurm, server_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """The whole path: aistack server (AISTACK_EXECUTOR=slurm, metadata on PostgreSQL) →
    scheduler → sbatch → Slurm runs it → state and output come back; cancel works."""
    srv = server_factory(
        AISTACK_EXECUTOR="slurm", SLURM_CONF=str(slurm.conf_path), AISTACK_DATABASE_URL=pg_url
    )
    c = srv.client()
    nodes = c.cluster()
    assert slurm.host in str(nodes)
    job = c.submit(
        {
            "name": "via-server",
            "command": "echo hi from slurm job $SLURM_JOB_ID",
            "resources": {"gpus": 1, "memory": "128MB"},
        }
    )
    j = c.wait(job["id"], timeout=90)
    assert j["state"] == "SUCCEEDED" and j["exit_code"] == 0, j
    assert "hi from slurm job " in c.logs(job["id"])["text"]
    long = c.submit({"name": "to-cancel", "command": "echo started; sleep 300"})
    deadline = time.monotonic() + 60
    while c.get_job(long["id"])["state"] not in ("RUNNING",) and time.monotonic() < deadline:
        time.sleep(0.3)
    c.cancel(long["id"])
    j = c.wait(long["id"], timeout=60)
    assert j["state"] == "CANCELLED", j


def test_server_killed_mid_job_readopts_the_slurm_job(slurm, server_factory) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the aistack server while a Slurm job runs: the job keeps running under Slurm,
    and the restarted server finds it again through its durable handle."""
    srv = server_factory(AISTACK_EXECUTOR="slurm", SLURM_CONF=str(slurm.conf_path))
    c = srv.client()
    job = c.submit({"name": "survivor", "command": "echo begin; sleep 6; echo end"})
    deadline = time.monotonic() + 60
    while c.get_job(job["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.get_job(job["id"])["state"] == "RUNNING"
    srv.kill9()
    srv.start(timeout=120)
    c = srv.client()
    j = c.wait(job["id"], timeout=90)
    assert j["state"] == "SUCCEEDED" and j["attempt"] == 0, j
    text = c.logs(job["id"])["text"]
    assert "begin" in text and "end" in text


def test_missing_workdir_fails_instead_of_running_in_tmp(ex: SlurmExecutor, tmp_path: Path) -> None:
    handle = ex.launch(_req(ex, tmp_path, "nowd", "pwd", workdir=str(tmp_path / "gone")))
    st = _wait(ex, handle, lambda s: s.final)
    assert (st.state, st.exit_code) == ("failed", 1), st
    assert "does not exist" in (st.reason or "")


def test_failed_gang_names_the_failing_rank(ex: SlurmExecutor, tmp_path: Path) -> None:
    """A 2-task gang whose rank 1 exits 7: srun stops rank 0 (SIGTERM, 143) and exits 143,
    Slurm says FAILED/NonZeroExitCode with ExitCode 143; the executor names rank 1, its code
    and its last output lines, as the local and Ray executors do."""
    node = ex.inventory()[0]
    req = _req(
        ex,
        tmp_path,
        "gang-fail",
        'echo "hello from $RANK"; if [ "$RANK" = 1 ]; then echo "boom on rank 1" >&2; '
        "exit 7; fi; sleep 60",
        allocation=Allocation(
            nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=(0, 1), memory_mb=256)}
        ),
        distributed="torch",
    )
    t0 = time.monotonic()
    handle = ex.launch(req)
    st = _wait(ex, handle, lambda s: s.final)
    log = req.log_path.read_text()
    assert (st.state, st.exit_code) == ("failed", 7), (st, log)
    assert st.reason == "rank 1 exited with code 7:\nhello from 1\nboom on rank 1", (st, log)
    assert time.monotonic() - t0 < 50  # rank 0 was stopped, not left to sleep 60 s


def test_preemption_notice_reaches_the_command_not_the_rank_wrapper(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    """SIGUSR1 to the job (a preemption notice) reaches the command, which checkpoints and
    exits 0; the rank wrapper around it waits instead of dying of the signal first."""
    import signal

    req = _req(
        ex,
        tmp_path,
        "usr1",
        "trap 'echo got USR1; exit 0' USR1; echo started; sleep 60 & wait",
    )
    handle = ex.launch(req)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "started" not in (
        req.log_path.read_text() if req.log_path.exists() else ""
    ):
        time.sleep(0.1)
    ex.signal(handle, signal.SIGUSR1)
    st = _wait(ex, handle, lambda s: s.final, 40)
    assert (st.state, st.exit_code) == ("succeeded", 0), (st, req.log_path.read_text())
    assert "got USR1" in req.log_path.read_text()


def _wait_for_output(req: LaunchRequest, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and text not in (
        req.log_path.read_text() if req.log_path.exists() else ""
    ):
        time.sleep(0.1)


def test_stderr_keeps_its_place_in_the_log(ex: SlurmExecutor, tmp_path: Path) -> None:
    """A task's stderr is in the log where the local executor's output.log has it: srun
    carried stdout and stderr apart and wrote "out1 out2 err1 err2" (a traceback ahead of
    the lines printed before it), and the failure reason quoted them in that order."""
    req = _req(ex, tmp_path, "order", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3")
    st = _wait(ex, ex.launch(req), lambda s: s.final)
    log = req.log_path.read_text()
    lines = [x for x in log.splitlines() if not x.startswith(("srun", "slurmstepd"))]
    assert lines == ["out1", "err1", "out2", "err2"], log
    assert (st.state, st.exit_code) == ("failed", 3)
    assert st.reason == "exited with code 3:\nout1\nerr1\nout2\nerr2", (st, log)


def test_max_runtime_is_enforced_to_the_second(ex: SlurmExecutor, tmp_path: Path) -> None:
    """max_runtime 5 s is 1 minute of Slurm's --time: aistack's watchdog sends SIGTERM at
    5 s; a preemption notice (SIGUSR1) before it does not stop the watchdog; the command's
    handler exits 0 and the job is TIMEOUT, "exceeded max_runtime of 5 s"."""
    import signal

    req = _req(
        ex,
        tmp_path,
        "to-the-second",
        "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 0' TERM; echo started; "
        "while :; do sleep 0.2; done",
        max_runtime_s=5,
        env={"AISTACK_GRACE_S": "20"},
    )
    t0 = time.monotonic()
    handle = ex.launch(req)
    _wait_for_output(req, "started")
    ex.signal(handle, signal.SIGUSR1)
    _wait_for_output(req, "got USR1", 10)
    st = _wait(ex, handle, lambda s: s.final, 40)
    took = time.monotonic() - t0
    log = req.log_path.read_text()
    assert (st.state, st.exit_code, st.reason) == (
        "timeout",
        0,
        "exceeded max_runtime of 5 s",
    ), (st, log)
    assert "got USR1" in log and "got TERM" in log
    assert 5 <= took < 40, took


def test_max_runtime_kills_a_gang_after_the_grace_period(ex: SlurmExecutor, tmp_path: Path) -> None:
    """Ranks that ignore SIGTERM are SIGKILLed once the grace period after max_runtime has
    passed; the job is TIMEOUT, not a failure of the rank srun saw exit first."""
    node = ex.inventory()[0]
    req = _req(
        ex,
        tmp_path,
        "stubborn",
        "trap '' TERM; echo started $RANK; sleep 120; echo not killed",
        allocation=Allocation(
            nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=(0, 1), memory_mb=256)}
        ),
        distributed="torch",
        max_runtime_s=4,
        env={"AISTACK_GRACE_S": "2"},
    )
    t0 = time.monotonic()
    st = _wait(ex, ex.launch(req), lambda s: s.final, 50)
    took = time.monotonic() - t0
    log = req.log_path.read_text()
    assert (st.state, st.exit_code, st.reason) == (
        "timeout",
        137,
        "exceeded max_runtime of 4 s",
    ), (st, log)
    assert "started 0" in log and "started 1" in log and "not killed" not in log
    assert 6 <= took < 40, took


def test_cancel_sends_the_jobs_stop_signal(ex: SlurmExecutor, tmp_path: Path) -> None:
    """A job whose stop_signal is SIGUSR1 checkpoints on it: a cancel sends it USR1 (not
    SIGTERM, which would kill this command), it writes its marker and exits 0, and the job
    ends CANCELLED; cancelled by a second executor, which has only the handle."""
    marker = tmp_path / "checkpointed"
    req = _req(
        ex,
        tmp_path,
        "usr1-stop",
        f"trap 'echo saved > {marker}; echo got USR1; exit 0' USR1; echo started; sleep 300 & wait",
        stop_signal="SIGUSR1",
    )
    handle = ex.launch(req)
    _wait_for_output(req, "started")
    other = SlurmExecutor(slurm_conf=ex.slurm_conf)
    try:
        other.cancel(handle, grace_s=30)
        st = _wait(other, handle, lambda s: s.final, 25)
    finally:
        other.close()
    log = req.log_path.read_text()
    assert st.state == "cancelled", (st, log)
    assert marker.read_text() == "saved\n", log
    assert "got USR1" in log
