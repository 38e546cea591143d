"""The actors behind :class:`aistack.executors.ray.RayExecutor` (plain classes, wrapped with
``ray.remote`` where they are started, so importing this module does not import Ray).

* :class:`JobCoordinator`: one detached actor per job attempt: places the gang (placement
  group), starts a :class:`NodeAgent` in each bundle, builds the rank environments and
  supervises the ranks (gang failure, max_runtime, cancel, lost node), buffering the output.
* :class:`NodeAgent`: one per bundle: runs its node's ranks as subprocesses (own process
  groups) and buffers their output, prefixed ``[rank N]``. Before its first rank it starts a
  reaper (:mod:`aistack.executors.rank_reaper`) that ends the ranks when the agent dies in
  any way (``ray.kill``, ``ray stop`` on the node, its raylet gone), so a lost node leaves no
  training processes behind. Each rank's command runs under a child subreaper
  (``rank_reaper.py --subreaper --strays``, which leads the rank's group and ends as the
  command did), so a process that clears its environment and leaves the group (``env -i
  setsid``, a double fork) is kept below it instead of init: it is SIGKILLed when the
  command has exited, at the end of a stop's grace period, or by the reaper.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from aistack.executors.rank_reaper import TOKEN_ENV, strays

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"

log = logging.getLogger(__name__)

HOST_TOKEN = "__AISTACK_HOST_{}__"
HOST_RE = re.compile(r"__AISTACK_HOST_(\d+)__")
LOG_CHUNK = 4 * 2**20
MAX_LINE_BYTES = 64 * 1024
_RANK_LINE = re.compile(rb"^\[rank (\d+)\] ")  # a line of the agents' output


class NodeAgent:
    """Runs one node's ranks as subprocesses and buffers their output."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._token = uuid.uuid4().hex  # in every rank's environment: the reaper finds them
        self._reaper: Any = None  # the write end of the reaper's stdin
        self._released: set[int] = set()  # rank groups the reaper no longer needs to watch
        self._kill_by: float | None = None  # a stop's SIGKILL time (time.monotonic())

    def _start_reaper(self, grace_s: float) -> None:
        """Start the reaper that ends this agent's ranks when the agent dies (module
        docstring of :mod:`aistack.executors.rank_reaper`)."""
        from aistack.executors import rank_reaper

        try:
            p = subprocess.Popen(
                [sys.executable, "-s", rank_reaper.__file__, self._token, f"{grace_s:g}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            p.wait(timeout=30)  # the first process exits once the reaper has forked
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("no rank reaper (ranks may outlive this agent): %s", exc)
            return
        self._reaper = p.stdin

    def _tell_reaper(self, line: str) -> None:
        if self._reaper is None:
            return
        try:
            self._reaper.write(line.encode() + b"\n")
            self._reaper.flush()
        except (OSError, ValueError):
            self._reaper = None

    def info(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "pid": os.getpid(),
        }

    def free_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            return int(s.getsockname()[1])

    def start(
        self,
        command: str,
        workdir: str | None,
        ranks: list[tuple[int, dict[str, str]]],
        grace_s: float = 10.0,
    ) -> list[int]:
        if self._reaper is None:
            self._start_reaper(grace_s)
        from aistack.executors import rank_reaper

        # the rank's subreaper (module docstring): it leads the rank's group, outlives the
        # signals sent to it, and ends as the command did
        subreaper = [sys.executable, "-I", "-S", rank_reaper.__file__, "--subreaper", "--strays"]
        pids = []
        for rank, env in ranks:
            full = {**os.environ, **env, TOKEN_ENV: self._token}
            lc = "--lc-ctype" if full.get("LC_CTYPE") is None else f"--lc-ctype={full['LC_CTYPE']}"
            try:
                p = subprocess.Popen(
                    # bash execs a single command: the rank is the program, which gets the
                    # stop signal itself (dash would die of it and leave the program behind)
                    [*subreaper, lc, SHELL, "-c", command],
                    cwd=workdir or None,
                    env=full,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                with self._lock:
                    self._buf += (
                        f"[rank {rank}] aistack: cannot start the command: {exc}\n".encode()
                    )
                self._procs[rank] = _Failed(127)  # type: ignore[assignment]
                continue
            self._procs[rank] = p
            self._tell_reaper(f"+{p.pid}")
            pids.append(p.pid)
            t = threading.Thread(target=self._pump, args=(rank, p), daemon=True)
            t.start()
            self._threads.append(t)
        return pids

    def _pump(self, rank: int, p: subprocess.Popen[bytes]) -> None:
        assert p.stdout is not None
        prefix = f"[rank {rank}] ".encode()
        # a line longer than MAX_LINE_BYTES comes in parts (each prefixed), so a rank that
        # writes hundreds of MB without a newline is not held whole in the agent's memory
        for line in iter(lambda: p.stdout.readline(MAX_LINE_BYTES), b""):  # type: ignore[union-attr]
            with self._lock:
                self._buf += prefix + (line if line.endswith(b"\n") else line + b"\n")

    def poll(self) -> tuple[dict[int, int | None], bytes]:
        codes = {r: p.poll() for r, p in self._procs.items()}
        if all(c is not None for c in codes.values()):
            for t in self._threads:
                t.join(timeout=2)
        for r, c in codes.items():
            pid = self._procs[r].pid
            if c is not None and pid > 0 and pid not in self._released:
                from aistack.launch.gang import group_alive

                if not group_alive(pid):  # an empty group's id may be reused: forget it
                    self._released.add(pid)
                    self._tell_reaper(f"-{pid}")
        with self._lock:
            data = bytes(self._buf[:LOG_CHUNK])
            del self._buf[: len(data)]
        return {r: (128 - c if c is not None and c < 0 else c) for r, c in codes.items()}, data

    def _kill_strays(self, groups: list[int]) -> None:
        """SIGKILL the strays (:func:`aistack.executors.rank_reaper.strays`) of these rank
        groups, before their subreapers are SIGKILLed: they would be reparented to init."""
        for g in groups:
            for pid in strays(g, self._token):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _signal_ranks(self, sig: int) -> None:
        """``sig`` to the group of each rank still running (its subreaper's)."""
        live = [
            p.pid
            for p in self._procs.values()
            if isinstance(p, subprocess.Popen) and p.poll() is None
        ]
        if sig == signal.SIGKILL:
            self._kill_strays(live)
        for g in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, sig)

    def stop(self, grace_s: float, sig: int = signal.SIGTERM) -> None:
        self.hasten(grace_s)

        def _stop() -> None:
            self._signal_ranks(sig)
            from aistack.launch.gang import group_alive

            groups = [p.pid for p in self._procs.values() if isinstance(p, subprocess.Popen)]

            # wait for every rank's whole group (a program under a shell that died of the
            # signal is still checkpointing), not only the processes started here; until the
            # SIGKILL time, which a later, shorter cancel may bring forward (hasten)
            while time.monotonic() < (self._kill_by or 0.0):
                for p in self._procs.values():
                    if isinstance(p, subprocess.Popen):
                        p.poll()  # reap: a zombie leader would keep its group 'alive'
                if not any(group_alive(g) for g in groups):
                    break
                time.sleep(0.1)
            self._kill_strays(groups)
            for g in groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(g, signal.SIGKILL)

        threading.Thread(target=_stop, daemon=True).start()

    def hasten(self, grace_s: float) -> None:
        """Bring the stop's SIGKILL forward to ``grace_s`` from now; never postpone it (a
        second stop's rule, as the local executor's)."""
        at = time.monotonic() + max(0.0, float(grace_s))
        self._kill_by = at if self._kill_by is None else min(self._kill_by, at)

    def usage(self) -> dict[str, Any] | None:
        """CPU percent (100 = one core) and RSS of this node's ranks and their children (not
        their aistack subreapers), None once none runs (a 0 % / 0 MB sample at the end);
        GPU utilization and memory of the GPUs Ray gave this agent (NVML, when present)."""
        import psutil
        import ray

        cache: dict[int, Any] = self.__dict__.setdefault("_ps", {})
        cpu, rss = 0.0, 0.0
        running = False
        for p in self._procs.values():
            if not isinstance(p, subprocess.Popen) or p.poll() is not None:
                continue
            running = True
            try:
                root = cache.setdefault(p.pid, psutil.Process(p.pid))
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for q in procs:
                seen = q.pid in cache
                q = cache.setdefault(q.pid, q)
                try:
                    if _is_subreaper(q, p):
                        continue  # aistack's (about 10 MB each, two per rank), not the job's
                    # psutil's first cpu_percent of a process is 0.0 by definition (it measures
                    # since the previous call): a process seen for the first time counts with
                    # its average since it started (the job's first sample read 0 % CPU)
                    now = q.cpu_percent(interval=None)
                    cpu += now if seen else _lifetime_cpu_percent(q)
                    rss += q.memory_info().rss / 2**20
                except psutil.Error:
                    continue
        if not running:
            return None
        out: dict[str, Any] = {
            "cpu_percent": cpu,
            "rss_mb": rss,
            "gpu_util": None,
            "gpu_mem_mb": None,
        }
        gpus = [int(g) for g in ray.get_gpu_ids() if str(g).isdigit()]
        if gpus:
            from aistack.compute.inventory import gpu_utilization

            out["gpu_util"], out["gpu_mem_mb"] = gpu_utilization(gpus)
        return out

    def signal(self, sig: int) -> None:
        self._signal_ranks(sig)


def _is_subreaper(q: Any, rank: subprocess.Popen[bytes]) -> bool:
    """Whether ``q`` is the rank's subreaper (its process or the copy it forks, both running
    the argv it was started with) rather than the rank's command (which the subreaper execs
    in its place where it cannot be one)."""
    if q.pid != rank.pid and q.ppid() != rank.pid:
        return False
    return bool(q.cmdline() == [str(a) for a in rank.args])  # type: ignore[union-attr]


def _lifetime_cpu_percent(q: Any) -> float:
    """``q``'s CPU use since it started (100 = one core)."""
    t = q.cpu_times()
    return 100.0 * (t.user + t.system) / max(0.01, time.time() - q.create_time())


class _Failed:
    """Stands in for a process that could not be started."""

    def __init__(self, code: int) -> None:
        self.returncode = code
        self.pid = -1

    def poll(self) -> int:
        return self.returncode


def stop_signal(spec: dict[str, Any]) -> int:
    """The signal that stops the job's ranks (cancel, preemption, max_runtime): the spec's
    ``stop_signal`` (``"SIGUSR1"``), SIGTERM for a spec from before it was recorded."""
    sig = getattr(signal, str(spec.get("stop_signal") or "SIGTERM"), None)
    return int(sig) if isinstance(sig, signal.Signals) else int(signal.SIGTERM)


class JobCoordinator:
    """Places the gang, starts the agents and ranks, supervises them (module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {
            "state": "starting",
            "reason": f"waiting for Ray to place {len(spec['bundles'])} bundle(s)",
            "exit_code": None,
            "nodes": [],
            "ips": [],
        }
        self._log = bytearray()
        self._log_base = 0  # offset of _log[0] in the job's whole output
        # each rank's last output lines (for a failure's reason) and the part of a line that a
        # chunk of the agents' output cut, per agent
        self._tails: dict[int, collections.deque[str]] = {}
        self._partial: dict[int, bytes] = {}
        self._cancel: float | None = None
        self._stop_sent = False  # the agents were told to stop (cancel, max_runtime, failure)
        self._agents: list[Any] = []
        self._pg: Any = None
        self._thread = threading.Thread(target=self._run_safe, daemon=True)
        self._thread.start()

    # called by the executor
    def status(self) -> dict[str, Any]:
        with self._lock:
            # "now": this host's clock, so the driver can put started_at on the server's clock
            return dict(self._status, now=time.time())

    def read_log(self, offset: int) -> tuple[bytes, int]:
        with self._lock:
            if offset > self._log_base:
                drop = min(offset - self._log_base, len(self._log))
                del self._log[:drop]
                self._log_base += drop
            start = max(0, offset - self._log_base)
            data = bytes(self._log[start : start + LOG_CHUNK])
            return data, self._log_base + start + len(data)

    def cancel(self, grace_s: float) -> None:
        """Stop the gang, SIGKILL ``grace_s`` after its stop signal. A second cancel may
        bring the SIGKILL forward, never postpone it: before the stop was sent, the shorter
        grace is kept; after it, the agents are told (a second cancel was ignored, and
        ``cancel --grace 2`` after ``--grace 60`` waited the 60 s)."""
        g = max(0.0, float(grace_s))
        with self._lock:
            sent = self._stop_sent
            self._cancel = g if self._cancel is None else min(self._cancel, g)
        if sent:
            for a in self._agents:
                a.hasten.remote(g)

    def signal(self, sig: int) -> None:
        for a in self._agents:
            a.signal.remote(sig)

    def usage(self) -> dict[str, Any] | None:
        import ray

        if not self._agents:
            return None
        try:
            parts = ray.get([a.usage.remote() for a in self._agents], timeout=10)
        except Exception:  # noqa: BLE001 - usage is best effort
            return None
        parts = [p for p in parts if p]  # agents whose ranks all ended: none
        if not parts:
            return None
        utils = [p["gpu_util"] for p in parts if p.get("gpu_util") is not None]
        mems = [p["gpu_mem_mb"] for p in parts if p.get("gpu_mem_mb") is not None]
        return {
            "cpu_percent": round(sum(p["cpu_percent"] for p in parts), 1),
            "rss_mb": round(sum(p["rss_mb"] for p in parts), 1),
            "gpu_util": sum(utils) / len(utils) if utils else None,
            "gpu_mem_mb": sum(mems) if mems else None,
        }

    def cleanup(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for a in self._agents:
            with contextlib.suppress(Exception):
                ray.kill(a)
        if self._pg is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self._pg)

    # the supervisor loop
    def _set(self, **kw: Any) -> None:
        with self._lock:
            if self._status["state"] in ("succeeded", "failed", "cancelled", "timeout", "lost"):
                return
            self._status.update(kw)

    def _append(self, data: bytes, agent: int = 0) -> None:
        if data:
            with self._lock:
                self._log += data
            self._keep_tails(data, agent)

    def _keep_tails(self, data: bytes, agent: int) -> None:
        """Keep each rank's last ``TAIL_LINES`` lines of output ("[rank N] text" lines)."""
        from aistack.launch.gang import TAIL_CHARS, TAIL_LINES

        *lines, rest = (self._partial.pop(agent, b"") + data).split(b"\n")
        if rest:
            self._partial[agent] = rest[-MAX_LINE_BYTES:]
        for raw in lines:
            m = _RANK_LINE.match(raw)
            if m is None:
                continue
            text = raw[m.end() :].decode("utf-8", "replace")[-TAIL_CHARS:]
            if text.strip():
                tail = self._tails.setdefault(int(m.group(1)), collections.deque(maxlen=TAIL_LINES))
                tail.append(text)

    def _failure(self, rank: int, code: int) -> str:
        """As :func:`aistack.launch.run_gang` words it: "rank 1 exited with code 7" (or "killed
        by SIGKILL"), then that rank's last output lines."""
        from aistack.launch.gang import rank_message

        return rank_message(rank, code, self._tails, [])

    def _drain(self) -> None:
        """Fetch what the agents still hold once every rank has exited, before the final state
        is set (the executor then removes the agents): a rank can write faster than one chunk
        per agent and pass, and its output's end was lost (a job that wrote 33 MB kept 16 MiB)."""
        import ray

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                results = ray.get([a.poll.remote() for a in self._agents], timeout=60)
            except Exception:  # noqa: BLE001 - an agent gone now: what it held is lost
                log.warning("could not fetch the rest of the output of %s", self.spec["job_id"])
                return
            for i, (_, data) in enumerate(results):
                self._append(data, i)
            if not any(data for _, data in results):
                return

    def _run_safe(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported through status()
            log.exception("coordinator of %s failed", self.spec.get("job_id"))
            self._set(state="failed", reason=f"aistack's Ray coordinator failed: {exc!r}")

    def _run(self) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        spec = self.spec
        bundles = spec["bundles"]
        kw: dict[str, Any] = {"strategy": spec["strategy"], "name": spec["pg_name"]}
        if spec.get("label_selectors"):
            kw["bundle_label_selector"] = spec["label_selectors"]
        self._pg = placement_group(bundles, **kw)
        waited = 0
        while True:
            ready, _ = ray.wait([self._pg.ready()], timeout=0.5)
            if ready:
                break
            if self._cancel is not None:
                self._set(state="cancelled", reason="cancelled while waiting for Ray to place it")
                return
            waited += 1
            if spec.get("label_selectors") and waited % 10 == 0:
                alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
                gone = [
                    sel["ray.io/node-id"]
                    for sel in spec["label_selectors"]
                    if sel["ray.io/node-id"] not in alive
                ]
                if gone:
                    self._set(
                        state="lost", reason=f"Ray node {gone[0][:12]} it was placed on is gone"
                    )
                    return
        self._set(reason="starting processes")
        agent_cls = ray.remote(NodeAgent)
        for i, b in enumerate(bundles):
            self._agents.append(
                agent_cls.options(
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        placement_group=self._pg, placement_group_bundle_index=i
                    ),
                    num_cpus=b.get("CPU", 0),
                    num_gpus=b.get("GPU", 0),
                    memory=b.get("memory"),
                    max_concurrency=4,
                    max_restarts=0,
                    name=f"{spec['pg_name']}-node{i}",
                ).remote()
            )
        try:
            infos = ray.get([a.info.remote() for a in self._agents], timeout=300)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            self._set(state="lost", reason=f"a node agent did not start: {exc}")
            return
        ips = [i["ip"] for i in infos]
        self._set(nodes=[i["node_id"] for i in infos], ips=ips)
        port = int(ray.get(self._agents[0].free_port.remote(), timeout=60))
        ranks = rank_envs(spec, ips, port)
        per_node: list[list[tuple[int, dict[str, str]]]] = [[] for _ in bundles]
        ppn = spec["procs_per_node"]
        for rank, env in ranks:
            node = rank // ppn
            env = {**spec["env"], **env, "AISTACK_RAY_NODE_ID": infos[node]["node_id"]}
            per_node[node].append((rank, env))
        ray.get(
            [
                a.start.remote(
                    spec["command"], spec.get("workdir"), per_node[i], spec.get("grace_s", 10.0)
                )
                for i, a in enumerate(self._agents)
            ],
            timeout=120,
        )
        started = time.monotonic()
        self._set(state="running", reason=None, started_at=time.time())
        self._supervise(started, infos)

    def _dead_agents(self, infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The agents (with their node info) that no longer answer."""
        import ray

        dead = []
        for a, info in zip(self._agents, infos, strict=True):
            try:
                ray.get(a.info.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - any failure to answer counts as dead
                dead.append(info)
        return dead

    def _supervise(self, started: float, infos: list[dict[str, Any]]) -> None:
        import ray

        spec = self.spec
        max_rt = spec.get("max_runtime_s")
        stopping: tuple[str, str, int | None] | None = None  # (final state, reason, exit code)
        failed_rank: int | None = None  # the first rank that failed
        stop_sent_at: float | None = None
        while True:
            try:
                results = ray.get([a.poll.remote() for a in self._agents], timeout=60)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                dead = self._dead_agents(infos)
                for a in self._agents:
                    with contextlib.suppress(Exception):
                        a.stop.remote(0.0, signal.SIGKILL)
                where = (
                    ", ".join(f"node {i['node_id'][:12]} at {i['ip']}" for i in dead) or "a node"
                )
                self._set(
                    state="lost",
                    reason=f"lost a Ray node ({where}) while the job ran",
                    lost_nodes=[i["node_id"] for i in dead],
                )
                return
            except ray.exceptions.GetTimeoutError:
                self._set(state="lost", reason="the node agents stopped answering for 60 s")
                return
            codes: dict[int, int | None] = {}
            for i, (c, data) in enumerate(results):
                codes.update(c)
                self._append(data, i)
            done = all(v is not None for v in codes.values())
            if done:
                self._drain()
            if stopping is None:
                failed = sorted((r, v) for r, v in codes.items() if v not in (None, 0))
                if failed:
                    failed_rank, code = failed[0]
                    stopping = ("failed", "", code)  # the reason once its output is all in
                elif self._cancel is not None:
                    stopping = ("cancelled", "cancelled through aistack", None)
                elif max_rt and time.monotonic() - started > max_rt:
                    # the local and Slurm executors' words, with max_runtime as given (3.5 s)
                    stopping = ("timeout", f"exceeded max_runtime of {float(max_rt):g} s", None)
                elif done:
                    self._set(state="succeeded", exit_code=0, reason=None)
                    return
                if stopping is not None and not done:
                    with self._lock:  # (a cancel now hastens the agents: see cancel)
                        self._stop_sent = True
                        grace = (
                            self._cancel if self._cancel is not None else spec.get("grace_s", 10.0)
                        )
                    for a in self._agents:
                        a.stop.remote(grace, stop_signal(spec))
                    stop_sent_at = time.monotonic()
            if stopping is not None and (
                done or (stop_sent_at and time.monotonic() - stop_sent_at > 120)
            ):
                state, reason, final_code = stopping
                if final_code is None and state == "failed":
                    final_code = 1
                if state != "failed" and done:
                    final_code = stopped_exit_code(codes)
                if state == "failed" and failed_rank is not None:
                    reason = self._failure(failed_rank, int(final_code or 1))
                self._set(state=state, reason=reason, exit_code=final_code)
                return
            time.sleep(0.3)


def stopped_exit_code(codes: dict[int, int | None]) -> int | None:
    """The exit code of a gang that a stop ended (cancel, preemption, max_runtime): -9 when the
    stop had to SIGKILL a rank (its stop signal did not end it within the grace period; the
    server then says so, as for the local executor), else the first rank's non-zero code
    (shell-style, 143 for SIGTERM), else 0. A stopped job had no exit code at all, so one
    SIGKILLed at the end of its grace period read as cancelled on its stop signal."""
    got = [c for _, c in sorted(codes.items()) if c is not None]
    if not got:
        return None
    if 128 + int(signal.SIGKILL) in got:
        return -int(signal.SIGKILL)
    return next((c for c in got if c != 0), 0)


def rank_envs(spec: dict[str, Any], ips: list[str], port: int) -> list[tuple[int, dict[str, str]]]:
    """(rank, env) for every process of the job; ``ips[i]`` is the node of bundle ``i``."""
    nodes, ppn = len(ips), spec["procs_per_node"]
    if not spec.get("distributed"):
        return [
            (
                r,
                {
                    "AISTACK_JOB_ID": spec["job_id"],
                    "AISTACK_RANK": str(r),
                    "AISTACK_WORLD_SIZE": str(nodes * ppn),
                },
            )
            for r in range(nodes * ppn)
        ]
    from aistack.launch import build_rank_envs
    from aistack.launch.env import job_base_env

    # placeholders keep hosts unique even when several Ray nodes share one IP
    hosts = [HOST_TOKEN.format(i) for i in range(nodes)]
    specs = build_rank_envs(
        spec["distributed"],
        hosts,
        ppn,
        port,
        spec["job_id"],
        # a user's OMP_NUM_THREADS stays the job's, as under the local executor
        base_env=job_base_env(spec.get("env") or {}),
        threads_per_proc=spec.get("threads_per_proc"),
    )

    def fill(v: str) -> str:
        return HOST_RE.sub(lambda m: ips[int(m.group(1))], v)

    return [(s.rank, {k: fill(v) for k, v in s.env.items()}) for s in specs]
