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
        handle = str(proc.pid)
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
        # a process started by an earlier controller: we can only see whether it lives
        try:
            os.kill(int(handle), 0)
        except (ProcessLookupError, ValueError):
            return LaunchStatus(state="exited", reason="process is gone")
        except PermissionError:
            pass
        return LaunchStatus(state="running", host="127.0.0.1")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        try:
            pid = int(handle)
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
