"""The local executor: jobs run as process groups on this machine, each under a supervisor.

The handle is the attempt's directory. Everything the server needs to re-adopt a job after a
restart lives there: ``supervisor.pid`` (pid + start time), ``status.json``, ``exit.json``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from aistack.compute.inventory import local_node
from aistack.compute.resources import Node
from aistack.executors.base import (
    ExecStatus,
    Executor,
    LaunchRequest,
    UsageSample,
    stop_grace_s,
)
from aistack.executors.supervisor import (
    READY_FILE,
    STOP_FILE,
    merge_stop_request,
    write_json_atomic,
)
from aistack.spec import grace_s_from_env

log = logging.getLogger(__name__)
START_GRACE_S = 10.0  # a supervisor that has not written status.json yet is "starting"
STOP_LOCK = ".cancel.lock"  # held while cancel.json is read and rewritten (see _stop)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) while the block runs: between
    processes (two servers' executors, a CLI) and between threads of one (each opens it)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)


def _final(ex: dict, node: str) -> ExecStatus:  # type: ignore[type-arg]
    """exit.json as a final status, with when the job ended."""
    t = ex.get("finished_at")
    return ExecStatus(
        state=ex["state"],
        exit_code=ex.get("exit_code"),
        reason=ex.get("reason"),
        node=node,
        finished_at=float(t) if isinstance(t, int | float) and not isinstance(t, bool) else None,
    )


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, *, cpus: int | None = None, node_name: str | None = None) -> None:
        self._node = local_node(cpus=cpus, name=node_name)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def inventory(self) -> list[Node]:
        return [self._node]

    def launch(self, req: LaunchRequest) -> str:
        d = req.job_dir
        d.mkdir(parents=True, exist_ok=True)
        alloc = req.allocation.nodes.get(self._node.name) or next(
            iter(req.allocation.nodes.values()), None
        )
        cfg = {
            "job_id": req.job_id,
            "attempt": req.attempt,
            "command": req.command,
            "workdir": req.workdir,
            "env": req.env,
            "gpus": list(alloc.gpus) if alloc else [],
            "cpus": list(alloc.cpus) if alloc else [],
            "max_runtime_s": req.max_runtime_s,
            "grace_s": grace_s_from_env(req.env),
            "stop_signal": req.stop_signal,
            "distributed": req.distributed,
            "procs_per_node": req.procs_per_node,
            "hosts": ["127.0.0.1"],
        }
        write_json_atomic(d / "launch.json", cfg)
        sup_log = (d / "supervisor.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "aistack.executors.supervisor", str(d)],
            stdin=subprocess.DEVNULL,
            stdout=sup_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        sup_log.close()
        try:
            ctime = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            ctime = time.time()
        write_json_atomic(
            d / "supervisor.pid",
            {"pid": proc.pid, "create_time": ctime, "launched_at": time.time()},
        )
        self._children[str(d)] = proc
        return str(d)

    # -- state ---------------------------------------------------------------------------------
    def _reap(self, handle: str) -> None:
        p = self._children.get(handle)
        if p is not None and p.poll() is not None:
            self._children.pop(handle, None)

    def _supervisor(self, handle: str) -> tuple[psutil.Process | None, dict[str, float]]:
        info = _read(Path(handle) / "supervisor.pid") or {}
        pid = int(info.get("pid", 0))
        if not pid:
            return None, info
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - float(info.get("create_time", 0))) > 1.0:
                return None, info  # pid reused by another process
            if p.status() == psutil.STATUS_ZOMBIE:
                return None, info
            return p, info
        except psutil.Error:
            return None, info

    def poll(self, handle: str) -> ExecStatus:
        self._reap(handle)
        d = Path(handle)
        ex = _read(d / "exit.json")
        if ex is not None:
            return _final(ex, self._node.name)
        sup, info = self._supervisor(handle)
        st = _read(d / "status.json")
        if sup is not None:
            return ExecStatus(
                state="running" if st else "starting",
                pid=(st or {}).get("pid"),
                node=self._node.name,  # type: ignore[arg-type]
            )
        ex = _read(d / "exit.json")  # it may have finished between the two reads
        if ex is not None:
            return _final(ex, self._node.name)
        if not info and time.time() - _mtime(d) < START_GRACE_S:
            return ExecStatus(state="starting", node=self._node.name)
        # the supervisor is gone without an exit record: the job's processes may still be there
        if st and st.get("pgid"):
            try:
                os.killpg(int(st["pgid"]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        from aistack.executors.supervisor import kill_gang_groups

        kill_gang_groups(d)
        return ExecStatus(
            state="lost",
            reason="the job's supervisor process is gone (machine restart or kill -9)",
            node=self._node.name,
        )

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        self._stop(handle, grace_s, "cancel", None)

    def handle_in(self, job_dir: Path) -> str | None:
        return str(job_dir) if (job_dir / "launch.json").exists() else None

    def preempt(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        self._stop(handle, grace_s, "preempt", reason)

    def _stop(self, handle: str, grace_s: float, kind: str, reason: str | None) -> None:
        """Record the stop in ``cancel.json`` and signal the supervisor. A second stop is
        merged with the first (:func:`~aistack.executors.supervisor.merge_stop_request`: the
        first kill deadline stands unless this one is sooner; a cancel stays a cancel), under
        a lock: two stops that land before the supervisor reads the file (it does on its next
        tick) overwrote each other, and the second's kind and grace period won."""
        g = stop_grace_s(grace_s)
        d = Path(handle)
        with _locked(d / STOP_LOCK):
            write_json_atomic(
                d / STOP_FILE,
                merge_stop_request(
                    _read(d / STOP_FILE), kind=kind, grace_s=g, reason=reason, now=time.time()
                ),
            )
        sup, _ = self._supervisor(handle)
        # a supervisor still importing has no SIGTERM handler (the signal would kill it and the
        # job would look lost): it reads cancel.json when it starts instead
        if sup is not None and (d / READY_FILE).exists():
            try:
                sup.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass

    def signal(self, handle: str, sig: int) -> None:
        sup, _ = self._supervisor(handle)
        if sup is not None and sig == signal.SIGUSR1:
            sup.send_signal(signal.SIGUSR1)

    def usage(self, handle: str) -> UsageSample | None:
        from aistack.executors.supervisor import tail_lines

        # the last line may be half written: the newest whole one of the last few
        samples = _usage_samples(tail_lines(Path(handle) / "usage.jsonl", 3, 2048))
        return samples[-1] if samples else None

    def usage_since(self, handle: str, after_t: float | None) -> list[UsageSample]:
        from aistack.executors.supervisor import tail_lines

        # the supervisor writes one line (~100 bytes) a second: the last 1,000 are ~100 kB
        lines = tail_lines(Path(handle) / "usage.jsonl", USAGE_BACKLOG, USAGE_BACKLOG * 256)
        return [u for u in _usage_samples(lines) if after_t is None or u.t > after_t]


USAGE_BACKLOG = 1000  # samples read back at most per call (the server reads every few s)


def _usage_samples(lines: list[str]) -> list[UsageSample]:
    """usage.jsonl lines → samples (a line cut by a concurrent write is skipped)."""
    out = []
    for line in lines:
        try:
            u = json.loads(line)
            out.append(
                UsageSample(
                    t=float(u["t"]),
                    cpu_percent=float(u.get("cpu_percent", 0)),
                    rss_mb=float(u.get("rss_mb", 0)),
                    gpu_util=u.get("gpu_util"),
                    gpu_mem_mb=u.get("gpu_mem_mb"),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _read(path: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
