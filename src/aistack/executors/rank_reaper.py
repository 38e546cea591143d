"""Ends a Ray node agent's rank processes when the agent dies, however it dies.

A :class:`aistack.executors.ray_actors.NodeAgent` starts its ranks in their own sessions (so a
stop reaches a rank's whole process group), which also means nothing ends them when the agent
goes away: an agent killed by ``ray.kill``, by ``ray stop`` on its node or with its raylet
would leave its training processes running, holding their GPUs. Ray's own clean-up does not
cover this: ``RAY_kill_child_processes_on_worker_exit`` kills only the direct children of a
worker that exits normally, and the raylet subreaper is off by default.

So each agent starts one reaper (this file, run by path: standard library only) before its
first rank::

    python rank_reaper.py TOKEN GRACE_S

* the reaper forks once more and its first process exits, so it is no child of the agent
  (a worker that exits kills its direct children, which would take the reaper along) and it
  runs in a session of its own;
* its stdin is a pipe whose write end only the agent holds; the agent writes ``+PGID`` when
  it started a rank (the rank leads its process group) and ``-PGID`` once that group is empty;
* end of file on stdin means the agent is gone: every process that carries
  ``AISTACK_RANK_TOKEN=TOKEN`` in its environment (the agent puts it in each rank's; read
  from ``/proc/PID/environ``, so a descendant that started a session of its own is found
  too) and every process in a listed group gets SIGTERM, and SIGKILL after ``GRACE_S``
  seconds; then the reaper exits.

A job that ends normally ends the same way (its agents are killed at clean-up), which also
stops whatever a rank left running in the background.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

TOKEN_ENV = "AISTACK_RANK_TOKEN"


def _proc_table() -> list[tuple[int, int, bytes]]:
    """(pid, pgid, environ) of each live, non-zombie process readable in /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2 :].split()  # state ppid pgrp ...
            if fields[0] in (b"Z", b"X"):
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    env = fh.read()
            except OSError:
                env = b""
            out.append((int(name), int(fields[2]), env))
        except (OSError, ValueError, IndexError):
            continue
    return out


def targets(token: str, groups: set[int]) -> dict[int, int]:
    """pid -> process group of each process to stop: those carrying the token and the
    members of ``groups`` (without /proc: the listed groups that still exist)."""
    if not os.path.isdir("/proc"):
        found = {}
        for g in groups:
            with contextlib.suppress(OSError):
                os.killpg(g, 0)
                found[g] = g
        return found
    me = os.getpid()
    needle = f"{TOKEN_ENV}={token}".encode()
    return {
        pid: pgid
        for pid, pgid, env in _proc_table()
        if pid != me and (pgid in groups or needle in env.split(b"\0"))
    }


def _signal_all(found: dict[int, int], groups: set[int], sig: int) -> None:
    # the whole listed group too: it catches a process forked since the scan
    for g in groups & set(found.values()):
        with contextlib.suppress(OSError):
            os.killpg(g, sig)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def reap(token: str, groups: set[int], grace_s: float) -> int:
    """SIGTERM every target, SIGKILL what is left after ``grace_s``; returns how many
    processes it found at first."""
    found = targets(token, groups)
    n = len(found)
    if found:
        _signal_all(found, groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = targets(token, groups)
    for _ in range(5):  # again: a process may fork while it is being stopped
        if not found:
            break
        _signal_all(found, groups, signal.SIGKILL)
        time.sleep(0.1)
        found = targets(token, groups)
    return n


def main(argv: list[str]) -> int:
    token, grace_s = argv[1], float(argv[2])
    if os.fork() > 0:  # the agent waits for this first process only
        os._exit(0)
    with contextlib.suppress(OSError):
        os.setsid()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:  # returns at end of file: the agent is gone
        with contextlib.suppress(ValueError):
            word = line.strip().decode()
            if word.startswith("+"):
                groups.add(int(word[1:]))
            elif word.startswith("-"):
                groups.discard(int(word[1:]))
    n = reap(token, groups, grace_s)
    if n:
        print(
            f"aistack rank reaper: the node agent is gone; stopped {n} rank process(es)",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
