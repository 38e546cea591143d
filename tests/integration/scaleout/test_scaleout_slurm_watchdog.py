"""The Slurm executor's max_runtime watchdog against real Slurm daemons (munged, slurmctld,
slurmd) on this machine: what it leaves behind after the grace period, and which comes
first when a command fails on its own at its deadline."""

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

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


def _wait(ex: SlurmExecutor, handle: str, timeout_s: float = 25) -> ExecStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        st = ex.poll(handle)
        if st.final or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


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
        allocation=alloc,  # type: ignore[arg-type]
        job_dir=tmp_path / name,
        **kw,  # type: ignore[arg-type]
    )


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
    st = _wait(ex, ex.launch(req))
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
    st = _wait(ex, ex.launch(req))
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
    st = _wait(ex, ex.launch(req))
    log = req.log_path.read_text()
    assert (st.state, st.exit_code, st.reason) == ("failed", 3, "exited with code 3:\nstarted"), (
        st,
        log,
    )
    assert not (req.job_dir / "timed_out").exists()
    assert (req.job_dir / "failed_rank").read_text() == "0 3 1\n"
    # the watchdog came first to the record, but the command had exited by then
    assert (req.job_dir / "rank_end" / "0").read_text() == "max_runtime\n"
