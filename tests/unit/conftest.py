"""Unit tests run side by side in pytest-xdist workers (make test): each has its own home."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test has its own AISTACK_HOME unless it sets one: a test that uses the default
    shared ~/.aistack with the tests running beside it (pytest-xdist), so another test's add
    lease made gc keep objects a test expected deleted."""
    if "AISTACK_HOME" not in os.environ:
        monkeypatch.setenv("AISTACK_HOME", str(tmp_path_factory.mktemp("home")))
