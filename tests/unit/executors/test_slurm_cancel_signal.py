"""A cancel (or a preemption) of a Slurm job sends the job's stop signal, as the local
executor does, not always SIGTERM: ``launch`` records it in the job directory, which the
handle leads to, and ``cancel`` reads it back. Without Slurm: the Slurm commands the
executor runs are recorded and answered from a script."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = pytest.mark.timeout(60)


class _FakeSlurm(SlurmExecutor):
    """sbatch answers job 42; ``scontrol show job`` says RUNNING (or ``state``); every Slurm
    command is recorded in ``calls``."""

    def __init__(self, state: str = "RUNNING") -> None:
        super().__init__()
        self.state = state
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "sbatch":
            return subprocess.CompletedProcess(args, 0, "42\n", "")
        if args[:3] == ("scontrol", "show", "job"):
            line = f"JobId={args[-1]} JobState={self.state} Reason=None NodeList=n1"
            return subprocess.CompletedProcess(args, 0, line + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def scancels(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == "scancel"]


def _req(tmp_path: Path, **kw: object) -> LaunchRequest:
    return LaunchRequest(
        job_id="j-1",
        attempt=1,
        command="python train.py",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,), memory_mb=128)}),
        job_dir=tmp_path / "job",
        **kw,  # type: ignore[arg-type]
    )


def _wait_for_calls(ex: _FakeSlurm, n: int) -> list[tuple[str, ...]]:
    deadline = time.monotonic() + 10
    while len(ex.scancels()) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return ex.scancels()


@pytest.mark.parametrize(("stop_signal", "sent"), [("SIGUSR1", "USR1"), ("SIGINT", "INT")])
def test_cancel_sends_the_jobs_stop_signal_then_the_hard_kill(
    tmp_path: Path, stop_signal: str, sent: str
) -> None:
    """Launched by one executor, cancelled by another (a server restart in between: cancel
    has only the handle): the stop signal goes to the steps, ``scancel`` of the whole job
    follows the grace period, as for SIGTERM before."""
    handle = _FakeSlurm().launch(_req(tmp_path, stop_signal=stop_signal))
    assert handle == f"slurm:42:{tmp_path / 'job'}"
    ex = _FakeSlurm()
    try:
        ex.cancel(handle, grace_s=0.05)
        assert ex.scancels()[0] == ("scancel", f"--signal={sent}", "42")
        assert (tmp_path / "job" / "cancel_requested").exists()
        assert _wait_for_calls(ex, 2) == [("scancel", f"--signal={sent}", "42"), ("scancel", "42")]
    finally:
        ex.close()
    assert (tmp_path / "job" / "stop_signal").read_text() == f"{sent}\n"


def test_preempt_sends_the_jobs_stop_signal(tmp_path: Path) -> None:
    ex = _FakeSlurm()
    try:
        handle = ex.launch(_req(tmp_path, stop_signal="SIGUSR1"))
        ex.preempt(handle, grace_s=30, reason="outranked by job j-2")
        assert ex.scancels() == [("scancel", "--signal=USR1", "42")]
    finally:
        ex.close()


def test_sigterm_by_default_and_for_jobs_launched_before_the_record(tmp_path: Path) -> None:
    ex = _FakeSlurm()
    try:
        ex.cancel(ex.launch(_req(tmp_path)), grace_s=30)
        assert (tmp_path / "job" / "stop_signal").read_text() == "TERM\n"
        old = tmp_path / "old"  # an earlier aistack's job directory: no stop_signal file
        old.mkdir()
        ex.cancel(f"slurm:43:{old}", grace_s=30)
        bad = tmp_path / "bad"  # a damaged record: SIGTERM rather than no cancel at all
        bad.mkdir()
        (bad / "stop_signal").write_text("NOPE\n")
        ex.cancel(f"slurm:44:{bad}", grace_s=30)
        assert ex.scancels() == [
            ("scancel", "--signal=TERM", "42"),
            ("scancel", "--signal=TERM", "43"),
            ("scancel", "--signal=TERM", "44"),
        ]
    finally:
        ex.close()


def test_a_pending_job_is_cancelled_at_once(tmp_path: Path) -> None:
    ex = _FakeSlurm(state="PENDING")
    handle = ex.launch(_req(tmp_path, stop_signal="SIGUSR1"))
    ex.cancel(handle, grace_s=30)
    assert ex.scancels() == [("scancel", "42")]


def test_a_new_attempt_overwrites_the_record(tmp_path: Path) -> None:
    ex = _FakeSlurm()
    ex.launch(_req(tmp_path, stop_signal="SIGUSR1"))
    ex.launch(_req(tmp_path, stop_signal="SIGUSR2"))
    assert (tmp_path / "job" / "stop_signal").read_text() == "USR2\n"
