"""The per-job supervisor (``python -m aistack.executors.supervisor JOB_DIR``).

Started by the local executor in its own session, so it outlives a server crash (the pattern
of Slurm's slurmstepd). It owns the job's process group and, in JOB_DIR:

* reads ``launch.json`` (command, env, cwd, CPU ids to pin, GPU ids, limits);
* writes the job's stdout+stderr to ``output.log``;
* samples CPU/RSS (psutil) and GPU utilization (NVML) once a second into ``usage.jsonl``;
* stops the job on SIGTERM (cancel / preemption: ``cancel.json`` says which, and by when the
  job must be gone; see :func:`merge_stop_request`) or when ``max_runtime_s`` passes: the job's stop signal, then SIGCONT (a job whose processes are
  stopped, by SIGSTOP or a debugger's ``kill -STOP``, would not get the stop signal until
  continued: it could not checkpoint in its grace period and would be SIGKILLed; Slurm's
  scancel and systemd do the same), a grace period, then SIGKILL. The grace
  period is the job's processes', not its main process's: a shell that dies of the signal
  at once (``python train.py; echo done``) leaves its program saving a checkpoint, so the
  job ends when its process group is empty or at the SIGKILL (exit code -9 when the kill
  found some of the group still there; else the main process's). A later SIGTERM (a second
  stop) reads ``cancel.json`` again: it may bring the SIGKILL forward, never postpone it, and
  a cancel after a preemption ends the job cancelled;
* forwards SIGUSR1 to the job (ask it to checkpoint);
* writes ``exit.json`` atomically when the job ends: state, exit code, reason;
* is the job's child subreaper (Linux): a process the job daemonizes (``setsid``, a double
  fork) leaves the job's process group but stays the supervisor's descendant, and is killed
  with the rest when the job ends, as cgroup process tracking does under Slurm.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from aistack.executors.rank_reaper import reap_exited_children
from aistack.launch.gang import group_alive

SAMPLE_INTERVAL_S = 1.0
GROUP_CHECK_S = 0.25  # while stopping: how often to look whether the job's processes are gone
FIRST_SAMPLE_S = 0.25  # the first usage sample, after the start (then every SAMPLE_INTERVAL_S)
TICK_S = 0.05


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all, readable by its owner only (launch.json holds the
    job's environment, API and tracking tokens included)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)


STOP_FILE = "cancel.json"
STOP_KINDS = ("cancel", "preempt")


def finite_seconds(value: Any) -> float | None:
    """``value`` as a finite number, else None (a bool, NaN, a string... are no time)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def merge_stop_request(
    old: Any, *, kind: str, grace_s: float, reason: str | None, now: float
) -> dict[str, Any]:
    """The ``cancel.json`` after a stop (``kind``: cancel or preempt) at ``now`` with
    ``grace_s`` seconds before the SIGKILL, given the one already there (``old``, None for
    the first stop). The rule the server and the Slurm executor follow for a second stop:

    * the first stop's kill ``deadline`` (seconds since the epoch) stands; a later stop may
      bring it forward, never postpone it;
    * a cancel is never turned back into a preemption (the job would be requeued); a cancel
      after a preemption makes it a cancel, with the cancel's reason;
    * otherwise the first stop's reason stands.

    ``t`` stays the first stop's time and ``grace_s`` is counted from it (``t + grace_s`` is
    the deadline, for a reader of ``grace_s`` alone, such as the gang runner)."""
    deadline = now + grace_s
    if not isinstance(old, dict):
        return {"kind": kind, "reason": reason, "t": now, "grace_s": grace_s, "deadline": deadline}
    old_kind = old.get("kind") if old.get("kind") in STOP_KINDS else "cancel"
    first_t = finite_seconds(old.get("t"))
    old_deadline = finite_seconds(old.get("deadline"))
    old_grace = finite_seconds(old.get("grace_s"))
    if old_deadline is None and first_t is not None and old_grace is not None:
        old_deadline = first_t + max(0.0, old_grace)  # written by an earlier aistack
    if old_deadline is not None:
        deadline = min(deadline, old_deadline)
    merged_kind = "cancel" if "cancel" in (old_kind, kind) else "preempt"
    why = old.get("reason") if old_kind == merged_kind else reason
    t = first_t if first_t is not None and first_t <= now else now
    return {
        "kind": merged_kind,
        "reason": why,
        "t": t,
        "grace_s": max(0.0, deadline - t),
        "deadline": deadline,
    }


