"""The Slurm executor with a job directory and a workdir whose paths hold spaces (and a tab), as
under ``AISTACK_HOME=/home/John Smith/.aistack``, against real Slurm daemons on this machine:
the job runs in its workdir, its output lands in its log file, max_runtime and cancel work,
``handle_in`` finds it, and words in a path that look like ``scontrol``'s fields
(``JobState=COMPLETED``) do not change what poll reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


@pytest.fixture
def ex(slurm) -> Iterator[SlurmExecutor]:  # type: ignore[no-untyped-def]
    executor = SlurmExecutor(slurm_conf=slurm.conf_path)
    yield executor
    slurm.run("scancel", "--me", check=False)
    executor.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An AISTACK_HOME with a space in it, like /home/John Smith/.aistack."""
    path = tmp_path / "John Smith" / ".aistack"
    path.mkdir(parents=True)
    return path


def _wait(ex: SlurmExecutor, handle: str, pred, timeout_s: float = 90) -> ExecStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not pred(st := ex.poll(handle)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return st


def _final(ex: SlurmExecutor, handle: str) -> ExecStatus:
    return _wait(ex, handle, lambda s: s.final)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _req(
    ex: SlurmExecutor, job_dir: Path, command: str, *, cpus: int = 1, **kw: object
) -> LaunchRequest:
    node = ex.inventory()[0]
    return LaunchRequest(
        job_id=job_dir.parent.name,
        attempt=1,
        command=command,
        allocation=Allocation(nodes={node.name: NodeAlloc(cpus=tuple(range(cpus)), memory_mb=128)}),
        job_dir=job_dir,
        **kw,  # type: ignore[arg-type]
    )


def test_a_job_runs_in_its_workdir_and_logs_to_its_file(ex: SlurmExecutor, home: Path) -> None:
    wd = home.parent / "my project\tv2\xa0é"
    wd.mkdir()
    req = _req(ex, home / "jobs" / "j 1" / "1", 'echo "ran in $PWD"; pwd -P', workdir=str(wd))
    handle = ex.launch(req)
    st = _final(ex, handle)
    assert st.state == "succeeded", (st, sorted(map(str, home.parent.rglob("*"))))
    assert req.log_path == home / "jobs" / "j 1" / "1" / "output.log"
    assert req.log_path.read_text().splitlines() == [f"ran in {wd}", str(wd)]
    assert (req.job_dir / "exit_code").read_text() == "0\n"
    assert ex.handle_in(req.job_dir) == handle


def test_without_a_workdir_the_job_runs_in_its_job_directory(ex: SlurmExecutor, home: Path) -> None:
    req = _req(
        ex, home / "jobs" / "j 2" / "1", "echo rank $AISTACK_RANK in $PWD", procs_per_node=2, cpus=2
    )
    st = _final(ex, ex.launch(req))
    assert st.state == "succeeded", (st, sorted(map(str, home.parent.rglob("*"))))
    lines = sorted(req.log_path.read_text().splitlines())
    assert lines == [f"0: rank 0 in {req.job_dir}", f"1: rank 1 in {req.job_dir}"]


def test_max_runtime_stops_a_job_in_such_folders(ex: SlurmExecutor, home: Path) -> None:
    req = _req(
        ex,
        home / "jobs" / "j 3" / "1",
        "echo started; sleep 60",
        max_runtime_s=2,
        env={"AISTACK_GRACE_S": "1"},
    )
    st = _final(ex, ex.launch(req))
    assert (st.state, st.reason) == ("timeout", "exceeded max_runtime of 2 s"), st
    assert (req.job_dir / "timed_out").read_text() == "2\n"
    assert req.log_path.read_text().startswith("started\n")


def test_cancel_and_handle_in_with_scontrol_lookalikes_in_the_paths(
    ex: SlurmExecutor, home: Path
) -> None:
    """Paths are fields of ``scontrol show job -o`` (WorkDir=, StdOut=, Command=) written as
    they are, spaces included: a path holding `` JobState=COMPLETED ExitCode=0:0`` must not
    pass for the job's state."""
    lookalike = " JobState=COMPLETED ExitCode=0:0 Reason=None BatchHost=elsewhere"
    wd = home.parent / f"wd{lookalike}"
    wd.mkdir()
    req = _req(
        ex,
        home / "jobs" / f"j 4{lookalike}" / "1",
        "echo started; exec sleep 120",
        workdir=str(wd),
        env={"AISTACK_GRACE_S": "1"},
    )
    handle = ex.launch(req)
    (req.job_dir / "slurm_job_id").unlink()  # as if the server stopped before writing it
    assert ex.handle_in(req.job_dir) == handle
    st = _wait(
        ex,
        handle,
        lambda s: s.final or (s.state == "running" and "started" in _text(req.log_path)),
        timeout_s=60,
    )
    assert st.state == "running" and st.exit_code is None, st
    assert st.node != "elsewhere", st
    ex.cancel(handle, grace_s=1)
    st = _final(ex, handle)
    assert (st.state, st.reason) == ("cancelled", "cancelled through aistack"), st
    assert req.log_path.read_text().startswith("started\n")
