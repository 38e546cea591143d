"""Fixtures of the storage tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class FakeServer:
    """The aistack server as `aistack data unref` asks it (``aistack.cli._common.client()``):
    ``jobs`` maps a job id to its state, or to the exception ``get_job`` raises; a job not in
    it is unknown (404). ``asked`` lists the ids asked for."""

    def __init__(self) -> None:
        self.jobs: dict[str, str | BaseException] = {}
        self.asked: list[str] = []
        self.closed = 0

    def __call__(self) -> FakeServer:  # stands in for _common.client
        return self

    def get_job(self, job_id: str) -> dict[str, str]:
        from aistack.errors import NotFoundError

        self.asked.append(job_id)
        got = self.jobs.get(job_id) or NotFoundError(f"job {job_id!r} not found")
        if isinstance(got, BaseException):
            raise got
        return {"id": job_id, "state": got}

    def close(self) -> None:
        self.closed += 1


@pytest.fixture(autouse=True)
def aistack_server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """No storage test asks a real server (one may run on this machine): `data unref` gets a
    fake that knows no job unless the test sets ``aistack_server.jobs``."""
    fake = FakeServer()
    monkeypatch.setattr("aistack.cli._common.client", fake)
    return fake


@pytest.fixture(params=["local", "memory"])
def local_and_memory_datasets(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``Datasets`` on a local object store, then on fsspec's memory store (emptied after)."""
    from aistack.storage import Datasets

    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    if request.param == "local":
        yield Datasets.connect(db, str(tmp_path / "objects"))
        return
    from fsspec.implementations.memory import MemoryFileSystem

    name = f"aistack-test-{uuid.uuid4().hex[:12]}"
    yield Datasets.connect(db, f"memory://{name}")
    MemoryFileSystem().rm(f"/{name}", recursive=True)
