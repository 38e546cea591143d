"""One scheduling server per metadata DB: the server lease (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from aistack.errors import ConflictError
from aistack.server.db.models import ServerLeaseRow
from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.services.lease import ServerLease, pid_alive


@pytest.fixture
def sessions(tmp_path: Path, database_url: str | None):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'aistack.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    p.wait()
    assert not pid_alive(p.pid)
    return p.pid


def age_heartbeat(sessions, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s:
        row = s.get(ServerLeaseRow, 1)
        s.execute(
            update(ServerLeaseRow).values(
                heartbeat_at=row.heartbeat_at - dt.timedelta(seconds=seconds)
            )
        )
        s.commit()


def test_second_server_is_refused_with_the_holder_named(sessions) -> None:  # type: ignore[no-untyped-def]
    first = ServerLease(sessions, url="http://127.0.0.1:8765")
    first.acquire()
    assert first.held
    second = ServerLease(sessions, url="http://127.0.0.1:8766")  # same host, live pid
    with pytest.raises(ConflictError) as ei:
        second.acquire()
    msg = str(ei.value)
    assert "another aistack server at http://127.0.0.1:8765" in msg
    assert f"pid {first.pid}" in msg
    assert "AISTACK_HOME" in (ei.value.hint or "")
    assert not second.held
    assert first.holder()["owner"] == first.owner  # nothing changed hands
    assert first.renew()  # and the holder keeps renewing


def test_released_lease_is_free_and_release_only_drops_its_own(sessions) -> None:  # type: ignore[no-untyped-def]
    first = ServerLease(sessions)
    first.acquire()
    other = ServerLease(sessions, host="elsewhere")
    other.release()  # not its lease: nothing happens
    assert first.holder()["owner"] == first.owner
    first.release()
    assert first.holder() is None
    other.acquire()
    assert other.holder()["owner"] == other.owner


def test_dead_holder_on_this_host_is_taken_over_at_once(sessions) -> None:  # type: ignore[no-untyped-def]
    gone = ServerLease(sessions, pid=dead_pid())  # a server killed with SIGKILL
    gone.acquire()
    new = ServerLease(sessions)
    new.acquire()  # its heartbeat is fresh, but its process is gone
    assert new.held and new.holder()["owner"] == new.owner
    assert not gone.renew() and not gone.held


def test_holder_on_another_host_counts_until_its_heartbeat_is_older_than_ttl(sessions) -> None:  # type: ignore[no-untyped-def]
    remote = ServerLease(sessions, host="node-b", pid=dead_pid(), ttl_s=30)
    remote.acquire()
    here = ServerLease(sessions, ttl_s=30)
    with pytest.raises(ConflictError, match="pid .* on node-b"):
        here.acquire()  # its pid means nothing on this host: only the heartbeat counts
    age_heartbeat(sessions, 20)
    with pytest.raises(ConflictError):
        here.acquire()
    age_heartbeat(sessions, 15)  # 35 s without a heartbeat
    here.acquire()
    assert here.held
    # the stalled server finds out on its next renewal and stops scheduling
    assert not remote.renew()
    assert not remote.held
    assert here.holder()["owner"] == here.owner


def _race(lease: ServerLease, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    barrier.wait()
    try:
        lease.acquire()
    except ConflictError as exc:
        errors.append(exc)


def test_two_servers_starting_together_one_wins(sessions) -> None:  # type: ignore[no-untyped-def]
    for rnd in range(3):
        if rnd:  # also the takeover of a stale lease, where both see the same old row
            stale = ServerLease(sessions, host="node-z")
            stale.acquire()
            age_heartbeat(sessions, 3600)
        leases = [ServerLease(sessions, host=f"node-{rnd}-{i}") for i in range(4)]
        barrier = threading.Barrier(len(leases))
        errors: list[BaseException] = []

        threads = [threading.Thread(target=_race, args=(le, barrier, errors)) for le in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        winners = [le for le in leases if le.held]
        assert len(winners) == 1, [le.owner for le in winners]
        assert len(errors) == len(leases) - 1
        assert winners[0].holder()["owner"] == winners[0].owner
        winners[0].release()


def test_scheduler_loop_skips_passes_without_the_lease(tmp_path: Path, sessions) -> None:  # type: ignore[no-untyped-def]
    from aistack.executors.memory import MemoryExecutor
    from aistack.scheduler import get_policy
    from aistack.server.services.scheduling import SchedulerLoop
    from aistack.settings import Settings

    lease = ServerLease(sessions, renew_s=0.05, ttl_s=1.0)
    loop = SchedulerLoop(
        settings=Settings(home=tmp_path, executor="memory", mlflow_enabled=False),
        sessions=sessions,
        executor=MemoryExecutor(gpus_per_node=1, n_nodes=1),
        policy=get_policy("fifo"),
        lease=lease,
    )
    loop.start()
    try:
        loop.wake()
        threading.Event().wait(0.5)
        assert loop.passes == 0  # never acquired
        lease.acquire()
        loop.wake()
        for _ in range(100):
            if loop.passes:
                break
            threading.Event().wait(0.05)
        assert loop.passes > 0
    finally:
        loop.stop()
