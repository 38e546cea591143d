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
  too), every process in a listed group and every process below one of those (by the
  parent pids in ``/proc/*/stat``: one that cleared its environment and left the group,
  ``env -i setsid``, kept below the rank's subreaper, below) gets SIGTERM, and SIGKILL
  after ``GRACE_S`` seconds (to the processes found just before, so what a subreaper
  adopted is found while the subreaper, which ignores SIGTERM, still holds it); then the
  reaper exits.

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

Each rank of a Ray node agent runs under a child subreaper too, in a mode of its own::

    python -I -S rank_reaper.py --subreaper --strays --lc-ctype[=VALUE] /bin/bash -c CMD

* the agent starts it in a session of its own (it leads the rank's process group, which the
  agent signals) with the token in its environment; it forks at once, and its child is the
  subreaper that runs the command: Ray SIGKILLs the direct children of a worker that ends
  (``ray.kill`` of the agent), and the subreaper outlives that, with what it adopted, for
  the reaper; the first process only waits for it and ends as it did;
* both outlive every signal whose default would end them but SIGKILL and the ones a fault
  raises (the stop signal, what ``signal`` forwards), keeping ignored what was ignored;
* once the command has exited, the subreaper SIGKILLs only the *strays* (:func:`strays`):
  the processes below the rank's group that are not in it and do not carry the token,
  which nothing else would find once reparented to init. What is still in the group (a
  program under a shell that died of the stop signal, still saving) is the agent's to
  stop, with its grace period, and what carries the token the reaper's, as before; the
  agent SIGKILLs the strays too before it SIGKILLs a group (the end of a stop's grace
  period);
* ``--lc-ctype`` (unset) or ``--lc-ctype=VALUE``: the command's ``LC_CTYPE``, which Python
  itself sets where the locale is C (PEP 538), before this file runs.
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
# a Ray node agent sends its ranks' groups their stop signal and forwards any other one
# (executor.signal): the subreaper of a Ray rank outlives every signal whose default would
# end it, but SIGKILL and those a fault of its own raises
AGENT_SIGNALS = (
    *STEP_SIGNALS,
    *("SIGSTKFLT", "SIGXCPU", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR"),
)


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


def _proc_table() -> list[tuple[int, int, int, bytes | None]]:
    """(pid, ppid, pgid, environ) of each live, non-zombie process readable in /proc;
    environ is None for a process with a thread in state D, whose environment is not read."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _stat(f"/proc/{name}/stat")
            if fields[0] in (b"Z", b"X"):
                continue
            out.append((int(name), int(fields[1]), int(fields[2]), read_environ(name)))
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
    """pid -> process group of each process to stop: those carrying the token, the members
    of ``groups``, and every process below one of those (a process that cleared its
    environment and left the group, kept below a rank's subreaper or still below its
    parent); without /proc: the listed groups that still exist."""
    if not os.path.isdir("/proc"):
        found = {}
        for g in groups:
            with contextlib.suppress(OSError):
                os.killpg(g, 0)
                found[g] = g
        return found
    me = os.getpid()
    needle = f"{TOKEN_ENV}={token}".encode()
    table = _proc_table()
    found = {
        pid: pgid
        for pid, _, pgid, env in table
        if pid != me and (pgid in groups or (env is not None and needle in env.split(b"\0")))
    }
    children: dict[int, list[tuple[int, int]]] = {}
    for pid, ppid, pgid, _ in table:
        children.setdefault(ppid, []).append((pid, pgid))
    todo = list(found)
    while todo:
        for pid, pgid in children.get(todo.pop(), []):
            if pid not in found and pid != me:
                found[pid] = pgid
                todo.append(pid)
    return found


def strays(group: int, token: str) -> list[int]:
    """The processes below the members of process group ``group`` (a rank's) that are not in
    it and do not carry ``token`` in their environment (zombies aside): those that neither a
    signal to the group nor the reaper's token scan finds once the process they are below
    is gone (``env -i setsid ...``, a double fork). One with a thread in state D is not
    counted: its environment is not read now (:func:`read_environ`)."""
    procs: dict[int, tuple[bytes, int, int]] = {}  # pid -> (state, ppid, pgid)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _stat(f"/proc/{name}/stat")
            procs[int(name)] = (fields[0], int(fields[1]), int(fields[2]))
        except (OSError, ValueError, IndexError):
            continue
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    needle = f"{TOKEN_ENV}={token}".encode()
    out: list[int] = []
    todo = [pid for pid, (_, _, pgid) in procs.items() if pgid == group]
    seen = set(todo)
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid in seen:
                continue
            seen.add(pid)
            todo.append(pid)
            state, _, pgid = procs[pid]
            if pgid == group or state in (b"Z", b"X"):
                continue
            env = read_environ(pid)
            if env is not None and needle not in env.split(b"\0"):
                out.append(pid)
    return out


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


def reap_exited_children() -> None:
    """Wait for every child that has exited (adopted orphans); never blocks. (The job
    supervisor's too, once it has waited for the job's main process.)"""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _handled_signals(agent: bool) -> list[int]:
    if not agent:
        return [getattr(signal, n) for n in STEP_SIGNALS if hasattr(signal, n)]
    sigs = [getattr(signal, n) for n in AGENT_SIGNALS if hasattr(signal, n)]
    if hasattr(signal, "SIGRTMIN"):
        sigs += range(signal.SIGRTMIN, signal.SIGRTMAX + 1)
    # one ignored here stays ignored: the command inherits that, as it would without this
    return [s for s in sigs if signal.getsignal(s) is not signal.SIG_IGN]


def _wait_for(child: int) -> int:
    """Wait for ``child`` (reaping any other child that exits meanwhile); its status."""
    while True:
        try:
            pid, st = os.waitpid(-1, 0)  # a step signal interrupts it: retried (PEP 475)
        except ChildProcessError:
            return 0
        if pid == child:
            return st


def _end_as(status: int) -> int:
    """End as the wait status ``status`` says: by the same signal (this function does not
    return then), else return the exit code to exit with."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ImportError, OSError, ValueError):
            import resource  # no core file of this process for the command's crash

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def subreap(argv: list[str], token: str | None = None) -> int:
    """Run ``argv`` as the only child of this process made a child subreaper (module
    docstring); returns the exit code to exit with when the child was not killed by a
    signal (else this process ends by that signal). Where no subreaper can be made, it
    execs ``argv`` in its place. With ``token`` (a Ray rank's, ``--strays``): the
    subreaper is a child of this process, which only waits for it and ends as it did, and
    what it kills once the command has exited is only the :func:`strays` of its group."""
    for sig in _handled_signals(token is not None):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, _ignore)
    if not become_subreaper():
        _exec(argv)
    if token is not None:
        # Ray SIGKILLs the direct children of a worker that ends (the agent's): the
        # subreaper is one level down, and outlives that with what it adopted
        below = os.fork()
        if below > 0:
            return _end_as(_wait_for(below))
        become_subreaper()  # not inherited by a fork
    env = dict(os.environ)
    if token is None:
        env[SUBREAPER_ENV] = str(os.getpid())
    child = os.fork()
    if child == 0:
        try:
            _exec(argv, env)
        except OSError as exc:
            print(f"aistack rank subreaper: cannot run {argv[0]}: {exc}", file=sys.stderr)
        finally:
            os._exit(127)
    status = _wait_for(child)
    # what is still below (the rank's shell stopped what it found, with its grace period;
    # a Ray rank's: only the strays, the rest is its agent's): SIGKILL, and reap it
    me, group = os.getpid(), os.getpgrp()
    for _ in range(50):
        left = descendants(me) if token is None else strays(group, token)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        reap_exited_children()
    reap_exited_children()
    return _end_as(status)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--probe"]:
        return 0 if become_subreaper() else 1
    if argv[1:2] == ["--subreaper"]:
        rest = argv[2:]
        strays = rest[:1] == ["--strays"]  # a Ray rank's (subreap's docstring)
        if strays:
            rest = rest[1:]
        if rest and (rest[0] == "--lc-ctype" or rest[0].startswith("--lc-ctype=")):
            # LC_CTYPE as the command is to get it: Python itself sets it where the locale
            # is C (PEP 538), which the command would not have seen without this process
            opt = rest.pop(0)
            if "=" in opt:
                os.environ["LC_CTYPE"] = opt.split("=", 1)[1]
            else:
                os.environ.pop("LC_CTYPE", None)
        if rest:
            return subreap(rest, os.environ.get(TOKEN_ENV, "")) if strays else subreap(rest)
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
