"""A cancel's hard stop survives a server restart within the grace period (found by running
a Slurm job that ignores SIGTERM, cancelling it and killing the server: the job stayed
CANCELLING, running, until it ended by itself). ``cancel`` keeps the grace period's end in
``cancel_requested``; a later executor's ``poll`` scancels the job still running past it.
Without Slurm: the Slurm commands are recorded and answered from a script."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from aistack.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.timeout(60)


class _FakeSlurm(SlurmExecutor):
    """``scontrol show job`` says ``state``; every Slurm command is recorded in ``calls``."""

    def __init__(self, state: str = "RUNNING") -> None:
        super().__init__()
        self.state = state
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:3] == ("scontrol", "show", "job"):
            line = f"JobId={args[-1]} JobState={self.state} Reason=None NodeList=n1"
            return subprocess.CompletedProcess(args, 0, line + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def scancels(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == "scancel"]


def test_a_restarted_server_scancels_a_job_still_running_after_the_grace_period(
    tmp_path: Path,
) -> None:
    handle = f"slurm:42:{tmp_path}"
    first = _FakeSlurm()
    first.cancel(handle, grace_s=0.3)
    first.close()  # the server dies: its timer never fires
    assert first.scancels() == [("scancel", "--signal=TERM", "42")]
    deadline = float((tmp_path / "cancel_requested").read_text())
    assert deadline == pytest.approx(time.time() + 0.3, abs=0.25)

    second = _FakeSlurm()  # the restarted server's executor, which has only the handle
    assert second.poll(handle).state == "running"
    assert second.scancels() == []  # within the grace period: the job may still save its work
    time.sleep(0.35)
    assert second.poll(handle).state == "running"
    assert second.scancels() == [("scancel", "42")]
    second.poll(handle)
    assert second.scancels() == [("scancel", "42")]  # once, not on every pass


def test_no_scancel_for_a_job_that_ended_in_its_grace_period(tmp_path: Path) -> None:
    (tmp_path / "cancel_requested").write_text(f"{time.time() - 5:.3f}\n")
    ex = _FakeSlurm(state="CANCELLED")
    st = ex.poll(f"slurm:42:{tmp_path}")
    assert (st.state, st.reason) == ("cancelled", "cancelled through aistack")
    assert ex.scancels() == []


def test_an_earlier_aistacks_record_counts_the_default_grace_from_its_time(tmp_path: Path) -> None:
    record = tmp_path / "cancel_requested"
    record.write_text("1\n")  # what aistack wrote before it kept the deadline
    ex = _FakeSlurm()
    ex.poll(f"slurm:42:{tmp_path}")
    assert ex.scancels() == []  # written just now: 10 s of grace left
    old = time.time() - 11
    os.utime(record, (old, old))
    ex.poll(f"slurm:42:{tmp_path}")
    assert ex.scancels() == [("scancel", "42")]
