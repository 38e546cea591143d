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
  the rank env, CUDA_VISIBLE_DEVICES as Ray assigned) and keeps their output. A reaper
  process per agent (:mod:`aistack.executors.rank_reaper`) ends the ranks when their agent
  dies, however it dies, so a lost node leaves no training processes behind.

Logs are pulled by :meth:`RayExecutor.poll` from the coordinator (which pulls them from the
agents) and appended to ``LaunchRequest.log_path``, so no shared filesystem is needed. The
coordinator is detached: it survives a server restart; the handle (``ray:<job_dir>``) plus
``ray.json`` in the job directory are enough to find it again. ``poll`` writes the final
status to ``ray_final.json`` and then removes the coordinator, its agents and the placement
group.

**The cluster can go away; the server stays.** This process never connects to Ray itself:
the Ray driver runs in a child process (:mod:`aistack.executors.ray_connection` and
:mod:`aistack.executors.ray_driver`), because Ray ends a driver process whose cluster is gone
for ``RAY_gcs_rpc_server_reconnect_timeout_s`` and a driver's calls hang until then. Every call
has a timeout; while the cluster is unreachable:

* :meth:`RayExecutor.unavailable_reason` says which cluster, since when, and how to fix it;
  :meth:`~RayExecutor.inventory` offers no nodes, so new jobs stay queued;
