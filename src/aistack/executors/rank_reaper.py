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

The environment of a process is read only when none of its threads is in uninterruptible
sleep (state ``D``, from ``/proc/PID/task/TID/stat``, which does not block): reading
``/proc/PID/environ`` takes the lock of the process's memory map and can block as long as
the thread holding it (a page fault on a hung NFS mount, say) or waiting for it sleeps, and
the reaper with it. Such a process is found by its group, or on a later pass.

The same file is the **child subreaper** that runs each rank of a Slurm job (see
:mod:`aistack.executors.slurm`; the executor copies it into the job directory)::

    python3 -I -S rank_reaper.py --subreaper /bin/bash -c 'aistack_rank 0'

* it makes itself a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and runs the
  command as its only child, with ``AISTACK_SUBREAPER=<its pid>`` in the child's
  environment: a process that leaves the command's tree (a double fork, ``setsid``) is
  reparented to it instead of init, so it is still found below it (:func:`descendants`)
  even when it cleared its environment (``env -i``) and carries no tag;
* it ignores the step's signals (a handler that does nothing, so the command gets the
  defaults back) and reaps what it adopted as it ends;
* once the command has exited (the rank's shell, which stops what it finds below it
  first), it SIGKILLs whatever is still left below it, then exits as the command did
  (the same code, or the same signal).

``python3 rank_reaper.py --probe`` exits 0 where that works (the rank runs without it
otherwise, as before).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

TOKEN_ENV = "AISTACK_RANK_TOKEN"
SUBREAPER_ENV = "AISTACK_SUBREAPER"
PR_SET_CHILD_SUBREAPER = 36
# the signals a Slurm step passes to every process of its ranks (a cancel, a preemption
# notice, --kill-on-bad-exit): each rank's shell traps them, and so does its subreaper
STEP_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM")


def _stat(path: str) -> list[bytes]:
    """The fields of a /proc stat file after the command name: state ppid pgrp ..."""
    with open(path, "rb") as fh:
        stat = fh.read()
    return stat[stat.rindex(b")") + 2 :].split()


def in_disk_sleep(pid: int | str) -> bool:
    """Whether a thread of process ``pid`` is in uninterruptible sleep (state D): reading
    its /proc/PID/environ (or cmdline) could block until that thread wakes."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            if _stat(f"/proc/{pid}/task/{tid}/stat")[0] == b"D":
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def read_environ(pid: int | str) -> bytes | None:
    """/proc/PID/environ, or None when it is not read now: a thread of the process is in
    state D (:func:`in_disk_sleep`). b"" when it cannot be read (gone, not ours)."""
    if in_disk_sleep(pid):
        return None
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _proc_table() -> list[tuple[int, int, bytes | None]]:
    """(pid, pgid, environ) of each live, non-zombie process readable in /proc; environ is
    None for a process with a thread in state D, whose environment is not read."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _stat(f"/proc/{name}/stat")
            if fields[0] in (b"Z", b"X"):
                continue
            out.append((int(name), int(fields[2]), read_environ(name)))
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(root: int) -> list[int]:
    """The descendants of process ``root`` (zombies included), from the parent pid of each
    process in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            children.setdefault(int(_stat(f"/proc/{name}/stat")[1]), []).append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    out: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            out.append(pid)
            todo.append(pid)
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
        if pid != me and (pgid in groups or (env is not None and needle in env.split(b"\0")))
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


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children instead of init's (Linux
    ``prctl(PR_SET_CHILD_SUBREAPER)``); False where that is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError, ImportError):
        return False


def _ignore(_sig: int, _frame: object) -> None:
    pass


def _exec(argv: list[str], env: dict[str, str] | None = None) -> None:
    # Python ignores SIGPIPE and SIGXFSZ: the command gets the defaults (handled signals get
    # theirs back at exec by themselves)
    for name in ("SIGPIPE", "SIGXFSZ"):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if env is None:
        os.execvp(argv[0], argv)
    os.execvpe(argv[0], argv, env)


def _reap_adopted() -> None:
    """Wait for every child that has exited (adopted orphans); never blocks."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def subreap(argv: list[str]) -> int:
    """Run ``argv`` as the only child of this process made a child subreaper (module
    docstring); returns the exit code to exit with when the child was not killed by a
    signal (else this process ends by that signal). Where no subreaper can be made, it
    execs ``argv`` in its place."""
    for name in STEP_SIGNALS:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, name), _ignore)
    if not become_subreaper():
        _exec(argv)
    env = dict(os.environ)
    env[SUBREAPER_ENV] = str(os.getpid())
    child = os.fork()
    if child == 0:
        try:
            _exec(argv, env)
        except OSError as exc:
            print(f"aistack rank subreaper: cannot run {argv[0]}: {exc}", file=sys.stderr)
        finally:
            os._exit(127)
    status = 0
    while True:
        try:
            pid, st = os.waitpid(-1, 0)  # a step signal interrupts it: retried (PEP 475)
        except ChildProcessError:
            break
        if pid == child:
            status = st
            break
    # what is still below (the rank's shell stopped what it found, with its grace period):
    # SIGKILL, and reap it
    me = os.getpid()
    for _ in range(50):
        left = descendants(me)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        _reap_adopted()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ImportError, OSError, ValueError):
            import resource  # no core file of this process for the command's crash

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(me, sig)
        return 128 + sig
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--probe"]:
        return 0 if become_subreaper() else 1
    if argv[1:2] == ["--subreaper"] and argv[2:]:
        return subreap(argv[2:])
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
