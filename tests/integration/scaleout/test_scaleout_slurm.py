"""The Slurm executor against real Slurm daemons (munged, slurmctld, slurmd) on this machine;
at the end, its max_runtime watchdog: what it leaves behind after the grace period, and which
comes first when a command fails on its own at its deadline; and what a command leaves
running, also once it cleared its environment and left the rank's process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import (
    escaping_command,
    kill_marked,
    marked_pids,
    poll_until,
    trapping_command,
    wait_until,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


def _wait(ex: SlurmExecutor, handle: str, pred, timeout_s: float = 60) -> ExecStatus:  # type: ignore[no-untyped-def]
    return poll_until(ex, handle, pred, timeout_s, every=0.2)


@pytest.fixture
def ex(slurm) -> Iterator[SlurmExecutor]:  # type: ignore[no-untyped-def]
    """The executor; a job of the test still in Slurm afterwards is scancelled (else it
    would outlive the test cluster, which stops with the module)."""
    executor = SlurmExecutor(slurm_conf=slurm.conf_path)
    launched: list[str] = []
    launch = executor.launch

    def launch_and_note(req: LaunchRequest) -> str:
        handle = launch(req)
        launched.append(handle)
        return handle

    executor.launch = launch_and_note  # type: ignore[method-assign]
    yield executor
    for handle in launched:
        if not executor.poll(handle).final:
            slurm.run("scancel", "--signal=KILL", "--full", handle.split(":")[1], check=False)
            slurm.run("scancel", handle.split(":")[1], check=False)
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
            trapping_command("TERM", "echo got TERM", exit_code=143),
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
        trapping_command("USR1", "echo got USR1", sleep_s=60),
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
        trapping_command("USR1", f"echo saved > {marker}; echo got USR1"),
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


# ---------------------------------------------------------------- max_runtime watchdog


def _pgrep(marker: str) -> list[int]:
    res = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    return [int(p) for p in res.stdout.split()]


@pytest.fixture
def marker() -> Iterator[str]:
    """A string unique to one test's processes; whatever still carries it afterwards is
    killed by PID (so a failing run does not leave sleepers on the machine)."""
    mark = f"aistack-wd-{uuid.uuid4().hex[:12]}"
    yield mark
    for pid in _pgrep(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stubborn_children(marker: str) -> str:
    """A command whose shell waits for two children that ignore SIGTERM (a python, and a
    bash whose own child ignores it too); each carries ``marker`` in its command line."""
    py = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('py up', flush=True); time.sleep(1000)"
    )
    return (
        f'{sys.executable} -c "{py}" {marker}-py & '
        f"bash -c 'trap \"\" TERM; exec -a {marker}-sleep sleep 1000 & wait; : {marker}-sh' & "
        "echo started; wait"
    )


def test_children_that_ignore_the_stop_signal_are_killed_after_the_grace_period(
    ex: SlurmExecutor, tmp_path: Path, marker: str
) -> None:
    """The command's shell dies of SIGTERM at max_runtime; its children (a python and a
    bash with a child of its own) ignore SIGTERM. The rank ended with the shell and its
    watchdog with it, so the children (orphans, out of the rank's process tree) outlived
    it, holding the step's output open: the job stayed RUNNING until Slurm's --time (1
    minute). Now nothing of the rank is left once the grace period has passed, and the job
    is TIMEOUT with the shell's code."""
    command = _stubborn_children(marker)
    req = _req(
        ex, tmp_path, "stubborn-children", command, max_runtime_s=3, env={"AISTACK_GRACE_S": "2"}
    )
    t0 = time.monotonic()
    st = _wait(ex, ex.launch(req), lambda s: s.final, timeout_s=25)
    took = time.monotonic() - t0
    log = req.log_path.read_text()
    assert "py up" in log and "started" in log, log
    assert (st.state, st.exit_code, st.reason) == (
        "timeout",
        143,
        "exceeded max_runtime of 3 s",
    ), (st, log)
    assert _pgrep(marker) == [], log  # none left behind past the grace period
    assert (req.job_dir / "rank_end" / "0").read_text() == "max_runtime\n"
    assert 5 <= took < 30, took  # 3 s max_runtime + 2 s grace: the children had their grace


def test_each_rank_of_a_gang_kills_what_its_command_left(
    ex: SlurmExecutor, tmp_path: Path, marker: str
) -> None:
    """Two ranks on one node (one process group, Slurm's, for both): each watchdog finds
    its own rank's orphans, and none is left once the grace period has passed."""
    node = ex.inventory()[0]
    req = _req(
        ex,
        tmp_path,
        "stubborn-gang",
        _stubborn_children(marker),
        allocation=Allocation(
            nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=(0, 1), memory_mb=256)}
        ),
        distributed="torch",
        max_runtime_s=3,
        env={"AISTACK_GRACE_S": "2"},
    )
    st = _wait(ex, ex.launch(req), lambda s: s.final, timeout_s=25)
    log = req.log_path.read_text()
    assert log.count("py up") == 2, log
    assert (st.state, st.exit_code, st.reason) == (
        "timeout",
        143,
        "exceeded max_runtime of 3 s",
    ), (st, log)
    assert _pgrep(marker) == [], log
    assert sorted(p.name for p in (req.job_dir / "rank_end").iterdir()) == ["0", "1"]


