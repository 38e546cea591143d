"""Fixtures of the integration tests in more than one folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def slurm(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A private Slurm cluster on 127.0.0.1 (munged, slurmctld, slurmd; per module), stopped
    after the module. Its node has the module's ``SLURM_GPUS`` fake GPUs (default 2), and
    accounting (slurmdbd, MariaDB) where the module sets ``SLURM_ACCOUNTING = "if-installed"``
    and they are. Skips with the command that installs what is missing."""
    from aistack.testing.slurm import slurm_unavailable_reason, start_slurm

    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    gpus = getattr(request.module, "SLURM_GPUS", 2)
    accounting = (
        getattr(request.module, "SLURM_ACCOUNTING", None) == "if-installed"
        and slurm_unavailable_reason(accounting=True) is None
    )
    cluster = start_slurm(gpus=gpus, accounting=accounting)
    yield cluster
    cluster.stop()
