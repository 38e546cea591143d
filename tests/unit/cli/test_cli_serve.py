"""`aistack serve status`: every count says what it counts (requests, batches)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve

runner = CliRunner()


def _status() -> dict[str, Any]:
    return {
        "name": "t",
        "status": "running",
        "model_uri": "builtin:tiny-gpt",
        "url": "http://127.0.0.1:1",
        "ready_replicas": 1,
        "desired_replicas": 1,
        "min_replicas": 1,
        "max_replicas": 2,
        "metrics": {"qps": 1.2, "mean_batch_size": 3.5, "batch_size_counts": {"5": 1, "2": 3}},
        "replicas": [
            {"id": "r1", "state": "ready", "model": "m", "outstanding": 2, "served": 6},
        ],
    }


def test_status_batch_sizes_and_replica_counts_have_units(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It printed 'sizes 5×1, 2×3' (which is the size?) and replica columns 'outstanding' and
    'served' with bare counts."""
    monkeypatch.setattr("aistack.serving.manager.status", lambda _name: _status())
    monkeypatch.setenv("COLUMNS", "200")
    res = runner.invoke(serve.app, ["status", "t"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "sizes (requests × batches) 5×1, 2×3" in out
    assert "outstanding requests" in out and "served requests" in out
