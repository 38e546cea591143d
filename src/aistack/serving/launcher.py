"""Where replicas run: the ``ReplicaLauncher`` protocol and two implementations.

* ``ProcessLauncher`` starts each replica as a local subprocess in its own session (used by
  the single-machine default, unit tests and benchmarks).
* ``JobLauncher`` submits each replica as an aistack job through ``aistack.client.Client``, so
  the scheduler places it (with a priority above batch jobs) and serving shares the cluster
  and its cost accounting with training.

Contract: ``launch`` returns a handle string at once; ``status`` never blocks for long and
reports ``running`` (includes queued/starting) or ``exited`` with an exit code and reason;
``stop`` returns at once (SIGTERM now, SIGKILL after ``grace_s``); its ``reason`` says why in
words a user reads where the replica is listed (for a job: its stop_reason in the API, and
its failure_reason in ``aistack jobs`` and the API once it is CANCELLED, instead of "cancelled
by user").

A ``ProcessLauncher`` handle is ``PID@START``: the process id and when that process started
(:func:`process_start`), so that a controller that adopts replicas after a restart never takes
(or signals) an unrelated process that was given the PID of a replica that died. A handle of
an older controller is the PID alone: it is taken for a replica only while that PID leads its
own session and runs ``aistack.serving.replica`` (see :meth:`ProcessLauncher.status`).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class LaunchStatus:
    state: Literal["pending", "running", "exited"]
    exit_code: int | None = None
    reason: str | None = None
    host: str | None = None


class ReplicaLauncher(Protocol):
    name: str

    def launch(
        self,
        *,
        name: str,
        command: list[str],
        env: dict[str, str],
        resources: dict[str, Any],
        priority: int,
        log_path: Path,
    ) -> str: ...

    def status(self, handle: str) -> LaunchStatus: ...

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None: ...


# what an older controller's replicas run (their handle is the PID alone)
_REPLICA_MODULE = "aistack.serving.replica"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as a string that stays the same for the whole life of
    that process and differs for a later process given the same PID; None when there is no
    such process (or it cannot be told).

    On Linux: the start time in clock ticks after boot, from ``/proc/PID/stat`` (exact, and
    unaffected by changes of the wall clock); elsewhere psutil's ``create_time``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # the command name in parentheses may hold spaces and ")": split after the last one
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of proc(5): starttime
    except (FileNotFoundError, ProcessLookupError):
        if Path("/proc/self/stat").exists():
            return None  # /proc works: the process is gone
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except (psutil.Error, OSError, ValueError):
        return None


def _parse_handle(handle: str) -> tuple[int, str | None]:
    """``PID@START`` (or an older controller's ``PID``) → (pid, start); ValueError if neither."""
    pid_s, sep, start = handle.partition("@")
    pid = int(pid_s)
    if pid <= 0 or (sep and not start):
        raise ValueError(f"not a process handle: {handle!r}")
    return pid, (start if sep else None)


def handle_pid(handle: str) -> int:
    """The PID in a ``ProcessLauncher`` handle (``PID@START``, or an older ``PID``); ValueError
    if it is not one. To signal it, ask :meth:`ProcessLauncher.status` first, or call
    :meth:`ProcessLauncher.stop`: the PID may belong to another process by now."""
    return _parse_handle(handle)[0]


def _looks_like_replica(pid: int) -> bool:
    """For a PID-only handle: whether ``pid`` still looks like the replica an older controller
    started (the leader of its own session, running the replica module)."""
    try:
        if os.getsid(pid) != pid:  # every replica was started in a session of its own
            return False
    except ProcessLookupError:
        return False
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self/cmdline").exists()  # no /proc here: the session must do
    except OSError:
        return True  # another user's process: cannot tell, as before
    return _REPLICA_MODULE.encode() in argv


class ProcessLauncher:
    """Replicas as local processes (each in its own session, output to ``log_path``)."""

    name = "process"

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def launch(
        self,
        *,
        name: str,
        command: list[str],
        env: dict[str, str],
        resources: dict[str, Any],
        priority: int,
        log_path: Path,
    ) -> str:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **env}
        gpus = resources.get("gpu_ids")
        if gpus is not None:
            full_env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                close_fds=True,
            )
        start = process_start(proc.pid)
        handle = f"{proc.pid}@{start}" if start else str(proc.pid)
        with self._lock:
            self._procs[handle] = proc
        log.info("started replica %s: pid %s", name, handle)
        return handle

    def status(self, handle: str) -> LaunchStatus:
        with self._lock:
            proc = self._procs.get(handle)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return LaunchStatus(state="running", host="127.0.0.1")
            reason = (
                f"killed by signal {signal.Signals(-code).name}"
                if code < 0
                else f"exit code {code}"
            )
            return LaunchStatus(state="exited", exit_code=code, reason=reason)
        # a process started by an earlier controller: whether it lives, and is still that
        # process (not a later one that was given its PID)
        try:
            pid, start = _parse_handle(handle)
        except ValueError:
            return LaunchStatus(state="exited", reason=f"not a process handle: {handle!r}")
        now = process_start(pid)
        if now is None:
            return LaunchStatus(state="exited", reason="process is gone")
        if start is not None and now != start:
            return LaunchStatus(
                state="exited", reason=f"process is gone (PID {pid} now belongs to another process)"
            )
        if start is None and not _looks_like_replica(pid):
            return LaunchStatus(
                state="exited",
                reason=f"process is gone (PID {pid} now runs something other than a replica)",
            )
        return LaunchStatus(state="running", host="127.0.0.1")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        # never signal a PID that no longer belongs to the replica (see status)
        if self.status(handle).state == "exited":
            return
        try:
            pid, _ = _parse_handle(handle)
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, ValueError, PermissionError):
            return
        log.info("stopping replica process %s: %s", handle, reason or "stopped")

        def _kill_later() -> None:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                if self.status(handle).state == "exited":
                    return
                time.sleep(0.1)
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.status(handle)

        threading.Thread(target=_kill_later, daemon=True, name=f"stop-{handle}").start()


