"""The event loop: replays a trace on N nodes × G GPUs with a virtual clock, driving the very
same ``Policy`` objects the server uses.

Events are arrivals (the trace, already sorted), completions (a heap with lazy
invalidation for preempted jobs) and policy wake-ups (``Policy.wakeup_after``, e.g. a
running job crossing a LAS threshold). The queue is kept sorted by the policy's static
``order_key`` (one bisect per arrival and per start, no re-sort per event), and
``NodeState`` objects are rebuilt only for nodes that changed, so one event costs about
O(log queue + nodes touched) plus the policy's pass.

Preemption: the victim's GPUs are released at once; its progress is kept (it checkpoints)
and it pays ``preempt_cost_s`` (checkpoint + restart) on its next run. A job may not be
preempted within ``protect_s`` of (re)starting (``RunningJob.protected_until``).
"""

from __future__ import annotations

import bisect
import heapq
import inspect
import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

from aistack.errors import ValidationError
from aistack.scheduler.base import Policy, SortedQueue
from aistack.scheduler.check import InvariantViolation
from aistack.scheduler.policies import FairSharePolicy
from aistack.scheduler.simulator.trace import TraceJob
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeState,
    RunningJob,
)

log = logging.getLogger(__name__)


MAX_NODES = 100_000
MAX_GPUS_PER_NODE = 1024


