"""Autoscaling policy: pure logic, no I/O and no clock of its own.

Feed it load samples (``observe``) and ask for a decision (``decide(now, current)``):

* the metric is the average over ``metric_window_s`` of either the total in-flight requests
  (router-side: queued + being served) or the replicas' queue delay;
* the recommendation is ``ceil(inflight / target_inflight)`` (or ``ceil(current × delay /
  target_delay)``), clipped to ``[min_replicas, max_replicas]``;
* scale **up** fast: as soon as every recommendation of the last ``upscale_delay_s`` is above
  the current count (to the smallest of them, so one spike does not over-provision);
* scale **down** slowly: only to the largest recommendation of the last
  ``downscale_cooldown_s`` (Kubernetes' HPA calls this a stabilization window), and no sooner
  than ``downscale_cooldown_s`` after a scale-up;
* below ``min_replicas`` or above ``max_replicas`` is corrected at once.

Every decision carries a human reason; those that change the count are kept in ``history``.
"""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aistack.serving.spec import AutoscaleConfig


@dataclass(frozen=True, kw_only=True)
class LoadSample:
    t: float
    inflight: float  # total over the service
    queue_delay_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ScaleDecision:
    t: float
    current: int
    desired: int
    action: Literal["up", "down", "hold"]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class Autoscaler:
    cfg: AutoscaleConfig
    samples: collections.deque[LoadSample] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )
    recommendations: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    history: collections.deque[ScaleDecision] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )
    last_change_t: float | None = None
    last_up_t: float | None = None
    first_t: float | None = None

    def observe(self, sample: LoadSample) -> None:
        if self.first_t is None:
            self.first_t = sample.t
        self.samples.append(sample)

    def _metric(self, now: float) -> tuple[float, float]:
        cutoff = now - self.cfg.metric_window_s
        while self.samples and self.samples[0].t < cutoff:
            self.samples.popleft()
        if not self.samples:
            return 0.0, 0.0
        n = len(self.samples)
        return (
            sum(s.inflight for s in self.samples) / n,
            sum(s.queue_delay_ms for s in self.samples) / n,
        )

    def recommend(self, now: float, current: int) -> tuple[int, str]:
        cfg = self.cfg
        inflight, delay = self._metric(now)
        if cfg.metric == "inflight":
            raw = _ceil(inflight / cfg.target_inflight) if inflight > 0 else 0
            why = (
                f"{inflight:.1f} requests in flight (avg over {cfg.metric_window_s:g} s), "
                f"target {cfg.target_inflight:g} per replica"
            )
        else:
            if current == 0:
                raw = 1 if inflight > 0 else 0
            else:
                raw = _ceil(current * delay / cfg.target_queue_delay_ms)
            why = f"queue delay {delay:.1f} ms (avg), target {cfg.target_queue_delay_ms:g} ms"
        rec = max(cfg.min_replicas, min(cfg.max_replicas, raw))
        if rec != raw:  # "; that is 0 replicas, raised to the minimum of 1"
            bound = "raised to the minimum" if rec > raw else "held to the maximum"
            why += f"; that is {_replicas(raw)}, {bound} of {rec}"
        return rec, why

    def decide(self, now: float, current: int) -> ScaleDecision:
        cfg = self.cfg
        if self.first_t is None:
            self.first_t = now
        rec, why = self.recommend(now, current)
        self.recommendations.append((now, rec))
        keep_from = now - max(cfg.downscale_cooldown_s, cfg.upscale_delay_s) - 1.0
        while self.recommendations and self.recommendations[0][0] < keep_from:
            self.recommendations.popleft()

        if current < cfg.min_replicas:
            return self._record(
                now,
                current,
                cfg.min_replicas,
                "up",
                f"below the minimum of {_replicas(cfg.min_replicas)}",
            )
        if current > cfg.max_replicas:
            return self._record(
                now,
                current,
                cfg.max_replicas,
                "down",
                f"above the maximum of {_replicas(cfg.max_replicas)}",
            )

        if rec > current:
            window = [r for t, r in self.recommendations if t >= now - cfg.upscale_delay_s]
            sustained = now - self.first_t >= cfg.upscale_delay_s or cfg.upscale_delay_s == 0
            target = min(window) if window else rec
            if sustained and target > current:
                return self._record(now, current, target, "up", why)
            return ScaleDecision(
                t=now,
                current=current,
                desired=current,
                action="hold",
                reason=f"{why}; waiting {cfg.upscale_delay_s:g} s of sustained load before scaling up",
            )
        if rec < current:
            since_change = now - (self.last_up_t if self.last_up_t is not None else self.first_t)
            window = [r for t, r in self.recommendations if t >= now - cfg.downscale_cooldown_s]
            target = max(window) if window else rec
            if since_change < cfg.downscale_cooldown_s:
                return ScaleDecision(
                    t=now,
                    current=current,
                    desired=current,
                    action="hold",
                    reason=f"{why}; cooldown: {cfg.downscale_cooldown_s - since_change:.1f} s left before scaling down",
                )
            if target < current:
                return self._record(
                    now, current, target, "down", f"{why}; low for {cfg.downscale_cooldown_s:g} s"
                )
            return ScaleDecision(
                t=now,
                current=current,
                desired=current,
                action="hold",
                reason=f"{why}; load was higher within the last {cfg.downscale_cooldown_s:g} s",
            )
        return ScaleDecision(t=now, current=current, desired=current, action="hold", reason=why)

    def _record(
        self, now: float, current: int, desired: int, action: Literal["up", "down"], reason: str
    ) -> ScaleDecision:
        d = ScaleDecision(
            t=now,
            current=current,
            desired=desired,
            action=action,
            reason=f"scale {action} {current} → {desired} replicas: {reason}",
        )
        self.history.append(d)
        self.last_change_t = now
        if action == "up":
            self.last_up_t = now
        return d


# more replicas than any service may have (AutoscaleConfig.max_replicas ≤ 256): a ratio above
# it is clipped to max_replicas like any other
_MANY = 1_000_000


def _ceil(ratio: float) -> int:
    """``ceil(ratio)``, tolerant of float noise (4.0000000001 → 4), bounded: a target as small
    as 1e-320 (which the config takes: it is > 0) made the ratio infinite, and math.ceil's
    OverflowError crashed every control-loop tick."""
    if not ratio < _MANY:  # inf, NaN, or just huge
        return _MANY
    return math.ceil(ratio - 1e-9)


def _replicas(n: int) -> str:
    return f"{n} replica{'' if n == 1 else 's'}"
