"""Best-fit gang placement on a mutable copy of the cluster's free capacity.

``PassState`` is built once per scheduling pass from a ``ClusterState``; every start decided
in the pass is committed to it, so nothing is ever handed out twice. Nodes are kept in
buckets by their number of free GPUs, so a best-fit search costs O(GPUs per node), not
O(nodes): a job asking for ``g`` GPUs per node goes to the nodes with the fewest free GPUs
that still hold ``g`` (packing: large free blocks stay whole for large jobs).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aistack.compute.resources import gpu_type_matches
from aistack.errors import ValidationError, short_repr
from aistack.scheduler.types import Allocation, ClusterState, JobRequest, NodeAlloc, RunningJob

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
            raise duplicate_error(cluster, "nodes")
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
            if n.schedulable and self._could_hold(n, job):
                ok += 1
                if ok >= job.nodes:
                    return True
        return False

    def waits_for_blocked(self, job: JobRequest) -> list[str]:
        """For a job that fits on no node that takes jobs now: the nodes that take none now
        (drained, or blocked by this pass) on which it, or its gang, would fit with
        everything free; [] if none would."""
        if bad_shape(job) is not None:
            return []
        fit = [n for n in self.nodes if self._could_hold(n, job)]
        if len(fit) < job.nodes:
            return []
        return [n.name for n in fit if not n.schedulable]

    @staticmethod
    def _could_hold(n: _Node, job: JobRequest) -> bool:
        if job.gpu_type is not None and not gpu_type_matches(n.gpu_type, job.gpu_type):
            return False
        if n.gpus_total < job.gpus or n.cpus_total < job.cpus:
            return False
        return not (job.memory_mb and n.mem_total < job.memory_mb)

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

    def block(self, i: int) -> None:
        """Place nothing on node i in this pass (its running allocations contradict it)."""
        n = self.nodes[i]
        if not n.schedulable:
            return
        k = len(n.free_g)
        del self.buckets[k][i]
        self.free_total -= k
        n.schedulable = False

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


# the two ways a cluster state can name something twice: field → (message with {name}
# and {k}, hint, the detail naming it)
_DUPLICATES: dict[str, tuple[str, str, str]] = {
    "nodes": (
        "cluster.nodes: node name {name} appears {k} times",
        "give each NodeState in ClusterState.nodes its own name (allocations and "
        "reservations name nodes); list a node once with all its GPUs",
        "node",
    ),
    "running": (
        "cluster.running: job id {name} is listed {k} times",
        "list each running job once in ClusterState.running (a gang is one RunningJob "
        "whose allocation names all its nodes)",
        "job_id",
    ),
}


def duplicate_error(cluster: ClusterState, field: str) -> ValidationError:
    """The error for a cluster state that names a node (``field`` "nodes") or a running job
    ("running") twice: a caller's bug, not a job's. Names the first repeated name."""
    text, hint, key = _DUPLICATES[field]
    names = [n.name for n in cluster.nodes] if field == "nodes" else [r.id for r in cluster.running]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return ValidationError(
                text.format(name=short_repr(name), k=names.count(name)),
                hint=hint,
                field=field,
                **{key: name},
            )
        seen.add(name)
    raise AssertionError(f"no name in cluster.{field} appears twice")  # pragma: no cover


_INF = math.inf


def _in_range(v: object, low: float) -> bool:
    """``low <= v < inf`` (``low`` -inf: finite), False for a value that is no number or an
    int past float's range (a policy's arithmetic turns it into a float)."""
    try:
        ok = (low <= v < _INF) if low > -_INF else (-_INF < v < _INF)  # type: ignore[operator]
        if ok and isinstance(v, int):
            float(v)
        return bool(ok)
    except (TypeError, OverflowError):
        return False


def _shown(v: object) -> str:
    return repr(float(v)) if isinstance(v, float) else short_repr(v)  # np.float64(nan): nan


# (field, lowest value, None allowed, what it must be, how to fix it) for the numbers a
# policy orders, ranks or estimates by: a NaN compares false with everything (a sort leaves
# the queue out of order, a reservation sorts its release events wrongly), an infinity
# pushes estimates and reservations to inf, and a negative duration or service ends a job
# before it started
_JOB_NUMBERS: tuple[tuple[str, float, bool, str, str], ...] = (
    (
        "submit_time",
        -_INF,
        False,
        "it must be a finite number of seconds",
        "queue it with the time it was submitted",
    ),
    (
        "priority",
        -_INF,
        False,
        "it must be a finite number",
        "resubmit it with a whole-number priority",
    ),
    (
        "attained_service_s",
        0.0,
        False,
        "it must be a finite number of GPU-seconds >= 0",
        "resubmit it with the service it has received (0 if it has not run)",
    ),
    (
        "max_runtime_s",
        0.0,
        True,
        "it must be a finite number of seconds >= 0, or None (no estimate)",
        "resubmit it with a finite max_runtime, or none",
    ),
    (
        "true_duration_s",
        0.0,
        True,
        "it must be a finite number of seconds >= 0, or None (simulation only)",
        "resubmit it with its true duration, or None",
    ),
)


# a job's request: per-node counts and the gang's size, each a whole number (an int or a
# numpy integer; a bool is not a count: True is not 1 GPU)
_COUNTS = ("nodes", "gpus", "cpus", "memory_mb")


def bad_count(job: JobRequest) -> str | None:
    """What makes one of a job's counts (nodes, gpus, cpus, memory_mb) no whole number, or
    None: "gpus is 2.5: it must be a whole number (0 or more), not a float". A text, None
    or float count was a TypeError deep in the pass (or a float memory_mb was handed out)."""
    for name in _COUNTS:
        v = getattr(job, name)
        if type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool)):
            continue
        least = 1 if name == "nodes" else 0
        what = "None" if v is None else f"a {type(v).__name__}"
        return f"{name} is {_shown(v)}: it must be a whole number ({least} or more), not {what}"
    return None


def unusable_request(job: JobRequest) -> str | None:
    """Why a queued job cannot be run at all, for its pending reason after "the request
    cannot be run: " (``bad_number``, then ``bad_count``), or None."""
    bad = bad_number(job)
    if bad is None:
        bad = bad_count(job)
        if bad is not None:
            bad += "; resubmit it with a valid request"
    return bad