@dataclass(kw_only=True)
class SimConfig:
    nodes: int
    gpus_per_node: int
    preempt_cost_s: float = 60.0  # checkpoint + restart overhead per preemption
    protect_s: float = 600.0  # minimum run time before a job may be preempted (again)
    usage_half_life_s: float = 7 * 86400.0  # fair-share usage decay
    check_invariants: bool = True
    max_passes_per_event: int = 4

    def __post_init__(self) -> None:
        for name, flag in (
            ("nodes", "--nodes 8"),
            ("gpus_per_node", "--gpus-per-node 8"),
            ("max_passes_per_event", "max_passes_per_event=4"),
        ):
            v = getattr(self, name)
            # a float (2.5, NaN) or text passed every check below, or failed with TypeError
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValidationError(
                    f"{name}: must be a whole number, got {v!r}", hint=f"e.g. {flag}"
                )
        if self.max_passes_per_event < 1:
            # 0 never scheduled anything: every job stayed queued
            raise ValidationError(
                f"max_passes_per_event: must be at least 1, got {self.max_passes_per_event}",
                hint="e.g. max_passes_per_event=4 (the default)",
            )
        if self.nodes < 1:
            raise ValidationError("nodes: must be at least 1", hint="--nodes 8")
        if self.nodes > MAX_NODES:
            # the simulator keeps a state per node: 100,000 take ~3 s and 0.4 GB to set up
            raise ValidationError(
                f"nodes: {self.nodes:,} is more than the simulator takes ({MAX_NODES:,})",
                hint="simulate a cluster of at most 100,000 nodes (--nodes)",
            )
        if not 1 <= self.gpus_per_node <= MAX_GPUS_PER_NODE:
            raise ValidationError(
                f"gpus_per_node: must be 1 to {MAX_GPUS_PER_NODE}, got {self.gpus_per_node}",
                hint="--gpus-per-node 8",
            )
        for name in ("preempt_cost_s", "protect_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                flag = "--preempt-cost" if name == "preempt_cost_s" else "--protect"
                raise ValidationError(
                    f"{name}: must be a finite number of seconds >= 0, got {v}",
                    hint=f"e.g. {flag} {60 if name == 'preempt_cost_s' else 600}",
                )
        h = self.usage_half_life_s
        if (
            isinstance(h, bool)
            or not isinstance(h, numbers.Real)
            or not (math.isfinite(h) and h > 0)
        ):
            # 0 divided by zero in fair share's decay, NaN turned every usage into NaN
            raise ValidationError(
                f"usage_half_life_s: must be a finite number of seconds > 0, got {h!r}",
                hint="e.g. usage_half_life_s=604800 (a week, the default)",
            )

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(kw_only=True)
class SimResult:
    policy: str
    config: SimConfig
    jobs: list[TraceJob]  # the jobs simulated (too-large ones dropped)
    alloc_gpus: list[int]  # GPUs each job held (gang rounded to whole nodes)
    first_start: list[float]
    finish: list[float]
    preemptions: list[int]
    busy_gpu_s: float
    dropped: list[str] = field(default_factory=list)
    passes: int = 0
    events: int = 0
    wall_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


def _shape(gpus: int, g: int) -> tuple[int, int]:
    """(GPUs per node, nodes): ≤ G GPUs on one node, larger jobs take whole nodes."""
    if gpus <= g:
        return gpus, 1
    return g, math.ceil(gpus / g)


def simulate(trace: list[TraceJob], policy: Policy, config: SimConfig) -> SimResult:
    """Replay ``trace`` under ``policy``; returns per-job times and the metrics."""
    from aistack.scheduler.simulator.metrics import compute_metrics

    t0 = time.perf_counter()
    G = config.gpus_per_node
    total = config.total_gpus
    jobs: list[TraceJob] = []
    dropped: list[str] = []
    _check_trace(trace)
    for j in sorted(trace, key=lambda x: x.submit):
        gpn, nn = _shape(j.gpus, G)
        if j.gpus <= 0 or nn > config.nodes:
            dropped.append(j.id)
        else:
            jobs.append(j)
    if dropped:
        log.warning("dropped %d jobs that need 0 GPUs or more than %d GPUs", len(dropped), total)
    n = len(jobs)
    gpn_l = [0] * n
    nn_l = [0] * n
    alloc_l = [0] * n
    for i, j in enumerate(jobs):
        gpn_l[i], nn_l[i] = _shape(j.gpus, G)
        alloc_l[i] = gpn_l[i] * nn_l[i]
    remaining = [j.duration for j in jobs]  # wall time still to run (incl. restart costs)
    executed = [0.0] * n  # progress made (seconds)
    first_start = [math.nan] * n
    finish = [math.nan] * n
    npre = [0] * n
    run_start = [0.0] * n
    version = [0] * n
    ids = [f"{i:07d}" for i in range(n)]
    index = {s: i for i, s in enumerate(ids)}
    cost = config.preempt_cost_s

    # cluster
    names = [f"n{k:03d}" for k in range(config.nodes)]
    node_of = {nm: k for k, nm in enumerate(names)}
    gtot = tuple(range(G))
    free: list[set[int]] = [set(gtot) for _ in range(config.nodes)]
    node_states = [NodeState(name=nm, gpus_total=gtot, gpus_free=frozenset(gtot)) for nm in names]
    dirty: set[int] = set()
    free_total = total
    running: dict[str, RunningJob] = {}
    allocs: dict[int, Allocation] = {}
    busy = 0.0

    # queue
    probe = None
    if n:
        # probe for a static order key (a policy that memoises by job id sees it as "probe")
        probe = policy.order_key(
            JobRequest(
                id="probe",
                gpus=gpn_l[0],
                nodes=nn_l[0],
                submit_time=-math.inf,
                true_duration_s=jobs[0].duration,
            )
        )
    presorted = probe is not None
    queue: list[JobRequest] = SortedQueue(policy) if presorted else []
    keys: list[Any] = []
    key_of: dict[str, Any] = {}
    fairshare = isinstance(policy, FairSharePolicy)
    usage: dict[str, float] = {}
    usage_t = 0.0
    half = config.usage_half_life_s

    def make_req(i: int) -> JobRequest:
        j = jobs[i]
        g = alloc_l[i]
        est = j.max_runtime
        mr = None if est is None else max(0.0, est - executed[i]) + (cost if npre[i] else 0.0)
        return JobRequest(
            id=ids[i],
            project=j.project,
            user=j.user,
            priority=j.priority,
            submit_time=j.submit,
            gpus=gpn_l[i],
            cpus=0,
            nodes=nn_l[i],
            max_runtime_s=mr,
            attained_service_s=executed[i] * g,
            true_duration_s=j.duration + npre[i] * cost,
        )

    def enqueue(req: JobRequest) -> None:
        if presorted:
            k = policy.order_key(req)
            pos = bisect.bisect_right(keys, k)
            keys.insert(pos, k)
            queue.insert(pos, req)
            key_of[req.id] = k
        else:
            queue.append(req)

    def decay(t: float) -> None:
        nonlocal usage_t
        if t > usage_t and usage:
            f = 0.5 ** ((t - usage_t) / half)
            for p in usage:
                usage[p] *= f
        usage_t = t

    def release(i: int, t: float) -> None:
        nonlocal free_total, busy
        elapsed = t - run_start[i]
        busy += elapsed * alloc_l[i]
        executed[i] += elapsed
        if fairshare:
            decay(t)
            p = jobs[i].project
            usage[p] = usage.get(p, 0.0) + elapsed * alloc_l[i]
        a = allocs.pop(i)
        for nm, na in a.nodes.items():
            k = node_of[nm]
            free[k].update(na.gpus)
            dirty.add(k)
        free_total += alloc_l[i]
        del running[ids[i]]

    def cluster_state(t: float) -> ClusterState:
        for k in dirty:
            node_states[k] = NodeState(name=names[k], gpus_total=gtot, gpus_free=frozenset(free[k]))
        dirty.clear()
        u: dict[str, float] = {}
        if fairshare:
            decay(t)
            u = dict(usage)
            for r in running.values():
                u[r.project] = u.get(r.project, 0.0) + (t - r.start_time) * r.allocation.total_gpus
        return ClusterState(nodes=tuple(node_states), running=tuple(running.values()), usage=u)

    heap: list[tuple[float, int, int]] = []  # (finish time, version, job index)
    arr = 0
    wake: float | None = None
    passes = 0
    events = 0
    check = config.check_invariants
    preemptive = policy.preemptive
    inf = math.inf
    observe = getattr(policy, "observe", None)
    # policies that learn from siblings are told which job finished, and say which
    # queued jobs' keys that changed (re-inserted below instead of re-sorting the queue)
    observe_id = observe is not None and "job_id" in inspect.signature(observe).parameters
    take_rekeyed = getattr(policy, "take_rekeyed", None) if presorted else None
    if take_rekeyed is not None:
        take_rekeyed()  # from now on the policy collects the ids whose keys change
    policy_epoch = getattr(policy, "order_epoch", 0)

    while True:
        ta = jobs[arr].submit if arr < n else inf
        tc = heap[0][0] if heap else inf
        tw = wake if wake is not None else inf
        t = min(ta, tc, tw)
        if t == inf:
            break
        events += 1
        while heap and heap[0][0] <= t:
            tf, ver, i = heapq.heappop(heap)
            if ver != version[i]:
                continue
            release(i, tf)
            finish[i] = tf
            if observe_id:
                observe(jobs[i].duration, alloc_l[i], job_id=ids[i])  # type: ignore[misc]
            elif observe is not None:
                observe(jobs[i].duration, alloc_l[i])
        if observe is not None and presorted and policy_epoch != getattr(policy, "order_epoch", 0):
            policy_epoch = getattr(policy, "order_epoch", 0)
            _resort(policy, queue, keys, key_of)
            if take_rekeyed is not None:
                take_rekeyed()
        elif take_rekeyed is not None:
            re = take_rekeyed()
            if re:
                _rekey(policy, queue, keys, key_of, re)
        while arr < n and jobs[arr].submit <= t:
            enqueue(make_req(arr))
            arr += 1
        if wake is not None and wake <= t:
            wake = None
        if not queue:
            continue
        for _ in range(config.max_passes_per_event):
            if not queue or (not preemptive and free_total == 0):
                break
            d = policy.schedule(queue, cluster_state(t), t)
            passes += 1
            for p in d.preemptions:
                i = index[p.job_id]
                if i not in allocs:
                    raise InvariantViolation(f"policy preempted {p.job_id}, which is not running")
                remaining[i] = remaining[i] - (t - run_start[i]) + cost
                release(i, t)
                version[i] += 1
                npre[i] += 1
                enqueue(make_req(i))
            if d.starts:
                started_ids = set()
                for s in d.starts:
                    i = index.get(s.job_id, -1)
                    if i < 0 or i in allocs:
                        raise InvariantViolation(f"policy started unknown/running job {s.job_id}")
                    a = s.allocation
                    if check:
                        if a.total_gpus != alloc_l[i] or len(a.nodes) != nn_l[i]:
                            raise InvariantViolation(
                                f"job {s.job_id}: got {a.total_gpus} GPUs on {len(a.nodes)} "
                                f"nodes, asked {gpn_l[i]}×{nn_l[i]}"
                            )
                    for nm, na in a.nodes.items():
                        k = node_of[nm]
                        fk = free[k]
                        if check and not fk.issuperset(na.gpus):
                            raise InvariantViolation(
                                f"job {s.job_id}: GPUs {na.gpus} on {nm} are not free (over-allocation)"
                            )
                        fk.difference_update(na.gpus)
                        dirty.add(k)
                    free_total -= alloc_l[i]
                    if check and free_total < 0:
                        raise InvariantViolation("more GPUs allocated than exist")
                    allocs[i] = a
                    run_start[i] = t
                    if first_start[i] != first_start[i]:  # NaN
                        first_start[i] = t
                    version[i] += 1
                    heapq.heappush(heap, (t + remaining[i], version[i], i))
                    j = jobs[i]
                    est = j.max_runtime
                    running[ids[i]] = RunningJob(
                        id=ids[i],
                        project=j.project,
                        user=j.user,
                        priority=j.priority,
                        allocation=a,
                        start_time=t,
                        submit_time=j.submit,
                        max_runtime_s=None
                        if est is None
                        else max(0.0, est - executed[i]) + (cost if npre[i] else 0.0),
                        attained_service_s=executed[i] * alloc_l[i],
                        protected_until=t + config.protect_s,
                        true_duration_s=j.duration + npre[i] * cost,
                    )
                    started_ids.add(s.job_id)
                _remove(queue, keys, key_of, started_ids, presorted)
            if not d.preemptions:
                break
        if preemptive and queue:
            w = policy.wakeup_after(cluster_state(t), t)
            wake = w if (w is not None and w > t) else None

    if queue or running:
        raise InvariantViolation(
            f"simulation ended with {len(queue)} queued and {len(running)} running jobs"
        )
    res = SimResult(
        policy=policy.name,
        config=config,
        jobs=jobs,
        alloc_gpus=alloc_l,
        first_start=first_start,
        finish=finish,
        preemptions=npre,
        busy_gpu_s=busy,
        dropped=dropped,
        passes=passes,
        events=events,
    )
    if check:
        check_invariants(res)
    res.metrics = compute_metrics(res)
    res.wall_s = time.perf_counter() - t0
    res.metrics["sim_wall_s"] = res.wall_s
    return res


def _bad_job_field(j: TraceJob) -> tuple[str, str] | None:
    """(field, what is wrong) for a trace job the simulator cannot replay, or None."""
    for name in ("gpus", "priority"):
        v = getattr(j, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return name, "must be a whole number"
    for name in ("submit", "duration"):
        v = getattr(j, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            return name, "must be a finite number of seconds"
    if j.duration < 0:
        return "duration", "must be >= 0"
    mr = j.max_runtime
    if mr is not None and (
        isinstance(mr, bool) or not isinstance(mr, numbers.Real) or not (0 <= mr < math.inf)
    ):
        return "max_runtime", "must be a finite number of seconds >= 0 (or None: no estimate)"
    return None


def _check_trace(trace: list[TraceJob]) -> None:
    """Refuse a job the event loop cannot replay, naming it and the field: a NaN submit time
    looped forever (NaN is never <= the clock), a NaN or infinite duration ended in 'simulation
    ended with N running jobs', a negative one finished before it started, a float or text
    GPU count was a TypeError, a NaN or negative max_runtime gave reservations in the past
    (and an infinite one is a request a policy's screen leaves waiting: the simulator's
    sorted queue is not screened, fair share's is)."""
    inf = math.inf
    for k, j in enumerate(trace):
        # fast path (every job of every simulate() call): the readers' float times and
        # int counts; NaN fails the comparisons; anything else gets the full check
        sub, dur, mr = j.submit, j.duration, j.max_runtime
        if (
            type(sub) is float
            and type(dur) is float
            and type(j.gpus) is int
            and type(j.priority) is int
            and -inf < sub < inf
            and 0.0 <= dur < inf
            and (mr is None or (type(mr) is float and 0.0 <= mr < inf))
        ):
            continue
        bad = _bad_job_field(j)
        if bad is not None:
            field_, why = bad
            raise ValidationError(
                f"trace job {j.id!r} (#{k}): {field_} {why}, got {getattr(j, field_)!r}",
                hint="fix or drop the job in the trace",
                field=field_,
            )


def _remove(
    queue: list[JobRequest],
    keys: list[Any],
    key_of: dict[str, Any],
    started: set[str],
    presorted: bool,
) -> None:
    if presorted and len(started) < 64:
        for jid in started:
            k = key_of.pop(jid)
            pos = bisect.bisect_left(keys, k)
            del keys[pos]
            del queue[pos]
        return
    keep = [q for q in queue if q.id not in started]
    queue[:] = keep
    if presorted:
        for jid in started:
            key_of.pop(jid, None)
        keys[:] = [key_of[q.id] for q in keep]


def _rekey(
    policy: Policy,
    queue: list[JobRequest],
    keys: list[Any],
    key_of: dict[str, Any],
    ids: set[str],
) -> None:
    """Re-insert the queued jobs among ``ids`` under their new order keys (sorted ids, so
    the result does not depend on set order)."""
    moved = [jid for jid in sorted(ids) if jid in key_of]
    if len(moved) > 64:
        _resort(policy, queue, keys, key_of)
        return
    for jid in moved:
        k = key_of[jid]
        pos = bisect.bisect_left(keys, k)
        req = queue[pos]
        del keys[pos]
        del queue[pos]
        k2 = policy.order_key(req)
        pos = bisect.bisect_right(keys, k2)
        keys.insert(pos, k2)
        queue.insert(pos, req)
        key_of[jid] = k2


def _resort(
    policy: Policy, queue: list[JobRequest], keys: list[Any], key_of: dict[str, Any]
) -> None:
    """The policy's learned order changed: recompute every key and sort once."""
    pairs: list[tuple[Any, JobRequest]] = [(policy.order_key(q), q) for q in queue]
    pairs.sort(key=lambda x: x[0])
    queue[:] = [q for _, q in pairs]
    keys[:] = [k for k, _ in pairs]
    key_of.clear()
    key_of.update((q.id, k) for k, q in pairs)


def check_invariants(res: SimResult) -> None:
    """JCT ≥ runtime for every job, GPU-time conserved, every job finished."""
    cost = res.config.preempt_cost_s
    expect = 0.0
    for i, j in enumerate(res.jobs):
        f = res.finish[i]
        if f != f:
            raise InvariantViolation(f"job {j.id} never finished")
        if f - j.submit < j.duration - 1e-6 * max(1.0, j.duration):
            raise InvariantViolation(f"job {j.id}: JCT {f - j.submit} < runtime {j.duration}")
        if res.first_start[i] < j.submit - 1e-9:
            raise InvariantViolation(f"job {j.id} started before it was submitted")
        expect += res.alloc_gpus[i] * (j.duration + res.preemptions[i] * cost)
    if abs(res.busy_gpu_s - expect) > 1e-6 * max(1.0, expect):
        raise InvariantViolation(
            f"GPU-time not conserved: busy {res.busy_gpu_s:.3f} GPU-s, jobs need {expect:.3f}"
        )
