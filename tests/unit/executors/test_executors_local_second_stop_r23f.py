"""A second stop (cancel or preemption) of a local job follows the rule the server and the
Slurm executor already follow: the first stop's kill deadline stands, a later one may only
bring it forward, and a cancel is not turned back into a preemption.

The local executor rewrote ``cancel.json`` whole on every stop: a second stop that landed
before the supervisor had read the file (it reads it on its next tick after the SIGTERM)
won with its own kind and grace period (a cancel with 1 s followed by one with 120 s killed
the job 120 s later; a cancel followed by a preemption requeued a cancelled job), and one
that landed after it was ignored (a preemption with 120 s, then a user's cancel with 0.5 s:
killed 120 s later, as "preempted")."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final, wait_until

PY = sys.executable

# says so on SIGTERM and runs on: only the SIGKILL at the end of the grace period ends it
STUBBORN = """\
import signal, time
def got(s, f):
    print("got", signal.Signals(s).name, flush=True)
signal.signal(signal.SIGTERM, got)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _read(job_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((job_dir / "cancel.json").read_text())


# -- the file: merged, not overwritten -----------------------------------------------------------


def _unstarted(tmp_path: Path) -> tuple[LocalExecutor, str, Path]:
    """A job folder with no supervisor (nothing reads cancel.json): the file alone."""
    d = tmp_path / "job"
    d.mkdir()
    (d / "launch.json").write_text("{}")
    return LocalExecutor(), str(d), d


def test_a_second_cancel_keeps_the_first_deadline_and_reason(tmp_path: Path) -> None:
    ex, h, d = _unstarted(tmp_path)
    before = time.time()
    ex.cancel(h, grace_s=30.0)
    first = _read(d)
    assert first["kind"] == "cancel"
    assert before + 30 - 0.001 <= first["deadline"] <= time.time() + 30
    ex.preempt(h, grace_s=120.0, reason="higher priority")  # old: kind preempt, grace 120 s
    second = _read(d)
    assert second["kind"] == "cancel" and second["reason"] is None
    assert second["deadline"] == first["deadline"]
    # the grace period counts from the first stop (what a reader of grace_s alone computes)
    assert abs(second["t"] + second["grace_s"] - first["deadline"]) < 1e-6


def test_a_later_stop_may_bring_the_deadline_forward(tmp_path: Path) -> None:
    ex, h, d = _unstarted(tmp_path)
    ex.preempt(h, grace_s=120.0, reason="higher priority")
    t = time.time()
    ex.cancel(h, grace_s=1.0)
    req = _read(d)
    # a cancel after a preemption: the job ends cancelled (as the server records it)
    assert req["kind"] == "cancel" and req["reason"] is None
    assert t + 1.0 - 0.001 <= req["deadline"] <= time.time() + 1.0
    ex.preempt(h, grace_s=0.0, reason="another")  # shorter again, but stays a cancel
    req2 = _read(d)
    assert req2["kind"] == "cancel" and req2["deadline"] <= time.time()


def test_two_preemptions_keep_the_first_reason(tmp_path: Path) -> None:
    ex, h, d = _unstarted(tmp_path)
    ex.preempt(h, grace_s=30.0, reason="job a needs the GPUs")
    ex.preempt(h, grace_s=30.0, reason="job b needs the GPUs")
    req = _read(d)
    assert (req["kind"], req["reason"]) == ("preempt", "job a needs the GPUs")


@pytest.mark.parametrize("grace", [float("nan"), float("inf"), -1.0])
def test_a_grace_period_that_is_no_number_of_seconds_is_refused(
    tmp_path: Path, grace: float
) -> None:
    ex, h, d = _unstarted(tmp_path)
    with pytest.raises(ValidationError) as err:
        ex.cancel(h, grace_s=grace)
    assert "grace_s" in str(err.value) and "0 or more" in str(err.value)
    assert not (d / "cancel.json").exists()


# -- with a supervisor -------------------------------------------------------------------------


def _launch(tmp_path: Path) -> tuple[LocalExecutor, str, Path]:
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    d = tmp_path / "job"
    handle = ex.launch(
        LaunchRequest(
            job_id="r1",
            attempt=0,
            command=f"exec {PY} {tmp_path / 'stubborn.py'}",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=d,
            env={},
        )
    )
    log = d / "output.log"
    assert wait_until(lambda: log.exists() and "ready" in log.read_text(), 30, 0.05)
    return ex, handle, d


def _got_term(d: Path) -> bool:
    return "got SIGTERM" in (d / "output.log").read_text()


@pytest.mark.parametrize("second", ["cancel", "preempt"])
def test_a_second_stop_before_the_supervisor_reads_the_first_changes_nothing(
    tmp_path: Path, second: str
) -> None:
    """The race made certain: the supervisor is stopped (SIGSTOP) while both stops land, so
    it reads cancel.json only after the second."""
    ex, h, d = _launch(tmp_path)
    sup = int(json.loads((d / "supervisor.pid").read_text())["pid"])
    os.kill(sup, signal.SIGSTOP)
    try:
        ex.cancel(h, grace_s=1.0)
        if second == "cancel":
            ex.cancel(h, grace_s=120.0)
        else:
            ex.preempt(h, grace_s=120.0, reason="higher priority")
    finally:
        os.kill(sup, signal.SIGCONT)
    t0 = time.monotonic()
    st = wait_final(ex, h, 45)  # old code: the second's 120 s
    assert (st.state, st.exit_code, st.reason) == ("cancelled", -9, "cancelled by user"), st
    assert time.monotonic() - t0 < 40


def test_a_shorter_cancel_after_the_first_was_read_brings_the_kill_forward(
    tmp_path: Path,
) -> None:
    ex, h, d = _launch(tmp_path)
    ex.preempt(h, grace_s=120.0, reason="higher priority")
    assert wait_until(lambda: _got_term(d), 30, 0.05)  # the supervisor acted on it
    t0 = time.monotonic()
    ex.cancel(h, grace_s=0.5)  # old code: ignored, killed 120 s later as "preempted"
    st = wait_final(ex, h, 45)
    assert (st.state, st.exit_code, st.reason) == ("cancelled", -9, "cancelled by user"), st
    assert time.monotonic() - t0 < 40


def test_a_longer_cancel_after_the_first_was_read_does_not_postpone_the_kill(
    tmp_path: Path,
) -> None:
    """(A guard: passes on the old code too, which ignored any second stop.)"""
    ex, h, d = _launch(tmp_path)
    ex.cancel(h, grace_s=1.0)
    assert wait_until(lambda: _got_term(d), 30, 0.05)
    ex.cancel(h, grace_s=120.0)
    t0 = time.monotonic()
    st = wait_final(ex, h, 45)
    assert (st.state, st.exit_code) == ("cancelled", -9), st
    assert time.monotonic() - t0 < 40