def stop_deadline(req: dict[str, Any], now: float, default_grace: float) -> float:
    """When the SIGKILL is due, for the stop request ``req`` read at ``now``: its ``deadline``,
    bounded by ``now + grace_s`` (should the wall clock have been set back since)."""
    grace = finite_seconds(req.get("grace_s"))
    if grace is None or grace < 0:
        grace = default_grace
    at = now + grace
    deadline = finite_seconds(req.get("deadline"))
    return at if deadline is None else min(at, deadline)


def _stop_reason_state(req: dict[str, Any]) -> tuple[str, str]:
    """(state, reason) a job stopped by request ``req`` ends with."""
    kind = req.get("kind", "cancel")
    state = "preempted" if kind == "preempt" else "cancelled"
    return state, str(
        req.get("reason") or ("preempted" if kind == "preempt" else "cancelled by user")
    )


def tail_lines(path: Path, n: int = 5, max_bytes: int = 8192) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln for ln in data.splitlines() if ln.strip()][-n:]


def _failure_reason(rc: int, log_path: Path, command: str) -> str:
    last = tail_lines(log_path, 3)
    tail = (" — last output: " + " | ".join(last)[-400:]) if last else ""
    if rc == 127:
        return f"command not found (exit code 127): {(command.split() or [command])[0]}{tail}"
    if rc == 126:
        return f"command not executable (exit code 126){tail}"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return f"killed by signal {name}{tail}"
    return f"exit code {rc}{tail}"


