"""The demo's cost table: "CPU-hours" in the header and "0.0190 h" in the cell said the unit
twice, and the cell's "h" read as hours (4 CPUs for 1 h are 4 CPU-hours)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from aistack import demo


class _Client:
    def request(self, method: str, path: str, **kw: Any) -> Any:
        row = {"cpu_hours": 4.0, "gpu_hours": 0.0095, "cost_usd": 0.00048}
        return {
            "by_job": [{"key": "aaa", **row}],
            "total": {"cpu_hours": 4.0, "gpu_hours": 0.0095, "cost_usd": 0.00048},
        }

    def get_job(self, job_id: str) -> dict[str, Any]:
        return {"name": "demo-train"}


def test_cost_table_says_the_unit_once(monkeypatch: pytest.MonkeyPatch) -> None:
    con = Console(record=True, width=250, force_terminal=False)
    monkeypatch.setattr(demo, "console", con)
    demo.step_cost(_Client())  # type: ignore[arg-type]
    text = con.export_text()
    assert "CPU-hours" in text and "GPU-hours" in text
    assert "4.0000" in text and "0.0095" in text
    assert "4.0000 h" not in text and "0.0095 h" not in text
