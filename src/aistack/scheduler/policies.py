"""The built-in policies. Each one only decides the order of the queue and, if it preempts,
which running jobs a waiting job outranks; placement, quotas, backfill, reservations,
pending reasons and start estimates come from the shared engine in ``base.py``.

=========  ===========================================================================
name       what it does
=========  ===========================================================================
fifo       strict FIFO by submit time: nothing overtakes the first job that waits
easy       FIFO + EASY backfill (Slurm-like): a reservation for the head job from
           running jobs' max_runtime; later jobs start if they do not delay it
priority   priority (+ aging: waiting raises the effective priority), EASY backfill,
           preemption of lower-priority jobs
fairshare  Slurm-style fair-share factor 2^(-usage/shares) per project (decayed usage
           from ClusterState.usage), EASY backfill; under-share jobs may preempt
           over-share ones
las        Tiresias 2D-LAS: queues by attained GPU-seconds (discretized), FIFO inside a
           queue, preemption of jobs in lower queues
srtf       oracle: shortest remaining time first, preemptive (simulation only)
sjf        oracle: shortest job first, not preemptive (simulation only)
default    priority, then a Gittins index learned from finished jobs with aging (see
           DefaultPolicy), EASY backfill, preemption — chosen from the evaluation in
           docs/scheduler.md
=========  ===========================================================================
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

from aistack.errors import ValidationError
from aistack.scheduler.base import QueuePolicy
from aistack.scheduler.gittins import GittinsTable
from aistack.scheduler.siblings import (
    GroupKey,
    group_key_of,
    mixture_log_index,
    quantile_points,
)
from aistack.scheduler.types import ClusterState, JobRequest, RunningJob

_GPUS: dict[str, tuple[object, int]] = {}


def _gpus(r: RunningJob) -> int:
    """Total GPUs of a running job (cached per job id, checked against the very same
    Allocation object, so a reused id with another allocation is recomputed)."""
    hit = _GPUS.get(r.id)
    if hit is not None and hit[0] is r.allocation:
        return hit[1]
    if len(_GPUS) > 200_000:
        _GPUS.clear()
    g = max(1, sum(len(a.gpus) for a in r.allocation.nodes.values()))
    _GPUS[r.id] = (r.allocation, g)
    return g


def _attained_now(r: RunningJob, now: float) -> float:
    return r.attained_service_s + max(0.0, now - r.start_time) * _gpus(r)


class FifoPolicy(QueuePolicy):
    """Strict FIFO by submit time (priority ignored): the reference baseline."""

    name = "fifo"
    strict = True
    backfill = False

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        return (job.submit_time, job.id)


class EasyPolicy(QueuePolicy):
    """FIFO with EASY backfill: one reservation for the head job, backfill behind it."""

    name = "easy"

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        return (job.submit_time, job.id)


class PriorityPolicy(QueuePolicy):
    """Priority then submit order, with aging (``aging_per_hour`` priority points per hour
    of waiting), EASY backfill, and preemption of strictly lower (base) priority jobs."""

    name = "priority"
    preemptive = True

    def __init__(self, *, aging_per_hour: float = 1.0, preempt: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        if aging_per_hour < 0:
            raise ValueError("aging_per_hour must be >= 0")
        self.aging_per_hour = aging_per_hour
        self.preemptive = preempt

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        # effective priority p + a·(now − submit) orders like submit − p/a (static)
        if self.aging_per_hour == 0:
            return (-job.priority, job.submit_time, job.id)
        return (job.submit_time - job.priority * 3600.0 / self.aging_per_hour, job.id)


class FairSharePolicy(QueuePolicy):
    """Slurm's fair-share factor F = 2^(−U/S) per project: U the project's share of the
    decayed usage (``ClusterState.usage``), S its normalised share (``ClusterState.shares``,
    default 1 each). Order: priority, then F (under-served projects first), then submit.
    With ``preempt=True`` a job of a project under its share (U < 0.8·S) may preempt jobs
    of projects over it (U > 1.25·S); the gap is hysteresis against flip-flopping."""

    name = "fairshare"

    def __init__(self, *, preempt: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.preemptive = preempt
        self._f: dict[str, float] = {}
        self._over: dict[str, bool] = {}
        self._under: dict[str, bool] = {}

    def order_key(self, job: JobRequest) -> tuple[Any, ...] | None:
        return None  # depends on usage: sorted every pass

    def _factors(self, queue: Sequence[JobRequest], cluster: ClusterState) -> None:
        projects = {j.project for j in queue} | {r.project for r in cluster.running}
        projects |= set(cluster.shares)
        shares = {p: float(cluster.shares.get(p, 1.0)) for p in projects}
        s_tot = sum(shares.values()) or 1.0
        u_tot = sum(max(0.0, cluster.usage.get(p, 0.0)) for p in projects)
        self._f.clear()
        self._over.clear()
        self._under.clear()
        for p in projects:
            s = shares[p] / s_tot
            u = (max(0.0, cluster.usage.get(p, 0.0)) / u_tot) if u_tot > 0 else 0.0
            self._f[p] = 2.0 ** (-(u / s)) if s > 0 else 0.0
            # hysteresis, so preemption does not flip-flop as usage moves around the share
            self._over[p] = u > 1.25 * s
            self._under[p] = u < 0.8 * s

    def order(
        self, queue: Sequence[JobRequest], cluster: ClusterState, now: float
    ) -> Sequence[JobRequest]:
        self._factors(queue, cluster)
        f = self._f
        return sorted(
            queue, key=lambda j: (-j.priority, -f.get(j.project, 1.0), j.submit_time, j.id)
        )

    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority, 0 if self._under.get(job.project, False) else 2)

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        # a job of a project well over its share ranks below one of a project well under
        return (-job.priority, 1 if self._over.get(job.project, False) else 0)

    def preempt_reason(self, job: JobRequest, victim: RunningJob) -> str:
        if job.priority > victim.priority:
            return super().preempt_reason(job, victim)
        return (
            f"project {victim.project} is over its fair share; job {job.id} of project "
            f"{job.project} is under its share"
        )


class LasPolicy(QueuePolicy):
    """Tiresias-style discretized 2D-LAS: a job's queue is set by its attained service in
    GPU-seconds (GPUs × time) against ``thresholds``; FIFO inside a queue; a waiting job
    preempts running jobs in lower queues. Non-clairvoyant."""

    name = "las"
    preemptive = True

    def __init__(
        self, *, thresholds: Sequence[float] = (3600.0,), preempt: bool = True, **kw: Any
    ) -> None:
        super().__init__(**kw)
        th = sorted(float(x) for x in thresholds)
        if any(x <= 0 for x in th):
            raise ValueError("thresholds must be positive GPU-seconds")
        self.thresholds = th
        self.preemptive = preempt
        self._cross: dict[tuple[str, float], tuple[float, ...]] = {}

    def level(self, attained: float) -> int:
        return bisect.bisect_right(self.thresholds, attained)

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        return (-job.priority, self.level(job.attained_service_s), job.submit_time, job.id)

    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority, self.level(job.attained_service_s))

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority, self.level(_attained_now(job, now)))

    def preempt_reason(self, job: JobRequest, victim: RunningJob) -> str:
        if job.priority > victim.priority:
            return super().preempt_reason(job, victim)
        return f"it has attained more GPU service than job {job.id} (least-attained-service first)"

    def wakeup_after(self, cluster: ClusterState, now: float) -> float | None:
        """The next threshold crossing of a running job, or the end of a protection."""
        best = math.inf
        th = self.thresholds
        cache = self._cross
        if len(cache) > 100_000:
            cache.clear()
        for r in cluster.running:
            key = (r.id, r.start_time)
            cr = cache.get(key)
            if cr is None:
                g = _gpus(r)
                a0 = r.attained_service_s
                cr = cache[key] = tuple(r.start_time + (x - a0) / g for x in th if x > a0)
            for t in cr:
                if t > now:
                    if t < best:
                        best = t
                    break
            p = r.protected_until
            if now < p < best:
                best = p
        return None if best == math.inf else best


def size_class(gpus: int) -> int:
    """0: 1 GPU (or CPU only), 1: 2–4, 2: 5–8, 3: 9+ GPUs."""
    return 0 if gpus <= 1 else 1 if gpus <= 4 else 2 if gpus <= 8 else 3


class DefaultPolicy(QueuePolicy):
    """The default: priority, then a learned Gittins index with aging; EASY backfill;
    preemption. Non-clairvoyant: it never reads a job's true duration.

    * Order: priority first. Among equal priority, each job sorts as if submitted
      ``τ · ln(G₀ / G(job))`` later, where G(job) is the Gittins index of its attained
      GPU-seconds under the service distribution of *finished* jobs of its size class
      (``observe()``), G₀ the index of a new job, and τ = ``aging_factor`` × mean
      observed runtime. Jobs likely to finish soon go first; jobs unlikely to (large,
      or long-running on a heavy tail) yield, but only for a bounded time: the key is a
      virtual submit time, so every waiting job eventually reaches the head. With no
      history yet (fewer than ``min_samples`` finished jobs) this is plain
      priority-then-submit order.
    * Optional wait bound (``max_wait_factor`` or ``max_wait_s``; off by default, see
      docs/scheduler.md for what it costs): W = ``max_wait_factor`` × mean observed
      runtime (or ``max_wait_s``). A job's virtual submit time is never later than the
      moment its wait (time without progress since submit) reaches W; a head job that
      has waited W gets a firm EASY reservation (jobs behind it do not preempt on its
      reserved nodes, so preemptors cannot push it back); and a job that had waited W when
      it started cannot be preempted by jobs of its priority that had not. This is the
      knob for sites where large gangs must not wait much longer than under FIFO.
    * Optional sibling learning (off by default: it lowered the average JCT but lengthened
      the large gangs' p99 on the tuning cluster, docs/scheduler.md). ``siblings``:
      ``"burst"`` — same user, project and GPU count, each submitted within
      ``sibling_gap_s`` (60 s) of the previous such job; ``"named"`` — user, project and GPUs; any function of the
      ``JobRequest``; ``None`` or ``"off"`` (the default). In
      the *order*, a job whose group has finished members is indexed under a mixture of
      the group's finished runtimes (weight k/(k + ``sibling_prior``) for k of them, the
      last ``sibling_window``) and its size class's distribution. Preemption compares the
      size-class indices only, unless ``sibling_preempt=True`` (which preempted three
      times as often on cluster09 and raised its p99; docs/scheduler.md). The policy
      learns a group's runtimes only from ``observe(runtime_s, gpus, job_id=...)`` of
      jobs it has seen queued: never from a waiting or running job's true duration.
    * Optional probes (``sibling_hold`` > 0, with ``siblings``; off by default, see
      docs/scheduler.md, "Probes"): while nothing of a group has finished, its first
      member keeps its place and the others yield (ln-index lowered by ``sibling_hold``)
      until a member finishes and tells them how long the group runs. A probe that
      leaves unfinished (cancelled, failed) is replaced at the next pass.
    * Backfill behind the head job without delaying its reservation (from max_runtime).
    * Preemption when a waiting job outranks a running one (higher priority, or a
      better key as above), never before ``protected_until``.
    """

    name = "default"
    preemptive = True

    def __init__(
        self,
        *,
        aging_factor: float = 10.0,
        aging_s: float | None = None,
        min_samples: int = 50,
        window: int = 20_000,
        history: Sequence[tuple[float, int]] = (),
        quantum_s: float = 300.0,
        preempt: bool = True,
        preempt_ratio: float = 1.0,
        max_wait_factor: float | None = None,
        max_wait_s: float | None = None,
        siblings: str | GroupKey | None = None,
        sibling_gap_s: float = 60.0,
        sibling_prior: float = 2.0,
        sibling_window: int = 16,
        sibling_preempt: bool = False,
        sibling_hold: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if sibling_prior <= 0 or sibling_window < 1:
            raise ValueError("sibling_prior must be > 0 and sibling_window >= 1")
        if sibling_hold < 0 or (sibling_hold > 0 and siblings in (None, "off")):
            raise ValueError(
                "sibling_hold must be >= 0 and needs sibling learning (e.g. siblings='burst')"
            )
        # probes: while nothing of a group has finished, its first member (the probe)
        # keeps its place and the others yield by ``sibling_hold`` (ln of the index)
        self.sibling_hold = sibling_hold
        self._probe: dict[Hashable, str] = {}  # group without a finished member → probe id
        self._next_probe_check = -math.inf
        self._key = group_key_of(siblings, sibling_gap_s)
        self.sibling_prior = sibling_prior
        self.sibling_window = sibling_window
        self.sibling_preempt = sibling_preempt
        self._grp: dict[str, Hashable] = {}  # job id → group (jobs seen, not finished)
        self._members: dict[Hashable, set[str]] = {}  # group → ids in _grp
        self._gruns: dict[Hashable, deque[float]] = {}  # group → finished runtimes (s)
        self._gsorted: dict[Hashable, list[float]] = {}
        self._gcache: dict[Hashable, dict[tuple[int, int], float]] = {}  # → ln G
        self._qpts: list[list[float]] = [[] for _ in range(4)]
        self._rekey: set[str] = set()
        # collected only once a caller keeps a sorted queue and asks (take_rekeyed): the
        # server sorts every pass and never asks, so the set must not grow there
        self._rekey_wanted = False
        if (max_wait_factor is not None and max_wait_factor <= 0) or (
            max_wait_s is not None and max_wait_s <= 0
        ):
            raise ValueError("max_wait_factor and max_wait_s must be > 0 (or None: no bound)")
        if preempt_ratio < 1:
            raise ValueError("preempt_ratio must be >= 1")
        self._log_ratio = math.log(preempt_ratio)
        if aging_factor < 0 or (aging_s is not None and aging_s < 0):
            raise ValueError("aging_factor and aging_s must be >= 0")
        if min_samples < 1 or window < min_samples:
            raise ValueError("need 1 <= min_samples <= window")
        self.aging_factor = aging_factor
        self.aging_s = aging_s
        self.min_samples = min_samples
        self.window = window
        self.quantum_s = quantum_s
        self.max_wait_factor = max_wait_factor
        self.max_wait_s = max_wait_s
        self._wmax = math.inf  # the wait bound W (s); inf: none (or nothing learned yet)
        self.preemptive = preempt
        self.order_epoch = 0  # bumped when the learned order changes (callers re-sort)
        self._samples: list[deque[float]] = [deque(maxlen=window) for _ in range(4)]
        self._runtimes: deque[float] = deque(maxlen=window)
        self._count = 0
        self._next_refresh = min_samples
        self._tables: list[GittinsTable | None] = [None] * 4
        self._g0 = 1.0
        self._log_g0 = 0.0
        self._tau = 0.0
        for rt, g in history:
            self.observe(rt, g)

    # ------------------------------------------------------------ learning
    def observe(self, runtime_s: float, gpus: int = 1, job_id: str | None = None) -> None:
        """Record a finished job's runtime (seconds) and GPU count. With ``job_id`` (a
        job this policy saw queued) and sibling learning on, its runtime also informs
        the index of its group's other jobs."""
        if runtime_s < 0:
            return
        if job_id is not None and self._key is not None:
            self._observe_sibling(job_id, runtime_s)
        g = max(1, int(gpus))
        self._samples[size_class(g)].append(runtime_s * g)
        self._runtimes.append(runtime_s)
        self._count += 1
        if self._count >= self._next_refresh:
            self._refresh()
            self._next_refresh = self._count + min(self._count, 2000)

    def _refresh(self) -> None:
        pooled = [x for d in self._samples for x in d]
        if len(pooled) < self.min_samples:
            return
        base = GittinsTable(pooled)
        tables: list[GittinsTable | None] = []
        for d in self._samples:
            tables.append(GittinsTable(d) if len(d) >= self.min_samples else base)
        self._tables = tables
        if self._key is not None:
            bq = quantile_points(pooled, 64)
            self._qpts = [
                quantile_points(d, 64) if len(d) >= self.min_samples else bq for d in self._samples
            ]
            self._gcache.clear()
        self._g0 = max(1e-300, base(0.0))
        self._log_g0 = math.log(self._g0)
        mean_rt = sum(self._runtimes) / max(1, len(self._runtimes))
        self._tau = self.aging_s if self.aging_s is not None else self.aging_factor * mean_rt
        if self.max_wait_s is not None:
            self._wmax = self.max_wait_s
        elif self.max_wait_factor is not None:
            self._wmax = self.max_wait_factor * mean_rt
        self.order_epoch += 1

    # ------------------------------------------------------------ siblings
    def _group(self, job: JobRequest) -> Hashable | None:
        """The job's group, memoised by id at first sight (a key may be stateful)."""
        jid = job.id
        g = self._grp.get(jid)
        if g is None and self._key is not None:
            g = self._key(job)
            if g is not None:
                if len(self._grp) >= 500_000:  # jobs seen but never finished (cancelled)
                    for old in list(self._grp)[:50_000]:
                        self._members.get(self._grp.pop(old), set()).discard(old)
                self._grp[jid] = g
                self._members.setdefault(g, set()).add(jid)
                if self.sibling_hold and g not in self._gruns:
                    self._probe.setdefault(g, jid)
        return g

    def _observe_sibling(self, job_id: str, runtime_s: float) -> None:
        g = self._grp.pop(job_id, None)
        if g is None:
            return
        mem = self._members.get(g)
        if mem is not None:
            mem.discard(job_id)
            if self._rekey_wanted:
                self._rekey.update(mem)
            if not mem:
                del self._members[g]
        runs = self._gruns.get(g)
        if runs is None:
            if len(self._gruns) >= 200_000:  # forget the oldest groups
                for old in list(self._gruns)[:20_000]:
                    del self._gruns[old]
                    self._gsorted.pop(old, None)
                    self._gcache.pop(old, None)
            runs = self._gruns[g] = deque(maxlen=self.sibling_window)
        runs.append(runtime_s)
        self._probe.pop(g, None)
        self._gsorted[g] = sorted(runs)
        self._gcache.pop(g, None)

    def _check_probes(self, queue: Sequence[JobRequest], cluster: ClusterState) -> None:
        """A probe that left without finishing (cancelled, failed: ``observe`` never
        hears of it) is replaced by the group's earliest live member, whose siblings are
        re-keyed; a group with no live member is forgotten."""
        live = {j.id for j in queue}
        live.update(r.id for r in cluster.running)
        for g, pid in list(self._probe.items()):
            if pid in live:
                continue
            mem = self._members.get(g, set())
            alive = sorted(m for m in mem if m in live)
            if alive:
                self._probe[g] = alive[0]
                if self._rekey_wanted:
                    self._rekey.update(alive)
            else:
                del self._probe[g]

    def schedule(self, queue: Sequence[JobRequest], cluster: ClusterState, now: float) -> Any:
        if self._probe and now >= self._next_probe_check:
            self._next_probe_check = now + self.quantum_s
            self._check_probes(queue, cluster)
        return super().schedule(queue, cluster, now)

    def take_rekeyed(self) -> set[str]:
        """Ids of jobs whose order key may have changed because a sibling finished (or a
        probe was replaced) since the last call; the simulator re-inserts them in its
        sorted queue. Collected only from the first call on: a caller that keeps a sorted
        queue calls it once before its first event; one that sorts every pass (the server)
        never calls it, and nothing accumulates."""
        self._rekey_wanted = True
        out = self._rekey
        self._rekey = set()
        return out

    def _sibling_log_index(self, jid: str, gpus: int, attained: float) -> float | None:
        """ln G(attained) of job ``jid`` under the mixture of its size class and its
        group's finished runtimes; None if it has no finished siblings (or no table yet).
        Cached per group, GPU count and age on the class table's grid."""
        g = self._grp.get(jid)
        if g is None:
            return None
        runs = self._gsorted.get(g)
        c = size_class(gpus)
        t = self._tables[c]
        if t is None:
            return None
        if runs is None:
            if self._probe and self._probe.get(g, jid) != jid:
                # nothing of the group has finished: its probe keeps its place, the
                # others yield until the probe (or any member) finishes
                return t.log_at(attained) - self.sibling_hold
            return None
        ages = t.ages
        k = bisect.bisect_right(ages, attained) - 1
        if k < 0:
            k = 0
        cache = self._gcache.get(g)
        if cache is None:
            cache = self._gcache[g] = {}
        li = cache.get((gpus, k))
        if li is None:
            n = len(runs)
            li = cache[(gpus, k)] = mixture_log_index(
                self._qpts[c], [x * gpus for x in runs], n / (n + self.sibling_prior), ages[k]
            )
        return li

    def _job_log_index(self, jid: str, gpus: int, attained: float) -> float:
        """ln G(attained) of job ``jid`` (siblings' mixture where it has any)."""
        if self._gsorted or self._probe:
            li = self._sibling_log_index(jid, gpus, attained)
            if li is not None:
                return li
        return self._log_index(gpus, attained)

    def _log_index(self, gpus: int, attained: float) -> float:
        """ln G(attained) of the job's size class (0 before a table exists)."""
        t = self._tables[size_class(gpus)]
        return 0.0 if t is None else t.log_at(attained)

    def _vsubmit(self, submit: float, gpus: int, attained: float, jid: str = "") -> float:
        t = self._tables[size_class(gpus)]
        if t is None or self._tau == 0:
            return submit
        li = self._sibling_log_index(jid, gpus, attained) if self._gsorted or self._probe else None
        if li is None:
            gi = max(1e-300, t(attained))
            v = submit + self._tau * math.log(self._g0 / gi)
        else:
            v = submit + self._tau * (self._log_g0 - li)
        if self._wmax == math.inf:
            return v
        # never later than the moment its wait reaches the bound W
        return min(v, submit + attained / max(1, gpus) + self._wmax)

    def _waited(self, submit: float, gpus: int, attained: float, at: float) -> bool:
        """Had the job waited (time without progress since submit) at least W at ``at``?"""
        return at - submit - attained / max(1, gpus) >= self._wmax

    # ------------------------------------------------------------ policy hooks
    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        if self._key is not None:
            self._group(job)
        v = self._vsubmit(job.submit_time, job.gpus * job.nodes, job.attained_service_s, job.id)
        return (-job.priority, v, job.id)

    # preemption compares indices, not virtual submit times: a job preempts an equal-
    # priority one only if its index is ``preempt_ratio`` times higher
    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        if self._key is not None:
            self._group(job)
        g, a = job.gpus * job.nodes, job.attained_service_s
        li = self._job_log_index(job.id, g, a) if self.sibling_preempt else self._log_index(g, a)
        return (-job.priority, -li + self._log_ratio)

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return self.running_ranks((job,), cluster, now)[0]

    def running_ranks(
        self, running: Sequence[RunningJob], cluster: ClusterState, now: float
    ) -> list[tuple[Any, ...]]:
        # hot path (every preemptible running job in every pass that tries to preempt):
        # _gpus, _attained_now, size_class and _log_index inlined in one loop
        out: list[tuple[Any, ...]] = []
        tables = self._tables
        wbound = self._wmax < math.inf
        sib = bool(self._gsorted) and self.sibling_preempt
        cache = _GPUS
        bisect_right = bisect.bisect_right
        for r in running:
            hit = cache.get(r.id)
            g = hit[1] if hit is not None and hit[0] is r.allocation else _gpus(r)
            a = r.attained_service_s
            if wbound and self._waited(r.submit_time, g, a, r.start_time):
                # it had waited W when it started: no job of its priority outranks it
                out.append((-r.priority, -math.inf))
                continue
            ran = now - r.start_time
            if ran > 0:
                a += ran * g
            if sib:
                out.append((-r.priority, -self._job_log_index(r.id, g, a)))
                continue
            t = tables[0 if g <= 1 else 1 if g <= 4 else 2 if g <= 8 else 3]
            if t is None:
                out.append((-r.priority, -0.0))
                continue
            k = bisect_right(t.ages, a) - 1
            out.append((-r.priority, -t.log_index[k if k > 0 else 0]))
        return out

    def firm_reservation(self, head: JobRequest, now: float) -> bool:
        return self._wmax < math.inf and self._waited(
            head.submit_time, head.gpus * head.nodes, head.attained_service_s, now
        )

    def preempt_reason(self, job: JobRequest, victim: RunningJob) -> str:
        if job.priority > victim.priority:
            return super().preempt_reason(job, victim)
        return (
            f"job {job.id} is more likely to finish soon (learned from finished jobs) and "
            f"{victim.id} has run past its protection time"
        )

    def wakeup_after(self, cluster: ClusterState, now: float) -> float | None:
        if not cluster.running:
            return None
        best = math.inf
        for r in cluster.running:
            p = r.protected_until
            if now < p < best:
                best = p
        if self._tables[0] is not None:
            best = min(best, now + self.quantum_s)
        return None if best == math.inf else best


