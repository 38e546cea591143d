"""A job's usage sample covers the whole job (all its nodes: the Ray executor sums them): it is
stored once, and its CPU use is spread over all the job's cores. It was stored once per node
(a 2-node job's chart and MLflow system metrics had every point twice) and each node's CPU
utilization was the whole job's CPU over that node's cores alone."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from aistack.executors.base import UsageSample
from aistack.executors.memory import MemoryExecutor
from aistack.server.db.models import AllocationRow, UsageSampleRow
from aistack.server.services.jobs import submit_job
from aistack.settings import Settings
from aistack.testing.loop import close_loop, scheduler_loop


class Sampled(MemoryExecutor):
    def __init__(self) -> None:
        super().__init__(gpus_per_node=2, n_nodes=2)  # 8 CPUs a node
        self.samples: list[UsageSample] = []

    def usage_since(self, handle: str, after_t: float | None) -> list[UsageSample]:
        return [u for u in self.samples if after_t is None or u.t > after_t]


def test_a_two_node_jobs_sample_is_stored_once_and_its_cpu_spread_over_both_nodes(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    ex = Sampled()
    loop = scheduler_loop(settings, ex, "fifo")
    with loop.sessions() as s:
        jid = submit_job(
            s,
            {
                "command": "x",
                "resources": {"gpus": 2, "cpus": 4, "nodes": 2},
                "env": {"AISTACK_FAKE_DURATION_S": "3600"},
            },
            nodes=loop.nodes(),
        ).id
        s.commit()
    loop.run_once()
    now = time.time()
    # 2 cores busy on each node: 400 % over the job's 8 cores is 50 %, not 100 % of one node's 4
    ex.samples = [UsageSample(t=now + i, cpu_percent=400.0, rss_mb=100.0) for i in range(3)]
    with loop.sessions() as s:
        loop.monitor(s)
        s.commit()
    with loop.sessions() as s:
        allocs = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars().all()
        assert len(allocs) == 2
        rows = s.execute(select(UsageSampleRow).where(UsageSampleRow.job_id == jid)).scalars().all()
        assert len(rows) == 3  # one per sample, not one per sample and node
        assert len({r.t for r in rows}) == 3
        assert [a.samples for a in allocs] == [3, 3]
        assert [round(a.cpu_util_avg or 0, 3) for a in allocs] == [50.0, 50.0]
    close_loop(loop)
