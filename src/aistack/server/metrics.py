"""Prometheus metrics of the server (served at /metrics, token required)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_SUBMITTED = Counter(
    "aistack_jobs_submitted_total", "Jobs submitted", ["project"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "aistack_http_request_duration_seconds",
    "HTTP request latency (s)",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class StateCollector:
    """Jobs per state, scheduler pass time, allocated GPUs/CPUs — read at scrape time."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Any:
        from aistack.server.services.jobs import count_by_state

        g = GaugeMetricFamily("aistack_jobs", "Jobs by state", labels=["state"])
        with self.ctx.sessions() as s:
            for state, n in count_by_state(s).items():
                g.add_metric([state], n)
        yield g
        loop = self.ctx.loop
        if loop is not None:
            yield GaugeMetricFamily(
                "aistack_scheduler_last_pass_seconds",
                "Duration of the last scheduling pass (s)",
                value=loop.last_pass_s,
            )
            # counters (exposed as *_total): they only grow while the server runs
            yield CounterMetricFamily(
                "aistack_scheduler_passes", "Scheduling passes since start", value=loop.passes
            )
            yield CounterMetricFamily(
                "aistack_scheduler_errors",
                "Failed scheduling passes since start",
                value=loop.errors,
            )


def install(ctx: Any) -> None:
    REGISTRY.register(StateCollector(ctx))


def uninstall_state_collectors() -> None:
    for c in list(getattr(REGISTRY, "_collector_to_names", {})):
        if isinstance(c, StateCollector):
            REGISTRY.unregister(c)
