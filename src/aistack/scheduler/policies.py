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
default    multi-level LAS with aging (see DefaultPolicy), EASY backfill, priority
           preemption — chosen from the evaluation in docs/scheduler.md
=========  ===========================================================================
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from aistack.errors import ValidationError
from aistack.scheduler.base import QueuePolicy
from aistack.scheduler.types import ClusterState, JobRequest, RunningJob


def _attained_now(r: RunningJob, now: float) -> float:
    return r.attained_service_s + max(0.0, now - r.start_time) * max(1, r.allocation.total_gpus)


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
    With ``preempt=True`` a job of an under-share project (U < S) may preempt jobs of
    over-share projects (U > S)."""

    name = "fairshare"

    def __init__(self, *, preempt: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.preemptive = preempt
        self._f: dict[str, float] = {}
        self._over: dict[str, bool] = {}

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
        for p in projects:
            s = shares[p] / s_tot
            u = (max(0.0, cluster.usage.get(p, 0.0)) / u_tot) if u_tot > 0 else 0.0
            self._f[p] = 2.0 ** (-(u / s)) if s > 0 else 0.0
            self._over[p] = u > s

    def order(
        self, queue: Sequence[JobRequest], cluster: ClusterState, now: float
    ) -> Sequence[JobRequest]:
        self._factors(queue, cluster)
        f = self._f
        return sorted(
            queue, key=lambda j: (-j.priority, -f.get(j.project, 1.0), j.submit_time, j.id)
        )

    def rank(self, job: JobRequest, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        return (-job.priority, 1 if self._over.get(job.project, False) else 0)

    def running_rank(self, job: RunningJob, cluster: ClusterState, now: float) -> tuple[Any, ...]:
        # an over-share project's job ranks below an under-share one of equal priority
        return (-job.priority, 2 if self._over.get(job.project, False) else 0)

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
        best: float | None = None
        th = self.thresholds
        for r in cluster.running:
            g = max(1, r.allocation.total_gpus)
            a = _attained_now(r, now)
            k = bisect.bisect_right(th, a)
            if k < len(th):
                t = now + (th[k] - a) / g
                if best is None or t < best:
                    best = t
            if r.protected_until > now and (best is None or r.protected_until < best):
                best = r.protected_until
        return best


class DefaultPolicy(LasPolicy):
    """The default: multi-level LAS with aging, EASY backfill and preemption.

    * Order: priority first; then each job sorts as if it had been submitted
      ``aging × attained GPU-seconds / GPUs`` later (rounded down to its LAS level's
      threshold): new jobs (no service yet) go in submit order, jobs that already ran a
      lot yield to new ones, but only for a bounded time, so long and large jobs cannot
      starve (a waiting job's position improves as the clock moves on).
    * Preemption: a waiting job preempts running jobs of lower priority, or of equal
      priority that sit in a lower LAS level (more attained service, geometric levels
      ``base × factor^k`` GPU-seconds), and only once they passed ``protected_until``.
    * Backfill with an EASY reservation for the head job; pending reasons and start
      estimates from max_runtime like every policy.
    """

    name = "default"

    def __init__(
        self,
        *,
        base_s: float = 3600.0,
        factor: float = 4.0,
        levels: int = 6,
        aging: float = 1.0,
        thresholds: Sequence[float] | None = None,
        **kw: Any,
    ) -> None:
        if thresholds is None:
            if base_s <= 0 or factor <= 1 or levels < 1:
                raise ValueError("need base_s > 0, factor > 1 and levels >= 1")
            thresholds = [base_s * factor**k for k in range(levels)]
        super().__init__(thresholds=thresholds, **kw)
        if aging < 0:
            raise ValueError("aging must be >= 0")
        self.aging = aging
        self._floor = [0.0, *self.thresholds]

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        lvl = self.level(job.attained_service_s)
        g = max(1, job.gpus * job.nodes)
        return (-job.priority, job.submit_time + self.aging * self._floor[lvl] / g, job.id)


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
        done = _attained_now(job, now) / max(1, job.allocation.total_gpus)
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
