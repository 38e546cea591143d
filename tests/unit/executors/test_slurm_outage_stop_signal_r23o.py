"""A cancel recorded while slurmctld did not answer gets its stop signal once slurmctld answers
again, if its SIGKILL deadline is still ahead: the job was only scancelled at the deadline, so
it never got the signal it checkpoints on (and a later cancel did not make up for it either:
the stop signal goes out once). The deadline stays the cancel's; one that passed meanwhile
still scancels the job. A stop that could not reach slurmctld (scancel said "Unable to contact
slurm controller") is no longer taken for sent: the stop signal was marked sent and never went
out, and the SIGKILL timer that fired meanwhile marked the job scancelled, so it ran on.

Without Slurm: fake ``scontrol`` and ``scancel`` commands first on PATH, whose answers follow
files (``up``: slurmctld answers; ``state``: the job's JobState; ``scancel_down``: scancel
cannot reach it) and which log their arguments."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors import slurm as slurm_mod
from aistack.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.timeout(60)

_UNREACHABLE = "Unable to contact slurm controller (connect failure)"


class _Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.d = tmp_path / "slurm"
        self.bin = self.d / "bin"
        self.bin.mkdir(parents=True)
        self.log = self.d / "calls.log"
        d = self.d
        (self.bin / "scontrol").write_text(
            "#!/bin/sh\n"
            f'echo "scontrol $*" >> {self.log}\n'
            'if [ "$1" = ping ]; then\n'
            f'  if [ -e {d}/up ]; then echo "Slurmctld(primary) at vm is UP"; exit 0; fi\n'
            '  echo "Slurmctld(primary) at vm is DOWN"; exit 1\n'
            "fi\n"
            f'if [ ! -e {d}/up ]; then echo "slurm_load_jobs error: {_UNREACHABLE}" >&2; exit 1; fi\n'
            f'echo "JobId=42 JobName=x JobState=$(cat {d}/state) Reason=None ExitCode=0:0 '
            'NodeList=vm BatchHost=vm"\n'
        )
        (self.bin / "scancel").write_text(
            "#!/bin/sh\n"
            f"if [ ! -e {d}/up ] || [ -e {d}/scancel_down ]; then\n"
            f'  echo "scancel: error: {_UNREACHABLE}" >&2; exit 1\n'
            "fi\n"
            f'echo "scancel $*" >> {self.log}\n'
        )
        for f in self.bin.iterdir():
            f.chmod(f.stat().st_mode | stat.S_IEXEC)
        self.set_state("RUNNING")
        self.set_up(True)

    def set_up(self, up: bool) -> None:
        if up:
            (self.d / "up").touch()
        else:
            (self.d / "up").unlink(missing_ok=True)

    def set_state(self, state: str) -> None:
        (self.d / "state").write_text(state + "\n")

    def scancels(self) -> list[str]:
        if not self.log.exists():
            return []
        return [x for x in self.log.read_text().splitlines() if x.startswith("scancel")]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Cluster:
    c = _Cluster(tmp_path)
    monkeypatch.setenv("PATH", f"{c.bin}:/usr/bin:/bin")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setattr(slurm_mod, "_PING_INTERVAL_S", 0.0)  # ask `scontrol ping` each time
    return c


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    (d / "stop_signal").write_text("USR1\n")
    return d


@pytest.fixture
def ex(cluster: _Cluster) -> Iterator[SlurmExecutor]:
    executor = SlurmExecutor(command_timeout_s=20)
    yield executor
    executor.close()


@pytest.fixture
def handle(job_dir: Path) -> str:
    return f"slurm:42:{job_dir}"


def _deadline(job_dir: Path) -> float:
    return float((job_dir / "cancel_requested").read_text())


def test_a_cancel_made_while_slurmctld_was_down_gets_its_stop_signal_when_it_answers(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    cluster.set_up(False)
    ex.cancel(handle, grace_s=60)
    deadline = _deadline(job_dir)
    assert cluster.scancels() == []
    assert ex.poll(handle).state == "running"  # down: nothing sent yet
    assert cluster.scancels() == []
    cluster.set_up(True)
    assert ex.poll(handle).state == "running"
    # the old code sent nothing until it scancelled the job at the deadline
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    assert (job_dir / "stop_signal_sent").exists()
    assert not (job_dir / "stop_signal_pending").exists()
    assert _deadline(job_dir) == deadline  # the cancel's deadline stands
    assert 40 < ex._timers[-1].interval <= 60  # the SIGKILL at that deadline
    ex.poll(handle)
    ex.cancel(handle, grace_s=120)  # neither sends it again
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    assert _deadline(job_dir) == deadline


def test_a_second_cancel_while_down_brings_the_deadline_forward_and_one_signal_goes_out(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    cluster.set_up(False)
    ex.cancel(handle, grace_s=60)
    ex.cancel(handle, grace_s=8)
    cluster.set_up(True)
    ex.poll(handle)
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    assert _deadline(job_dir) <= time.time() + 8
    assert ex._timers[-1].interval <= 8


def test_a_deadline_that_passed_while_slurmctld_was_down_scancels_the_job(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """A guard (as before): no stop signal once the grace period is over."""
    cluster.set_up(False)
    ex.cancel(handle, grace_s=0)
    time.sleep(0.01)  # the deadline is written to the millisecond
    cluster.set_up(True)
    ex.poll(handle)
    ex.poll(handle)
    assert cluster.scancels() == ["scancel 42"]
    assert not (job_dir / "stop_signal_sent").exists()


def test_a_job_still_queued_in_slurm_is_scancelled_at_once_when_slurmctld_answers(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """Nothing runs to checkpoint (as a cancel does when slurmctld answers); it waited for the
    deadline, and could start meanwhile."""
    cluster.set_state("PENDING")
    cluster.set_up(False)
    ex.cancel(handle, grace_s=60)
    cluster.set_up(True)
    assert ex.poll(handle).state == "starting"
    assert cluster.scancels() == ["scancel 42"]


def test_a_stop_signal_scancel_could_not_deliver_is_sent_when_slurmctld_answers(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """slurmctld stopped answering between `scontrol show job` and `scancel --signal`: the
    signal was marked sent (and so never sent by a later cancel either)."""
    (cluster.d / "scancel_down").touch()
    ex.cancel(handle, grace_s=60)
    assert cluster.scancels() == []
    assert not (job_dir / "stop_signal_sent").exists()
    (cluster.d / "scancel_down").unlink()
    ex.poll(handle)
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    assert (job_dir / "stop_signal_sent").exists()


def test_a_sigkill_timer_that_fired_while_slurmctld_was_down_is_made_up_by_poll(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """The timer marked the job scancelled though scontrol could not be asked, and poll's
    backstop then skipped it: a job whose grace period ended during an outage ran on."""
    ex.cancel(handle, grace_s=0.2)
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    ex._timers[-1].cancel()  # fired by hand below, while slurmctld is down
    time.sleep(0.3)
    cluster.set_up(False)
    ex._hard_cancel("42")
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    cluster.set_up(True)
    ex.poll(handle)
    ex.poll(handle)  # once
    assert cluster.scancels() == ["scancel --signal=USR1 42", "scancel 42"]


def test_a_later_cancel_once_slurmctld_answers_sends_the_stop_signal_once(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """A guard (it sent it before too): a cancel after the outage, before any poll, sends the
    signal the first one could not, keeps the first deadline, and a poll sends nothing more."""
    cluster.set_up(False)
    ex.cancel(handle, grace_s=60)
    deadline = _deadline(job_dir)
    cluster.set_up(True)
    ex.cancel(handle, grace_s=120)
    ex.poll(handle)
    assert cluster.scancels() == ["scancel --signal=USR1 42"]
    assert _deadline(job_dir) == deadline


def test_a_suspended_job_is_scancelled_at_once_not_sent_a_signal_it_cannot_take(
    cluster: _Cluster, job_dir: Path, ex: SlurmExecutor, handle: str
) -> None:
    """``scontrol suspend``ed: its processes are stopped, and `scancel --signal` to it hangs
    (a live Slurm: past scancel's own retries; tests/integration/slurm). It was sent the stop
    signal, which hung past command_timeout_s, was marked pending and tried again at every
    poll. Now it is scancelled at once, as a job waiting in Slurm's queue is."""
    cluster.set_state("SUSPENDED")
    ex.cancel(handle, grace_s=60)
    assert cluster.scancels() == ["scancel 42"]
    assert not (job_dir / "stop_signal_sent").exists()
    assert not (job_dir / "stop_signal_pending").exists()
    ex.poll(handle)
    assert cluster.scancels() == ["scancel 42"]  # nothing more
