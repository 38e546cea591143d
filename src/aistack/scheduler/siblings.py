"""Sibling jobs: what finished jobs of the same group say about a job's service.

Clusters see groups of similar jobs — hyper-parameter sweeps, retries, the same script
re-submitted — whose runtimes are correlated. On the ITP tuning traces (clusters 02 and
09), a job's runtime has a rank correlation of about 0.6–0.8 with the median runtime of
the siblings that finished while it could still have been waiting (docs/scheduler.md).
The default policy can use that (``siblings="burst"``; off by default, docs/scheduler.md
has the evaluation): for a job whose group has finished members, the service distribution
in the Gittins index that orders the queue is a mixture of the group's finished runtimes
and its size class's distribution.

A *group key* is a pluggable function of the job as the scheduler sees it at decision
time (a ``JobRequest``): never its true duration.

* :class:`BurstKey` — jobs of the same user and project with the same GPU count, each
  submitted within ``gap_s`` of the previous such job, form a burst (on traces without
  users, such as ITP, every job has the same user and project).
* :func:`named_key` — where jobs carry user and project (the server, traces that have
  them): user, project and GPU count.

Everything here is pure and deterministic; the policy memoises each job's key by job id
at first sight, so a stateful key such as :class:`BurstKey` is asked once per job.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Sequence

from aistack.scheduler.types import JobRequest

GroupKey = Callable[[JobRequest], Hashable | None]


class BurstKey:
    """Jobs of the same user, project and total GPU count, each submitted within ``gap_s``
    seconds of the previous such job, share a group ("a burst"): another user's job in
    between does not split a burst, nor join it. Stateful: call it once per job, in submit
    order (the policy memoises by job id; the simulator enqueues in submit order, and a
    job seen out of order only starts or joins a burst approximately)."""

    __slots__ = ("_last", "_next", "gap_s")

    def __init__(self, gap_s: float = 60.0) -> None:
        if gap_s < 0:
            raise ValueError("sibling gap must be >= 0 seconds")
        self.gap_s = gap_s
        # (user, project, GPUs) → (last submit, burst id)
        self._last: dict[tuple[str, str, int], tuple[float, int]] = {}
        self._next = 0

    def __call__(self, job: JobRequest) -> Hashable | None:
        g = (job.user, job.project, job.gpus * job.nodes)
        t = job.submit_time
        last = self._last.get(g)
        if last is not None and abs(t - last[0]) <= self.gap_s:
            gid = last[1]
        else:
            gid = self._next
            self._next += 1
        if last is None or t >= last[0]:
            self._last[g] = (t, gid)
        return ("burst", *g, gid)


def named_key(job: JobRequest) -> Hashable | None:
    """User, project and GPU count; None (no group) where both are unset ("default")."""
    if job.user == "default" and job.project == "default":
        return None
    return ("named", job.user, job.project, job.gpus * job.nodes)


def group_key_of(spec: str | GroupKey | None, gap_s: float) -> GroupKey | None:
    """``"burst"`` / ``"named"`` / a callable / None or ``"off"`` → a key function."""
    if spec is None or spec == "off":
        return None
    if spec == "burst":
        return BurstKey(gap_s)
    if spec == "named":
        return named_key
    if callable(spec):
        return spec
    raise ValueError(f"siblings must be 'burst', 'named', 'off' or a function, not {spec!r}")


def quantile_points(samples: Sequence[float], m: int) -> list[float]:
    """``m`` equally weighted points at the (i + ½)/m quantiles of the samples."""
    s = sorted(samples)
    n = len(s)
    return [s[min(n - 1, int((i + 0.5) * n / m))] for i in range(m)]


def _grid(a0: float = 30.0, factor: float = 1.25, top: float = 1e13) -> list[float]:
    out = []
    a = a0
    while a < top:
        out.append(a)
        a *= factor  # repeated products, as GittinsTable builds its grid (same floats)
    return out


_GRID = _grid()


def mixture_log_index(base: Sequence[float], group: Sequence[float], w: float, age: float) -> float:
    """ln of the Gittins index at ``age`` of the mixture: weight ``1 − w`` spread evenly on
    the sorted ``base`` points, weight ``w`` spread evenly on the sorted ``group`` points.

    G(a) = sup_b P(a < S ≤ b) / E[min(S, b) − a; S > a], with b on the same geometric
    grid (plus the largest point) as :class:`~aistack.scheduler.gittins.GittinsTable`,
    so that with ``w = 0`` and the class samples as ``base`` it is the table's index:
    a job with siblings is not favoured by a finer sup than a job without.
    """
    i = bisect.bisect_right(base, age)
    j = bisect.bisect_right(group, age)
    nb, ng = len(base), len(group)
    wb = (1.0 - w) / nb if nb else 0.0
    wg = w / ng if ng else 0.0
    alive = (nb - i) * wb + (ng - j) * wg
    if alive <= 0:
        return -700.0
    top = max(base[-1] if nb else 0.0, group[-1] if ng else 0.0)
    k = bisect.bisect_right(_GRID, age)
    done = 0.0  # weight of points in (age, b]
    spent = 0.0  # Σ weight × (point − age) over those points
    best = 0.0
    while True:
        b = _GRID[k] if k < len(_GRID) and _GRID[k] < top else top
        k += 1
        while i < nb and base[i] <= b:
            done += wb
            spent += wb * (base[i] - age)
            i += 1
        while j < ng and group[j] <= b:
            done += wg
            spent += wg * (group[j] - age)
            j += 1
        if done > 0:
            cost = spent + (alive - done) * (b - age)
            if cost > 0:
                r = done / cost
                if r > best:
                    best = r
        if b >= top:
            break
    return math.log(best) if best > 0 else -700.0