def test_a_command_that_failed_just_before_the_deadline_is_a_failure(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    """The command exits 3 on its own 1.5 s before max_runtime, but its rank can record
    that only after the deadline: its shell is stopped from before the exit until 1.5 s
    after the deadline, which holds open the window between an exit and its record (a
    zombie not reaped yet). The watchdog took the exited command for a running one,
    recorded timed_out and the job was TIMEOUT; it is the failure, code 3, that came
    first."""
    req = _req(
        ex,
        tmp_path,
        "exit-at-deadline",
        "echo started; sleep 1; (sleep 3; kill -CONT $PPID) & kill -STOP $PPID; "
        "until ps -o stat= -p $PPID | grep -q T; do sleep 0.05; done; exit 3",
        max_runtime_s=2.5,
        env={"AISTACK_GRACE_S": "1"},
    )
    st = _wait(ex, ex.launch(req), lambda s: s.final, timeout_s=25)
    log = req.log_path.read_text()
    assert (st.state, st.exit_code, st.reason) == ("failed", 3, "exited with code 3:\nstarted"), (
        st,
        log,
    )
    assert not (req.job_dir / "timed_out").exists()
    assert (req.job_dir / "failed_rank").read_text() == "0 3 1\n"
    # the watchdog came first to the record, but the command had exited by then
    assert (req.job_dir / "rank_end" / "0").read_text() == "max_runtime\n"


def test_what_a_command_left_running_ends_with_it_without_max_runtime(
    ex: SlurmExecutor, tmp_path: Path, marker: str
) -> None:
    """A job without max_runtime whose command starts a child that ignores SIGTERM and exits
    0. The child kept the step's output open, so the job stayed RUNNING until Slurm's own
    time limit; now the rank ends it (SIGTERM, then SIGKILL after the 2 s grace period) once
    the command has exited, and the job succeeds with the command's code."""
    py = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('child up', flush=True); time.sleep(1000)"
    )
    command = (
        f'{sys.executable} -c "{py}" {marker}-py & '
        "for i in $(seq 50); do grep -q 'child up' \"$AISTACK_JOB_DIR/output.log\" && break; "
        "sleep 0.1; done; "
        "echo main done; exit 0"
    )
    req = _req(ex, tmp_path, "leftover-child", command, env={"AISTACK_GRACE_S": "2"})
    t0 = time.monotonic()
    st = _wait(ex, ex.launch(req), lambda s: s.final, timeout_s=15)
    took = time.monotonic() - t0
    log = req.log_path.read_text()
    assert (st.state, st.exit_code) == ("succeeded", 0), (st, log)
    assert "child up" in log and "main done" in log, log
    assert _pgrep(marker) == [], log  # the child is gone, not left on the node
    assert 2 <= took < 15, took  # it had its grace period after the SIGTERM it ignored


@pytest.mark.parametrize("how", ["exits", "cancelled"])
def test_a_leftover_that_cleared_its_environment_ends_with_the_job(
    ex: SlurmExecutor, tmp_path: Path, how: str
) -> None:
    """The command leaves two sleeps that clear their environment (env -i: no
    AISTACK_RANK_TAG) and leave its session (setsid), one daemonized (a double fork). They
    were reparented to init, out of the step (proctrack/linuxproc follows the process tree)
    and out of the rank's reach: they kept running after the job, holding its GPUs. Each
    rank's shell runs under a child subreaper now, and they end with the job, whether its
    command exits or the job is cancelled."""
    mark = f"aistack-left-{uuid.uuid4().hex[:12]}"
    then = "echo started; exit 0" if how == "exits" else "echo started; exec sleep 300"
    req = _req(
        ex, tmp_path, f"escape-{how}", escaping_command(mark, then), env={"AISTACK_GRACE_S": "2"}
    )
    try:
        handle = ex.launch(req)
        if how == "cancelled":
            _wait_for_output(req, "started")
            assert len(marked_pids(mark)) == 2, req.log_path.read_text()
            ex.cancel(handle, grace_s=5)
        st = _wait(ex, handle, lambda s: s.final, 60)
        log = req.log_path.read_text()
        assert st.state == ("succeeded" if how == "exits" else "cancelled"), (st, log)
        assert "started" in log, log
        wait_until(lambda: not marked_pids(mark), 5)
        assert marked_pids(mark) == [], "a leftover without the rank's tag outlived the job"
    finally:
        kill_marked(mark)
