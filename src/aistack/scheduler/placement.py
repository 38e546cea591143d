"""Best-fit gang placement on a mutable copy of the cluster's free capacity.

``PassState`` is built once per scheduling pass from a ``ClusterState``; every start decided
in the pass is committed to it, so nothing is ever handed out twice. Nodes are kept in
buckets by their number of free GPUs, so a best-fit search costs O(GPUs per node), not
O(nodes): a job asking for ``g`` GPUs per node goes to the nodes with the fewest free GPUs
that still hold ``g`` (packing: large free blocks stay whole for large jobs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aistack.compute.resources import gpu_type_matches
from aistack.errors import ValidationError, short_repr
from aistack.scheduler.types import Allocation, ClusterState, JobRequest, NodeAlloc

# per node index: (gpus, cpus, memory_mb) a job may use at most there (a reservation's cap)
Caps = dict[int, tuple[int, int, int]]


@dataclass(slots=True)
class _Node:
    name: str
    gpu_type: str | None
    gpus_total: int
    cpus_total: int
    mem_total: int
    # the NodeState's frozensets until the pass commits a start there (copy on write:
    # building a pass copies nothing)
    free_g: frozenset[int] | set[int]
    free_c: frozenset[int] | set[int]
    free_m: int
    schedulable: bool
    held: int = 0  # GPUs held back for a job that preempts (not handed out in this pass)


class PassState:
    """Free capacity of every node, updated as the pass commits starts."""

    __slots__ = ("nodes", "index", "buckets", "max_g", "free_total", "gpus_total")

    def __init__(self, cluster: ClusterState) -> None:
        # hot path (every pass): positional _Node(...) and one loop over the nodes
        nodes: list[_Node] = []
        index: dict[str, int] = {}
        gmax = 0
        gtot = 0
        free_total = 0
        for i, ns in enumerate(cluster.nodes):
            fg = ns.gpus_free
            gt = len(ns.gpus_total)
            n = _Node(
                ns.name,
                ns.gpu_type,
                gt,
                len(ns.cpus_total),
                ns.memory_total_mb,
                fg,
                ns.cpus_free,
                ns.memory_free_mb,
                ns.schedulable,
            )
            index[ns.name] = i
            nodes.append(n)
            gtot += gt
            k = len(fg)
            if gt > gmax:
                gmax = gt
            if k > gmax:
                gmax = k
            if ns.schedulable:
                free_total += k
        if len(index) != len(nodes):
            # two nodes of one name: allocations and reservations name nodes, so a start on
            # "a" could not say which one (the index kept the last, `find` used either)
            raise duplicate_node_error(cluster)
        self.nodes = nodes
        self.index = index
        self.max_g = gmax
        self.gpus_total = gtot
        self.free_total = free_total
        # buckets[k]: schedulable nodes with k free GPUs (dict as an ordered set)
        buckets: list[dict[int, None]] = [{} for _ in range(gmax + 1)]
        for i, n in enumerate(nodes):
            if n.schedulable:
                buckets[len(n.free_g)][i] = None
        self.buckets = buckets

    # ------------------------------------------------------------------ queries
    def largest_block(self, gpu_type: str | None = None) -> tuple[int, str | None]:
        """Largest number of free GPUs on one node (of that type), and that node's name."""
        for k in range(self.max_g, -1, -1):
            for i in self.buckets[k]:
                n = self.nodes[i]
                if gpu_type is None or gpu_type_matches(n.gpu_type, gpu_type):
                    return k - n.held, n.name
        return 0, None

    def fits_anywhere_ever(self, job: JobRequest) -> bool:
        """Could the job ever run on this cluster, with everything free? Never for a job whose
        shape is no request (``bad_shape``)."""
        if bad_shape(job) is not None:
            return False
        ok = 0
        for n in self.nodes:
            if not n.schedulable:
                continue
            if job.gpu_type is not None and not gpu_type_matches(n.gpu_type, job.gpu_type):
                continue
            if n.gpus_total < job.gpus or n.cpus_total < job.cpus:
                continue
            if job.memory_mb and n.mem_total < job.memory_mb:
                continue
            ok += 1
            if ok >= job.nodes:
                return True
        return False

    def _node_ok(self, n: _Node, job: JobRequest, g_avail: int) -> bool:
        if g_avail < job.gpus:
            return False
        if job.gpu_type is not None and not gpu_type_matches(n.gpu_type, job.gpu_type):
            return False
        if job.cpus and len(n.free_c) < job.cpus:
            return False
        if job.memory_mb and n.free_m < job.memory_mb:
            return False
        return True

    # ------------------------------------------------------------------ placement
    def find(self, job: JobRequest, caps: Caps | None = None) -> list[int] | None:
        """Node indices for the gang (best fit), or None. ``caps`` limits GPUs on some nodes."""
        need_nodes = job.nodes
        g = job.gpus
        if g * need_nodes > self.free_total:
            return None
        chosen: list[int] = []
        if caps:
            # capped nodes may hold fewer usable GPUs than their bucket says: rank all
            # candidates by usable GPUs (best fit) in one list
            cands: list[tuple[int, int]] = []
            for k in range(g, self.max_g + 1):
                for i in self.buckets[k]:
                    n = self.nodes[i]
                    avail = k - n.held
                    c = caps.get(i)
                    if c is not None:
                        if c[0] < avail:
                            avail = c[0]
                        if job.cpus > c[1] or job.memory_mb > c[2]:
                            continue
                    if self._node_ok(n, job, avail):
                        cands.append((avail, i))
            if len(cands) < need_nodes or _no_request(job):
                return None
            cands.sort()
            return [i for _, i in cands[:need_nodes]]
        for k in range(g, self.max_g + 1):
            for i in self.buckets[k]:
                n = self.nodes[i]
                if self._node_ok(n, job, k - n.held):
                    chosen.append(i)
                    if len(chosen) == need_nodes:
                        # checked only here, once a node is found (hot path): nodes < 1
                        # never gets here
                        return None if _no_request(job) else chosen
        return None

    def commit(self, job: JobRequest, node_ids: Iterable[int]) -> Allocation:
        """Take specific GPU indices / CPU ids / memory on the chosen nodes."""
        out: dict[str, NodeAlloc] = {}
        for i in node_ids:
            n = self.nodes[i]
            before = len(n.free_g)
            gpus: tuple[int, ...] = ()
            if job.gpus:
                gpus = tuple(sorted(n.free_g)[: job.gpus])
                n.free_g = n.free_g.difference(gpus)
            cpus: tuple[int, ...] = ()
            if job.cpus and n.free_c:
                cpus = tuple(sorted(n.free_c)[: job.cpus])
                n.free_c = n.free_c.difference(cpus)
            n.free_m -= job.memory_mb
            self._move(i, before, len(n.free_g))
            out[n.name] = NodeAlloc(gpus=gpus, cpus=cpus, memory_mb=job.memory_mb)
        return Allocation(nodes=out)

    def hold(self, i: int, gpus: int) -> None:
        """Keep ``gpus`` free GPUs of node i out of this pass (a preempting job waits for them)."""
        n = self.nodes[i]
        n.held = min(len(n.free_g), n.held + gpus)

    def _move(self, i: int, before: int, after: int) -> None:
        if not self.nodes[i].schedulable:
            return
        del self.buckets[before][i]
        self.buckets[after][i] = None
        self.free_total += after - before

    # ------------------------------------------------------------------ counts
    def free_counts(self) -> list[list[int]]:
        """[[free gpus, free cpus, free mem], ...] per node (for reservations / estimates)."""
        return [
            [len(n.free_g) if n.schedulable else 0, len(n.free_c), n.free_m] for n in self.nodes
        ]