_JOB_FINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT", "LOST"}


class JobLauncher:
    """Replicas as aistack jobs, placed by the scheduler (needs a running aistack server)."""

    name = "jobs"

    def __init__(self, client: Any = None, *, project: str = "default") -> None:
        if client is None:
            from aistack.errors import MissingDependency

            try:
                from aistack.client import Client  # type: ignore[attr-defined]
            except ImportError as exc:  # the SDK is part of aistack; a partial install lacks it
                raise MissingDependency("aistack.client") from exc
            client = Client()
        self.client = client
        self.project = project

    def launch(
        self,
        *,
        name: str,
        command: list[str],
        env: dict[str, str],
        resources: dict[str, Any],
        priority: int,
        log_path: Path,
    ) -> str:
        spec = {
            "name": name,
            "project": self.project,
            "command": shlex.join(command),
            "env": env,
            "resources": {
                k: v
                for k, v in resources.items()
                if k in ("gpus", "cpus", "memory") and v is not None
            },
            "priority": priority,
            "retries": 0,
            "kind": "service",
            "preemptible": False,
        }
        job = self.client.submit(spec)
        return str(job["id"])

    def status(self, handle: str) -> LaunchStatus:
        job = self.client.get_job(handle)
        state = str(job.get("state", "")).upper()
        host = job.get("node_address") or None
        if state in ("QUEUED", "PENDING"):
            return LaunchStatus(state="pending", reason=job.get("pending_reason"), host=host)
        if state not in _JOB_FINAL:
            return LaunchStatus(state="running", host=host)
        # a replica that exits 0 when stopped ends SUCCEEDED: why it stopped is its stop_reason
        why = job.get("failure_reason") or job.get("stop_reason") or job.get("reason")
        return LaunchStatus(
            state="exited",
            exit_code=job.get("exit_code"),
            reason=f"job {job.get('id', handle)} {state.lower()}" + (f": {why}" if why else ""),
        )

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        from aistack.errors import ValidationError

        # the API keeps at most 500 printable characters of a reason
        why = " ".join((reason or "").split())
        why = (why[:499] + "…") if len(why) > 500 else why
        try:
            try:
                self.client.cancel(handle, reason=why or None)
            except ValidationError:  # a reason the server refused must not keep the job running
                self.client.cancel(handle)
        except Exception as exc:  # already finished or gone: nothing to stop
            log.info("cancel of replica job %s: %s", handle, exc)
