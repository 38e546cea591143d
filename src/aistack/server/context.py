"""The server context: settings, DB engine and sessions, executor, scheduler loop, token."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

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

    def datasets(self) -> Any | None:
        """The storage layer's dataset catalog, or None when it cannot be loaded."""
        if self._datasets is None:
            try:
                from aistack.storage import Datasets

                self._datasets = Datasets.from_settings(self.settings)
            except Exception as exc:  # noqa: BLE001
                log.warning("dataset catalog unavailable: %s", exc)
                return None
        return self._datasets