* calls fail at once instead of waiting: :meth:`~RayExecutor.poll` reports a job's last known
  state with that reason; after ``lost_after_s`` (default 90 s, longer than the 60 s after
  which Ray's own raylets and workers give up on a dead GCS) the job is ``lost``, which the
  server requeues; a job launched meanwhile is ``lost`` at once (not started), and a cancel
  is kept (merged with any other, its SIGKILL deadline the soonest) and sent when the cluster
  answers again, with the grace period left until that deadline;
* the link retries in the background; when the cluster answers again (same address, e.g.
  restarted) a fresh driver connects, coordinators of jobs given up meanwhile are removed,
  and queued jobs run.

Settings (constructor arguments; the server passes its :class:`aistack.settings.Settings`, i.e.
the environment): ``AISTACK_RAY_LOST_AFTER_S`` (default 90 s), ``AISTACK_RAY_HEALTH_INTERVAL_S``
(how often the link is checked, default 5 s) and ``AISTACK_RAY_RETRY_INTERVAL_S`` (reconnect
attempts, default 5 s, backing off to 60 s while connecting fails); a bad value fails the
server's start with the variable's name.

aistack must be importable on the Ray nodes (install it in the cluster's image, or pass a
``runtime_env`` to :class:`RayExecutor`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import BackendError, ConnectionFailed, MissingDependency, ValidationError
from aistack.executors.base import (
    ExecStatus,
    Executor,
    LaunchRequest,
    UsageSample,
    stop_grace_s,
)
from aistack.executors.ray_connection import RayConnection
from aistack.executors.ray_driver import loopback_bootstrap
from aistack.executors.supervisor import (
    finite_seconds,
    merge_stop_request,
    stop_deadline,
    write_json_atomic,
)
from aistack.spec import grace_s_from_env

__all__ = ["RayExecutor", "loopback_bootstrap"]

log = logging.getLogger(__name__)

_STD_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}
# in the job directory: every stop asked for, merged (kind, reason, SIGKILL deadline: see
# supervisor.merge_stop_request); and the stop kept while the cluster was unreachable, sent
# when it answers (the same record, as it stood then)
_STOP_FILE = "ray_stop.json"
_KEPT_FILE = "ray_cancel.json"
_LEGACY_PREEMPT_FILE = "ray_preempt.json"  # an earlier aistack's record of a preemption
_FINAL = ("succeeded", "failed", "cancelled", "timeout", "lost")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValidationError(
            f"{name}={raw!r} is not a number of seconds", hint=f"e.g. {name}={default:g}"
        ) from None


# host:port of a GCS, ray://host[:port] of a Ray Client server (a host name, IPv4 or [IPv6])
_ADDRESS = re.compile(r"(?P<client>ray://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+)(?::(?P<port>\d+))?")


def _check_address(address: str) -> str:
    """``address`` when Ray can dial it; ValidationError, with the forms, when it cannot (a
    malformed address started the server anyway, queued jobs waiting on "Invalid address
    format", and the dashboard's http://…:8265 of Ray job submission hung until Ray's
    timeout)."""
    if address == "auto":
        return address
    m = _ADDRESS.fullmatch(address.strip())
    port = m and m.group("port")
    if m is None or (port is None and not m.group("client")) or not 0 < int(port or 1) < 65536:
        said = f"AISTACK_RAY_ADDRESS={address!r} is not a Ray cluster's address"
        if address.startswith(("http://", "https://")):
            said += " (http:// is the dashboard's, for `ray job submit`)"
        raise ValidationError(
            said,
            hint="write host:port of the cluster's GCS (e.g. 10.0.0.10:6379, as given to "
            "`ray start --address`), ray://host:10001 for its Ray Client server, or auto",
        )
    return address.strip()


class RayExecutor(Executor):
    """Run aistack jobs on a Ray cluster (see the module docstring).

    ``address``: ``"auto"`` (the cluster this machine belongs to, looked up as Ray does on
    each connection attempt: ``RAY_ADDRESS``, else the latest cluster started on this
    machine; see :func:`aistack.executors.ray_driver.resolve_address`), ``"host:port"`` of
    the GCS, or ``"ray://host:10001"`` (Ray client). The connection is made on first use, by a
    driver process of its own (also when this process is connected to Ray itself).
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
        lost_after_s: float | None = None,
        health_interval_s: float | None = None,
        retry_interval_s: float | None = None,
        connect_timeout_s: float = 60.0,
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
        self.address = _check_address(address or "auto")
        self.namespace = namespace
        self.strategy = strategy
        self.pin_nodes = pin_nodes
        self.runtime_env = runtime_env
        self.call_timeout_s = call_timeout_s
        self.lost_after_s = (
            lost_after_s
            if lost_after_s is not None
            else _env_float("AISTACK_RAY_LOST_AFTER_S", 90.0)
        )
        self.health_interval_s = (
            health_interval_s
            if health_interval_s is not None
            else _env_float("AISTACK_RAY_HEALTH_INTERVAL_S", 5.0)
        )
        self.retry_interval_s = (
            retry_interval_s
            if retry_interval_s is not None
            else _env_float("AISTACK_RAY_RETRY_INTERVAL_S", 5.0)
        )
        self.connect_timeout_s = connect_timeout_s
        self._link: RayConnection | None = None
        self._link_lock = threading.Lock()
        # nodes a job lost recently: Ray may still list them as alive for a while
        self._dead_nodes: dict[str, float] = {}
        # coordinators of jobs given up while the cluster was unreachable: removed once it
        # answers again, so a job requeued meanwhile does not run twice
        self._to_reap: dict[str, str] = {}
        self._last_state: dict[str, str] = {}  # handle -> last state Ray reported
        # a job's stop record is read, merged, written and sent (or kept) by one thread at a
        # time; a lock per job: a stop waiting on an unreachable cluster (up to the call's
        # timeout) held up every other job's stop behind one executor-wide lock
        self._stop_locks: dict[str, threading.RLock] = {}
        self._stop_locks_guard = threading.Lock()

    def _stop_lock(self, job_dir: Path) -> threading.RLock:
        with self._stop_locks_guard:
            return self._stop_locks.setdefault(str(job_dir), threading.RLock())

    def _known_dead(self) -> set[str]:
        now = time.time()
        self._dead_nodes = {n: t for n, t in self._dead_nodes.items() if now - t < 600}
        return set(self._dead_nodes)

    # -- connection ------------------------------------------------------------------------
    @property
    def link(self) -> RayConnection:
        """The connection to the cluster (made on first use)."""
        with self._link_lock:
            if self._link is None:
                if importlib.util.find_spec("ray") is None:
                    raise MissingDependency("ray", extra="ray")
                self._link = RayConnection(
                    self.address,
                    namespace=self.namespace,
                    runtime_env=self.runtime_env,
                    health_interval_s=self.health_interval_s,
                    health_timeout_s=max(5.0, 2 * self.health_interval_s),
                    retry_interval_s=self.retry_interval_s,
                    connect_timeout_s=self.connect_timeout_s,
                    on_reconnect=self._reap_leftovers,
                )
            return self._link

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        # the driver's own Ray timeouts come first; this one covers a hung driver
        return self.link.call(method, *args, timeout=(timeout or self.call_timeout_s) + 5.0)

    def unavailable_reason(self) -> str | None:
        """Why the cluster cannot be used now (which, since when, how to fix it), or None.
        The scheduler shows it as the pending reason of queued jobs."""
        return self._link.unavailable_reason() if self._link is not None else None

    def _reap_leftovers(self) -> None:
        for name, ns in list(self._to_reap.items()):
            try:
                if self._call("finish", name, ns, self.call_timeout_s):
                    log.warning(
                        "removed Ray coordinator %s of a job given up during an outage", name
                    )
            except ConnectionFailed:
                return
            except BackendError as exc:
                log.warning("could not remove Ray coordinator %s: %s", name, exc)
            self._to_reap.pop(name, None)

    # -- contract ---------------------------------------------------------------------------
    def inventory(self) -> list[Node]:
        try:
            raw = self._call("nodes")
        except ConnectionFailed as exc:
            log.debug("no Ray nodes: %s", exc)
            return []
        out: list[Node] = []
        dead = self._known_dead()
        for n in raw:
            if not n.get("Alive") or n["NodeID"] in dead:
                continue
            res: dict[str, float] = n.get("Resources") or {}
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
                "hostname": str(n.get("NodeManagerHostname") or ""),
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
                    address=str(n.get("NodeManagerAddress") or ""),
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
            "grace_s": grace_s_from_env(req.env),
            "stop_signal": req.stop_signal,  # what a cancel, preemption or timeout sends
            "pg_name": f"aistack-{req.job_id}-{req.attempt}",
        }

    def launch(self, req: LaunchRequest) -> str:
        spec = self.plan(req)
        req.job_dir.mkdir(parents=True, exist_ok=True)
        for stale in (
            "ray_final.json",
            "ray_log_offset",
            _KEPT_FILE,
            _STOP_FILE,
            _LEGACY_PREEMPT_FILE,
        ):
            (req.job_dir / stale).unlink(missing_ok=True)
        name = f"aistack-job-{req.job_id}-{req.attempt}"
        meta = {
            "coordinator": name,
            "namespace": self.namespace,
            "job_id": req.job_id,
            "attempt": req.attempt,
        }
        (req.job_dir / "ray.json").write_text(json.dumps(meta))
        handle = f"ray:{req.job_dir}"
        try:
            res = self._call("launch", spec, name, sorted(self._known_dead()))
        except ConnectionFailed as exc:
            # not started: lost at once, so the server requeues it (a failure would not be)
            self._finish(req.job_dir, ExecStatus(state="lost", reason=f"not started: {exc}"))
            return handle
        except BackendError as exc:
            if "already running" in str(exc):
                raise
            # no answer: it may have started after all; remove it once Ray answers again
            self._to_reap[name] = self.namespace
            self._finish(req.job_dir, ExecStatus(state="lost", reason=f"not started: {exc}"))
            return handle
        if res.get("unpinned"):
            log.warning(
                "job %s: Ray node %s is gone; letting Ray place the job",
                req.job_id,
                str(res["unpinned"])[:12],
            )
        log.info(
            "job %s attempt %s → Ray coordinator %s (%s)",
            req.job_id,
            req.attempt,
            name,
            spec["strategy"],
        )
        return handle

    def handle_in(self, job_dir: Path) -> str | None:
        return f"ray:{job_dir}" if (job_dir / "ray.json").exists() else None

    @staticmethod
    def _job_dir(handle: str) -> Path:
        if not handle.startswith("ray:") or len(handle) < 5:
            raise ValidationError(
                f"not a Ray executor handle: {handle!r}", hint="expected ray:<job_dir>"
            )
        return Path(handle[4:])

    def _meta(self, job_dir: Path) -> tuple[str, str] | None:
        """(coordinator name, namespace) of the job in ``job_dir``."""
        try:
            meta = json.loads((job_dir / "ray.json").read_text())
            return str(meta["coordinator"]), str(meta.get("namespace") or self.namespace)
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def _final(job_dir: Path) -> ExecStatus | None:
        try:
            d = json.loads((job_dir / "ray_final.json").read_text())
        except (OSError, ValueError):
            return None
        return ExecStatus(
            state=d["state"],
            exit_code=d.get("exit_code"),
            reason=d.get("reason"),
            node=d.get("node"),
        )

    def _finish(self, job_dir: Path, st: ExecStatus) -> ExecStatus:
        if st.state == "cancelled":
            # stopped by preempt() (and by no cancel: a cancel stays a cancel): said so, with
            # the scheduler's reason (as local does)
            stop = _read_json(job_dir / _STOP_FILE)
            if stop is None:
                legacy = _read_json(job_dir / _LEGACY_PREEMPT_FILE)
                stop = None if legacy is None else {**legacy, "kind": "preempt"}
            if stop is not None and stop.get("kind") == "preempt":
                st = replace(st, state="preempted", reason=str(stop.get("reason") or "preempted"))
        data = {"state": st.state, "exit_code": st.exit_code, "reason": st.reason, "node": st.node}
        tmp = job_dir / "ray_final.json.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, job_dir / "ray_final.json")
        with self._stop_locks_guard:  # (a stop of a final job returns before its lock)
            self._stop_locks.pop(str(job_dir), None)
        return st

    def _unreachable(self, handle: str, job_dir: Path, name: str, ns: str) -> ExecStatus:
        """A job's status while its cluster cannot be reached: its last known state, then
        ``lost`` once the cluster has been away for ``lost_after_s``."""
        link = self.link
        reason = link.unavailable_reason() or f"the Ray cluster at {self.address} is unreachable"
        down = link.down_for() or 0.0
        if down >= self.lost_after_s:
            self._to_reap[name] = ns
            self._last_state.pop(handle, None)
            return self._finish(
                job_dir,
                ExecStatus(
                    state="lost",
                    reason=f"{reason}; given up after {self.lost_after_s:g} s without its cluster",
                ),
            )
        last = self._last_state.get(handle, "starting")
        return ExecStatus(state=last, reason=reason)  # type: ignore[arg-type]

    def poll(self, handle: str) -> ExecStatus:
        job_dir = self._job_dir(handle)
        final = self._final(job_dir)
        if final is not None:
            return final
        meta = self._meta(job_dir)
        if meta is None:
            return self._finish(
                job_dir,
                ExecStatus(state="lost", reason="its Ray coordinator is unknown (no ray.json)"),
            )
        name, ns = meta
        off_file = job_dir / "ray_log_offset"
        try:
            offset = int(off_file.read_text())
        except (OSError, ValueError):
            offset = 0
        try:
            res = self._call("poll_job", name, ns, offset, self.call_timeout_s)
        except ConnectionFailed:
            return self._unreachable(handle, job_dir, name, ns)
        except BackendError:
            return ExecStatus(
                state=self._last_state.get(handle, "starting"),  # type: ignore[arg-type]
                reason="the Ray coordinator is slow to answer",
            )
        if res.get("gone"):
            self._last_state.pop(handle, None)
            return self._finish(
                job_dir,
                ExecStatus(
                    state="lost",
                    reason="its Ray coordinator is gone (its node died or the Ray cluster restarted)",
                ),
            )
        if res.get("died"):
            self._last_state.pop(handle, None)
            return self._finish(
                job_dir, ExecStatus(state="lost", reason=f"its Ray coordinator died: {res['died']}")
            )
        if res.get("slow"):
            return ExecStatus(
                state=self._last_state.get(handle, "starting"),  # type: ignore[arg-type]
                reason="the Ray coordinator is slow to answer",
            )
        if res["log"]:
            with (job_dir / "output.log").open("ab") as fh:
                fh.write(res["log"])
        if res["offset"] != offset:
            off_file.write_text(str(res["offset"]))
        st = res["status"]
        node = ",".join(n[:12] for n in st.get("nodes") or []) or None
        began = st.get("started_at")  # when the coordinator started the ranks (Ray placed it)
        status = ExecStatus(
            state=st["state"],
            exit_code=st.get("exit_code"),
            reason=st.get("reason"),
            node=node,
            started_at=float(began) if isinstance(began, int | float) else None,
        )
        for n in st.get("lost_nodes") or []:
            self._dead_nodes[n] = time.time()
        if status.final and res.get("more"):
            # its output is not all here yet: the coordinator (removed at the end) holds the
            # rest, fetched by the next polls before the job ends here
            return ExecStatus(
                state=self._last_state.get(handle, "running"),  # type: ignore[arg-type]
                reason="fetching the rest of its output",
            )
        if status.final:
            self._last_state.pop(handle, None)
            with contextlib.suppress(BackendError):
                self._call("finish", name, ns, self.call_timeout_s)
            return self._finish(job_dir, status)
        self._last_state[handle] = status.state
        self._send_kept_cancel(job_dir, name, ns)
        return status

    def _send_kept_cancel(self, job_dir: Path, name: str, ns: str) -> None:
        """Send a stop asked for while the cluster was unreachable, with the grace period
        left until its SIGKILL deadline (0 s once that passed: the job is killed at once, as
        the Slurm executor scancels a job whose deadline passed while slurmctld was down)."""
        kept = job_dir / _KEPT_FILE
        if not kept.exists():
            return
        with self._stop_lock(job_dir):
            req = _read_kept(kept)
            if req is None:  # gone meanwhile (sent by a cancel), or unreadable
                if kept.exists():
                    log.warning("could not read the kept cancel of %s in %s", name, kept)
                    kept.unlink(missing_ok=True)
                return
            now = time.time()
            grace = max(0.0, stop_deadline(req, now, 10.0) - now)
            try:
                self._call("cancel", name, ns, grace)
            except BackendError as exc:
                log.warning("could not send the kept cancel of %s: %s", name, exc)
                return
            kept.unlink(missing_ok=True)

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        self._stop(handle, grace_s, "cancel", None)

    def preempt(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        """A cancel that ends the job as ``preempted`` with ``reason`` (the scheduler's, e.g.
        "job X (priority 10) outranks it"); it read "cancelled through aistack"."""
        self._stop(handle, grace_s, "preempt", reason)

    def _stop(self, handle: str, grace_s: float, kind: str, reason: str | None) -> None:
        """Stop the job: its coordinator sends the stop signal, then SIGKILL ``grace_s``
        later. A second stop is merged with the first (supervisor.merge_stop_request, the
        local executor's rule): the first SIGKILL deadline stands unless this one is sooner,
        and a cancel is never turned into a preemption (the job would be requeued). While
        the cluster is unreachable the merged stop is kept in ``ray_cancel.json`` and sent
        when it answers, with the grace period left until that deadline (a second kept cancel
        overwrote the first: ``--grace 60`` after ``--grace 2`` waited the 60 s; and a
        preemption after a cancel, or a cancel after one, ended the job ``preempted``)."""
        g = stop_grace_s(grace_s)
        job_dir = self._job_dir(handle)
        if (job_dir / "ray_final.json").exists():
            return
        with self._stop_lock(job_dir):
            now = time.time()
            rec = merge_stop_request(
                _read_json(job_dir / _STOP_FILE), kind=kind, grace_s=g, reason=reason, now=now
            )
            write_json_atomic(job_dir / _STOP_FILE, rec)
            # the grace period left until the merged deadline (this stop's own when it is the
            # sooner: exactly ``g``)
            left = g if rec["deadline"] >= now + g else max(0.0, rec["deadline"] - now)
            meta = self._meta(job_dir)
            found = False
            if meta is not None:
                try:
                    found = bool(self._call("cancel", *meta, left))
                except BackendError as exc:  # unreachable or no answer: sent when Ray answers
                    log.warning("cancel of %s kept for later: %s", handle, exc)
                    kept = job_dir / _KEPT_FILE
                    write_json_atomic(
                        kept,
                        merge_stop_request(
                            _read_kept(kept), kind=kind, grace_s=g, reason=reason, now=now
                        ),
                    )
                    return
                # this stop's deadline is no later than a kept one's: that one is sent
                (job_dir / _KEPT_FILE).unlink(missing_ok=True)
        if not found:
            self._finish(
                job_dir,
                ExecStatus(
                    state="cancelled", reason="cancelled; its Ray coordinator was already gone"
                ),
            )

    def signal(self, handle: str, sig: int) -> None:
        meta = self._meta(self._job_dir(handle))
        if meta is None or not self._call("signal", *meta, int(sig)):
            raise BackendError(f"cannot signal {handle}: its Ray coordinator is gone")

    def usage(self, handle: str) -> UsageSample | None:
        """The gang's resource use summed over its nodes (None when not running)."""
        job_dir = self._job_dir(handle)
        if (job_dir / "ray_final.json").exists():
            return None
        meta = self._meta(job_dir)
        if meta is None:
            return None
        try:
            u = self._call("usage", *meta, self.call_timeout_s)
        except BackendError:  # usage is best effort
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
        meta = self._meta(self._job_dir(handle))
        if meta is None:
            return []
        try:
            return list(self._call("job_nodes", *meta, self.call_timeout_s))
        except ConnectionFailed:
            return []

    def close(self) -> None:
        with self._link_lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None (missing, unreadable, not an object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_kept(path: Path) -> dict[str, Any] | None:
    """The stop kept in ``path`` for later; one an earlier aistack wrote (``{"grace_s": g}``
    alone) counts its grace period from the file's time."""
    req = _read_json(path)
    if req is None:
        return None
    if finite_seconds(req.get("t")) is None and finite_seconds(req.get("deadline")) is None:
        with contextlib.suppress(OSError):
            req["t"] = path.stat().st_mtime
    return req
