"""Concurrency hammer on the DB-level job queue, on SQLite and on PostgreSQL.

Many clients submit at once (threads, each with its own session, as API workers do) while the
scheduling loop runs against the same database. Afterwards every submitted job is stored
exactly once with a unique sequence number, nothing is lost, and the executor started each
job exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aistack.executors.base import LaunchRequest
from aistack.executors.memory import MemoryExecutor

pytestmark = pytest.mark.timeout(300)

CLIENTS = 8
JOBS_PER_CLIENT = 25


class CountingExecutor(MemoryExecutor):
    """The in-memory executor, counting launches per job id (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(gpus_per_node=4, n_nodes=2)
        self.launches: Counter[str] = Counter()
        self._lock = threading.Lock()

    def launch(self, req: LaunchRequest) -> str:
        with self._lock:
            self.launches[req.job_id] += 1
            return super().launch(req)


def _setup(database_url: str, home: Path):  # type: ignore[no-untyped-def]
    from aistack.server.db.session import make_engine, migrate, session_factory

    engine = make_engine(database_url)
    migrate(engine)
    return engine, session_factory(engine)


def test_concurrent_submissions_lose_nothing_and_start_once(
    database_url: str, tmp_path: Path
) -> None:
    from aistack.scheduler import get_policy
    from aistack.server.db.models import Job
    from aistack.server.services.jobs import submit_job
    from aistack.server.services.scheduling import SchedulerLoop
    from aistack.settings import Settings

    engine, sessions = _setup(database_url, tmp_path)
    executor = CountingExecutor()
    settings = Settings(home=tmp_path / "home", database_url=database_url, executor="memory")
    settings.ensure_home()
    loop = SchedulerLoop(
        settings=settings, sessions=sessions, executor=executor, policy=get_policy("default")
    )

    submitted: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)

    def client(c: int) -> None:
        start.wait()
        for i in range(JOBS_PER_CLIENT):
            spec = {
                "name": f"c{c}-j{i}",
                "command": "true",
                "resources": {"gpus": (i % 3), "cpus": 1},
                "env": {"AISTACK_FAKE_DURATION_S": "0.05"},
            }
            for attempt in range(20):  # a client retries a submission the DB refused (busy)
                try:
                    with sessions() as s:
                        job = submit_job(s, spec)
                        s.commit()
                        jid = job.id
                    break
                except Exception as exc:  # noqa: BLE001 - retried, recorded on the last attempt
                    if attempt == 19:
                        errors.append(exc)
                        jid = None
                    time.sleep(0.01 * (attempt + 1))
            if jid:
                with lock:
                    submitted.append(jid)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    start.wait()
    deadline = time.monotonic() + 240
    total = CLIENTS * JOBS_PER_CLIENT
    while time.monotonic() < deadline:
        loop.run_once()
        if not any(t.is_alive() for t in threads):
            with sessions() as s:
                done = s.scalar(
                    select(func.count()).select_from(Job).where(Job.state == "SUCCEEDED")
                )
            if done == total:
                break
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(submitted) == total and len(set(submitted)) == total

    with sessions() as s:
        rows = s.execute(select(Job.id, Job.seq, Job.state, Job.attempt)).all()
    assert sorted(r.id for r in rows) == sorted(submitted)  # none lost, none extra
    seqs = sorted(r.seq for r in rows)
    assert seqs == list(range(1, total + 1))  # one sequence number each, no duplicates
    states = Counter(r.state for r in rows)
    assert states == {"SUCCEEDED": total}, states
    assert all(r.attempt == 0 for r in rows)
    assert set(executor.launches) == set(submitted)
    twice = {j: n for j, n in executor.launches.items() if n != 1}
    assert not twice, f"started more than once: {twice}"
    engine.dispose()


def test_migrations_apply_cleanly_and_twice(database_url: str, tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text

    import aistack.server.db as dbpkg
    from aistack.server.db.session import migrate

    engine, _ = _setup(database_url, tmp_path)
    migrate(engine)  # a second upgrade is a no-op
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(dbpkg.__file__).parent / "migrations"))
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    with engine.connect() as conn:
        applied = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
    assert applied == heads
    tables = set(inspect(engine).get_table_names())
    assert {"jobs", "job_events", "alembic_version"} <= tables, tables
    engine.dispose()
