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