class Supervisor:
    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.cfg: dict[str, Any] = json.loads((job_dir / "launch.json").read_text())
        self.stop_requested = False
        self.stop_again = False  # a SIGTERM not acted on yet: cancel.json is read again
        self.forward_usr1 = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None

    # -- signals ----------------------------------------------------------------------------
    def _on_term(self, _sig: int, _frame: object) -> None:
        self.stop_requested = True
        self.stop_again = True

    def _on_usr1(self, _sig: int, _frame: object) -> None:
        self.forward_usr1 = True

    def _killpg(self, sig: int) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            # a distributed job's ranks run in their own process group(s), which the gang
            # runner records in gang.json (it forwards the stop signal to them itself)
            kill_gang_groups(self.dir)
            # and whatever left the groups (setsid, daemons) is still our descendant
            _kill_descendants()

    def _send_stop(self, sig: int) -> None:
        """Send the job its stop signal, then SIGCONT: a stopped process (SIGSTOP, SIGTSTP)
        holds the stop signal pending until it is continued, so without SIGCONT it could not
        act on it in the grace period and would only get the SIGKILL at its end. The ranks of
        a distributed job (their own process groups, in gang.json) are continued too: the
        gang runner forwards the stop signal to them."""
        self._killpg(sig)
        self._killpg(signal.SIGCONT)
        for pgid in (_read_json(self.dir / "gang.json") or {}).get("pgids") or []:
            try:
                os.killpg(int(pgid), signal.SIGCONT)
            except (ProcessLookupError, PermissionError, ValueError, TypeError):
                pass

    # -- the run ----------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.cfg
        if self.stop_requested or (self.dir / STOP_FILE).exists():
            # stopped before the job began (the executor did not signal a supervisor that had
            # no handler yet: it only wrote cancel.json): nothing to start
            req = _read_json(self.dir / STOP_FILE) or {}
            state = "preempted" if req.get("kind", "cancel") == "preempt" else "cancelled"
            self.finish(state, None, str(req.get("reason") or f"{state} before it started"))
            return
        env = os.environ.copy()
        # the server's own settings are not the job's: the embedded MLflow server's variables,
        # and the server's own MLflow client settings (the job gets its own run's)
        for k in [k for k in env if k.startswith(("AISTACK_SUPERVISOR", "_MLFLOW_", "MLFLOW_"))]:
            env.pop(k)
        # jobs see the Python environment aistack runs in first (its venv's python, torchrun...)
        bindir = os.path.dirname(sys.executable)
        if bindir not in env.get("PATH", "").split(os.pathsep)[:1]:
            env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env.update(cfg.get("env") or {})
        gpus = cfg.get("gpus") or []
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        # the indices are NVML's (PCI bus order); CUDA numbers devices fastest first unless
        # told otherwise, so on a host of mixed GPUs a job would get another job's device
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["NVIDIA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"] or "void"
        cpus = [int(c) for c in cfg.get("cpus") or []]
        if cpus:
            env.setdefault("OMP_NUM_THREADS", str(len(cpus)))
        env["AISTACK_JOB_DIR"] = str(self.dir)
        log = (self.dir / "output.log").open("ab", buffering=0)

        def _pre() -> None:
            if cpus:
                try:
                    os.sched_setaffinity(0, cpus)
                except OSError:
                    pass

        if cfg.get("distributed"):
            argv = [sys.executable, "-m", "aistack.executors.gang", str(self.dir)]
        else:
            argv = ["/bin/bash", "-c", cfg["command"]]
        cwd = cfg.get("workdir") or None
        if cwd and not Path(cwd).is_dir():
            why = "is not a folder" if os.path.exists(cwd) else "does not exist"
            log.write(f"aistack: working directory {cwd!r} {why}\n".encode())
            self.finish("failed", 1, f"working directory {cwd!r} {why}")
            return
        self.proc = subprocess.Popen(  # noqa: S603
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_pre,
        )
        self.pgid = self.proc.pid
        write_json_atomic(
            self.dir / "status.json",
            {
                "state": "running",
                "pid": self.proc.pid,
                "pgid": self.pgid,
                "supervisor_pid": os.getpid(),
                "started_at": time.time(),
            },
        )
        self.loop()

    def loop(self) -> None:
        assert self.proc is not None
        cfg = self.cfg
        t0 = time.time()
        max_rt = cfg.get("max_runtime_s")
        grace = float(cfg.get("grace_s", 10.0))
        stop_sig = getattr(signal, cfg.get("stop_signal", "SIGTERM"), signal.SIGTERM)
        term_deadline: float | None = None
        reason_state: tuple[str, str] | None = None
        rc: int | None = None
        # the main process's exit code, or -9 when the group outlived it and was SIGKILLed at
        # the end of the grace period (some of the job did not stop on the stop signal)
        killed_after_main = False
        next_sample = t0 + FIRST_SAMPLE_S
        next_group_check = 0.0
        usage = (self.dir / "usage.jsonl").open("a")
        ps_root = psutil.Process(self.proc.pid)
        # psutil's first cpu_percent of a process is 0.0 by definition: prime the counters now
        # and write the first sample soon after, so a job of a second still has a real one
        _sample(ps_root, [])
        while True:
            if rc is None:
                rc = self.proc.poll()
            now = time.time()
            if rc is not None:
                if term_deadline is None or term_deadline == float("inf"):
                    break
                # stopping: the main process is gone (a shell dies of SIGTERM at once) but the
                # grace period is the job's processes', not its shell's: a program under it may
                # still be saving a checkpoint. Wait for the group to empty, or the deadline.
                # only once the job's main process was waited for: before, this could take
                # its exit status from Popen (orphans of the job are our children)
                reap_exited_children()
                # (group_alive scans every process of the host: a few ms each, so at most
                # every GROUP_CHECK_S, not every tick, for a grace period that may be an hour)
                if now >= next_group_check:
                    next_group_check = now + GROUP_CHECK_S
                    if not group_alive(self.pgid):  # (zombies of other parents: gone)
                        break
            if self.forward_usr1:
                self.forward_usr1 = False
                self._killpg(signal.SIGUSR1)
            if self.stop_again and term_deadline is not None and term_deadline != float("inf"):
                # a second stop while stopping: it may bring the SIGKILL forward (never
                # postpone it), and a cancel after a preemption ends the job cancelled
                self.stop_again = False
                req = _read_json(self.dir / STOP_FILE) or {}
                term_deadline = min(term_deadline, stop_deadline(req, now, grace))
                if reason_state is not None and reason_state[0] == "preempted":
                    if req.get("kind") == "cancel":
                        reason_state = _stop_reason_state(req)
            if term_deadline is None:
                if self.stop_requested:
                    self.stop_again = False
                    req = _read_json(self.dir / STOP_FILE) or {}
                    reason_state = _stop_reason_state(req)
                    self._send_stop(stop_sig)
                    term_deadline = stop_deadline(req, now, grace)
                elif max_rt and now - t0 > float(max_rt):
                    reason_state = ("timeout", f"exceeded max_runtime of {float(max_rt):g} s")
                    self._send_stop(stop_sig)
                    term_deadline = now + grace
            elif now >= term_deadline:
                killed_after_main = rc is not None
                self._killpg(signal.SIGKILL)
                term_deadline = float("inf")
                continue  # the end is recorded at once (the main process may be gone already)
            if now >= next_sample:
                next_sample = now + SAMPLE_INTERVAL_S
                _reap_orphans(self.proc.pid)
                sample = _sample(ps_root, cfg.get("gpus") or [])
                if sample:
                    usage.write(json.dumps(sample) + "\n")
                    usage.flush()
            time.sleep(TICK_S)
        # the main process is gone: make sure nothing of the job's group lingers (a job that
        # ended by itself loses what it left running in the background, as under Slurm)
        self._killpg(signal.SIGKILL)
        if killed_after_main:
            rc = -int(signal.SIGKILL)
        usage.close()
        log_path = self.dir / "output.log"
        if reason_state is not None:
            state, reason = reason_state
            self.finish(state, rc, reason)
        elif rc == 0:
            self.finish("succeeded", 0, None)
        else:
            gang = _read_json(self.dir / "gang_result.json")
            failure = (
                str(gang["message"])
                if gang and gang.get("message")
                else _failure_reason(rc, log_path, cfg["command"])
            )
            self.finish("failed", rc, failure)

    def finish(self, state: str, rc: int | None, reason: str | None) -> None:
        write_json_atomic(
            self.dir / "exit.json",
            {
                "state": state,
                "exit_code": rc,
                "reason": reason,
                "finished_at": time.time(),
            },
        )


