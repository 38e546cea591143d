"""`aistack sim run`: --limit takes the first jobs submitted, not the file's first rows; a
--plot that cannot be written fails before the simulation; a policy option's error is about
the --option the user typed (not the explain=False the command adds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import sim
from aistack.errors import ValidationError
from aistack.scheduler.simulator import load_csv

runner = CliRunner()
HEADER = "job_id,submission_time,duration,num_gpu\n"


def _unsorted(tmp_path: Path) -> Path:
    t = tmp_path / "t.csv"
    t.write_text(HEADER + "late,1000,10,1\nearly,0,10,1\nmid,500,10,1\n")
    return t


def test_limit_takes_the_first_jobs_submitted(tmp_path: Path) -> None:
    assert [j.id for j in load_csv(_unsorted(tmp_path), limit=2)] == ["early", "mid"]


def test_cli_limit_replays_the_first_jobs_submitted(tmp_path: Path) -> None:
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(_unsorted(tmp_path)), "--nodes", "1", "--policy", "fifo"]
        + ["--limit", "2", "--json"],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)[0]
    # early (0 s) and mid (500 s), 10 s each: the last ends at 510 s (late + early: 1010 s)
    assert m["jobs"] == 2 and m["makespan_s"] == pytest.approx(510.0)


def _no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the simulation ran before the error")

    monkeypatch.setattr(sim, "_run_policies", boom)
    monkeypatch.setattr(sim, "_load", boom)


def test_an_unwritable_plot_fails_before_the_simulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_simulation(monkeypatch)
    # /proc takes no new file, whoever asks (os.access said yes to root)
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(_unsorted(tmp_path)), "--nodes", "1", "--policy", "fifo"]
        + ["--plot", "/proc/jct.png"],
    )
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    assert str(res.exception).startswith("--plot: cannot write /proc/jct.png")
    assert not Path("/proc/jct.png").exists()


def test_a_writable_plot_path_is_left_as_it_was(tmp_path: Path) -> None:
    new = tmp_path / "new.png"
    sim._check_plot_path(new)
    assert not new.exists()  # the probe's empty file is removed
    old = tmp_path / "old.png"
    old.write_bytes(b"x")
    sim._check_plot_path(old)
    assert old.read_bytes() == b"x"


def test_a_bad_option_value_names_what_the_user_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_simulation(monkeypatch)
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(_unsorted(tmp_path)), "--nodes", "1", "--policy", "default"]
        + ["--option", "default.max_wait_factor=-1"],
    )
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    msg = str(res.exception)
    assert msg.startswith("--option: policy default: max_wait_factor")
    assert "(options: max_wait_factor=-1)" in msg
    assert "explain" not in msg


@pytest.mark.parametrize(
    ("extra", "start"),
    [
        (["--nodes", "0"], "nodes: must be at least 1"),
        (["--nodes", "1", "--gpus-per-node", "0"], "gpus_per_node: must be 1 to"),
        (["--nodes", "1", "--preempt-cost", "-5"], "preempt_cost_s: must be"),
    ],
)
def test_cluster_errors_come_before_the_trace_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], start: str
) -> None:
    _no_simulation(monkeypatch)
    res = runner.invoke(
        sim.app, ["run", "--trace", str(_unsorted(tmp_path)), "--policy", "fifo", *extra]
    )
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    assert str(res.exception).startswith(start)


def test_estimate_error_names_the_option(tmp_path: Path) -> None:
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(_unsorted(tmp_path)), "--nodes", "1", "--policy", "fifo"]
        + ["--estimate", "0"],
    )
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    assert str(res.exception).startswith("--estimate: the factor must be")
