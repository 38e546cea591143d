"""A Slurm job's end is Slurm's ``EndTime`` (scontrol's, sacct's ``End``), or when the batch
script wrote ``exit_code`` where Slurm says none: ``poll`` reported no ``finished_at``, so a
server that was down while the job ended stamped it with its own first look after the restart
(its runtime, GPU-hours and cost counted the downtime)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from pathlib import Path

import pytest

from aistack.executors.slurm import SlurmExecutor


def _epoch(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()  # local time, as Slurm


START, END = "2025-01-31T10:00:00", "2025-01-31T10:05:07"


class _Slurm(SlurmExecutor):
    """``scontrol show job`` answers ``job_line`` (None: the job is forgotten), ``sacct``
    answers ``sacct_line`` (None: no accounting record)."""

    def __init__(self) -> None:
        super().__init__(slurm_conf="/etc/slurm-test/slurm.conf")
        self.job_line: str | None = None
        self.sacct_line: str | None = None
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:2] == ("scontrol", "ping"):
            return subprocess.CompletedProcess(args, 0, "Slurmctld(primary) at vm is UP\n", "")
        if args[:3] == ("scontrol", "show", "job"):
            if self.job_line is None:
                return subprocess.CompletedProcess(
                    args, 1, "", "slurm_load_jobs error: Invalid job id specified\n"
                )
            return subprocess.CompletedProcess(args, 0, self.job_line + "\n", "")
        if args[0] == "sacct":
            return subprocess.CompletedProcess(args, 0, (self.sacct_line or "") + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def ex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Slurm:
    # a `sacct` on PATH (poll asks accounting only where the command is installed)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sacct").chmod(0o755 | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    return _Slurm()


def _job_dir(tmp_path: Path, code: str | None = "0\n") -> Path:
    d = tmp_path / "job"
    d.mkdir(exist_ok=True)
    if code is not None:
        (d / "exit_code").write_text(code)
    return d


@pytest.mark.parametrize(
    ("slurm_state", "exit_code", "state"),
    [
        ("COMPLETED", "0:0", "succeeded"),
        ("FAILED", "3:0", "failed"),
        ("TIMEOUT", "0:15", "timeout"),
        ("CANCELLED", "0:15", "cancelled"),
        ("NODE_FAIL", "0:0", "lost"),
    ],
)
def test_an_ended_job_says_when_it_ended_by_scontrols_end_time(
    ex: _Slurm, tmp_path: Path, slurm_state: str, exit_code: str, state: str
) -> None:
    d = _job_dir(tmp_path, None)
    ex.job_line = (
        f"JobId=41 JobName=x JobState={slurm_state} Reason=None ExitCode={exit_code} "
        f"StartTime={START} EndTime={END} NodeList=vm BatchHost=vm Command=/x y"
    )
    st = ex.poll(f"slurm:41:{d}")
    assert st.state == state and st.final, st
    assert st.started_at == _epoch(START)
    assert st.finished_at == _epoch(END), st  # old code: None (the server's now)


def test_a_running_job_has_no_end_yet(ex: _Slurm, tmp_path: Path) -> None:
    """A running job's EndTime is only its time limit's end."""
    d = _job_dir(tmp_path, None)
    ex.job_line = (
        f"JobId=41 JobState=RUNNING Reason=None ExitCode=0:0 StartTime={START} "
        f"EndTime=2025-01-31T11:00:00 NodeList=vm BatchHost=vm"
    )
    st = ex.poll(f"slurm:41:{d}")
    assert (st.state, st.finished_at) == ("running", None)


def test_a_job_only_accounting_knows_ends_at_saccts_end(ex: _Slurm, tmp_path: Path) -> None:
    """Forgotten by slurmctld (MinJobAge) while the server was down: sacct's End."""
    d = _job_dir(tmp_path, "0\n")
    ex.sacct_line = f"COMPLETED|0:0|None|{START}|{END}"
    st = ex.poll(f"slurm:41:{d}")
    assert ("sacct", "-n", "-P", "-X", "-j", "41", "-o", "State,ExitCode,Reason,Start,End") in (
        ex.calls
    )
    assert (st.state, st.exit_code) == ("succeeded", 0), st
    assert st.finished_at == _epoch(END), st


def test_a_job_slurm_forgot_ends_when_its_script_wrote_the_exit_code(
    ex: _Slurm, tmp_path: Path
) -> None:
    """No scontrol record, no accounting record: the exit_code file's time, which the batch
    script wrote as the job ended (not the poll's time, an hour later here)."""
    d = _job_dir(tmp_path, "7\n")
    ended = 1_700_000_000.0
    os.utime(d / "exit_code", (ended, ended))
    st = ex.poll(f"slurm:41:{d}")
    assert (st.state, st.exit_code) == ("failed", 7), st
    assert st.finished_at == ended, st
    (d / "cancel_requested").write_text("1\n")
    st = ex.poll(f"slurm:41:{d}")
    assert (st.state, st.finished_at) == ("cancelled", ended), st


def test_a_job_that_ended_while_slurmctld_was_down_ends_at_its_exit_code_file(
    ex: _Slurm, tmp_path: Path
) -> None:
    d = _job_dir(tmp_path, "0\n")
    ended = 1_700_000_000.0
    os.utime(d / "exit_code", (ended, ended))
    ex._ping, ex._down_since = (1e18, "the Slurm controller does not answer"), 1.0
    st = ex.poll(f"slurm:41:{d}")
    assert (st.state, st.finished_at) == ("succeeded", ended), st


def test_a_pending_cancelled_job_without_an_end_time_uses_the_exit_code_file(
    ex: _Slurm, tmp_path: Path
) -> None:
    d = _job_dir(tmp_path, "0\n")
    ended = 1_700_000_000.0
    os.utime(d / "exit_code", (ended, ended))
    ex.job_line = (
        "JobId=41 JobState=COMPLETED Reason=None ExitCode=0:0 StartTime=Unknown EndTime=Unknown"
    )
    st = ex.poll(f"slurm:41:{d}")
    assert (st.state, st.finished_at) == ("succeeded", ended), st
