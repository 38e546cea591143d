"""Clean-up for tests and benchmarks: stop every process started for one aistack home."""

from __future__ import annotations

import os
from pathlib import Path


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
