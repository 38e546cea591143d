"""The Ray executor: aistack's scheduler decides what runs and where; Ray places and runs it.

One job attempt becomes:

* a **placement group** with one bundle per node of the allocation (that node's GPUs, CPUs
  and memory). A one-node job uses STRICT_PACK; a multi-node gang STRICT_SPREAD (the ranks
  must be on different machines). When the allocation names Ray nodes (the names
  :meth:`RayExecutor.inventory` reports are Ray node ids) each bundle is pinned to its node
  with a ``ray.io/node-id`` label selector, so Ray honours aistack's placement;
* a detached **coordinator actor** (``aistack-job-<job>-<attempt>``, no CPU, on the head
  node when possible) that waits for the placement group, starts one **node agent actor**
  in each bundle, builds the rank environments with :func:`aistack.launch.build_rank_envs`
  (MASTER_ADDR = the IP of the node holding bundle 0) and supervises the gang: the first
  rank that fails stops the others; ``max_runtime_s`` is enforced; a dead agent (its node
  died) ends the job as ``lost`` so the server requeues it;
* each agent starts its node's ranks as subprocesses (own process group, the job's env plus
  the rank env, CUDA_VISIBLE_DEVICES as Ray assigned) and keeps their output.

Logs are pulled by :meth:`RayExecutor.poll` from the coordinator (which pulls them from the
agents) and appended to ``LaunchRequest.log_path``, so no shared filesystem is needed. The
coordinator is detached: it survives a server restart; the handle (``ray:<job_dir>``) plus
``ray.json`` in the job directory are enough to find it again. ``poll`` writes the final
status to ``ray_final.json`` and then removes the coordinator, its agents and the placement
group.

aistack must be importable on the Ray nodes (install it in the cluster's image, or pass a
``runtime_env`` to :class:`RayExecutor`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import BackendError, ConnectionFailed, ValidationError, require
from aistack.executors.base import ExecStatus, Executor, LaunchRequest, UsageSample

log = logging.getLogger(__name__)

_HOST_TOKEN = "__AISTACK_HOST_{}__"
_HOST_RE = re.compile(r"__AISTACK_HOST_(\d+)__")
_STD_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}
_LOG_CHUNK = 4 * 2**20


# --- actors (plain classes; wrapped with ray.remote when used) ---------------------------------


class _NodeAgent:
    """Runs one node's ranks as subprocesses and buffers their output."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

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
        self, command: str, workdir: str | None, ranks: list[tuple[int, dict[str, str]]]
    ) -> list[int]:
        pids = []
        for rank, env in ranks:
            try:
                p = subprocess.Popen(
                    ["/bin/sh", "-c", command],
                    cwd=workdir or None,
                    env={**os.environ, **env},
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
            pids.append(p.pid)
            t = threading.Thread(target=self._pump, args=(rank, p), daemon=True)
            t.start()
            self._threads.append(t)
        return pids

    def _pump(self, rank: int, p: subprocess.Popen[bytes]) -> None:
        assert p.stdout is not None
        prefix = f"[rank {rank}] ".encode()
        for line in iter(p.stdout.readline, b""):
            with self._lock:
                self._buf += prefix + (line if line.endswith(b"\n") else line + b"\n")

    def poll(self) -> tuple[dict[int, int | None], bytes]:
        codes = {r: p.poll() for r, p in self._procs.items()}
        if all(c is not None for c in codes.values()):
            for t in self._threads:
                t.join(timeout=2)
        with self._lock:
            data = bytes(self._buf[:_LOG_CHUNK])
            del self._buf[: len(data)]
        return {r: (128 - c if c is not None and c < 0 else c) for r, c in codes.items()}, data

    def stop(self, grace_s: float, sig: int = signal.SIGTERM) -> None:
        def _stop() -> None:
            for p in self._procs.values():
                if isinstance(p, subprocess.Popen) and p.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(p.pid, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(
                isinstance(p, subprocess.Popen) and p.poll() is None for p in self._procs.values()
            ):
                time.sleep(0.1)
            for p in self._procs.values():
                if isinstance(p, subprocess.Popen) and p.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(p.pid, signal.SIGKILL)

        threading.Thread(target=_stop, daemon=True).start()

    def usage(self) -> dict[str, Any]:
        """CPU percent (100 = one core) and RSS of this node's ranks and their children;
        GPU utilization and memory of the GPUs Ray gave this agent (NVML, when present)."""
        import psutil
        import ray

        cache: dict[int, Any] = self.__dict__.setdefault("_ps", {})
        cpu, rss = 0.0, 0.0
        for p in self._procs.values():
            if not isinstance(p, subprocess.Popen) or p.poll() is not None:
                continue
            try:
                root = cache.setdefault(p.pid, psutil.Process(p.pid))
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for q in procs:
                q = cache.setdefault(q.pid, q)
                try:
                    cpu += q.cpu_percent(interval=None)
                    rss += q.memory_info().rss / 2**20
                except psutil.Error:
                    continue
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
        for p in self._procs.values():
            if isinstance(p, subprocess.Popen) and p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)


class _Failed:
    """Stands in for a process that could not be started."""

    def __init__(self, code: int) -> None:
        self.returncode = code
        self.pid = -1

    def poll(self) -> int:
        return self.returncode


class _JobCoordinator:
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
        self._cancel: float | None = None
        self._agents: list[Any] = []
        self._pg: Any = None
        self._thread = threading.Thread(target=self._run_safe, daemon=True)
        self._thread.start()

    # called by the executor
    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    def read_log(self, offset: int) -> tuple[bytes, int]:
        with self._lock:
            if offset > self._log_base:
                drop = min(offset - self._log_base, len(self._log))
                del self._log[:drop]
                self._log_base += drop
            start = max(0, offset - self._log_base)
            data = bytes(self._log[start : start + _LOG_CHUNK])
            return data, self._log_base + start + len(data)

    def cancel(self, grace_s: float) -> None:
        self._cancel = float(grace_s)

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

    def _append(self, data: bytes) -> None:
        if data:
            with self._lock:
                self._log += data

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
        agent_cls = ray.remote(_NodeAgent)
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
        ranks = _rank_envs(spec, ips, port)
        per_node: list[list[tuple[int, dict[str, str]]]] = [[] for _ in bundles]
        ppn = spec["procs_per_node"]
        for rank, env in ranks:
            node = rank // ppn
            env = {**spec["env"], **env, "AISTACK_RAY_NODE_ID": infos[node]["node_id"]}
            per_node[node].append((rank, env))
        ray.get(
            [
                a.start.remote(spec["command"], spec.get("workdir"), per_node[i])
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
            for c, data in results:
                codes.update(c)
                self._append(data)
            done = all(v is not None for v in codes.values())
            if stopping is None:
                failed = sorted((r, v) for r, v in codes.items() if v not in (None, 0))
                if failed:
                    rank, code = failed[0]
                    stopping = ("failed", f"rank {rank} exited with code {code}", code)
                elif self._cancel is not None:
                    stopping = ("cancelled", "cancelled through aistack", None)
                elif max_rt and time.monotonic() - started > max_rt:
                    stopping = ("timeout", f"ran past max_runtime ({max_rt:.0f} s)", None)
                elif done:
                    self._set(state="succeeded", exit_code=0, reason=None)
                    return
                if stopping is not None and not done:
                    grace = self._cancel if self._cancel is not None else spec.get("grace_s", 10.0)
                    for a in self._agents:
                        a.stop.remote(grace)
                    stop_sent_at = time.monotonic()
            if stopping is not None and (
                done or (stop_sent_at and time.monotonic() - stop_sent_at > 120)
            ):
                state, reason, code = stopping
                if code is None and state == "failed":
                    code = 1
                self._set(state=state, reason=reason, exit_code=code)
                return
            time.sleep(0.3)


def _rank_envs(spec: dict[str, Any], ips: list[str], port: int) -> list[tuple[int, dict[str, str]]]:
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

    # placeholders keep hosts unique even when several Ray nodes share one IP
    hosts = [_HOST_TOKEN.format(i) for i in range(nodes)]
    specs = build_rank_envs(
        spec["distributed"],
        hosts,
        ppn,
        port,
        spec["job_id"],
        threads_per_proc=spec.get("threads_per_proc"),
    )

    def fill(v: str) -> str:
        return _HOST_RE.sub(lambda m: ips[int(m.group(1))], v)

    return [(s.rank, {k: fill(v) for k, v in s.env.items()}) for s in specs]


# --- the executor -------------------------------------------------------------------------------


@contextlib.contextmanager
def loopback_bootstrap() -> Any:
    """Keep 127.0.0.1 as 127.0.0.1 while connecting to a cluster bound to loopback.

    ``ray.init(address="127.0.0.1:port")`` rewrites a loopback address to the machine's
    outward IP, which a cluster bound to 127.0.0.1 (tests, a laptop) does not listen on.
    """
    from ray._private import services

    orig = services.resolve_ip_for_localhost

    def _keep(host: str) -> str:
        return "127.0.0.1" if host in ("localhost", "127.0.0.1") else orig(host)

    services.resolve_ip_for_localhost = _keep
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = orig


def _is_loopback(address: str | None) -> bool:
    return bool(address) and str(address).split(":")[0] in ("127.0.0.1", "localhost")


class RayExecutor(Executor):
    """Run aistack jobs on a Ray cluster (see the module docstring).

    ``address``: ``"auto"`` (the cluster this machine belongs to), ``"host:port"`` of the
    GCS, or ``"ray://host:10001"`` (Ray client). When this process is already connected to
    Ray (``ray.is_initialized()``) that connection is used.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = "auto",
        *,
        namespace: str = "aistack",
        strategy: str | None = None,
        pin_nodes: bool = True,
        runtime_env: dict[str, Any] | None = None,
        call_timeout_s: float = 30.0,
    ) -> None:
        if strategy is not None and strategy not in (
            "PACK",
            "SPREAD",
            "STRICT_PACK",
            "STRICT_SPREAD",
        ):
            raise ValidationError(
                f"strategy: {strategy!r} is not a Ray placement strategy",
                hint="use PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, or leave it unset",
            )
        self.address = address
        self.namespace = namespace
        self.strategy = strategy
        self.pin_nodes = pin_nodes
        self.runtime_env = runtime_env
        self.call_timeout_s = call_timeout_s
        # nodes a job lost recently: Ray may still list them as alive for a while
        self._dead_nodes: dict[str, float] = {}

    def _known_dead(self) -> set[str]:
        now = time.time()
        self._dead_nodes = {n: t for n, t in self._dead_nodes.items() if now - t < 600}
        return set(self._dead_nodes)

    # -- connection ------------------------------------------------------------------------
    def _ray(self) -> Any:
        ray = require("ray", extra="ray")
        if not ray.is_initialized():
            kw: dict[str, Any] = dict(
                address=self.address,
                namespace=self.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
                ignore_reinit_error=True,
            )
            if self.runtime_env:
                kw["runtime_env"] = self.runtime_env
            try:
                if _is_loopback(self.address):
                    with loopback_bootstrap():
                        ray.init(_node_ip_address="127.0.0.1", **kw)
                else:
                    ray.init(**kw)
            except (ConnectionError, RuntimeError) as exc:
                raise ConnectionFailed(
                    f"cannot connect to the Ray cluster at {self.address!r}: {exc}",
                    hint="start one with `ray start --head` or set AISTACK_RAY_ADDRESS=host:port",
                ) from exc
        return ray

    # -- contract ---------------------------------------------------------------------------
    def inventory(self) -> list[Node]:
        ray = self._ray()
        out: list[Node] = []
        dead = self._known_dead()
        for n in ray.nodes():
            if not n.get("Alive") or n["NodeID"] in dead:
                continue
            res: dict[str, float] = n.get("Resources", {})
            node_id = n["NodeID"]
            acc = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
            ngpu = int(res.get("GPU", 0))
            custom = {
                k: v
                for k, v in res.items()
                if k not in _STD_RESOURCES
                and not k.startswith("node:")
                and not k.startswith("accelerator_type:")
            }
            labels = {
                "ray_node_id": node_id,
                "hostname": str(n.get("NodeManagerHostname", "")),
                "head": "true" if "node:__internal_head__" in res else "false",
            }
            if custom:
                labels["resources"] = json.dumps(custom, sort_keys=True)
            if acc:
                labels["accelerator_type"] = acc
            out.append(
                Node(
                    name=node_id,
                    cpus=int(res.get("CPU", 0)),
                    memory_mb=int(res.get("memory", 0) // 2**20),
                    gpus=tuple(
                        GpuDevice(
                            index=i,
                            uuid=f"ray-{node_id[:12]}-gpu{i}",
                            name=acc or "gpu",
                            memory_mb=0,
                        )
                        for i in range(ngpu)
                    ),
                    address=str(n.get("NodeManagerAddress", "")),
                    labels=labels,
                )
            )
        return out

    def plan(self, req: LaunchRequest) -> dict[str, Any]:
        """The coordinator's spec for this request (pure, for tests and logs)."""
        allocs = list(req.allocation.nodes.items())
        if not allocs:
            allocs = [("", None)]  # type: ignore[list-item]
        bundles: list[dict[str, float]] = []
        for _, a in allocs:
            b: dict[str, float] = {"CPU": float(max(1, len(a.cpus))) if a else 1.0}
            if a and a.gpus:
                b["GPU"] = float(len(a.gpus))
            if a and a.memory_mb:
                b["memory"] = float(a.memory_mb * 2**20)
            bundles.append(b)
        nodes = len(bundles)
        gpus = int(bundles[0].get("GPU", 0))
        if req.procs_per_node is not None and req.procs_per_node < 1:
            raise ValidationError(f"procs_per_node: must be at least 1, got {req.procs_per_node}")
        ppn = req.procs_per_node or (gpus if req.distributed and gpus else 1)
        strategy = self.strategy or ("STRICT_SPREAD" if nodes > 1 else "STRICT_PACK")
        node_names = [n for n, _ in allocs]
        selectors = None
        if self.pin_nodes and all(re.fullmatch(r"[0-9a-f]{56}", n or "") for n in node_names):
            selectors = [{"ray.io/node-id": n} for n in node_names]
        if not req.command or not req.command.strip():
            raise ValidationError("command: empty command", hint="e.g. command: python train.py")
        return {
            "job_id": req.job_id,
            "attempt": req.attempt,
            "command": req.command,
            "workdir": req.workdir,
            "env": {str(k): str(v) for k, v in req.env.items()},
            "bundles": bundles,
            "strategy": strategy,
            "label_selectors": selectors,
            "procs_per_node": ppn,
            "distributed": req.distributed,
            "threads_per_proc": max(1, int(bundles[0]["CPU"]) // ppn),
            "max_runtime_s": req.max_runtime_s,
            "grace_s": float(req.env.get("AISTACK_GRACE_S", 10.0)),
            "pg_name": f"aistack-{req.job_id}-{req.attempt}",
        }

    def launch(self, req: LaunchRequest) -> str:
        spec = self.plan(req)
        ray = self._ray()
        if spec["label_selectors"]:
            alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")} - self._known_dead()
            gone = [
                s["ray.io/node-id"]
                for s in spec["label_selectors"]
                if s["ray.io/node-id"] not in alive
            ]
            if gone:
                # the scheduler's inventory is stale (a node died): let Ray place the gang
                log.warning(
                    "job %s: Ray node %s is gone; letting Ray place the job",
                    req.job_id,
                    gone[0][:12],
                )
                spec["label_selectors"] = None
        req.job_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("ray_final.json", "ray_log_offset"):
            (req.job_dir / stale).unlink(missing_ok=True)
        name = f"aistack-job-{req.job_id}-{req.attempt}"
        opts: dict[str, Any] = dict(
            name=name,
            namespace=self.namespace,
            lifetime="detached",
            num_cpus=0,
            max_concurrency=8,
            max_restarts=0,
        )
        head = next(
            (
                n["NodeID"]
                for n in ray.nodes()
                if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})
            ),
            None,
        )
        if head:  # the coordinator lives on the head node: it dies only with the cluster
            opts["resources"] = {"node:__internal_head__": 0.001}
        try:
            ray.remote(_JobCoordinator).options(**opts).remote(spec)
        except ValueError as exc:  # name taken: this attempt was already launched
            raise BackendError(
                f"job {req.job_id} attempt {req.attempt} is already running on Ray: {exc}"
            ) from exc
        meta = {
            "coordinator": name,
            "namespace": self.namespace,
            "job_id": req.job_id,
            "attempt": req.attempt,
        }
        (req.job_dir / "ray.json").write_text(json.dumps(meta))
        log.info(
            "job %s attempt %s → Ray coordinator %s (%s)",
            req.job_id,
            req.attempt,
            name,
            spec["strategy"],
        )
        return f"ray:{req.job_dir}"

    @staticmethod
    def _job_dir(handle: str) -> Path:
        if not handle.startswith("ray:") or len(handle) < 5:
            raise ValidationError(
                f"not a Ray executor handle: {handle!r}", hint="expected ray:<job_dir>"
            )
        return Path(handle[4:])

    def _coordinator(self, job_dir: Path) -> Any | None:
        ray = self._ray()
        try:
            meta = json.loads((job_dir / "ray.json").read_text())
        except (OSError, ValueError):
            return None
        try:
            return ray.get_actor(
                meta["coordinator"], namespace=meta.get("namespace", self.namespace)
            )
        except ValueError:
            return None

    def _finish(self, job_dir: Path, st: ExecStatus) -> ExecStatus:
        data = {"state": st.state, "exit_code": st.exit_code, "reason": st.reason, "node": st.node}
        tmp = job_dir / "ray_final.json.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, job_dir / "ray_final.json")
        return st

    def _pull_logs(self, coord: Any, job_dir: Path, log_path: Path) -> None:
        ray = self._ray()
        off_file = job_dir / "ray_log_offset"
        try:
            offset = int(off_file.read_text())
        except (OSError, ValueError):
            offset = 0
        for _ in range(64):
            data, nxt = ray.get(coord.read_log.remote(offset), timeout=self.call_timeout_s)
            if data:
                with log_path.open("ab") as fh:
                    fh.write(data)
            if nxt != offset:
                off_file.write_text(str(nxt))
            if len(data) < _LOG_CHUNK:
                return
            offset = nxt

    def poll(self, handle: str) -> ExecStatus:
        job_dir = self._job_dir(handle)
        final = job_dir / "ray_final.json"
        if final.exists():
            d = json.loads(final.read_text())
            return ExecStatus(
                state=d["state"],
                exit_code=d.get("exit_code"),
                reason=d.get("reason"),
                node=d.get("node"),
            )
        ray = self._ray()
        coord = self._coordinator(job_dir)
        if coord is None:
            return self._finish(
                job_dir,
                ExecStatus(
                    state="lost",
                    reason="its Ray coordinator is gone (its node died or the Ray cluster restarted)",
                ),
            )
        log_path = job_dir / "output.log"
        try:
            st = ray.get(coord.status.remote(), timeout=self.call_timeout_s)
            self._pull_logs(coord, job_dir, log_path)
        except ray.exceptions.RayActorError as exc:
            return self._finish(
                job_dir, ExecStatus(state="lost", reason=f"its Ray coordinator died: {exc}")
            )
        except ray.exceptions.GetTimeoutError:
            return ExecStatus(state="running", reason="the Ray coordinator is slow to answer")
        node = ",".join(n[:12] for n in st.get("nodes") or []) or None
        status = ExecStatus(
            state=st["state"], exit_code=st.get("exit_code"), reason=st.get("reason"), node=node
        )
        for n in st.get("lost_nodes") or []:
            self._dead_nodes[n] = time.time()
        if status.final:
            with contextlib.suppress(Exception):
                ray.get(coord.cleanup.remote(), timeout=self.call_timeout_s)
            with contextlib.suppress(Exception):
                ray.kill(coord)
            return self._finish(job_dir, status)
        return status

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        job_dir = self._job_dir(handle)
        if (job_dir / "ray_final.json").exists():
            return
        coord = self._coordinator(job_dir)
        if coord is None:
            self._finish(
                job_dir,
                ExecStatus(
                    state="cancelled", reason="cancelled; its Ray coordinator was already gone"
                ),
            )
            return
        coord.cancel.remote(grace_s)

    def signal(self, handle: str, sig: int) -> None:
        coord = self._coordinator(self._job_dir(handle))
        if coord is None:
            raise BackendError(f"cannot signal {handle}: its Ray coordinator is gone")
        coord.signal.remote(int(sig))

    def usage(self, handle: str) -> UsageSample | None:
        """The gang's resource use summed over its nodes (None when not running)."""
        job_dir = self._job_dir(handle)
        if (job_dir / "ray_final.json").exists():
            return None
        coord = self._coordinator(job_dir)
        if coord is None:
            return None
        try:
            u = self._ray().get(coord.usage.remote(), timeout=self.call_timeout_s)
        except Exception:  # noqa: BLE001 - usage is best effort
            return None
        if not u:
            return None
        return UsageSample(
            t=time.time(),
            cpu_percent=u["cpu_percent"],
            rss_mb=u["rss_mb"],
            gpu_util=u["gpu_util"],
            gpu_mem_mb=u["gpu_mem_mb"],
        )

    def job_nodes(self, handle: str) -> list[str]:
        """The Ray node ids the job's bundles landed on (rank 0's node first)."""
        coord = self._coordinator(self._job_dir(handle))
        if coord is None:
            return []
        return list(
            self._ray().get(coord.status.remote(), timeout=self.call_timeout_s).get("nodes") or []
        )
