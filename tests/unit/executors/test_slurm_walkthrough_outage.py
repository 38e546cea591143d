"""While slurmctld does not answer, the Slurm executor behaves as the Ray executor does in an
outage (found by stopping slurmctld under a running ``aistack up``: a job submitted then was
FAILED for good on sbatch's "Unable to contact slurm controller", every poll of a running job
waited seconds for scontrol's retries, and a cancel was refused with scontrol's error).

``unavailable_reason`` (``scontrol ping``) becomes the queued jobs' pending reason, the
inventory is empty (jobs are still accepted), a running job stays running (or ends from the
files its batch script wrote), and a cancel is recorded and sent once slurmctld answers.
Without Slurm: the Slurm commands are recorded and answered from a script."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from aistack.executors import slurm as slurm_mod
from aistack.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.timeout(60)

_NODE = (
    "NodeName=vm Arch=x86_64 CPUTot=2 Gres=gpu:2 NodeAddr=127.0.0.1 RealMemory=4000 "
    "State=IDLE Partitions=debug"
)
_UNREACHABLE = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"


class _Slurm(SlurmExecutor):
    """A one-node cluster whose controller is up or down (``up``); calls are recorded."""

    def __init__(self) -> None:
        super().__init__(slurm_conf="/etc/slurm-test/slurm.conf")
        self.up = True
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:2] == ("scontrol", "ping"):
            if self.up:
                return subprocess.CompletedProcess(args, 0, "Slurmctld(primary) at vm is UP\n", "")
            banner = "*" * 41 + "\n** RESTORE SLURMCTLD DAEMON TO SERVICE **\n" + "*" * 41 + "\n"
            out = "Slurmctld(primary) at vm is DOWN\n" + banner
            return subprocess.CompletedProcess(args, 1, out, "")
        if not self.up:
            res = subprocess.CompletedProcess(args, 1, "", _UNREACHABLE)
            if check:
                self._failed(args, res)
            return res
        if args[:3] == ("scontrol", "show", "job"):
            line = f"JobId={args[-1]} JobState=RUNNING Reason=None NodeList=vm BatchHost=vm"
            return subprocess.CompletedProcess(args, 0, line + "\n", "")
        if args[:3] == ("scontrol", "show", "node"):
            return subprocess.CompletedProcess(args, 0, _NODE + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def count(self, *prefix: str) -> int:
        return sum(1 for c in self.calls if c[: len(prefix)] == prefix)


def test_the_pending_reason_says_which_controller_since_when_and_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex = _Slurm()
    assert ex.unavailable_reason() is None
    ex.up = False
    monkeypatch.setattr(slurm_mod, "_PING_INTERVAL_S", 0.0)
    before = time.strftime("%H:%M:%S", time.gmtime())
    reason = ex.unavailable_reason()
    after = time.strftime("%H:%M:%S", time.gmtime())
    assert reason is not None
    head = "the Slurm controller does not answer (Slurmctld(primary) at vm is DOWN; since "
    assert reason.startswith(head)
    assert before <= reason[len(head) : len(head) + 8] <= after
    assert reason.endswith(
        " UTC): start slurmctld, or point SLURM_CONF at the cluster's slurm.conf "
        "(now /etc/slurm-test/slurm.conf)"
    )
    assert ex.inventory() == []  # submissions are accepted, and wait with the reason
    assert ex.count("scontrol", "show", "node") == 0
    ex.up = True
    assert ex.unavailable_reason() is None
    assert [n.name for n in ex.inventory()] == ["vm"]


def test_the_ping_is_asked_at_most_every_few_seconds() -> None:
    ex = _Slurm()
    ex.up = False
    first = ex.unavailable_reason()
    for _ in range(50):  # the scheduling loop asks on every pass (0.2 s)
        assert ex.unavailable_reason() == first
    assert ex.count("scontrol", "ping") == 1


def test_a_running_job_stays_running_and_is_polled_without_waiting(tmp_path: Path) -> None:
    ex = _Slurm()
    handle = f"slurm:42:{tmp_path}"
    assert ex.poll(handle).state == "running"
    ex.up = False
    st = ex.poll(handle)  # the first failure asks the controller at once
    assert st.state == "running"
    assert st.reason is not None and "Slurmctld(primary) at vm is DOWN" in st.reason
    shows = ex.count("scontrol", "show", "job")
    for _ in range(20):
        assert ex.poll(handle).state == "running"
    assert ex.count("scontrol", "show", "job") == shows  # no scontrol retries per pass
    (tmp_path / "exit_code").write_text("3\n")  # the batch script ended meanwhile
    st = ex.poll(handle)
    assert (st.state, st.exit_code, st.reason) == ("failed", 3, "exited with code 3")


def test_a_cancel_in_an_outage_is_sent_once_the_controller_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _Slurm()
    handle = f"slurm:42:{tmp_path}"
    ex.up = False
    ex.cancel(handle, grace_s=0.0)  # no error: recorded
    assert (tmp_path / "cancel_requested").exists()
    assert ex.count("scancel") == 0
    monkeypatch.setattr(slurm_mod, "_PING_INTERVAL_S", 0.0)
    ex.up = True
    # the deadline is written to the millisecond, rounded: it may be up to 0.5 ms ahead (this
    # fake answers faster than that; the test failed once in a full run)
    time.sleep(0.01)
    assert ex.poll(handle).state == "running"
    assert [c for c in ex.calls if c[0] == "scancel"] == [("scancel", "42")]
