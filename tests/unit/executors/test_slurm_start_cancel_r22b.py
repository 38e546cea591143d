"""The Slurm executor, without Slurm (its commands answered from a script):

* a running or ended job's status carries Slurm's StartTime (``started_at``), the moment it
  left Slurm's queue, not sbatch's; a pending job's StartTime (Slurm's estimate) is not;
* a second cancel of a job already cancelling keeps the first one's kill deadline (it was
  rewritten, which postponed the SIGKILL), as the local executor does.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import pytest

from aistack.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.timeout(60)


class _FakeSlurm(SlurmExecutor):
    """``scontrol show job`` answers ``line`` for every job; every command is recorded."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:3] == ("scontrol", "show", "job"):
            return subprocess.CompletedProcess(args, 0, self.line + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def _controller_down(self) -> str | None:
        return None


def _slurm(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S")  # local time, as scontrol


def _line(state: str, start: str, reason: str = "None") -> str:
    return (
        f"JobId=42 JobName=x JobState={state} Reason={reason} ExitCode=0:0 "
        f"SubmitTime=2020-01-01T00:00:00 StartTime={start} EndTime=Unknown NodeList=n1 "
        "BatchHost=n1 Command=/x y StartTime=2000-01-01T00:00:00"
    )


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETED", "CANCELLED", "FAILED"])
def test_a_started_jobs_status_has_slurms_start_time(tmp_path: Path, state: str) -> None:
    began = float(int(time.time()) - 1800)
    ex = _FakeSlurm(_line(state, _slurm(began)))
    (tmp_path / "job").mkdir()
    st = ex.poll(f"slurm:42:{tmp_path / 'job'}")
    assert st.started_at == began, st


def test_a_pending_jobs_estimated_start_is_not_its_start(tmp_path: Path) -> None:
    soon = _slurm(time.time() + 600)
    ex = _FakeSlurm(_line("PENDING", soon, reason="Resources"))
    st = ex.poll(f"slurm:42:{tmp_path / 'job'}")
    assert (st.state, st.started_at) == ("starting", None)
    assert st.reason is not None and st.reason.startswith("waiting for resources")


@pytest.mark.parametrize("text", ["Unknown", "None", "(null)", "", "2025-13-45T99:00:00"])
def test_slurm_times_that_are_no_time_are_none(text: str) -> None:
    from aistack.executors.slurm_commands import slurm_time

    assert slurm_time(text) is None


def test_slurm_time_reads_scontrols_local_time() -> None:
    from aistack.executors.slurm_commands import slurm_time

    t = float(int(time.time()))
    assert slurm_time(_slurm(t)) == t


def test_a_second_cancel_keeps_the_first_deadline(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    handle = f"slurm:42:{job_dir}"
    ex = _FakeSlurm(_line("RUNNING", _slurm(time.time())))
    try:
        before = time.time()
        ex.cancel(handle, grace_s=30)
        first = float((job_dir / "cancel_requested").read_text())
        assert before + 30 - 0.001 <= first <= time.time() + 30
        time.sleep(0.05)
        ex.cancel(handle, grace_s=30)
        assert float((job_dir / "cancel_requested").read_text()) == first  # was rewritten later
        # the second cancel's timer ends at the first deadline too, not 30 s after it
        timer = ex._timers[-1]
        assert first - time.time() - 1 < timer.interval <= first - before - 0.05 + 0.001
    finally:
        ex.close()


def test_a_second_cancel_after_the_first_deadline_kills_at_once(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "cancel_requested").write_text(f"{time.time() - 1:.3f}\n")  # grace period over
    ex = _FakeSlurm(_line("RUNNING", _slurm(time.time())))
    try:
        ex.cancel(f"slurm:42:{job_dir}", grace_s=30)
        assert [c for c in ex.calls if c[0] == "scancel"] == [("scancel", "42")]
    finally:
        ex.close()


def test_a_cancel_of_a_job_marked_by_an_older_aistack_writes_a_deadline(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "cancel_requested").write_text("1\n")  # an earlier aistack's marker
    ex = _FakeSlurm(_line("RUNNING", _slurm(time.time())))
    try:
        before = time.time()
        ex.cancel(f"slurm:42:{job_dir}", grace_s=30)
        assert float((job_dir / "cancel_requested").read_text()) >= before + 30 - 0.001
    finally:
        ex.close()


def test_the_ray_executor_reports_when_its_coordinator_started_the_ranks(tmp_path: Path) -> None:
    """The same for Ray: a job waits for Ray to place its bundles ("starting") before its
    coordinator starts the ranks; that start (kept in the coordinator's status) is reported."""
    from test_ray_executor_outage import FakeLink, _executor, _req

    began = time.time() - 120

    class Placed(FakeLink):
        def call(self, method: str, *args: object, timeout: float) -> object:
            res = super().call(method, *args, timeout=timeout)
            if method == "poll_job" and isinstance(res, dict) and "status" in res:
                res["status"] = {"state": "running", "started_at": began}
            return res

    ex = _executor(Placed())
    st = ex.poll(ex.launch(_req(tmp_path)))
    assert (st.state, st.started_at) == ("running", began)
