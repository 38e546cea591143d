"""The storage contract suite on the local directory backend and on the memory:// fake."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aistack.storage import Datasets
from aistack.storage.contract import StorageContract


class TestLocalContract(StorageContract):
    @pytest.fixture
    def ds(self, tmp_path: Path) -> Datasets:
        return Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))


class TestFileUrlContract(StorageContract):
    """file:// URLs name the same backend as plain paths."""

    @pytest.fixture
    def ds(self, tmp_path: Path) -> Datasets:
        return Datasets.connect(
            f"sqlite:///{tmp_path / 'aistack.db'}", f"file://{tmp_path / 'objects'}"
        )


class TestMemoryContract(StorageContract):
    @pytest.fixture
    def ds(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        from fsspec.implementations.memory import MemoryFileSystem

        name = f"aistack-test-{uuid.uuid4().hex[:12]}"
        yield Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", f"memory://{name}")
        MemoryFileSystem().rm(f"/{name}", recursive=True)
