"""The live Slurm tests' executor (the cluster: ``slurm`` in tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aistack.executors.slurm import SlurmExecutor


@pytest.fixture
def ex(slurm: Any) -> Iterator[SlurmExecutor]:
    """The executor; every job of root still in Slurm afterwards is cancelled (it would
    outlive the test cluster, which stops with the module)."""
    executor = SlurmExecutor(slurm_conf=slurm.conf_path, command_timeout_s=20)
    yield executor
    slurm.run("scancel", "--full", "--signal=KILL", "--user=root", check=False)
    slurm.run("scancel", "--user=root", check=False)
    executor.close()
