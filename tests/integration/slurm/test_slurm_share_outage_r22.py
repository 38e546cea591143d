"""The Slurm executor against real Slurm daemons (slurm.conf with no DefMemPerCPU, as the
test harness writes it):

* two 1-GPU jobs that ask no memory run side by side on the one node (each took all of the
  node's memory, so the second one waited PENDING in Slurm while aistack showed it RUNNING);
* a launch after slurmctld died is lost at once ("not started: …"), which the server requeues,
  instead of raising sbatch's error, which fails the job for good;
* a job Slurm holds PENDING polls "starting" with Slurm's reason, not "running".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import poll_until

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


def _req(ex: SlurmExecutor, tmp_path: Path, name: str, command: str, **kw: object) -> LaunchRequest:
    node = ex.inventory()[0]
    gpus = kw.pop("gpus", (0,))
    return LaunchRequest(
        job_id=name,
        attempt=1,
        command=command,
        allocation=Allocation(
            nodes={node.name: NodeAlloc(gpus=gpus, cpus=(0,), memory_mb=0)}  # type: ignore[arg-type]
        ),
        job_dir=tmp_path / name,
        **kw,  # type: ignore[arg-type]
    )


def _wait(ex: SlurmExecutor, handle: str, pred, timeout_s: float = 60) -> ExecStatus:  # type: ignore[no-untyped-def]
    return poll_until(ex, handle, pred, timeout_s, every=0.3)


def test_two_one_gpu_jobs_without_memory_share_the_node(ex: SlurmExecutor, tmp_path: Path) -> None:
    a = ex.launch(_req(ex, tmp_path, "share-a", "sleep 30", gpus=(0,)))
    b = ex.launch(_req(ex, tmp_path, "share-b", "sleep 30", gpus=(1,)))
    st_a = _wait(ex, a, lambda s: s.state != "starting", 30)
    st_b = _wait(ex, b, lambda s: s.state != "starting", 30)
    assert (st_a.state, st_b.state) == ("running", "running"), (st_a, st_b)
    script = (tmp_path / "share-a" / "job.sbatch").read_text()
    assert "#SBATCH --mem-per-cpu=" in script


def test_a_job_slurm_holds_pending_polls_starting_with_slurms_reason(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    both = _req(ex, tmp_path, "hog", "sleep 30", gpus=(0, 1))
    h = ex.launch(both)
    assert _wait(ex, h, lambda s: s.state != "starting", 30).state == "running"
    waiting = ex.launch(_req(ex, tmp_path, "waiter", "sleep 1", gpus=(0,)))
    time.sleep(3)
    st = ex.poll(waiting)
    assert st.state == "starting", st
    assert st.reason is not None and st.reason.startswith("waiting for resources"), st


def test_a_launch_after_slurmctld_died_is_lost_not_raised(
    ex: SlurmExecutor,
    slurm,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import signal

    req = _req(ex, tmp_path, "outage", "echo never")
    assert ex.unavailable_reason() is None  # the scheduler's check
    ctld = slurm.procs["slurmctld"]
    ctld.send_signal(signal.SIGTERM)
    ctld.wait(timeout=30)
    try:
        handle = ex.launch(req)
        st = ex.poll(handle)
        assert st.state == "lost", st
        assert st.reason is not None and st.reason.startswith("not started: "), st
        assert "slurm" in st.reason.lower()
    finally:
        from aistack.testing import slurm as harness

        harness._spawn(
            slurm,
            "slurmctld",
            [str(harness._which("slurmctld")), "-D", "-i", "-f", str(slurm.conf_path)],
            slurm.env(),
        )
        harness._wait_ctld(slurm)