def kill_gang_groups(job_dir: Path) -> None:
    """SIGKILL the process groups listed in ``job_dir/gang.json`` (see executors/gang.py)."""
    for pgid in (_read_json(job_dir / "gang.json") or {}).get("pgids") or []:
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, TypeError):
            pass


PR_SET_CHILD_SUBREAPER = 36
READY_FILE = "supervisor.ready"  # written once the supervisor handles SIGTERM


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children instead of init's (Linux
    ``prctl(PR_SET_CHILD_SUBREAPER)``); False where that is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


# a process started with this in its environment (a service controller that `aistack serve
# deploy` started inside a job) is meant to outlive the job: it and its children are spared
OUTLIVES_JOB_ENV = "AISTACK_OUTLIVES_JOB"


def _kill_descendants() -> None:
    from aistack.executors.rank_reaper import in_disk_sleep

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    spared: set[int] = set()
    for p in procs:
        try:
            # the environment of a process with a thread in state D is not read (the read
            # can block until it wakes, and the job's end with it): it is not spared
            if not in_disk_sleep(p.pid) and p.environ().get(OUTLIVES_JOB_ENV) == "1":
                spared.add(p.pid)
        except psutil.Error:
            continue
    for p in procs:
        try:
            if p.pid in spared or any(a.pid in spared for a in p.parents()):
                continue
            p.kill()
        except psutil.Error:
            continue


def _reap_orphans(keep: int) -> None:
    """Wait for exited children other than the job's main process (daemons the job started
    that ended: as their subreaper we must, or they stay zombies until we exit)."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for p in children:
        if p.pid == keep:
            continue
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(p.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_PROCS: dict[int, psutil.Process] = {}


def _sample(root: psutil.Process, gpus: list[int]) -> dict[str, Any] | None:
    """CPU percent (sum over the job's process tree, 100 = one core) and RSS in MB."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    # keep Process objects between samples: cpu_percent measures since the previous call
    procs = [_PROCS.setdefault(p.pid, p) for p in procs]
    cpu, rss = 0.0, 0.0
    for p in procs:
        try:
            cpu += p.cpu_percent(interval=None)
            rss += p.memory_info().rss / 2**20
        except psutil.Error:
            continue
    out: dict[str, Any] = {"t": time.time(), "cpu_percent": round(cpu, 1), "rss_mb": round(rss, 1)}
    if gpus:
        from aistack.compute.inventory import gpu_utilization

        util, mem = gpu_utilization([int(g) for g in gpus])
        out["gpu_util"], out["gpu_mem_mb"] = util, mem
    return out


def main() -> None:
    job_dir = Path(sys.argv[1])
    sup = Supervisor(job_dir)
    signal.signal(signal.SIGTERM, sup._on_term)
    signal.signal(signal.SIGINT, sup._on_term)
    signal.signal(signal.SIGUSR1, sup._on_usr1)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    become_subreaper()
    # from here a SIGTERM is handled: the executor may signal (before, it only writes
    # cancel.json, which start() reads, since the default action would kill this process)
    write_json_atomic(job_dir / READY_FILE, {"pid": os.getpid()})
    try:
        sup.start()
    except Exception as exc:  # noqa: BLE001 - a supervisor must always leave exit.json behind
        sup.finish(
            "failed", None, f"supervisor could not start the job: {type(exc).__name__}: {exc}"
        )
        raise


if __name__ == "__main__":
    main()
