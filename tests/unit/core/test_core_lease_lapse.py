"""A server that cannot renew its lease stops counting itself the holder before another server
may take the lease over (``ttl_s``), and counts again once a renewal goes through."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.services.lease import ServerLease


@pytest.fixture
def sessions(tmp_path: Path, database_url: str | None):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'aistack.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_held_lapses_before_ttl_without_a_renewal_and_comes_back_with_one(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    lease = ServerLease(sessions, ttl_s=30.0, renew_s=5.0, clock=clock)
    lease.acquire()
    assert lease.held
    clock.t += 24.9  # renewals failed for 24.9 s: still ours (another server waits 30 s)
    assert lease.held
    clock.t += 0.2  # 25.1 s > ttl_s - renew_s
    assert not lease.held
    assert lease.renew()  # the database answers again and the row is still ours
    assert lease.held
    assert lease.holder()["owner"] == lease.owner
    lease.release()


class Outage:
    """A session factory that raises like an unreachable database while ``down`` is set."""

    def __init__(self, sessions) -> None:  # type: ignore[no-untyped-def]
        self.sessions = sessions
        self.down = threading.Event()

    def __call__(self):  # type: ignore[no-untyped-def]
        if self.down.is_set():
            raise sa_exc.OperationalError("connect", {}, ConnectionRefusedError("db is down"))
        return self.sessions()


def test_renewing_thread_gives_up_the_lease_during_an_outage_and_takes_it_back(sessions) -> None:  # type: ignore[no-untyped-def]
    outage = Outage(sessions)
    lease = ServerLease(outage, ttl_s=1.0, renew_s=0.1)  # type: ignore[arg-type]
    lease.acquire()
    lease.start()
    try:
        outage.down.set()
        deadline = time.monotonic() + 5
        while lease.held and time.monotonic() < deadline:
            time.sleep(0.05)
        # (when it lapses, ttl_s - renew_s after the last renewal, is the fake-clock test's)
        assert not lease.held, "still counted as the holder 5 s into the outage"
        outage.down.clear()
        deadline = time.monotonic() + 5
        while not lease.held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.held  # the row was still ours: taken back
        assert lease.holder()["owner"] == lease.owner
    finally:
        lease.stop(release=True)
    assert lease.holder() is None
