"""Prometheus metrics of the server (served at /metrics, token required)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from aistack.server.schemas.jobs import ACTIVE_STATES, FINAL_STATES

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


# every state a job can be in: each is exposed, 0 when no job is in it (a state's series
# vanished when its last job left it, so `aistack_jobs{state="RUNNING"}` read "no data", not 0)
JOB_STATES = ("QUEUED", *sorted(ACTIVE_STATES), *sorted(FINAL_STATES))


class StateCollector:
    """Jobs per state, scheduler pass time, allocated GPUs/CPUs — read at scrape time."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Any:
        from sqlalchemy import select

        from aistack.server.db.models import AllocationRow
        from aistack.server.services.jobs import count_by_state

        g = GaugeMetricFamily("aistack_jobs", "Jobs by state", labels=["state"])
        with self.ctx.sessions() as s:
            counts = {state: 0 for state in JOB_STATES} | count_by_state(s)
            # the open allocations (one per running job attempt and node): the GPUs and CPUs
            # held now, as `aistack cluster` counts them (the docstring promised them; none was
            # exposed)
            held = s.execute(
                select(AllocationRow.gpus, AllocationRow.cpus).where(AllocationRow.end.is_(None))
            ).all()
        for state, n in sorted(counts.items()):
            g.add_metric([state], n)
        yield g
        yield GaugeMetricFamily(
            "aistack_gpus_allocated",
            "GPUs allocated to jobs now",
            value=sum(len(gpus or []) for gpus, _ in held),
        )
        yield GaugeMetricFamily(
            "aistack_cpus_allocated",
            "CPUs allocated to jobs now",
            value=sum(len(cpus or []) for _, cpus in held),
        )
        loop = self.ctx.loop
        if loop is not None:
            # the loop's cached inventory, not a refresh: a scrape (and the registry's collect
            # at registration, at start) asked the executor (scontrol, Ray) and could wait on
            # the nodes lock while the loop held SQLite's write lock
            nodes = getattr(loop, "_nodes", None) or None
            if nodes is not None:
                yield GaugeMetricFamily(
                    "aistack_gpus", "GPUs in the cluster", value=sum(len(n.gpus) for n in nodes)
                )
                yield GaugeMetricFamily(
                    "aistack_cpus", "CPUs in the cluster", value=sum(n.cpus for n in nodes)
                )
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
