"""Fixtures of the storage tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``AISTACK_HOME`` under ``tmp_path`` with the default (local) store and catalog, for the
    ``aistack data`` CLI; yields ``tmp_path``."""
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISTACK_STORAGE_URL", raising=False)
    monkeypatch.delenv("AISTACK_DATABASE_URL", raising=False)
    reset_settings_cache()
    yield tmp_path
    reset_settings_cache()
