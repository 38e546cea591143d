"""Gittins index of a job's attained service, learned from the service of finished jobs.

For a job that has received ``a`` GPU-seconds, with service S drawn from the learned
distribution, the Gittins index is

    G(a) = sup_{b > a}  P(S ≤ b | S > a) / E[min(S, b) − a | S > a]

(the best "chance to finish per unit of further service"). Serving the highest index
first minimises mean response time among non-clairvoyant policies for a single server
(Gittins; Aalto, Ayesta & Righter 2009). It behaves like LAS on heavy-tailed service (old
jobs' index drops, new jobs go first) and like FIFO on light-tailed service (a job that
ran for a while is close to done and keeps its place), which is exactly the split the
ITP traces show.

The table is computed on a geometric grid of ages from sorted samples with prefix sums:
O(grid²) per refresh, then an O(log grid) lookup per job.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable


class GittinsTable:
    """Index G(a) on a geometric grid of ages a (GPU-seconds)."""

    __slots__ = ("ages", "index", "log_index")

    def __init__(
        self, samples: Iterable[float], *, grid_factor: float = 1.25, a0: float = 30.0
    ) -> None:
        s = sorted(max(1e-9, float(x)) for x in samples)
        if not s:
            raise ValueError("need at least one sample")
        n = len(s)
        pre = [0.0]
        for x in s:
            pre.append(pre[-1] + x)
        ages = [0.0]
        a = a0
        top = s[-1]
        while a < top:
            ages.append(a)
            a *= grid_factor
        cands = sorted(set(ages[1:] + [top]))
        index: list[float] = []
        for age in ages:
            i0 = bisect.bisect_right(s, age)  # samples <= age are done
            alive = n - i0
            if alive <= 0:
                index.append(index[-1] if index else 1.0)
                continue
            best = 0.0
            for b in cands:
                if b <= age:
                    continue
                i1 = bisect.bisect_right(s, b)
                done = i1 - i0
                if done <= 0:
                    continue
                # sum over finishing samples of (S - age) + survivors × (b - age)
                cost = (pre[i1] - pre[i0]) - done * age + (n - i1) * (b - age)
                if cost > 0:
                    r = done / cost
                    if r > best:
                        best = r
            index.append(best if best > 0 else (index[-1] if index else 1e-12))
        self.ages = ages
        self.index = index
        # ln G(a), looked up on the hot path (every running job in a preemption pass)
        self.log_index = [math.log(max(1e-300, x)) for x in index]

    def __call__(self, attained: float) -> float:
        k = bisect.bisect_right(self.ages, attained) - 1
        return self.index[max(0, k)]

    def log_at(self, attained: float) -> float:
        """ln G(attained)."""
        k = bisect.bisect_right(self.ages, attained) - 1
        return self.log_index[k if k > 0 else 0]
