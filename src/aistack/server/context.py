"""The server context: settings, DB engine and sessions, executor, scheduler loop, token."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aistack.errors import AistackError, BackendError
from aistack.executors.base import Executor
from aistack.settings import Settings

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ServerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    executor: Executor
    token: str
    loop: Any = None  # SchedulerLoop
    lease: Any = None  # ServerLease: this server schedules against the DB alone
    started_at: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    _datasets: Any = None
    _datasets_error: Exception | None = None

    def datasets(self) -> Any | None:
        """The storage layer's dataset catalog, or None when it cannot be loaded (tried again
        at the next call; why is in :meth:`datasets_unavailable`)."""
        if self._datasets is None:
            try:
                from aistack.storage import Datasets

                self._datasets = Datasets.from_settings(self.settings)
                self._datasets_error = None
            except Exception as exc:  # noqa: BLE001
                log.warning("dataset catalog unavailable: %s", exc)
                self._datasets_error = exc
                return None
        return self._datasets

    def datasets_unavailable(self) -> AistackError:
        """Why :meth:`datasets` gave None, as the error to answer with: the storage layer's
        own (a database or S3 store it cannot reach names the setting to fix), else one that
        says what failed (a job with inputs was told to install aistack's dependencies while
        its database was down)."""
        exc = self._datasets_error
        if isinstance(exc, AistackError):
            return exc
        if exc is None or isinstance(exc, ImportError):
            return BackendError(
                "the dataset catalog is not available on this server (the storage layer "
                f"cannot be imported{': ' + str(exc) if exc else ''})",
                hint="install aistack with its default dependencies",
            )
        return BackendError(
            f"the dataset catalog cannot be opened: {type(exc).__name__}: {exc}",
            hint="check AISTACK_STORAGE_URL and AISTACK_DATABASE_URL, and the server log",
        )
