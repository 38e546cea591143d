"""Audit: every JSON result of the planners says the units of its numbers, for the CLI
(`--json`) and the REST API alike (only `plan tco --json` had a units note)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# the inputs test's usage record (its directory is on sys.path: pytest's prepend mode)
from test_planning_audit_inputs import NOW, REC
from typer.testing import CliRunner

from aistack.cli.cost import app as cost_app
from aistack.cli.plan import app as plan_app
from aistack.planning import hybrid_sweep, plan_tco, price_usage
from aistack.planning.usage import parse_records

runner = CliRunner()


@pytest.mark.parametrize(
    ("result", "needles"),
    [
        (lambda: plan_tco(gpus=8, gpu="H100").to_dict(), ("USD per useful GPU-hour", "months")),
        (lambda: hybrid_sweep([8.0, 16.0], gpu="H100").to_dict(), ("GPU-hours", "hours")),
        (
            lambda: price_usage(parse_records([REC]), now=NOW).to_dict(),
            ("percent 0-100", "GPU-hours"),
        ),
    ],
    ids=["tco", "hybrid", "usage"],
)
def test_json_results_say_their_units(result: Any, needles: tuple[str, ...]) -> None:
    units = result()["units"]
    assert "USD" in units and "fraction 0-1" in units
    for n in needles:
        assert n in units


def test_cli_hybrid_and_cost_report_json_say_their_units(
    aistack_home: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("submission_time,duration,num_gpu\n0,36000,8\n3600,7200,16\n")
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(trace), "--gpu", "H100", "--json"])
    assert res.exit_code == 0, res.output
    assert "owned_utilization" in json.loads(res.stdout)["units"]
    recs = tmp_path / "r.json"
    recs.write_text(json.dumps([REC]))
    res = runner.invoke(
        cost_app, ["report", "--records", str(recs), "--now", "2026-11-10", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "fleet_utilization" in json.loads(res.stdout)["units"]
    # the tco note is unchanged
    res = runner.invoke(plan_app, ["tco", "--gpus", "8", "--gpu", "H100", "--json"])
    assert "cost_per_useful_gpu_hour: USD per useful GPU-hour" in json.loads(res.stdout)["units"]
