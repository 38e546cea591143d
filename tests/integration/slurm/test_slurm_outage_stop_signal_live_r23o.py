"""Against real Slurm daemons: a cancel made while slurmctld is stopped is sent as the job's
stop signal once slurmctld answers again (before its deadline), so the job's handler runs and
it can checkpoint; it was only scancelled at the deadline. The job ends cancelled."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import poll_until

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


SLURM_GPUS = 1


def _wait(ex: SlurmExecutor, handle: str, pred, timeout_s: float = 60) -> ExecStatus:  # type: ignore[no-untyped-def]
    return poll_until(ex, handle, pred, timeout_s, every=0.3)


def test_a_cancel_while_slurmctld_is_down_reaches_the_jobs_handler_when_it_is_back(
    slurm,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from aistack.testing import slurm as harness

    ex = SlurmExecutor(slurm_conf=slurm.conf_path, command_timeout_s=20)
    got = tmp_path / "got_usr1"
    try:
        node = ex.inventory()[0]
        # the handler records the signal, then 'checkpoints' for 1 s and exits 0
        command = (
            f"trap 'echo USR1 > {got}; sleep 1; exit 0' USR1; "
            "for i in $(seq 600); do sleep 0.2; done"
        )
        req = LaunchRequest(
            job_id="outage-cancel",
            attempt=1,
            command=command,
            allocation=Allocation(nodes={node.name: NodeAlloc(cpus=(0,), memory_mb=0)}),
            job_dir=tmp_path / "job",
            stop_signal="SIGUSR1",
        )
        h = ex.launch(req)
        assert _wait(ex, h, lambda s: s.state != "starting", 60).state == "running"
        time.sleep(1.0)  # the trap is set
        ctld = slurm.procs["slurmctld"]
        ctld.send_signal(signal.SIGTERM)
        ctld.wait(timeout=30)
        try:
            ex.cancel(h, grace_s=120)  # recorded: slurmctld does not answer
            assert ex.poll(h).state == "running"
            assert not got.exists()
        finally:
            harness._spawn(
                slurm,
                "slurmctld",
                [str(harness._which("slurmctld")), "-D", "-i", "-f", str(slurm.conf_path)],
                slurm.env(),
            )
            harness._wait_ctld(slurm)
        t0 = time.monotonic()
        st = _wait(ex, h, lambda s: s.final, 45)
        # the old code sent nothing until the deadline, 120 s on: the handler never ran
        assert got.exists(), f"no SIGUSR1 45 s after slurmctld answered ({st})"
        assert got.read_text().strip() == "USR1"
        assert st.state == "cancelled", st
        assert time.monotonic() - t0 < 45
        assert (req.job_dir / "stop_signal_sent").exists()
    finally:
        slurm.run("scancel", "--full", "--signal=KILL", "--user=root", check=False)
        ex.close()
