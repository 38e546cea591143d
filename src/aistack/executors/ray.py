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
  (MASTER_ADDR = the IP of the node holding bundle 0) and supervises the gang (both actors
  live in :mod:`aistack.executors.ray_actors`): the first
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
import threading
import time
from pathlib import Path
from typing import Any

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import BackendError, ConnectionFailed, ValidationError, require
from aistack.executors.base import ExecStatus, Executor, LaunchRequest, UsageSample
from aistack.executors.ray_actors import LOG_CHUNK, JobCoordinator

log = logging.getLogger(__name__)

_STD_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}
_INIT_LOCK = threading.Lock()


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
        if ray.is_initialized():
            return ray
        with _INIT_LOCK:  # the API and the scheduling loop may connect at the same moment
            if not ray.is_initialized():
                self._connect(ray)
        return ray

    def _connect(self, ray: Any) -> None:
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
            ray.remote(JobCoordinator).options(**opts).remote(spec)
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
            if len(data) < LOG_CHUNK:
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
