"""Clean-up for tests and benchmarks: stop every process started for one aistack home."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def kill_processes_of_home(home: str | Path) -> int:
    """SIGKILL every process (server, supervisors, jobs, service controllers) whose environment
    has ``AISTACK_HOME=home``, except this one. Returns how many were killed."""
    import psutil

    me, target, n = os.getpid(), str(home), 0
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            if p.environ().get("AISTACK_HOME") == target:
                p.kill()
                n += 1
        except (psutil.Error, OSError):
            continue
    return n


def wait_until(pred: Any, timeout_s: float, every: float = 0.3) -> Any:
    """Call ``pred()`` every ``every`` seconds until it returns something truthy or
    ``timeout_s`` seconds have passed; its last value (falsy on a timeout)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


def wait_final(executor: Any, handle: str, timeout: float = 60.0) -> Any:
    """Poll ``executor`` until the job ``handle`` is final; its last status. AssertionError
    (with the status) when ``timeout`` seconds pass first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = executor.poll(handle)
        if st.final:
            return st
        time.sleep(0.1)
    raise AssertionError(f"job did not end within {timeout:g} s: {executor.poll(handle)}")


def trapping_command(sig: str, on_signal: str, *, exit_code: int = 0, sleep_s: int = 300) -> str:
    """A shell command that prints ``started`` and waits on a child: ``sig`` (e.g. ``USR1``)
    runs ``on_signal`` and exits ``exit_code``. The child ignores ``sig`` and the trap kills it:
    a signal sent to every process of a job (``scancel --signal``, a watchdog's ``kill`` of the
    rank's processes) can reach the child first, and a child that died of it would end the
    ``wait`` and the shell before the shell ran its trap."""
    return (
        f"trap '{on_signal}; kill -s KILL $! 2>/dev/null; exit {exit_code}' {sig}; echo started; "
        f"(trap '' {sig}; exec sleep {sleep_s}) & wait"
    )
