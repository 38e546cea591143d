"""The cluster API gives a GPU's memory as null where the engine does not report it (Slurm's
GRES, Ray); the deploy-time fit check read it with int() and raised TypeError."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.spec import ReplicaResources


class _Client:
    def __init__(self, *a: Any, **kw: Any) -> None:
        pass

    def cluster(self) -> dict[str, Any]:
        gpu = {"index": 0, "uuid": "g0", "name": "A100", "memory_mb": None}
        return {"nodes": [{"name": "n0", "cpus": 8, "memory_mb": None, "gpus": [gpu]}]}


def test_a_gpu_of_unknown_memory_is_checked_not_crashed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import aistack.client

    monkeypatch.setattr(aistack.client, "Client", _Client)
    manager.check_resources_fit(ReplicaResources(gpus=1, cpus=2))  # fits: no error
    with pytest.raises(ValidationError, match="gpus"):
        manager.check_resources_fit(ReplicaResources(gpus=2, cpus=2))
