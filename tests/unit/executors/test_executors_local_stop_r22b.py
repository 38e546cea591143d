"""The local executor's stop paths when the job's command is a shell that does not ``exec``
its program (``python ckpt.py; echo after``): the shell dies of SIGTERM at once, and the
supervisor SIGKILLed the whole group then, so the program was killed in the middle of the
checkpoint its handler was saving. The grace period is the job's processes' (Slurm, dstack):
the supervisor now waits until the group is empty or the grace period is over."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final, wait_until

PY = sys.executable

# saves a "checkpoint" for 2 s on its stop signal, then exits 0
CKPT = """\
import signal, sys, time
def stop(s, f):
    print("got", signal.Signals(s).name, flush=True)
    time.sleep(2.0)
    print("checkpoint saved", flush=True)
    sys.exit(0)
signal.signal(getattr(signal, sys.argv[1]), stop)
print("ready", flush=True)
time.sleep(120)
"""


def _launch(
    tmp_path: Path,
    command: str,
    *,
    grace_s: float | str,
    stop_signal: str = "SIGTERM",
    max_runtime_s: float | None = None,
) -> tuple[LocalExecutor, str]:
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="s1",
            attempt=0,
            command=command,
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            env={"AISTACK_GRACE_S": str(grace_s)},
            stop_signal=stop_signal,
            max_runtime_s=max_runtime_s,
        )
    )
    return ex, handle


def _ready(tmp_path: Path) -> None:
    log = tmp_path / "job" / "output.log"
    assert wait_until(lambda: log.exists() and "ready" in log.read_text(), 30, 0.05)


@pytest.mark.parametrize(
    ("how", "stop_signal", "state", "code"),
    [
        ("cancel", "SIGTERM", "cancelled", -15),
        ("preempt", "SIGUSR1", "preempted", -10),
        ("timeout", "SIGTERM", "timeout", -15),
    ],
)
def test_a_program_under_a_shell_saves_its_checkpoint_in_the_grace_period(
    tmp_path: Path, how: str, stop_signal: str, state: str, code: int
) -> None:
    (tmp_path / "ckpt.py").write_text(CKPT)
    ex, handle = _launch(
        tmp_path,
        f"{PY} {tmp_path / 'ckpt.py'} {stop_signal}; echo after",
        grace_s=20,
        stop_signal=stop_signal,
        max_runtime_s=1 if how == "timeout" else None,
    )
    _ready(tmp_path)
    t0 = time.monotonic()
    if how == "cancel":
        ex.cancel(handle, grace_s=20)
    elif how == "preempt":
        ex.preempt(handle, grace_s=20, reason="higher priority")
    st = wait_final(ex, handle, 60)
    took = time.monotonic() - t0
    text = (tmp_path / "job" / "output.log").read_text()
    assert f"got {stop_signal}" in text and "checkpoint saved" in text, text
    assert "after" not in text  # the shell died of the signal: its next command never ran
    # the shell's own end (the job's main process); recorded once the program ended, not at
    # the end of the 20 s grace period
    assert (st.state, st.exit_code) == (state, code), st
    assert took < 15, took


def test_a_program_still_saving_at_the_end_of_the_grace_period_is_sigkilled(
    tmp_path: Path,
) -> None:
    """The shell died of SIGTERM at once but its program outlived the grace period: the job
    ended by the SIGKILL (-9, so the server says that SIGTERM did not stop it)."""
    (tmp_path / "ckpt.py").write_text(CKPT)
    ex, handle = _launch(tmp_path, f"{PY} {tmp_path / 'ckpt.py'} SIGTERM; echo after", grace_s=0.5)
    _ready(tmp_path)
    ex.cancel(handle, grace_s=0.5)
    st = wait_final(ex, handle, 30)
    text = (tmp_path / "job" / "output.log").read_text()
    assert "got SIGTERM" in text and "checkpoint saved" not in text, text
    assert (st.state, st.exit_code) == ("cancelled", -9), st


def test_a_job_that_ends_leaving_a_background_process_ends_at_once(tmp_path: Path) -> None:
    """Not stopped: the job ends with its main process (no grace period to wait for), and
    what it left running is killed, as Slurm does with a step's leftovers."""
    marker = f"{tmp_path}/bg-marker"
    ex, handle = _launch(tmp_path, f"(exec -a {marker} sleep 300) & echo hi", grace_s=30)
    t0 = time.monotonic()
    st = wait_final(ex, handle, 30)
    assert (st.state, st.exit_code) == ("succeeded", 0), st
    assert time.monotonic() - t0 < 10

    def left() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if (p.info["cmdline"] or [""])[0] == marker
        ]

    assert wait_until(lambda: not left(), 5, 0.1), left()


@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "-5"])
def test_a_grace_period_that_is_no_number_of_seconds_is_refused_saying_which(
    tmp_path: Path, value: str
) -> None:
    """``nan`` and ``inf`` launched a job whose SIGKILL never came (one that ignores SIGTERM
    ran on past its max_runtime for ever); ``abc`` failed with float()'s message alone."""
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        _launch(tmp_path, "sleep 30", grace_s=value, max_runtime_s=1)
    assert str(err.value).startswith(f"env AISTACK_GRACE_S={value!r}: "), err.value
    assert "0 or more" in str(err.value) and "AISTACK_GRACE_S=30" in (err.value.hint or "")
    assert not (tmp_path / "job" / "supervisor.pid").exists()  # nothing was started