def duplicate_node_error(cluster: ClusterState) -> ValidationError:
    """The error for a cluster state that names a node twice (a caller's bug, not a job's)."""
    seen: set[str] = set()
    for ns in cluster.nodes:
        if ns.name in seen:
            k = sum(1 for n in cluster.nodes if n.name == ns.name)
            return ValidationError(
                f"cluster.nodes: node name {short_repr(ns.name)} appears {k} times",
                hint="give each NodeState in ClusterState.nodes its own name (allocations "
                "and reservations name nodes); list a node once with all its GPUs",
                field="nodes",
                node=ns.name,
            )
        seen.add(ns.name)
    raise AssertionError("no node name appears twice")  # pragma: no cover


def check_cluster(cluster: ClusterState) -> None:
    """Refuse a cluster state that names a node twice, or a running job twice
    (``ValidationError`` naming the field and the name). O(nodes + running jobs)."""
    nodes = cluster.nodes
    if len({n.name for n in nodes}) != len(nodes):
        raise duplicate_node_error(cluster)
    running = cluster.running
    if running and len({r.id for r in running}) != len(running):
        raise duplicate_running_error(cluster)


def duplicate_running_error(cluster: ClusterState) -> ValidationError:
    """The error for a cluster state that lists a running job twice."""
    seen: set[str] = set()
    for r in cluster.running:
        if r.id in seen:
            k = sum(1 for x in cluster.running if x.id == r.id)
            return ValidationError(
                f"cluster.running: job id {short_repr(r.id)} is listed {k} times",
                hint="list each running job once in ClusterState.running (a gang is one "
                "RunningJob whose allocation names all its nodes)",
                field="running",
                job_id=r.id,
            )
        seen.add(r.id)
    raise AssertionError("no running job id appears twice")  # pragma: no cover


def _no_request(job: JobRequest) -> bool:
    """A job ``bad_shape`` refuses, which must not be placed: gpus -1 took all the node's
    GPUs but one (``sorted(free)[:-1]``), cpus -2 all its CPUs but two, memory_mb -5 added
    memory, nodes 0 (with a reservation's caps) started on no node."""
    return job.gpus < 0 or job.nodes < 1 or job.cpus < 0 or job.memory_mb < 0


def bad_shape(job: JobRequest) -> str | None:
    """What makes a job's request impossible (negative counts, no nodes), or None."""
    if job.nodes < 1:
        return f"nodes is {job.nodes}: a job runs on at least 1 node"
    for name in ("gpus", "cpus", "memory_mb"):
        v = getattr(job, name)
        if v < 0:
            return f"{name} is {v}: it must be 0 or more"
    return None


def fit_counts(
    job: JobRequest, free: list[list[int]], nodes: list[_Node], *, need_cpu: bool = True
) -> list[int] | None:
    """Best fit on plain counts (used when planning into the future)."""
    cands: list[tuple[int, int]] = []
    g, c, m = job.gpus, job.cpus if need_cpu else 0, job.memory_mb
    t = job.gpu_type
    for i, (fg, fc, fm) in enumerate(free):
        if fg < g:
            continue
        n = nodes[i]
        if not n.schedulable or (t is not None and not gpu_type_matches(n.gpu_type, t)):
            continue
        if c and fc < c:
            continue
        if m and fm < m:
            continue
        cands.append((fg, i))
    if len(cands) < job.nodes:
        return None
    if job.nodes == 1:
        return [min(cands)[1]]
    cands.sort()
    return [i for _, i in cands[: job.nodes]]
