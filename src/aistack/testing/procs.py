"""Clean-up for tests and benchmarks: stop every process started for one aistack home."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def kill_processes_of_home(home: str | Path) -> int:
    """SIGKILL every process (server, supervisors, jobs, service controllers) whose environment
    has ``AISTACK_HOME=home``, except this one. Returns how many were killed. A process with
    a thread in uninterruptible sleep (state D) is passed over: reading its environment can
    block until that thread wakes."""
    import psutil

    from aistack.executors.rank_reaper import in_disk_sleep

    me, target, n = os.getpid(), str(home), 0
    for p in psutil.process_iter():
        if p.pid == me or in_disk_sleep(p.pid):
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


def poll_until(executor: Any, handle: str, pred: Any, timeout_s: float, every: float = 0.3) -> Any:
    """Poll ``executor`` for the job ``handle`` until ``pred(status)`` holds or ``timeout_s``
    seconds have passed; the last status (the caller asserts on it)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        st = executor.poll(handle)
        if pred(st) or time.monotonic() > deadline:
            return st
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


def escaping_command(marker: str, then: str = "echo started") -> str:
    """A shell command that leaves two processes behind that neither the job's tag nor its
    process group or session finds: both clear their environment (``env -i``) and leave
    the session (``setsid``); one daemonizes (a double fork: reparented at once), the other
    is reparented once the command's main process exits. Each runs ``sleep 300`` under the
    name ``MARKER-daemon`` / ``MARKER-setsid`` (see :func:`marked_pids`); once both are up
    the command runs ``then``."""
    return (
        f"env -i setsid bash -c '(exec -a {marker}-daemon sleep 300 &); "
        f"exec -a {marker}-setsid sleep 300' </dev/null >/dev/null 2>&1 & "
        f"for i in $(seq 200); do [ \"$(pgrep -fc '^{marker}-')\" -ge 2 ] && break; "
        f"sleep 0.05; done; {then}"
    )


def marked_pids(marker: str) -> list[int]:
    """The live processes whose name (argv[0]) starts with ``marker`` (zombies excluded)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                argv0 = fh.read().split(b"\0", 1)[0]
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        if argv0.startswith(marker.encode()) and stat[stat.rindex(b")") + 2 :][:1] != b"Z":
            found.append(int(name))
    return found


def kill_marked(marker: str) -> list[int]:
    """SIGKILL (by PID) the processes :func:`marked_pids` finds; the PIDs it found."""
    import signal

    pids = marked_pids(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids
