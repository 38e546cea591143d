"""`aistack sim run/whatif --tz ZONE`: the zone sacct's times (no offset) are read in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import sim
from aistack.errors import ValidationError

runner = CliRunner()
# one 1-GPU job from 01:30 to 03:30 on the clock, over Europe/Berlin's spring DST change
SACCT = (
    "JobID|User|Account|Submit|Start|End|AllocTRES|Timelimit\n"
    "1|alice|vision|2026-03-29T01:30:00|2026-03-29T01:30:00|2026-03-29T03:30:00|gres/gpu=1|\n"
)


def _jct(args: list[str]) -> float:
    res = runner.invoke(sim.app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    [m] = json.loads(res.stdout)
    return float(m["avg_jct"])


def test_run_tz_reaches_the_reader(tmp_path: Path) -> None:
    t = tmp_path / "sacct.txt"
    t.write_text(SACCT)
    args = ["run", "--trace", str(t), "--format", "slurm", "--nodes", "1", "--policy", "fifo"]
    assert _jct([*args, "--tz", "Europe/Berlin"]) == 3600.0  # one real hour
    assert _jct([*args, "--tz", "UTC"]) == 7200.0
    res = runner.invoke(sim.app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "--tz" in res.stdout


def test_whatif_tz_reaches_the_reader(tmp_path: Path) -> None:
    t = tmp_path / "sacct.txt"
    t.write_text(SACCT)
    base = ["whatif", "--trace", str(t), "--format", "slurm", "--nodes", "1", "--gpus-delta", "8"]
    for tz, want in (("Europe/Berlin", 3600.0), ("UTC", 7200.0)):
        res = runner.invoke(sim.app, [*base, "--tz", tz, "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["today"]["avg_jct"] == want, out


def _error(res: Any) -> str:
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    return str(res.exception)


def test_unknown_tz_is_a_clear_error_before_the_server_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tmp_path / "sacct.txt"
    t.write_text(SACCT)
    run = ["run", "--trace", str(t), "--format", "slurm", "--nodes", "1", "--tz", "Mars/Olympus"]
    msg = _error(runner.invoke(sim.app, run))
    assert "--tz: time zone 'Mars/Olympus' is not known" in msg
    assert "IANA name such as Europe/Berlin or UTC" in msg

    class NoServer:
        def list_jobs(self, **_kw: Any) -> list[dict[str, Any]]:
            raise AssertionError("the server was asked before --tz was checked")

    monkeypatch.setattr("aistack.client.Client", NoServer)
    res = runner.invoke(sim.app, ["whatif", "--gpus-delta", "8", "--nodes", "1", "--tz", "Mars"])
    assert "--tz: time zone 'Mars' is not known" in _error(res)