POLICIES: dict[str, type[QueuePolicy]] = {
    "default": DefaultPolicy,
    "fifo": FifoPolicy,
    "easy": EasyPolicy,
    "priority": PriorityPolicy,
    "fairshare": FairSharePolicy,
    "las": LasPolicy,
    "srtf": QueuePolicy,  # replaced below
    "sjf": QueuePolicy,
}


def _remaining(job: JobRequest) -> float:
    if job.true_duration_s is None:
        raise ValidationError(
            f"job {job.id}: the srtf/sjf oracles need true_duration_s",
            hint="they are simulation-only references; use 'default' or 'las' for real jobs",
        )
    g = max(1, job.gpus * job.nodes)
    return max(0.0, job.true_duration_s - job.attained_service_s / g)


class SrtfPolicy(QueuePolicy):
    """Oracle: shortest remaining (true) time first, preemptive. Simulation only."""

    name = "srtf"
    preemptive = True

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        return (-job.priority, _remaining(job), job.submit_time, job.id)

    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority, _remaining(job))

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        if job.true_duration_s is None:
            return (-job.priority, float("inf"))
        done = _attained_now(job, now) / _gpus(job)
        return (-job.priority, max(0.0, job.true_duration_s - done))

    def preempt_reason(self, job: JobRequest, victim: RunningJob) -> str:
        return f"job {job.id} has less remaining time (SRTF oracle)"

    def wakeup_after(self, cluster: ClusterState, now: float) -> float | None:
        best: float | None = None
        for r in cluster.running:
            if r.protected_until > now and (best is None or r.protected_until < best):
                best = r.protected_until
        return best


class SjfPolicy(QueuePolicy):
    """Oracle: shortest (true) job first, not preemptive, with backfill. Simulation only."""

    name = "sjf"

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        return (-job.priority, _remaining(job), job.submit_time, job.id)


POLICIES["srtf"] = SrtfPolicy
POLICIES["sjf"] = SjfPolicy