def bad_number(job: JobRequest) -> str | None:
    """What makes one of a queued job's numbers unusable (``_JOB_NUMBERS``), with how to
    fix it, or None: "priority is nan: it must be a finite number; resubmit it with …"."""
    for name, low, optional, must, fix in _JOB_NUMBERS:
        v = getattr(job, name)
        if (v is None and optional) or (v is not None and _in_range(v, low)):
            continue
        return f"{name} is {_shown(v)}: {must}; {fix}"
    return None


# the same for a running job; protected_until may be ±inf (never / always protected) but
# not NaN (NaN < now is false: a protected job could be preempted)
_RUNNING_NUMBERS: tuple[tuple[str, float, bool, str], ...] = (
    ("start_time", -_INF, False, "a finite number of seconds"),
    ("submit_time", -_INF, False, "a finite number of seconds"),
    ("priority", -_INF, False, "a finite number"),
    ("attained_service_s", 0.0, False, "a finite number of GPU-seconds >= 0"),
    ("max_runtime_s", 0.0, True, "a finite number of seconds >= 0, or None (no estimate)"),
    ("true_duration_s", 0.0, True, "a finite number of seconds >= 0, or None"),
)


def _running_fault(r: RunningJob) -> tuple[str, object, str] | None:
    """(field, value, what it must be) of a running job's first unusable number, or None."""
    for name, low, optional, must in _RUNNING_NUMBERS:
        v = getattr(r, name)
        if not ((v is None and optional) or (v is not None and _in_range(v, low))):
            return name, v, must
    p = r.protected_until
    try:
        if -_INF <= p <= _INF:
            return None
    except TypeError:
        pass
    return "protected_until", p, "a number of seconds (inf: always protected), not NaN"


def bad_running_error(r: RunningJob) -> ValidationError | None:
    """The error for a running job whose numbers the pass cannot compute with, or None."""
    fault = _running_fault(r)
    if fault is None:
        return None
    name, v, must = fault
    return ValidationError(
        f"cluster.running: job {short_repr(r.id)} has {name} {_shown(v)}: it must be {must}",
        hint="a running job's times, service and estimate must be numbers the scheduler can "
        "compute with: fix how the caller builds its RunningJob (a NaN there makes the "
        "pass's reservations, ranks or protection wrong)",
        field=f"running.{name}",
        job_id=r.id,
    )


def check_running(running: Sequence[RunningJob]) -> None:
    """Refuse a running job whose times, service or estimate are NaN, infinite or (service,
    estimates) negative (``bad_running_error``), or whose protected_until is NaN. The policies
    check each ``RunningJob`` object once, when their ``AllocationLedger`` first sees it."""
    inf = _INF
    for r in running:
        mr = r.max_runtime_s
        td = r.true_duration_s
        p = r.protected_until
        try:
            # 0.0 + …: an int past float's range (priority 10**400) is an OverflowError, as
            # in the policies' arithmetic and in the queue's screen
            ok = (
                -inf < 0.0 + r.start_time < inf
                and -inf < 0.0 + r.submit_time < inf
                and -inf < 0.0 + r.priority < inf
                and 0.0 <= 0.0 + r.attained_service_s < inf
                and (mr is None or 0.0 <= 0.0 + mr < inf)
                and (td is None or 0.0 <= 0.0 + td < inf)
                and -inf <= p <= inf
            )
        except (TypeError, OverflowError):
            ok = False
        if not ok:
            err = bad_running_error(r)
            if err is not None:
                raise err


def _no_request(job: JobRequest) -> bool:
    """A job ``bad_shape`` refuses, which must not be placed: gpus -1 took all the node's
    GPUs but one (``sorted(free)[:-1]``), cpus -2 all its CPUs but two, memory_mb -5 added
    memory, nodes 0 (with a reservation's caps) started on no node. Counts that are no
    whole numbers never get here: ``QueuePolicy._screen`` keeps them out of the pass (a
    ``SortedQueue``'s caller vouches for them: the simulator refuses such trace jobs)."""
    return job.gpus < 0 or job.nodes < 1 or job.cpus < 0 or job.memory_mb < 0


def bad_shape(job: JobRequest) -> str | None:
    """What makes a job's request impossible (a count that is no whole number, negative
    counts, no nodes), or None."""
    if not (
        type(job.nodes) is int
        and type(job.gpus) is int
        and type(job.cpus) is int
        and type(job.memory_mb) is int
    ):
        bad = bad_count(job)
        if bad is not None:
            return bad
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
