"""The policy contract and the one queue engine every built-in policy shares.

``Policy.schedule(queue, cluster, now) -> Decision`` is pure: no I/O, no clock of its own.
Every policy

* starts gangs all-or-nothing (``nodes`` × ``gpus`` per node, ``gpu_type`` honoured),
  best fit (fewest free GPUs that still hold the gang), with concrete GPU indices and CPU
  core ids taken from the nodes' free sets, and never hands out anything twice;
* respects per-project GPU quotas (``ClusterState.gpu_quotas``);
* puts a ``Pending(reason, estimated_start)`` on every job it does not start (unless it
  was built with ``explain=False``, which the simulator uses for speed).

``QueuePolicy`` is the engine: a policy only chooses the order of the queue (``order_key``)
and, if it preempts, which running jobs a waiting job outranks (``rank`` / ``running_rank``).
The engine walks the queue in that order. The first job that does not fit is the *head*:
it gets a reservation (EASY backfill: the earliest time it fits once running jobs reach
their ``max_runtime_s``). Later jobs start only if they fit now *and* do not delay that
reservation (they end before it, or they use capacity the head does not need). If a
running job has no ``max_runtime_s`` the reservation time is unknown; the engine then says
so and is conservative: nothing is backfilled onto nodes that could ever host the head.

Preemption (``preemptive = True``): a waiting job that cannot start may preempt running
jobs it outranks that are ``preemptible`` and past ``protected_until`` (minimum run time,
anti-thrashing). The caller signals the victims, waits for their grace period (checkpoint)
and requeues them with their attained service kept. ``RunningJob.attained_service_s`` is
the service received *before* the current run; the engine adds
``(now - start_time) × GPUs`` itself.
"""

from __future__ import annotations

import abc
import heapq
import math
from collections.abc import Sequence
from typing import Any

from aistack.compute.resources import gpu_type_matches
from aistack.errors import ValidationError, short_repr
from aistack.scheduler.ledger import AllocationLedger
from aistack.scheduler.placement import (
    PassState,
    bad_shape,
    duplicate_error,
    fit_counts,
    unusable_request,
)
from aistack.scheduler.types import (
    ClusterState,
    Decision,
    JobRequest,
    Pending,
    Preempt,
    RunningJob,
    Start,
)

INF = math.inf
# the end of the reason of a job whose GPUs are free but that was tried and did not fit
SHORT_TXT = " but CPUs or memory are short"


class Policy(abc.ABC):
    """A scheduling policy: queue + cluster state in, decisions out."""

    name: str = "base"
    #: whether decisions may contain preemptions
    preemptive: bool = False

    @abc.abstractmethod
    def schedule(self, queue: Sequence[JobRequest], cluster: ClusterState, now: float) -> Decision:
        """One pass: which jobs start where, which running jobs to preempt, why others wait."""

    def order_key(self, job: JobRequest) -> tuple[Any, ...] | None:
        """A static sort key for a queued job (lower runs first), or None if the order is
        dynamic. A caller that keeps its queue sorted by this key may pass a
        ``SortedQueue`` bound to this policy and the policy will not sort again."""
        return None

    def wakeup_after(self, cluster: ClusterState, now: float) -> float | None:
        """Next time at which this policy could decide differently with no other event
        (e.g. a running job crossing a LAS threshold). The simulator schedules a pass then."""
        return None


class SortedQueue(list):  # type: ignore[type-arg]
    """A queue the caller already keeps sorted by ``policy.order_key`` (simulator).

    The caller also vouches for what ``QueuePolicy`` checks in every other queue, once per
    pass: job ids unique and none of them running, usable numbers (finite submit times,
    priorities and attained service; max_runtime_s and true_duration_s None or finite and
    >= 0; int counts: the simulator makes its own ids and refuses a trace job without
    them). The
    cluster state is checked either way: a node named twice, a running job's NaN or
    infinite times (``placement.check_running``)."""

    __slots__ = ("policy",)

    def __init__(self, policy: Policy, items: Sequence[JobRequest] = ()) -> None:
        super().__init__(items)
        self.policy = policy


def _could_host(job: JobRequest, nodes: Sequence[Any]) -> list[int]:
    """Indices of the nodes that could ever hold ``job`` (schedulable, enough GPUs and CPUs in
    all, the GPU type it asks for): where nothing else goes while its start is unknown."""
    return [
        i
        for i, n in enumerate(nodes)
        if n.schedulable
        and n.gpus_total >= job.gpus
        and (job.gpu_type is None or gpu_type_matches(n.gpu_type, job.gpu_type))
        and n.cpus_total >= job.cpus
    ]


def fmt_duration(seconds: float) -> str:
    """12 s, 4.5 min, 3.1 h, 2.0 d."""
    s = abs(seconds)
    if s < 90:
        return f"{seconds:.0f} s"
    if s < 5400:
        return f"{seconds / 60:.1f} min"
    if s < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


_FAST = "__slots__" not in Pending.__dict__


