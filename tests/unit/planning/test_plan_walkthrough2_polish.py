"""Polish of `plan hybrid` and `cost report`: the hybrid table's sixth column has a name
(cheapest); a window under a minute reads in seconds (11 s read '0.19 minutes')."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.cost import app as cost_app
from aistack.planning.report import render_hybrid
from aistack.planning.training import duration_text
from aistack.planning.whatif import hybrid_sweep


def test_hybrid_table_names_every_column() -> None:
    text = render_hybrid(hybrid_sweep([8.0, 16.0, 4.0, 12.0] * 24, step_h=1.0, gpu="H100"))
    header = next(line for line in text.splitlines() if line.startswith("servers"))
    assert header.split() == [
        "servers",
        "owned",
        "GPUs",
        "owned",
        "busy",
        "burst",
        "GPU-h/month",
        "cost/month",
        "cheapest",
    ]
    assert sum(line.rstrip().endswith("  yes") for line in text.splitlines()) == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (11, "11 seconds"),
        (0.5, "0.5 seconds"),
        (60, "1 minute"),
        (360, "6 minutes"),
        (1, "1 second"),
    ],
)
def test_short_durations_read_in_seconds(seconds: float, text: str) -> None:
    assert duration_text(seconds / 86400) == text


def _rec(project: str) -> dict[str, Any]:
    return {
        "job_id": "j1",
        "project": project,
        "user": "ann",
        "node": "n1",
        "gpus": 8,
        "gpu_type": "H100",
        "cpus": 8,
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-01T00:00:11Z",
        "gpu_util": 50.0,
        "cpu_util": 5.0,
    }


def test_short_window_reads_in_seconds(tmp_path: Path, aistack_home: Path) -> None:
    f = tmp_path / "recs.json"
    f.write_text(json.dumps([_rec("vision")]))
    res = CliRunner().invoke(
        cost_app, ["report", "--records", str(f), "--now", "2026-11-01T00:00:11Z"]
    )
    assert res.exit_code == 0, res.output
    assert "(11 seconds, 1 allocation)" in res.output
    assert "minutes" not in res.output
