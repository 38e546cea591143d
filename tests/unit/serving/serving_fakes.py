"""A fake aistack server for the serving tests whose replicas are aistack jobs."""

from __future__ import annotations

from typing import Any

from aistack.errors import ConnectionFailed, NotFoundError
from aistack.serving.launcher import LaunchStatus

UNREACHABLE = "cannot reach the aistack server at http://127.0.0.1:18940"


class FakeJobsServer:
    """What serving asks of ``aistack.client.Client``: jobs by id (``jobs``: id -> state).
    ``down``: every call fails to connect; ``unreachable``: jobs whose cancel does not get
    through; ``cancel_error``: what a cancel raises; a cancel leaves a job ``cancel_to``
    and is recorded in ``cancels`` (job id, reason, grace). Called, it returns itself: it
    stands in for the ``Client`` class (``monkeypatch.setattr(client_mod, "Client", srv)``)."""

    def __init__(self, *, cancel_to: str = "CANCELLED") -> None:
        self.jobs: dict[str, str] = {}
        self.cancels: list[tuple[str, str | None, float | None]] = []
        self.unreachable: set[str] = set()
        self.down = False
        self.cancel_error: Exception | None = None
        self.cancel_to = cancel_to

    def __call__(self, *a: Any, **kw: Any) -> FakeJobsServer:
        return self

    def _up(self) -> None:
        if self.down:
            raise ConnectionFailed(UNREACHABLE)

    def health(self) -> dict[str, Any]:
        self._up()
        return {"status": "ok"}

    def get_job(self, job_id: str) -> dict[str, Any]:
        self._up()
        if job_id not in self.jobs:
            raise NotFoundError(f"job {job_id} not found")
        return {"id": job_id, "state": self.jobs[job_id]}

    def cancel(
        self, job_id: str, reason: str | None = None, *, grace_s: float | None = None
    ) -> dict[str, Any]:
        self._up()
        if job_id in self.unreachable:
            raise ConnectionFailed(UNREACHABLE)
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancels.append((job_id, reason, grace_s))
        self.jobs[job_id] = self.cancel_to
        return {"id": job_id}


class RunningLauncher:
    """A replica launcher whose replicas start at once and run until stopped (handle "h")."""

    name = "fake"

    def launch(self, **_kw: Any) -> str:
        return "h"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass
