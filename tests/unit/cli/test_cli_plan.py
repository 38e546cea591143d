"""`aistack plan tco --json`: the keys that do not name their unit are explained by a units note."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aistack.cli.plan import app

runner = CliRunner()


def test_tco_json_has_a_units_note() -> None:
    """cost_per_useful_gpu_hour (USD per GPU-hour) and utilization (a fraction) named no unit."""
    res = runner.invoke(app, ["tco", "--gpus", "8", "--gpu", "H100", "--json"])
    assert res.exit_code == 0, res.output
    units = json.loads(res.stdout)["units"]
    assert "cost_per_useful_gpu_hour: USD per useful GPU-hour" in units
    assert "fraction" in units and "utilization" in units
