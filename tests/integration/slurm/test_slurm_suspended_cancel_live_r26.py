"""A cancel of a Slurm job an admin suspended (`scontrol suspend`), on real Slurm daemons.

Its processes are stopped: they cannot run a stop-signal handler, and `scancel --signal=USR1`
to a suspended job hangs (30 s and more here). The executor sent it the stop signal all the
same: the cancel waited command_timeout_s, took the hang for slurmctld not answering, and
every poll sent it again (another command_timeout_s each). Now a suspended job is scancelled at
once, as one waiting in Slurm's queue is, and ends cancelled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import poll_until

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

SLURM_GPUS = 1


def test_a_cancel_of_a_suspended_job_ends_it_at_once(
    ex: SlurmExecutor, slurm: Any, tmp_path: Path
) -> None:
    node = ex.inventory()[0]
    req = LaunchRequest(
        job_id="frozen",
        attempt=1,
        command="trap 'echo checkpointed; exit 0' USR1; echo up; while true; do sleep 0.2; done",
        allocation=Allocation(nodes={node.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=0)}),
        job_dir=tmp_path / "frozen",
        stop_signal="SIGUSR1",
    )
    handle = ex.launch(req)
    st = poll_until(ex, handle, lambda s: s.state == "running", 60)
    assert st.state == "running", st
    job_id = handle.split(":")[1]
    slurm.run("scontrol", "suspend", job_id)
    assert poll_until(ex, handle, lambda s: "SUSPENDED" in str(ex.job_info(job_id)), 20)
    t0 = time.monotonic()
    ex.cancel(handle, grace_s=60)
    took = time.monotonic() - t0
    # old code: the stop signal's scancel hung until command_timeout_s (20 s)
    assert took < 10, f"the cancel took {took:.1f} s"
    st = poll_until(ex, handle, lambda s: s.final, 30)
    assert st.final and st.state == "cancelled", st
    assert time.monotonic() - t0 < 30
    assert not (req.job_dir / "stop_signal_pending").exists()