def _pending(job_id: str, reason: str, est: float | None) -> Pending:
    """Pending(...) without the frozen-dataclass __init__ cost (10,000 of them per pass)."""
    if _FAST:
        p = object.__new__(Pending)
        p.__dict__.update(job_id=job_id, reason=reason, estimated_start=est)
        return p
    return Pending(job_id=job_id, reason=reason, estimated_start=est)  # pragma: no cover


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class QueuePolicy(Policy):
    """Ordered queue + best-fit gangs + quotas + EASY reservation/backfill + preemption."""

    name = "queue"
    strict = False  # True: nothing overtakes the first blocked job (strict FIFO)
    backfill = True
    preemptive = False

    def __init__(
        self,
        *,
        explain: bool = True,
        backfill_depth: int = 500,
        estimate_depth: int = 256,
        default_runtime_s: float | None = None,
        max_preempt_heads: int = 4,
        preempt_min_wait_s: float = 0.0,
        min_run_s: float = 0.0,
        promise_s: float = 900.0,
        gang_free_nodes: bool = False,
    ) -> None:
        if backfill_depth < 1:
            raise ValueError("backfill_depth must be >= 1")
        if estimate_depth < 0 or max_preempt_heads < 0:
            raise ValueError("estimate_depth and max_preempt_heads must be >= 0")
        if default_runtime_s is not None and not default_runtime_s > 0:
            raise ValueError("default_runtime_s must be > 0 (or None: the mean max_runtime)")
        for opt, v in (
            ("preempt_min_wait_s", preempt_min_wait_s),
            ("min_run_s", min_run_s),
            ("promise_s", promise_s),
        ):
            if v < 0:
                raise ValueError(f"{opt} must be >= 0 seconds, got {v!r}")
        self.explain = explain
        self.backfill_depth = backfill_depth
        self.estimate_depth = estimate_depth
        self.default_runtime_s = default_runtime_s
        self.max_preempt_heads = max_preempt_heads
        self.preempt_min_wait_s = preempt_min_wait_s
        self.min_run_s = min_run_s
        self.promise_s = promise_s
        # a multi-node gang that preempts also counts nodes already free enough (no victim
        # there); off by default: the ITP evaluation measured it and kept the old rule
        # (docs/scheduler.md, "Gangs that preempt beside free nodes")
        self.gang_free_nodes = gang_free_nodes
        # jobs that preempted others: they go first until they start (the freed GPUs are
        # theirs), or until the promise expires (caller's clock)
        self._promised: dict[str, float] = {}
        # victims asked for and not gone yet: victim id → (preempting job id, expiry)
        self._inflight: dict[str, tuple[str, float]] = {}
        # per running job id: (its Allocation object, its (node, GPUs, CPUs, memory) parts),
        # by node name, and by node index for the node list `_layout` (preemption search);
        # an entry counts only for the very same Allocation object (held here, so its id
        # cannot be reused): a job that restarts, or a caller that builds new objects each
        # pass, gets its parts worked out again
        self._parts: dict[str, tuple[Any, tuple[tuple[str, int, int, int], ...]]] = {}
        self._iparts: dict[str, tuple[Any, list[tuple[int, int, int, int]]]] = {}
        self._layout: tuple[str, ...] = ()
        # which running job holds which GPU, each RunningJob object's numbers checked once
        # (``check_running``): nodes where the allocations contradict the inventory get
        # nothing placed on them (``AllocationLedger``); the last pass's such nodes
        self._ledger = AllocationLedger()
        self._blocked: dict[str, str] = {}

    # ------------------------------------------------------------ policy hooks
    def order_key(self, job: JobRequest) -> tuple[Any, ...] | None:
        return (-job.priority, job.submit_time, job.id)

    def order(
        self, queue: Sequence[JobRequest], cluster: ClusterState, now: float
    ) -> Sequence[JobRequest]:
        if isinstance(queue, SortedQueue) and queue.policy is self:
            return queue
        return sorted(queue, key=self.order_key)  # type: ignore[arg-type,return-value]

    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        """Preemption rank of a waiting job (lower is more important)."""
        return (-job.priority,)

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority,)

    def running_ranks(
        self, running: Sequence[RunningJob], cluster: ClusterState, now: float
    ) -> list[tuple[Any, ...]]:
        """``running_rank`` of each job (a policy may override it with a faster loop: it
        runs over every preemptible job in every pass that tries to preempt)."""
        return [self.running_rank(r, cluster, now) for r in running]

    def preempt_reason(self, job: JobRequest, victim: RunningJob) -> str:
        return f"job {job.id} (priority {job.priority}) outranks it (priority {victim.priority})"

    def firm_reservation(self, head: JobRequest, now: float) -> bool:
        """Preemptive policies: True if jobs behind ``head`` may not preempt running jobs
        on the nodes of its reservation in this pass, so that preemptors (whose end the
        reservation did not plan for) cannot push it back. Backfill within the
        reservation and preemption on other nodes go on as usual."""
        return False

    def wakeup_after(self, cluster: ClusterState, now: float) -> float | None:
        """Preemptive policies: the next end of a running job's protection."""
        if not self.preemptive:
            return None
        best = INF
        for r in cluster.running:
            p = r.protected_until
            if now < p < best:
                best = p
        return None if best == INF else best

    # ------------------------------------------------------------ the pass
    def schedule(self, queue: Sequence[JobRequest], cluster: ClusterState, now: float) -> Decision:
        if not queue:
            # nothing to place, but a cluster state that names a node or a running job twice
            # is refused here too: it is the caller's bug, whatever the queue (the server
            # tells a job's failure from the pass's by a pass with an empty queue)
            if len({n.name for n in cluster.nodes}) != len(cluster.nodes):
                raise duplicate_error(cluster, "nodes")
            # (the ledger checks ids only when a job came or went by count: a job that
            # stopped and another listed twice leave it as long as before)
            if len({r.id for r in cluster.running}) != len(cluster.running):
                raise duplicate_error(cluster, "running")
            blocked = self._ledger.update(cluster)
            return Decision(blocked_nodes=dict(blocked)) if blocked else Decision()
        st = PassState(cluster)  # refuses a node named twice
        # a running job's NaN time, or its id listed twice: refused (each object checked
        # once); nodes its allocation contradicts: blocked for this pass
        blocked = self._ledger.update(cluster)
        if blocked:
            index = st.index
            for name in blocked:
                i = index.get(name)
                if i is not None:
                    st.block(i)
        blocked = dict(blocked) if blocked else {}
        self._blocked = blocked
        unusable: list[JobRequest] = []
        if not (isinstance(queue, SortedQueue) and queue.policy is self):
            queue, unusable = self._screen(queue, cluster)
        ordered = self.order(queue, cluster, now)
        if self._promised:
            ordered = self._promised_first(ordered, now)
        explain = self.explain
        quotas = cluster.gpu_quotas
        # GPUs per project that this pass commits: its running jobs (victims included: they
        # run until their grace period ends), the jobs it starts, and the jobs that preempt
        # (they start on their victims' GPUs): a job is checked against its project's quota
        # before it starts or preempts, so no start or preemption takes a project beyond it
        used: dict[str, int] = {}
        if quotas:
            for r in cluster.running:
                used[r.project] = used.get(r.project, 0) + r.allocation.total_gpus

        starts: list[Start] = []
        started_jobs: list[tuple[JobRequest, list[int]]] = []
        preempts: list[Preempt] = []
        victims: set[str] = set()
        kinds: dict[str, tuple[Any, ...]] = {}
        waiting: list[JobRequest] = []  # not started, not quota-blocked, in order
        at_quota: list[tuple[int, JobRequest]] = []  # explain: (len(waiting) then, job)
        reservations: dict[str, tuple[float, tuple[str, ...]]] = {}
        head: JobRequest | None = None
        shadow: float | None = None
        caps: dict[int, tuple[int, int, int]] | None = None
        unknown_end: list[str] = []
        pre_heads = 0
        firm = False  # the head's reservation may not be pushed back by preemptions
        avoid: set[int] | None = None  # then: nodes that preemptors behind it may not use
        pctx: dict[str, Any] = {}
        res_pending = False
        # explain mode computes the head's reservation at once (for its reason); jobs
        # behind the head that preempt change what it is based on, so it is computed
        # again where a lazy pass (explain=False) would first compute it: the decisions
        # do not depend on explain
        res_stale = False
        backfilling = False  # a job behind the head fitted (a lazy pass reserves there)
        waiting_for: dict[str, list[RunningJob]] = {}
        if self._inflight:
            # preemptions decided in earlier passes whose victims still run (the caller
            # is waiting for their grace period): not asked again, their GPUs stay
            # promised to the preemptor
            live = {r.id: r for r in cluster.running}
            for vid in list(self._inflight):
                for_job, exp = self._inflight[vid]
                if vid not in live or exp < now:
                    del self._inflight[vid]
                else:
                    waiting_for.setdefault(for_job, []).append(live[vid])
                    victims.add(vid)
        fail_g = fail_c = 1 << 30  # smallest plain shape that failed to fit in this pass
        considered = 0
        preemptive = self.preemptive
        # explain mode: (time, victims, why) of the head's preemption once a protection ends
        later: tuple[float, list[str], str] | None = None
        depth = self.backfill_depth

        for job in ordered:
            tg = job.gpus * job.nodes
            if quotas:
                q = quotas.get(job.project)
                if q is not None and used.get(job.project, 0) + tg > q:
                    if explain:
                        kinds[job.id] = ("quota", used.get(job.project, 0), q)
                        if tg <= q:
                            # estimated at its place among the waiting jobs
                            at_quota.append((len(waiting), job))
                    continue
            if head is None:
                ids = st.find(job)
                if ids is not None:
                    alloc = st.commit(job, ids)
                    starts.append(Start(job_id=job.id, allocation=alloc))
                    started_jobs.append((job, ids))
                    if self._promised:
                        self._promised.pop(job.id, None)
                    if quotas:
                        used[job.project] = used.get(job.project, 0) + tg
                    continue
                if not st.fits_anywhere_ever(job):
                    kinds[job.id] = ("never",)
                    continue
                head = job
                waiting.append(job)
                if job.id in waiting_for:
                    held: tuple[list[str], list[int]] = (
                        [],
                        self._hold_victims(job, waiting_for[job.id], st, pctx),
                    )
                    kinds[job.id] = ("preempting", held)
                    reservations[job.id] = (now, tuple(st.nodes[i].name for i in held[1]))
                    if quotas:
                        used[job.project] = used.get(job.project, 0) + tg
                    head = None
                    continue
                if preemptive and pre_heads < self.max_preempt_heads:
                    pre_heads += 1
                    got = self._try_preempt(job, st, cluster, now, victims, preempts, pctx)
                    if got is not None:
                        kinds[job.id] = ("preempting", got)
                        reservations[job.id] = (now, tuple(st.nodes[i].name for i in got[1]))
                        if quotas:
                            used[job.project] = used.get(job.project, 0) + tg
                        head = None  # its capacity is held; the next blocked job is head
                        continue
                    if explain:
                        later = self._preempt_later(job, st, cluster, now, victims)
                firm = preemptive and self.firm_reservation(job, now)
                if self.strict:
                    kinds[job.id] = ("head",)
                    if not explain:
                        break
                    continue
                if not self.backfill:
                    kinds[job.id] = ("head",)
                    continue
                if explain or firm:
                    shadow, rnodes, caps, unknown_end = self._reserve(
                        job, st, cluster, now, started_jobs, victims, pctx
                    )
                    if shadow is not None and rnodes:
                        reservations[job.id] = (shadow, rnodes)
                    if firm:
                        avoid = set(caps or ())
                else:
                    res_pending = True  # computed when a backfill candidate fits
                kinds[job.id] = ("head",)
                continue
            # ---- behind the head
            if self.strict or not self.backfill:
                waiting.append(job)
                if explain:
                    kinds[job.id] = ("behind", head.id)
                    continue
                break
            considered += 1
            if considered > depth:
                waiting.append(job)
                if not explain:
                    break
                kinds[job.id] = ("window",) if tg <= st.free_total else ("blocked",)
                continue
            ids = None
            simple = job.nodes == 1 and job.gpu_type is None and not job.memory_mb
            if tg <= st.free_total and not (simple and job.gpus >= fail_g and job.cpus >= fail_c):
                ids = st.find(job)
                if ids is None and simple:
                    # a same-or-larger plain job cannot fit either in this pass
                    if job.gpus <= fail_g and job.cpus <= fail_c:
                        fail_g, fail_c = job.gpus, job.cpus
                if ids is not None:
                    if res_pending or res_stale:
                        res_pending = res_stale = False
                        shadow, rnodes, caps, unknown_end = self._reserve(
                            head, st, cluster, now, started_jobs, victims, pctx
                        )
                        reservations.pop(head.id, None)
                        if shadow is not None and rnodes:
                            reservations[head.id] = (shadow, rnodes)
                    backfilling = True
                    ends = now + job.max_runtime_s if job.max_runtime_s is not None else INF
                    if caps and not (shadow is not None and ends <= shadow):
                        ids = st.find(job, caps=caps)
                if ids is not None:
                    alloc = st.commit(job, ids)
                    starts.append(Start(job_id=job.id, allocation=alloc, backfilled=True))
                    started_jobs.append((job, ids))
                    if quotas:
                        used[job.project] = used.get(job.project, 0) + tg
                    if caps:
                        self._charge_caps(caps, job, ids, ends, shadow)
                    continue
            waiting.append(job)
            if job.id in waiting_for:
                got = ([], self._hold_victims(job, waiting_for[job.id], st, pctx))
                kinds[job.id] = ("preempting", got)
                reservations[job.id] = (now, tuple(st.nodes[i].name for i in got[1]))
                if quotas:
                    used[job.project] = used.get(job.project, 0) + tg
                res_stale = explain and not firm and not backfilling
                continue
            if preemptive and pre_heads < self.max_preempt_heads:
                pre_heads += 1
                got = self._try_preempt(job, st, cluster, now, victims, preempts, pctx, avoid)
                if got is not None:
                    kinds[job.id] = ("preempting", got)
                    reservations[job.id] = (now, tuple(st.nodes[i].name for i in got[1]))
                    if quotas:
                        used[job.project] = used.get(job.project, 0) + tg
                    res_stale = explain and not firm and not backfilling
                    continue
            if explain:
                if tg <= st.free_total and st.find(job) is not None:
                    kinds[job.id] = ("delay", head.id, shadow)
                else:
                    kinds[job.id] = ("blocked",)
            elif st.free_total == 0 and (not preemptive or pre_heads >= self.max_preempt_heads):
                break

        pending: dict[str, Pending] = {}
        if res_stale and head is not None:
            # no job behind the head fitted: the reason states the reservation as it is
            # after this pass's preemptions (decisions are already taken)
            shadow, rnodes, caps, unknown_end = self._reserve(
                head, st, cluster, now, started_jobs, victims, pctx
            )
            reservations.pop(head.id, None)
            if shadow is not None and rnodes:
                reservations[head.id] = (shadow, rnodes)
        if explain:
            pending = self._explain(
                ordered,
                kinds,
                waiting,
                st,
                cluster,
                now,
                started_jobs,
                victims,
                head,
                shadow,
                unknown_end,
                pctx.get("need"),
                later,
                used,
                at_quota,
            )
            for job in unusable:
                pending[job.id] = Pending(
                    job_id=job.id,
                    reason=f"the request cannot be run: {unusable_request(job)}",
                    estimated_start=None,
                )
        return Decision(
            starts=tuple(starts),
            preemptions=tuple(preempts),
            pending=pending,
            reservations=reservations,
            blocked_nodes=blocked,
        )

    @staticmethod
    def _screen(
        queue: Sequence[JobRequest], cluster: ClusterState
    ) -> tuple[Sequence[JobRequest], list[JobRequest]]:
        """(the queue less its jobs with a number the policy cannot order or estimate by,
        those jobs).

        A submit time, priority or attained service that is NaN or infinite, an attained
        service below 0, a max_runtime_s or true_duration_s (None is fine) that is NaN,
        infinite or below 0 (``placement.bad_number``): such a job has no place in the
        order (NaN compares false with everything, so a sort put the other jobs out of
        order too; a NaN estimate put reservations and start estimates out of order). So
        does a gpus, cpus, memory_mb or nodes that is no whole number (text, None, a float
        or a bool: ``placement.bad_count``; was a TypeError deep in the pass, or True
        taken as 1 GPU). It
        waits, with a reason (like a request that cannot be run), and the rest of the
        queue is scheduled in order. A job id
        queued twice, or queued and running, raises ``ValidationError`` naming it: a
        ``Decision`` names jobs by id (starts, ``pending``), so it could start one id twice
        or start and preempt it, and which copy a caller meant is not the policy's to
        guess (the server's ids are unique: a direct caller's bug). One set of the queue's
        ids per pass; a ``SortedQueue`` is not screened (its caller vouches for it)."""
        ids = {j.id for j in queue}
        if len(ids) != len(queue):
            seen: set[str] = set()
            for j in queue:
                if j.id in seen:
                    k = sum(1 for x in queue if x.id == j.id)
                    raise ValidationError(
                        f"queue: job id {short_repr(j.id)} is queued {k} times",
                        hint="queue each job once: a job id names one job (its start, its "
                        "pending reason); give different jobs different ids",
                        field="queue",
                        job_id=j.id,
                    )
                seen.add(j.id)
        running = cluster.running
        if running:
            rids = {r.id for r in running}
            if len(rids) != len(running):
                raise duplicate_error(cluster, "running")
            if not ids.isdisjoint(rids):
                jid = next(j.id for j in queue if j.id in rids)
                raise ValidationError(
                    f"queue: job {short_repr(jid)} is queued and also running (in cluster.running)",
                    hint="a running job is not queued: take it out of the queue, or out of "
                    "ClusterState.running if it has stopped (a preempted job is requeued "
                    "once it has stopped)",
                    field="queue",
                    job_id=jid,
                )
        # one loop over the queue: the three numbers that must be finite are summed (a NaN
        # or an infinity in any of them makes the sum NaN or infinite)
        inf = INF
        bad: list[JobRequest]
        try:
            bad = [
                j
                for j in queue
                if not (
                    -inf < j.submit_time + j.priority + j.attained_service_s < inf
                    and j.attained_service_s >= 0.0
                    and (j.max_runtime_s is None or 0.0 <= j.max_runtime_s < inf)
                    and (j.true_duration_s is None or 0.0 <= j.true_duration_s < inf)
                    # counts: whole numbers (a numpy integer is looked at exactly)
                    and type(j.gpus) is int
                    and type(j.cpus) is int
                    and type(j.memory_mb) is int
                    and type(j.nodes) is int
                )
            ]
        except (TypeError, OverflowError):  # a value that is no number, an int past float's range
            bad = list(queue)
        if bad:
            # exactly (the sum of two huge finite numbers overflows to inf)
            bad = [j for j in bad if unusable_request(j) is not None]
            if bad:
                gone = {id(j) for j in bad}
                queue = [j for j in queue if id(j) not in gone]
        return queue, bad

    def _promised_first(self, ordered: Sequence[JobRequest], now: float) -> list[JobRequest]:
        prom = self._promised
        for jid in [j for j, t in prom.items() if t < now]:
            del prom[jid]
        if not prom:
            return list(ordered)
        first = [j for j in ordered if j.id in prom]
        if len(first) < len(prom):  # started, cancelled or gone
            present = {j.id for j in first}
            for jid in [j for j in prom if j not in present]:
                del prom[jid]
        if not first:
            return list(ordered)
        return first + [j for j in ordered if j.id not in prom]

    # ------------------------------------------------------------ reservation
    def _release_events(
        self,
        st: PassState,
        cluster: ClusterState,
        now: float,
        victims: set[str],
    ) -> tuple[list[tuple[float, int, int, int, int]], list[str]]:
        """(end time, node, gpus, cpus, mem) for running jobs with a known end, sorted."""
        ev: list[tuple[float, int, int, int, int]] = []
        unknown: list[str] = []
        index = st.index
        for r in cluster.running:
            if r.id in victims:
                e = now  # being preempted: released now (the preemptor's need is charged)
            elif r.max_runtime_s is None:
                unknown.append(r.id)
                continue
            else:
                e = r.start_time + r.max_runtime_s
                if e < now:
                    e = now
            for name, g, c, m in self._node_parts(r):
                i = index.get(name)
                if i is not None:
                    ev.append((e, i, g, c, m))
        ev.sort()
        return ev, unknown

    def _reserve(
        self,
        head: JobRequest,
        st: PassState,
        cluster: ClusterState,
        now: float,
        started: list[tuple[JobRequest, list[int]]],
        victims: set[str],
        pctx: dict[str, Any] | None = None,
    ) -> tuple[float | None, tuple[str, ...], dict[int, tuple[int, int, int]] | None, list[str]]:
        """Earliest time the head fits, its nodes, and per-node caps for later jobs."""
        ev, unknown = self._release_events(st, cluster, now, victims)
        free = st.free_counts()
        for i, n in enumerate(st.nodes):
            free[i][0] -= n.held
        if pctx:
            # preemptors take their victims' GPUs: charge what they need beyond `held`
            for i, g in pctx.get("need", {}).items():
                free[i][0] -= g
        for j, _ids in started:
            if j.max_runtime_s is None:
                unknown.append(j.id)
        nodes = st.nodes
        t_found: float | None = None
        ids = fit_counts(head, free, nodes)  # type: ignore[arg-type]
        if ids is not None:
            t_found = now
        else:
            # jobs started in this pass are already subtracted from `free`; they are
            # released at now + max_runtime
            if started:
                ev = sorted(ev + self._started_events(started, now))
            single = head.nodes == 1
            g, c, m = head.gpus, head.cpus, head.memory_mb
            t = head.gpu_type
            ok_nodes: set[int] = set()
            if not single:
                for i, (fg, fc, fm) in enumerate(free):
                    n = nodes[i]
                    if (
                        fg >= g
                        and (not c or fc >= c)
                        and (not m or fm >= m)
                        and n.schedulable
                        and (t is None or gpu_type_matches(n.gpu_type, t))
                    ):
                        ok_nodes.add(i)
            for e, i, dg, dc, dm in ev:
                f = free[i]
                f[0] += dg
                f[1] += dc
                f[2] += dm
                n = nodes[i]
                if (
                    f[0] >= g
                    and (not c or f[1] >= c)
                    and (not m or f[2] >= m)
                    and n.schedulable
                    and (t is None or gpu_type_matches(n.gpu_type, t))
                ):
                    if single:
                        ids = [i]
                        t_found = e
                        break
                    ok_nodes.add(i)
                    if len(ok_nodes) >= head.nodes:
                        ids = fit_counts(head, free, nodes)  # type: ignore[arg-type]
                        t_found = e
                        break
        if t_found is None or ids is None:
            # unknown: protect every node that could ever host the head
            caps = {i: (0, 0, 0) for i in _could_host(head, nodes)}
            return None, (), caps, unknown
        caps = {}
        for i in ids:
            fg, fc, fm = free[i]
            caps[i] = (fg - head.gpus, fc - head.cpus, fm - head.memory_mb)
        return t_found, tuple(nodes[i].name for i in ids), caps, unknown

    @staticmethod
    def _started_events(
        started: list[tuple[JobRequest, list[int]]], now: float
    ) -> list[tuple[float, int, int, int, int]]:
        """Release events of the jobs started in this pass (at now + max_runtime)."""
        out = []
        for j, ids in started:
            if j.max_runtime_s is None:
                continue
            for i in ids:
                out.append((now + j.max_runtime_s, i, j.gpus, j.cpus, j.memory_mb))
        return out

    @staticmethod
    def _charge_caps(
        caps: dict[int, tuple[int, int, int]],
        job: JobRequest,
        ids: list[int],
        ends: float,
        shadow: float | None,
    ) -> None:
        if shadow is not None and ends <= shadow:
            return
        for i in ids:
            c = caps.get(i)
            if c is not None:
                caps[i] = (c[0] - job.gpus, c[1] - job.cpus, c[2] - job.memory_mb)

    # ------------------------------------------------------------ preemption
    def _try_preempt(
        self,
        job: JobRequest,
        st: PassState,
        cluster: ClusterState,
        now: float,
        victims: set[str],
        out: list[Preempt],
        ctx: dict[str, Any],
        avoid: set[int] | None = None,
        *,
        dry: bool = False,
    ) -> tuple[list[str], list[int]] | None:
        """Pick the cheapest set of outranked running jobs whose GPUs let `job` start.

        ``ctx`` is per pass: the preemptible running jobs, ranked once (worst first), and
        the shapes that already failed (a job ranked no better and no smaller fails too).
        ``avoid``: node indices the job may not take (a firm reservation's nodes).
        ``dry``: only say which jobs it would preempt (nothing is held, promised or added
        to ``victims``/``out``; give it a ctx of its own)."""
        if not cluster.running:
            return None
        if self.preempt_min_wait_s and now - job.submit_time < self.preempt_min_wait_s:
            return None  # it waits like any job until it has waited that long
        w = self.rank(job, cluster, now)
        failed_key = "failed" if not avoid else "failed_avoid"
        for fw, fg, fn, ft in ctx.setdefault(failed_key, []):
            if (
                not w < fw
                and job.gpus >= fg
                and job.nodes >= fn
                and (ft is None or ft == job.gpu_type)
            ):
                return None
        cands = ctx.get("cands")
        if cands is None:
            min_run = self.min_run_s
            elig = [
                r
                for r in cluster.running
                if r.preemptible
                and r.protected_until <= now
                and not (min_run and now - r.start_time < min_run)
            ]
            ranks = self.running_ranks(elig, cluster, now)
            # parts on node indices, kept across passes while the node list is the same
            layout = tuple(st.index)
            if layout != self._layout or len(self._iparts) > 100_000:
                self._layout = layout
                self._iparts.clear()
            iparts = self._iparts
            index = st.index
            cands = []
            for seq, (r, rk) in enumerate(zip(elig, ranks, strict=True)):
                hit = iparts.get(r.id)
                if hit is None or hit[0] is not r.allocation:
                    hit = iparts[r.id] = (
                        r.allocation,
                        [
                            (index[name], g, c, m)
                            for name, g, c, m in self._node_parts(r)
                            if name in index
                        ],
                    )
                cands.append((rk, r.start_time, -seq, r, hit[1]))
            # worst-ranked first, then the most recently started (least work lost), then
            # in the order of cluster.running (-seq: a stable sort's order for ties)
            cands.sort(reverse=True)
            ctx["cands"] = cands
        g, c, m = job.gpus, job.cpus, job.memory_mb
        # per node: accumulate victims (worst first) until the job fits there
        acc: dict[int, list[Any]] = {}
        done: list[tuple[int, int, int, list[RunningJob]]] = []
        gang_free = self.gang_free_nodes and job.nodes > 1
        typ = job.gpu_type
        nodes = st.nodes
        for rk, _t, _seq, r, parts in cands:
            if not w < rk:
                break
            if r.id in victims:
                continue
            for i, dg, dc, dm in parts:
                n = nodes[i]
                if (
                    not n.schedulable
                    or n.gpus_total < g
                    or (typ is not None and not gpu_type_matches(n.gpu_type, typ))
                ):
                    continue
                if avoid and i in avoid:
                    continue
                slot = acc.get(i)
                if slot is None:
                    slot = acc[i] = [len(n.free_g) - n.held, len(n.free_c), n.free_m, [], 0, False]
                    if (
                        gang_free
                        and slot[0] >= g
                        and (not c or slot[1] >= c)
                        and (not m or slot[2] >= m)
                    ):  # a gang's node that is free enough already: no victim there
                        slot[5] = True
                        done.append((0, 0, i, []))
                if slot[5]:
                    continue
                slot[0] += dg
                slot[1] += dc
                slot[2] += dm
                slot[3].append(r)
                slot[4] += dg
                if slot[0] >= g and (not c or slot[1] >= c) and (not m or slot[2] >= m):
                    slot[5] = True
                    done.append((len(slot[3]), slot[4], i, slot[3]))
        if gang_free and len(done) < job.nodes:
            # a gang also takes nodes that are free enough already (no victim there): only
            # counting nodes with victims made it wait, or preempt on every node it used
            for i, n in enumerate(nodes):
                if i in acc or (avoid and i in avoid) or not n.schedulable:
                    continue
                if n.gpus_total < g or (typ is not None and not gpu_type_matches(n.gpu_type, typ)):
                    continue
                if (
                    len(n.free_g) - n.held >= g
                    and (not c or len(n.free_c) >= c)
                    and (not m or n.free_m >= m)
                ):
                    done.append((0, 0, i, []))
        if len(done) < job.nodes:
            ctx[failed_key].append((w, g, job.nodes, typ))
            return None
        done.sort(key=lambda o: (o[0], o[1], o[2]))
        if not any(o[3] for o in done[: job.nodes]):  # fits without preempting: not ours to do
            return None
        if dry:
            ids = list(dict.fromkeys(r.id for o in done[: job.nodes] for r in o[3]))
            return [v for v in ids if v not in victims], [o[2] for o in done[: job.nodes]]
        names: list[str] = []
        node_ids: list[int] = []
        need = ctx.setdefault("need", {})
        for _nv, _lost, i, chosen in done[: job.nodes]:
            node_ids.append(i)
            before = st.nodes[i].held
            st.hold(i, job.gpus)
            need[i] = need.get(i, 0) + job.gpus - (st.nodes[i].held - before)
            for r in chosen:
                if r.id in victims:
                    continue
                victims.add(r.id)
                names.append(r.id)
                out.append(Preempt(job_id=r.id, reason=self.preempt_reason(job, r), for_job=job.id))
                self._inflight[r.id] = (job.id, now + self.promise_s)
        self._promised[job.id] = now + self.promise_s
        return names, node_ids

    def _preempt_later(
        self, job: JobRequest, st: PassState, cluster: ClusterState, now: float, victims: set[str]
    ) -> tuple[float, list[str], str] | None:
        """Explain mode, for a head that found nothing to preempt now: the first moment a
        protection ends (a running job's ``protected_until`` or ``min_run_s``, this job's
        ``preempt_min_wait_s``) at which it would preempt, as (time, victim ids, "protect" or
        "wait": what it waits for), or None. Looks at the 8 earliest such moments; decides
        nothing."""
        times: dict[float, str] = {}
        wait = self.preempt_min_wait_s
        if wait and now < job.submit_time + wait:
            times[job.submit_time + wait] = "wait"
        min_run = self.min_run_s
        for r in cluster.running:
            if not r.preemptible or r.id in victims:
                continue
            p = r.protected_until
            if min_run:
                p = max(p, r.start_time + min_run)
            if now < p < INF:
                times.setdefault(p, "protect")
        for t in sorted(times)[:8]:
            got = self._try_preempt(job, st, cluster, t, victims, [], {}, dry=True)
            if got is not None and got[0]:
                return t, got[0], times[t]
        return None

    def _node_parts(self, r: RunningJob) -> tuple[tuple[str, int, int, int], ...]:
        """(node name, GPUs, CPUs, memory MB) of each node of a running job; worked out once
        per Allocation object (once per run of the job in the simulator), not once per pass."""
        hit = self._parts.get(r.id)
        if hit is None or hit[0] is not r.allocation:
            if len(self._parts) > 200_000:
                self._parts.clear()
            hit = self._parts[r.id] = (
                r.allocation,
                tuple(
                    (name, len(a.gpus), len(a.cpus), a.memory_mb)
                    for name, a in r.allocation.nodes.items()
                ),
            )
        return hit[1]

    @staticmethod
    def _hold_victims(
        job: JobRequest, vics: list[RunningJob], st: PassState, pctx: dict[str, Any]
    ) -> list[int]:
        """Keep the free GPUs on the nodes of `job`'s in-flight victims for it."""
        need = pctx.setdefault("need", {})
        node_ids: list[int] = []
        for r in vics:
            for name in r.allocation.nodes:
                i = st.index.get(name)
                if i is None or i in node_ids:
                    continue
                node_ids.append(i)
                before = st.nodes[i].held
                st.hold(i, job.gpus)
                need[i] = need.get(i, 0) + job.gpus - (st.nodes[i].held - before)
        return node_ids

    # ------------------------------------------------------------ explanations
    def _explain(
        self,
        ordered: Sequence[JobRequest],
        kinds: dict[str, tuple[Any, ...]],
        waiting: list[JobRequest],
        st: PassState,
        cluster: ClusterState,
        now: float,
        started: list[tuple[JobRequest, list[int]]],
        victims: set[str],
        head: JobRequest | None,
        shadow: float | None,
        unknown_end: list[str],
        need_of: dict[int, int] | None = None,
        later: tuple[float, list[str], str] | None = None,
        used: dict[str, int] | None = None,
        at_quota: list[tuple[int, JobRequest]] | None = None,
    ) -> dict[str, Pending]:
        line = waiting
        if at_quota:
            # the jobs the pass found at their project's GPU quota are estimated too, in queue
            # order among the others (the replay defers them as it does the jobs it finds at
            # their quota); a job larger than the quota itself never starts (not listed)
            line = []
            prev = 0
            for pos, j in at_quota:
                line += waiting[prev:pos]
                line.append(j)
                prev = pos
            line += waiting[prev:]
        est = self._estimates(
            line,
            st,
            cluster,
            now,
            started,
            victims,
            kinds,
            need_of,
            [j for _, j in at_quota] if at_quota else (),
        )
        if later is not None and head is not None and kinds.get(head.id, ("",))[0] == "head":
            e = est.get(head.id)
            est[head.id] = later[0] if e is None else min(e, later[0])
        blocks: dict[str | None, tuple[int, str | None]] = {}
        need_cache: dict[tuple[Any, ...], str] = {}
        pending: dict[str, Pending] = {}
        win_txt = f"; beyond the backfill window (first {self.backfill_depth} jobs)"
        ahead = 0
        for job in ordered:
            k = kinds.get(job.id)
            if k is None:
                continue
            kind = k[0]
            tg = job.gpus * job.nodes
            if kind == "quota":
                _, u, q = k
                if tg > q:
                    reason = (
                        f"needs {_plural(tg, 'GPU')} but project {job.project}'s GPU quota is {q}; "
                        f"ask an admin to raise the quota or request at most {_plural(q, 'GPU')}"
                    )
                    pending[job.id] = Pending(job_id=job.id, reason=reason, estimated_start=None)
                    continue
                # the project's GPUs in use once this pass's starts and preemptions are made
                # (a later job of the project that fitted the quota may have started or
                # preempted after this one was checked: the use it was checked against is no
                # longer true)
                if used is not None:
                    u = used.get(job.project, 0)
                if u >= q:
                    # lowered below what the project runs: "over", not "at"
                    where = "over" if u > q else "at"
                    reason = f"project {job.project} {where} its GPU quota ({u}/{q} GPUs in use)"
                else:
                    reason = (
                        f"needs {_plural(tg, 'GPU')} but project {job.project} has only "
                        f"{_plural(q - u, 'GPU')} of its GPU quota free ({u}/{q} GPUs in use)"
                    )
                # its start: when its project's jobs end and give it the GPUs it needs (the
                # replay); None where they run without max_runtime
                pending[job.id] = _pending(job.id, reason, est.get(job.id))
                continue
            if kind == "never":
                bad = bad_shape(job)
                if bad is not None:
                    reason = f"the request cannot be run: {bad}; resubmit it with a valid request"
                elif names := st.waits_for_blocked(job):
                    reason = f"{self._shape(job)}: {self._off_nodes(names)}"
                else:
                    reason = (
                        f"{self._shape(job)}: no node of this cluster can ever hold it; "
                        "request fewer GPUs/CPUs per node or add nodes"
                    )
                pending[job.id] = Pending(job_id=job.id, reason=reason, estimated_start=None)
                continue
            if kind == "preempting":
                names = k[1][0]
                reason = (
                    f"{self._shape(job)}; preempting {', '.join(names)} to make room "
                    "(starts after their grace period)"
                    if names
                    else f"{self._shape(job)}; waiting for preempted jobs to release their GPUs"
                )
                pending[job.id] = Pending(job_id=job.id, reason=reason, estimated_start=now)
                ahead += 1
                continue
            skey = (job.gpus, job.nodes, job.gpu_type, job.cpus, job.memory_mb)
            need = need_cache.get(skey)
            if need is None:
                need = need_cache[skey] = self._need_text(job, st, blocks)
            ahead_txt = f"; {ahead} jobs ahead" if ahead > 1 else "; 1 job ahead" if ahead else ""
            if kind == "window":
                # never tried against the free capacity: where its GPUs are free, that is what
                # it waits for, not "CPUs or memory are short" (the need text of a job tried)
                reason = need.removesuffix(SHORT_TXT) + win_txt + ahead_txt
            elif kind == "blocked":
                reason = need + ahead_txt
            elif kind == "head":
                if later is not None and job is head:
                    t, ids, why = later
                    more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
                    one = len(ids) == 1
                    if why == "wait":
                        why = (
                            f"once it has waited {fmt_duration(self.preempt_min_wait_s)} "
                            "(preempt_min_wait_s)"
                        )
                    else:
                        why = (
                            "when its minimum run time ends"
                            if one
                            else "when their minimum run times end"
                        )
                    tail = (
                        f"first in line; preempts job{'' if one else 's'} "
                        f"{', '.join(ids[:3])}{more} in {fmt_duration(t - now)}, {why}"
                    )
                elif self.strict or not self.backfill:
                    tail = "first in line"
                elif shadow is not None:
                    tail = f"first in line, reserved to start in {fmt_duration(shadow - now)}"
                elif unknown_end:
                    n_more = len(unknown_end) - 1
                    who = (
                        f"running jobs {unknown_end[0]} and {n_more} more have"
                        if n_more
                        else f"running job {unknown_end[0]} has"
                    )
                    tail = (
                        f"first in line; reservation time unknown: {who} no max_runtime, so "
                        "nothing is backfilled onto nodes it could use"
                    )
                else:
                    tail = "first in line"
                reason = f"{need}; {tail}"
            elif kind == "behind":
                reason = f"{need}; waiting behind job {k[1]} (strict FIFO){ahead_txt}"
            elif kind == "delay":
                h = k[1]
                if k[2] is not None:
                    lim = f"; a max_runtime under {fmt_duration(k[2] - now)} would let it backfill"
                    reason = f"fits now but would delay the reservation of job {h}{lim}{ahead_txt}"
                else:
                    # no reservation to delay: job h's start is unknown (running jobs without
                    # max_runtime), and no job goes where h could start meanwhile
                    reason = (
                        f"fits now, but only on nodes kept for job {h}, whose start is unknown "
                        f"(running jobs without max_runtime){ahead_txt}"
                    )
            else:
                reason = f"{need}{ahead_txt}"
            pending[job.id] = _pending(job.id, reason, est.get(job.id))
            ahead += 1
        return pending

    def _off_nodes(self, names: list[str]) -> str:
        """Why a job waits for nodes that take no jobs now (and why they take none, where this
        pass knows): "only node a (running jobs hold GPU(s) 7, which its inventory lacks) can
        hold it, and it takes no new jobs now; it waits until it does"."""
        shown = names[:3]
        parts = []
        for name in shown:
            why = self._blocked.get(name)
            parts.append(f"{name} ({why})" if why else f"{name} (not schedulable)")
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        if len(names) == 1:
            return (
                f"only node {parts[0]} can hold it, and it takes no new jobs now; "
                "it waits until it does"
            )
        return (
            f"only nodes {', '.join(parts)}{more} can hold it, and they take no new jobs now; "
            "it waits until they do"
        )

    @staticmethod
    def _shape(job: JobRequest) -> str:
        typ = f" {job.gpu_type}" if job.gpu_type else ""
        if job.gpus == 0:
            return f"needs {_plural(job.cpus, 'CPU')}" + (
                f" on each of {job.nodes} nodes" if job.nodes > 1 else " on one node"
            )
        if job.nodes > 1:
            gpus = "GPU" if job.gpus == 1 else "GPUs"
            return f"needs {job.gpus}{typ} {gpus} on each of {job.nodes} nodes"
        return f"needs {job.gpus}{typ} GPU{'s' if job.gpus != 1 else ''} on one node"

    def _need_text(
        self,
        job: JobRequest,
        st: PassState,
        blocks: dict[str | None, tuple[int, str | None]],
    ) -> str:
        shape = self._shape(job)
        if job.gpus == 0:
            best = max((len(n.free_c) for n in st.nodes if n.schedulable), default=0)
            return f"{shape}; largest free block is {_plural(best, 'CPU')}"
        b = blocks.get(job.gpu_type)
        if b is None:
            b = blocks[job.gpu_type] = st.largest_block(job.gpu_type)
        size, node = b
        if size <= 0:
            return f"{shape}; no GPU free" + (f" of type {job.gpu_type}" if job.gpu_type else "")
        if job.nodes > 1:
            k = sum(
                1
                for n in st.nodes
                if n.schedulable
                and len(n.free_g) - n.held >= job.gpus
                and (job.gpu_type is None or gpu_type_matches(n.gpu_type, job.gpu_type))
            )
            return f"{shape}; {k} node{'s have' if k != 1 else ' has'} that many free"
        if size >= job.gpus:
            return f"{shape}; {size} GPUs free on node {node}{SHORT_TXT}"
        return f"{shape}; largest free block is {_plural(size, 'GPU')} (node {node})"

    # ------------------------------------------------------------ start estimates
    def _estimates(
        self,
        waiting: list[JobRequest],
        st: PassState,
        cluster: ClusterState,
        now: float,
        started: list[tuple[JobRequest, list[int]]],
        victims: set[str],
        kinds: dict[str, tuple[Any, ...]] | None = None,
        need_of: dict[int, int] | None = None,
        at_quota: Sequence[JobRequest] = (),
    ) -> dict[str, float | None]:
        """Estimated start of each waiting job: the queue replayed in order on the free
        capacity as running jobs reach max_runtime (first ``estimate_depth`` jobs), then a
        fluid estimate (GPU-seconds ahead / GPUs) for the rest. A job that preempts
        starts now on the GPUs its victims free (held for it, as in the reservation). A job
        whose project is at its GPU quota at the replay's time (``waiting`` holds the jobs the
        pass found at their quota too, in queue order; ``at_quota`` lists those) waits without
        holding back the jobs behind it, and is back in line when its project's GPUs are: the
        replayed estimates, read as a schedule, never hold more GPUs than a node has or a
        project may use. Beyond them, a job of ``at_quota`` is estimated no earlier than its
        project's running jobs give back the GPUs it needs."""
        out: dict[str, float | None] = {}
        if not waiting:
            return out
        free = st.free_counts()
        for i, n in enumerate(st.nodes):
            free[i][0] -= n.held
        for i, g in (need_of or {}).items():
            free[i][0] -= g
        preempting: list[tuple[JobRequest, list[int]]] = []
        if kinds:
            for j in waiting:
                k = kinds.get(j.id)
                if k is not None and k[0] == "preempting":
                    preempting.append((j, k[1][1]))
            if preempting:
                gone = {id(j) for j, _ in preempting}
                waiting = [j for j in waiting if id(j) not in gone]
        heap: list[tuple[float, int, list[tuple[int, int, int, int]]]] = []
        seq = 0
        index = st.index
        # GPU quotas in the replay: GPUs per project held at the replay's time, and whose GPUs
        # each heap entry gives back (a second job of a project at its quota was estimated to
        # start beside the first, which the pass never does)
        quotas = cluster.gpu_quotas
        use: dict[str, int] = {}
        owner: dict[int, tuple[str, int]] = {}
        if quotas:
            for r in cluster.running:
                use[r.project] = use.get(r.project, 0) + r.allocation.total_gpus
            for j, _ in (*started, *preempting):
                use[j.project] = use.get(j.project, 0) + j.gpus * j.nodes
        for r in cluster.running:
            if quotas and (r.id in victims or r.max_runtime_s is not None):
                owner[seq] = (r.project, r.allocation.total_gpus)
            if r.id in victims:
                parts = [
                    (index[nm], len(a.gpus), len(a.cpus), a.memory_mb)
                    for nm, a in r.allocation.nodes.items()
                    if nm in index
                ]
                heap.append((now, seq, parts))
                seq += 1
                continue
            if r.max_runtime_s is None:
                continue
            parts = [
                (index[nm], len(a.gpus), len(a.cpus), a.memory_mb)
                for nm, a in r.allocation.nodes.items()
                if nm in index
            ]
            heap.append((max(now, r.start_time + r.max_runtime_s), seq, parts))
            seq += 1
        for j, sids in started:
            if j.max_runtime_s is None:
                continue
            if quotas:
                owner[seq] = (j.project, j.gpus * j.nodes)
            parts = [(i, j.gpus, j.cpus, j.memory_mb) for i in sids]
            heap.append((now + j.max_runtime_s, seq, parts))
            seq += 1
        for j, sids in preempting:  # their GPUs are charged above; CPUs/memory here
            parts = [(i, j.gpus, j.cpus, j.memory_mb) for i in sids]
            for i, _g, c, m in parts:
                free[i][1] -= c
                free[i][2] -= m
            if j.max_runtime_s is not None:
                if quotas:
                    owner[seq] = (j.project, j.gpus * j.nodes)
                heap.append((now + j.max_runtime_s, seq, parts))
                seq += 1
        heapq.heapify(heap)
        rest = waiting[self.estimate_depth :]
        # beyond the replayed jobs, a job the pass found at its project's GPU quota is estimated
        # no earlier than its project's GPUs come back: when (end time, GPUs) per project
        late: list[JobRequest] = []
        back: dict[str, list[tuple[float, int]]] = {}
        use0: dict[str, int] = {}
        if rest and at_quota:
            replayed = {id(j) for j in waiting[: self.estimate_depth]}
            late = [j for j in at_quota if id(j) not in replayed]
            if late:
                for te, s_, _ in heap:
                    o = owner.get(s_)
                    if o is not None:
                        back.setdefault(o[0], []).append((te, o[1]))
                for ends in back.values():
                    ends.sort()
                use0 = dict(use)
        t = now
        nodes = st.nodes
        last: float | None = now
        dflt = self.default_runtime_s
        if dflt is None:
            # jobs without max_runtime: assume the mean of the known ones (stated in docs)
            known = [j.max_runtime_s for j in waiting if j.max_runtime_s is not None]
            known += [r.max_runtime_s for r in cluster.running if r.max_runtime_s is not None]
            dflt = sum(known) / len(known) if known else None
        # Jobs at their project's GPU quota at the replay's time, in queue order. Like the
        # pass, such a job keeps no nodes and holds back no job behind it (of any project):
        # those are placed at the replay's time, their GPUs and their share of the quota
        # taken. It is back in line, ahead of every job behind it, at the first end in the
        # replay after which its project's GPUs allow it: it starts then if it fits, else it
        # holds the replay's clock (as any job in line does) until it fits. Its start is thus
        # found on the replay as it is then, with every job placed meanwhile (a look-ahead on
        # a copy of the replay ignored them: a later job of its own project that took the
        # quota, jobs of other projects that took the GPUs it needs).
        # per project, in queue order: (place in the queue, job); and the fewest GPUs one of
        # them needs (no release of the project's GPUs below that lets any of them start, so
        # the replay's ends are not each followed by a look at every deferred job)
        deferred: dict[str, list[tuple[int, JobRequest]]] = {}
        dmin: dict[str, int] = {}

        def ready(p: str) -> bool:
            """Whether a deferred job of project ``p`` fits its quota at the replay's time."""
            return use.get(p, 0) + dmin[p] <= quotas[p]

        def release() -> str | None:
            """Apply the next end in the replay; the project that got GPUs back, if any."""
            nonlocal t
            te, s_, parts = heapq.heappop(heap)
            t = max(t, te)
            for i, g, c, m in parts:
                f = free[i]
                f[0] += g
                f[1] += c
                f[2] += m
            o = owner.pop(s_, None)
            if o is None:
                return None
            use[o[0]] -= o[1]
            return o[0]

        def place(job: JobRequest, ids: list[int], tg: int) -> None:
            """``job`` starts at the replay's time on nodes ``ids`` and holds them until its
            max_runtime (or the default) runs out."""
            nonlocal seq
            out[job.id] = t
            parts = []
            for i in ids:
                f = free[i]
                f[0] -= job.gpus
                f[1] -= job.cpus
                f[2] -= job.memory_mb
                parts.append((i, job.gpus, job.cpus, job.memory_mb))
            dur = job.max_runtime_s if job.max_runtime_s is not None else dflt
            if quotas:
                use[job.project] = use.get(job.project, 0) + tg
            if dur is not None:
                if quotas:
                    owner[seq] = (job.project, tg)
                heapq.heappush(heap, (t + dur, seq, parts))
                seq += 1

        def unknown(job: JobRequest) -> None:
            """``job`` waits on running jobs without max_runtime: its start is unknown and, like
            the pass (the head whose reservation time is unknown), nothing later goes on a
            node it could ever use (a job behind it read "fits now but would delay the
            reservation of job h" with an estimated start of now, and the ones after it
            chained on that)."""
            out[job.id] = None
            for i in _could_host(job, nodes):
                free[i] = [-INF, -INF, -INF]  # type: ignore[list-item]

        def settle(in_line: bool) -> None:
            """Start the deferred jobs whose project's GPUs are back, in queue order."""
            nonlocal last
            while True:
                # the first deferred job (in the queue) that its project's quota allows
                best: tuple[int, str, int] | None = None
                for p, lst in deferred.items():
                    if not ready(p) or (best is not None and lst[0][0] > best[0]):
                        continue
                    room = quotas[p] - use.get(p, 0)
                    for k, (pos, d) in enumerate(lst):
                        if best is not None and pos > best[0]:
                            break
                        if d.gpus * d.nodes <= room:
                            best = (pos, p, k)
                            break
                if best is None:
                    return
                _, p, k = best
                lst = deferred[p]
                d = lst[k][1]
                dids = fit_counts(d, free, nodes)  # type: ignore[arg-type]
                if dids is None and heap:
                    # in line and first: the clock moves on until it fits (a deferred job
                    # before it whose project's GPUs come back meanwhile goes first)
                    release()
                    continue
                dg = d.gpus * d.nodes
                del lst[k]
                if not lst:
                    del deferred[p], dmin[p]
                elif dg == dmin[p]:
                    dmin[p] = min(j.gpus * j.nodes for _, j in lst)
                if dids is None:
                    unknown(d)
                    if in_line:
                        last = None
                else:
                    place(d, dids, dg)
                    if in_line:
                        last = t

        for pos, job in enumerate(waiting[: self.estimate_depth]):
            tg = job.gpus * job.nodes
            q = quotas.get(job.project) if quotas else None
            while True:
                if q is not None and use.get(job.project, 0) + tg > q:
                    pj = job.project
                    if pj in deferred:
                        deferred[pj].append((pos, job))
                        dmin[pj] = min(dmin[pj], tg)
                    else:
                        deferred[pj] = [(pos, job)]
                        dmin[pj] = tg
                    break
                ids = fit_counts(job, free, nodes)  # type: ignore[arg-type]
                if ids is not None:
                    place(job, ids, tg)
                    last = t
                    break
                if not heap:
                    unknown(job)
                    last = None
                    break
                p = release()
                if p is not None and p in deferred and ready(p):
                    settle(True)
        # deferred jobs still waiting for their project's GPUs: the replay goes on for them
        # alone (the fluid estimate of the jobs beyond estimate_depth starts from ``last``)
        while deferred:
            if not heap:
                for lst in deferred.values():
                    for _, d in lst:
                        out[d.id] = None  # its project's GPUs: held by jobs without max_runtime
                break
            p = release()
            if p is not None and p in deferred and ready(p):
                settle(False)
        if rest:
            total = max(1, st.gpus_total)
            acc = 0.0
            for job in rest:
                dur = job.max_runtime_s if job.max_runtime_s is not None else dflt
                if last is None or dur is None:
                    last = None
                    out[job.id] = None
                    continue
                out[job.id] = last + acc / total
                acc += dur * max(1, job.gpus * job.nodes)
            for job in late:
                e = out[job.id]
                if e is None:
                    continue
                # found at its quota by the pass: no earlier than its project's running (and
                # just started) jobs give back the GPUs it needs; unknown where jobs without
                # max_runtime hold them
                need = job.gpus * job.nodes - (quotas[job.project] - use0.get(job.project, 0))
                tq: float | None = now
                if need > 0:
                    tq = None
                    for te, g in back.get(job.project, ()):
                        need -= g
                        if need <= 0:
                            tq = te
                            break
                out[job.id] = None if tq is None else max(e, tq)
        return out
