"""One scheduling server per metadata DB.

Two servers on one DB (two ``aistack up`` on one home with different ports, or two hosts on one
PostgreSQL) would each run a scheduler and hand out the same GPUs to different jobs. So a
server takes the DB's lease (table ``server_lease``, one row) before it schedules anything and
renews it every ``renew_s`` seconds from a thread of its own; a second server on the same DB
refuses to start and names the holder. A lease is taken over when its holder stopped renewing
for ``ttl_s`` seconds, or at once when the holder was on this host and its process is gone (a
server killed with SIGKILL). A server that finds its lease taken (it stalled past ``ttl_s``
and another took over) stops scheduling until it holds the lease again.

A server that cannot renew (the database is unreachable, or a renewal hangs in a connect) does
not count itself the holder past ``ttl_s - renew_s`` seconds after its last renewal: by then
another server that still reaches the database may take the lease over, and two schedulers
must never run at once. It schedules again once a renewal goes through (it still owns the
row) or it takes the lease again.

Every write is a compare-and-swap on the row (``UPDATE … WHERE owner = … AND heartbeat_at =
…``), so two servers starting at the same moment cannot both win, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from aistack.errors import ConflictError
from aistack.server.db.models import ServerLeaseRow, utcnow

log = logging.getLogger(__name__)

LEASE_ID = 1


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ServerLease:
    sessions: sessionmaker[Session]
    url: str = ""
    ttl_s: float = 30.0
    renew_s: float = 5.0
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    clock: Any = time.monotonic  # seconds; tests pass a fake one

    def __post_init__(self) -> None:
        if self.renew_s >= self.ttl_s:
            raise ValueError("renew_s must be shorter than ttl_s")
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._held = False
        self._renewed_at = 0.0  # clock() just before the last write that took or kept the lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """Whether this server holds the lease now: it took or renewed it, and did so less than
        ``ttl_s - renew_s`` seconds ago (past ``ttl_s`` another server may take it over)."""
        return self._held and self.clock() - self._renewed_at < self.ttl_s - self.renew_s

    def _took(self, at: float) -> None:
        self._held = True
        self._renewed_at = at

    # -- taking and giving back ----------------------------------------------------------------
    def holder(self) -> dict[str, Any] | None:
        """The current row as a dict (owner, host, pid, url, started_at, heartbeat_at), or None."""
        with self.sessions() as s:
            row = s.get(ServerLeaseRow, LEASE_ID)
            if row is None:
                return None
            return {
                "owner": row.owner,
                "host": row.host,
                "pid": row.pid,
                "url": row.url,
                "started_at": row.started_at,
                "heartbeat_at": row.heartbeat_at,
            }

    def _stale(self, row: dict[str, Any], now: dt.datetime) -> str | None:
        """Why ``row``'s holder no longer counts, or None while it does."""
        age = (now - row["heartbeat_at"]).total_seconds()
        if age > self.ttl_s:
            return f"no heartbeat for {age:.0f} s"
        if row["host"] == self.host and not pid_alive(int(row["pid"])):
            return f"its process {row['pid']} on this host is gone"
        return None

    def acquire(self) -> None:
        """Take the lease, or raise ConflictError naming the server that holds it."""
        for _ in range(5):
            at = self.clock()
            now = utcnow()
            row = self.holder()
            values = {
                "owner": self.owner,
                "host": self.host,
                "pid": self.pid,
                "url": self.url,
                "heartbeat_at": now,
            }
            with self.sessions() as s:
                if row is None:
                    s.add(ServerLeaseRow(id=LEASE_ID, started_at=now, **values))
                    try:
                        s.commit()
                    except sa_exc.IntegrityError:  # another server inserted it first
                        s.rollback()
                        continue
                    self._took(at)
                    return
                if row["owner"] != self.owner:
                    why = self._stale(row, now)
                    if why is None:
                        self._refuse(row, now)
                    log.warning("taking over the server lease of %s: %s", row["owner"], why)
                    values["started_at"] = now
                res = s.execute(
                    update(ServerLeaseRow)
                    .where(
                        ServerLeaseRow.id == LEASE_ID,
                        ServerLeaseRow.owner == row["owner"],
                        ServerLeaseRow.heartbeat_at == row["heartbeat_at"],
                    )
                    .values(**values)
                )
                s.commit()
                if getattr(res, "rowcount", 0) == 1:
                    self._took(at)
                    return
        row = self.holder()
        if row is not None and row["owner"] != self.owner:
            self._refuse(row, utcnow())
        raise ConflictError(
            "could not take the server lease of this database (it kept changing hands)",
            hint="check which aistack servers use this database and stop all but one",
        )

    def _refuse(self, row: dict[str, Any], now: dt.datetime) -> None:
        age = (now - row["heartbeat_at"]).total_seconds()
        where = f" at {row['url']}" if row["url"] else ""
        raise ConflictError(
            f"another aistack server{where} (pid {row['pid']} on {row['host']}) is scheduling "
            f"against this database (last heartbeat {max(age, 0):.0f} s ago); two servers on "
            "one database would hand out the same GPUs",
            hint="use that server (`aistack status`), stop it with `aistack down` on its host, "
            "or give this one its own AISTACK_HOME / AISTACK_DATABASE_URL; a server that died "
            f"without stopping is taken over {self.ttl_s:.0f} s after its last heartbeat",
            holder_pid=row["pid"],
            holder_host=row["host"],
            holder_url=row["url"],
        )

    def renew(self) -> bool:
        """Move the heartbeat; False (and ``held`` False) when another server has the lease."""
        at = self.clock()
        with self.sessions() as s:
            res = s.execute(
                update(ServerLeaseRow)
                .where(ServerLeaseRow.id == LEASE_ID, ServerLeaseRow.owner == self.owner)
                .values(heartbeat_at=utcnow())
            )
            s.commit()
        ok = getattr(res, "rowcount", 0) == 1
        if self._held and not ok:
            log.error("the server lease was taken by another server; scheduling stops here")
        if ok:
            self._took(at)
        else:
            self._held = False
        return ok

    def release(self) -> None:
        """Give the lease back (only if this server still holds it)."""
        self._held = False
        with self.sessions() as s:
            s.execute(
                delete(ServerLeaseRow).where(
                    ServerLeaseRow.id == LEASE_ID, ServerLeaseRow.owner == self.owner
                )
            )
            s.commit()

    # -- the renewing thread -------------------------------------------------------------------
    def start(self) -> None:
        """Renew every ``renew_s`` from a daemon thread (after :meth:`acquire`); a lost lease is
        taken back once its new holder is gone."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aistack-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_s):
            lapsed = self._held and not self.held  # no renewal went through for too long
            if lapsed:
                self._held = False
                log.error(
                    "could not renew the server lease for %.0f s; scheduling stops until the "
                    "database answers again (past %.0f s another server may take the lease over)",
                    self.clock() - self._renewed_at,
                    self.ttl_s,
                )
            try:
                if self._held:
                    self.renew()
                else:
                    self.acquire()
                    log.warning("the server lease is back; scheduling resumes")
            except ConflictError:
                pass
            except Exception:  # noqa: BLE001 - a DB hiccup: try again next round
                log.warning("could not renew the server lease", exc_info=True)

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if release:
            try:
                self.release()
            except Exception:  # noqa: BLE001 - the DB may be gone at shutdown
                log.warning("could not release the server lease", exc_info=True)


__all__ = ["ServerLease", "pid_alive"]
