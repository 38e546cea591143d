"""/metrics: every job state is a series (0 when no job is in it; a state's series vanished when
its last job left it), and the GPUs/CPUs allocated now and in the cluster are gauges (the
collector's docstring promised them; none was exposed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.metrics import StateCollector
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings

STATES = ("QUEUED", "STARTING", "RUNNING", "PREEMPTING", "CANCELLING", "SUCCEEDED", "FAILED",
          "CANCELLED", "TIMEOUT")  # fmt: skip


def _scrape(loop: SchedulerLoop) -> tuple[CollectorRegistry, str]:
    reg = CollectorRegistry()
    reg.register(StateCollector(SimpleNamespace(sessions=loop.sessions, loop=loop)))
    return reg, generate_latest(reg).decode()


def test_job_states_and_allocated_devices_are_gauges(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate(engine)
    loop = SchedulerLoop(
        settings=settings,
        sessions=session_factory(engine),
        executor=MemoryExecutor(gpus_per_node=4, n_nodes=2),  # 8 GPUs, 16 CPUs
        policy=get_policy("fifo"),
    )
    loop.nodes()  # (the scrape reads the loop's cached inventory; the loop's first pass fills it)
    reg, text = _scrape(loop)
    # no job yet: every state reads 0, none is missing
    for state in STATES:
        assert reg.get_sample_value("aistack_jobs", {"state": state}) == 0.0
    assert reg.get_sample_value("aistack_gpus_allocated") == 0.0
    assert reg.get_sample_value("aistack_gpus") == 8.0
    assert reg.get_sample_value("aistack_cpus") == 16.0
    assert "# TYPE aistack_gpus_allocated gauge" in text

    with loop.sessions() as s:
        for spec in (
            # two nodes x (3 GPUs, 2 CPUs), running for an hour
            {
                "resources": {"gpus": 3, "cpus": 2, "nodes": 2},
                "env": {"AISTACK_FAKE_DURATION_S": "3600"},
            },
            # ends at once: its allocation is closed and holds nothing
            {"resources": {"gpus": 1, "cpus": 1}},
        ):
            submit_job(s, {"command": "x", **spec}, nodes=loop.nodes())
        s.commit()
    loop.run_once()
    loop.run_once()
    reg, _ = _scrape(loop)
    assert reg.get_sample_value("aistack_jobs", {"state": "RUNNING"}) == 1.0
    assert reg.get_sample_value("aistack_jobs", {"state": "SUCCEEDED"}) == 1.0
    assert reg.get_sample_value("aistack_jobs", {"state": "QUEUED"}) == 0.0
    assert reg.get_sample_value("aistack_gpus_allocated") == 6.0
    assert reg.get_sample_value("aistack_cpus_allocated") == 4.0
    engine.dispose()
