"""Where replicas run: the ``ReplicaLauncher`` protocol and two implementations.

* ``ProcessLauncher`` starts each replica as a local subprocess in its own session (used by
  the single-machine default, unit tests and benchmarks).
* ``JobLauncher`` submits each replica as an aistack job through ``aistack.client.Client``, so
  the scheduler places it (with a priority above batch jobs) and serving shares the cluster
  and its cost accounting with training.

Contract: ``launch`` returns a handle string at once; ``status`` never blocks for long and
reports ``running`` (includes queued/starting) or ``exited`` with an exit code and reason;
``stop`` returns at once and never raises (SIGTERM now, SIGKILL after ``grace_s``; a
``JobLauncher`` cancel that could not reach the server is logged as a warning and sent again
by ``status``, which the controller calls each tick); its ``reason`` says why in
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


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and waits for its parent to reap it (Linux; False where
    ``/proc`` cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


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
        if now is None or _zombie(pid):  # (a zombie: ended, not yet reaped by its parent)
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
        """SIGTERM to the replica's process group now, SIGKILL after ``grace_s`` (from a
        daemon thread). Never raises: a process this user may not signal (another user's, e.g.
        a replica started by a controller run as root) is logged as a WARNING naming its PID
        and the command that stops it; it runs on, and the replica stays "stopping"."""
        # never signal a PID that no longer belongs to the replica (see status)
        if self.status(handle).state == "exited":
            return
        try:
            pid, _ = _parse_handle(handle)
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            return
        except PermissionError as exc:
            _not_permitted(handle, "SIGTERM", reason, exc)
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
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                _not_permitted(handle, "SIGKILL", reason, exc)
            self.status(handle)

        threading.Thread(target=_kill_later, daemon=True, name=f"stop-{handle}").start()


def _not_permitted(handle: str, sig: str, reason: str | None, exc: OSError) -> None:
    """The warning for a replica process this user may not signal: it runs on."""
    pid = _parse_handle(handle)[0]
    why = f" ({reason})" if reason else ""
    log.warning(
        "cannot stop replica process %s%s: %s to its process group %d was refused (%s): it "
        "belongs to another user, so it runs on and the replica stays 'stopping'; stop it as "
        "that user or as root: `kill -TERM -- -%d` (then `kill -KILL -- -%d` if it is still "
        "there after its grace period)",
        handle,
        why,
        sig,
        pid,
        exc.strerror or exc,
        pid,
        pid,
    )


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
        # cancels that did not reach the server, by job id: sent again by status()
        self._unstopped: dict[str, _Unstopped] = {}
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
        """The replica job's state; a cancel of it that failed is sent again here (see
        :meth:`stop`) while the job has not ended."""
        job = self.client.get_job(handle)
        state = str(job.get("state", "")).upper()
        host = job.get("node_address") or None
        with self._lock:
            unstopped = self._unstopped.pop(handle, None)
        if unstopped is not None and state not in _JOB_FINAL:
            self._cancel(unstopped)
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
        """Cancel the replica's job. Never raises (the contract): a job already ended or
        deleted has nothing to stop; a cancel that did not reach the server (it is down,
        it failed) leaves the replica running, so it is logged as a warning naming the job
        and the error, and sent again by :meth:`status` (the controller asks each tick for
        a replica it is stopping) until it goes through or the job has ended. A cancel the
        server refuses in every form is logged as a warning and not sent again."""
        # the API keeps at most 500 printable characters of a reason
        why = " ".join((reason or "").split())
        why = (why[:499] + "…") if len(why) > 500 else why
        with self._lock:
            self._unstopped.pop(handle, None)
        self._cancel(_Unstopped(handle=handle, grace_s=grace_s, reason=why))

    def _cancel(self, u: _Unstopped) -> None:
        """Send the cancel ``u``; what failed is kept in ``_unstopped`` to be sent again."""
        from aistack.errors import ConflictError, NotFoundError, ValidationError

        what = f"replica job {u.handle}" + (f" ({u.reason})" if u.reason else "")
        try:
            self._send_cancel(u)
        except NotFoundError as exc:  # deleted: it does not run
            log.info("cancel of %s: nothing to stop (%s)", what, exc)
            return
        except ConflictError as exc:
            # already ended (nothing to stop), or it changed state meanwhile (the server
            # says try again): status() sends it again unless the job has ended
            log.info("cancel of %s: %s", what, exc)
            self._keep(u)
            return
        except ValidationError as exc:
            log.warning(
                "the server refused the cancel of %s in every form (%s): the replica may "
                "still be running; stop it with `aistack cancel %s`",
                what,
                exc,
                u.handle,
            )
            return
        except Exception as exc:  # noqa: BLE001 - the server is down, it failed...
            u.failures += 1
            now = time.monotonic()
            if u.failures == 1 or now - u.warned_t >= UNSTOPPED_WARN_EVERY_S:
                u.warned_t = now
                log.warning(
                    "could not cancel %s: %s: %s; the replica may still be running (try %d; "
                    "sent again when its status is next checked, or stop it with "
                    "`aistack cancel %s`)",
                    what,
                    type(exc).__name__,
                    exc,
                    u.failures,
                    u.handle,
                )
            self._keep(u)
            return
        if u.failures:
            log.warning("cancelled %s after %d failed tries", what, u.failures)

    def _keep(self, u: _Unstopped) -> None:
        with self._lock:
            self._unstopped[u.handle] = u

    def pending_cancels(self) -> list[dict[str, Any]]:
        """The cancels that did not go through yet (sent again by :meth:`status`), as the
        controller keeps them in its ``state.json`` so that a restarted controller sends them
        again (:meth:`cancel_later`): ``{"handle", "grace_s", "reason", "failures"}``."""
        with self._lock:
            kept = list(self._unstopped.values())
        return [
            {"handle": u.handle, "grace_s": u.grace_s, "reason": u.reason, "failures": u.failures}
            for u in kept
        ]

    def cancel_later(self, handle: str, grace_s: float, reason: str, failures: int = 0) -> None:
        """Keep a cancel an earlier controller could not send (:meth:`pending_cancels`): it is
        sent by the next :meth:`status` of ``handle``, unless :meth:`stop` sends one first."""
        with self._lock:
            if handle not in self._unstopped:
                self._unstopped[handle] = _Unstopped(
                    handle=handle, grace_s=grace_s, reason=reason, failures=failures
                )

    def _send_cancel(self, u: _Unstopped) -> None:
        from aistack.errors import ValidationError

        # the grace period goes with the cancel (it was dropped: the server's own applied);
        # a client without ``grace_s`` (an SDK of an older aistack, a test's fake) gets none.
        # What the server refuses is left out, one thing at a time: the reason first (the
        # grace period is what lets the replica finish its requests: it stays), then the
        # grace period (a server that does not know it), then both
        reasons: list[dict[str, Any]] = [{"reason": u.reason}, {}] if u.reason else [{}]
        tries: list[dict[str, Any]] = []
        if _takes(self.client.cancel, "grace_s"):
            tries += [{**r, "grace_s": u.grace_s} for r in reasons]
        tries += reasons
        for i, kwargs in enumerate(tries):
            try:
                self.client.cancel(u.handle, **kwargs)
                return
            except ValidationError:
                # what the server refused (a grace period an older server does not know,
                # a reason) must not keep the job running: try again with less
                if i == len(tries) - 1:
                    raise


UNSTOPPED_WARN_EVERY_S = 60.0  # a cancel that keeps failing is logged again at most this often


@dataclass
class _Unstopped:
    """A replica job's cancel that did not go through (sent again by ``JobLauncher.status``)."""

    handle: str
    grace_s: float
    reason: str
    failures: int = 0
    warned_t: float = 0.0


def _takes(fn: Any, name: str) -> bool:
    """Whether callable ``fn`` accepts the keyword argument ``name``."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)
