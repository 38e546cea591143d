"""`aistack sim run|whatif` walked through as a first-time user: the platform's own history of
short jobs, whatif with no change, the notes under the table, malformed rows and history
records. Each test failed on the code before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import sim
from aistack.errors import ValidationError
from aistack.scheduler.simulator import load_csv, load_history

runner = CliRunner()
HEADER = "job_id,submission_time,duration,num_gpu\n"
WIDE = {"COLUMNS": "250"}


def _row(i: int, gpus: Any, *, sec: int = 0, **extra: Any) -> dict[str, Any]:
    """A finished job of the server's `jobs --json` export: submitted at minute i, started
    ``sec`` seconds later, ran 3 s."""
    return {
        "id": f"j{i}",
        "state": "SUCCEEDED",
        "submitted_at": f"2026-01-01T00:{i:02d}:00Z",
        "started_at": f"2026-01-01T00:{i:02d}:{sec:02d}Z",
        "finished_at": f"2026-01-01T00:{i:02d}:{sec + 3:02d}Z",
        "resources": {"gpus": gpus, "cpus": 1},
        **extra,
    }


@pytest.fixture
def server_history(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    class FakeClient:
        def list_jobs(self, **_kw: Any) -> list[dict[str, Any]]:
            return rows

    monkeypatch.setattr("aistack.client.Client", FakeClient)
    return rows


def _ok(args: list[str]) -> str:
    res = runner.invoke(sim.app, args, env=WIDE)
    assert res.exit_code == 0, res.output
    return res.stdout


def _error(args: list[str]) -> str:
    res = runner.invoke(sim.app, args, env=WIDE)
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    return str(res.exception)


def _rows(out: str) -> tuple[list[str], list[list[str]]]:
    heads: list[list[str]] = []
    rows: list[list[str]] = []
    for line in out.splitlines():
        if line.startswith("┃"):
            heads.append([c.strip() for c in line.strip().strip("┃").split("┃")])
        elif line.startswith("│"):
            rows.append([c.strip() for c in line.strip().strip("│").split("│")])
    return [" ".join(p for p in parts if p) for parts in zip(*heads, strict=True)], rows


def test_whatif_on_a_history_of_short_jobs_shows_seconds_not_zero_hours(
    server_history: list[dict[str, Any]],
) -> None:
    """Three 3-second 4-GPU jobs submitted at once on 4 GPUs: waits of 3 and 6 s were
    printed as 0.00 h in every cell, and "the p95 wait drops from 0.00 h to 0.00 h"."""
    server_history.extend([{**_row(0, 4), "id": f"j{k}"} for k in range(3)])
    args = ["whatif", "--gpus-delta", "8", "--nodes", "1", "--gpus-per-node", "4"]
    d = json.loads(_ok([*args, "--json"]))
    assert (d["today"]["p95_wait"], d["whatif"]["p95_wait"]) == pytest.approx((5.7, 0.0))
    out = _ok(args)
    headers, rows = _rows(out)
    assert headers[2:6] == ["avg JCT (s)", "p95 wait (s)", "p99 wait (s)", "max wait (s)"]
    keys = ("avg_jct", "p95_wait", "p99_wait", "max_wait")
    assert rows[0][2:6] == [f"{d['today'][k]:,.2f}" for k in keys]
    assert rows[0][2:6] == ["6.00", "5.70", "5.94", "6.00"]
    assert rows[1][2:6] == ["3.00", "0.00", "0.00", "0.00"]
    assert "with 8 more GPUs the p95 wait drops from 5.70 s to 0.00 s" in " ".join(out.split())


def test_whatif_without_a_change_says_the_wait_stays(server_history: list[dict[str, Any]]) -> None:
    """--gpus-delta 0 (or any change that leaves the p95 wait as it was) said "drops"."""
    server_history.extend([_row(0, 1), _row(1, 1)])
    args = ["whatif", "--gpus-delta", "0", "--nodes", "1", "--gpus-per-node", "4"]
    out = " ".join(_ok(args).split())
    assert "with 0 more GPUs the p95 wait stays at 0.00 s" in out
    assert "drops" not in out and "rises" not in out


def test_run_table_in_minutes_and_the_makespan_line(tmp_path: Path) -> None:
    """Jobs of minutes: the table's times are in minutes, its header says so, the makespan
    line too."""
    t = tmp_path / "t.csv"
    t.write_text(HEADER + "a,0,100,1\nb,10,200,2\nc,20,50,8\n")
    base = ["run", "--trace", str(t), "--nodes", "1", "--policy", "fifo"]
    [m] = json.loads(_ok([*base, "--json"]))
    assert (m["avg_jct"], m["max_wait"], m["makespan_s"], m["lb_makespan_s"]) == (
        180.0,
        190.0,
        260.0,
        210.0,
    )
    out = _ok(base)
    headers, rows = _rows(out)
    assert headers[1] == "avg JCT (min)" and headers[7] == "max wait (min)"
    assert rows[0][1] == "3.00" and rows[0][7] == "3.17"  # 180 s, 190 s
    assert rows[1][1] == f"{m['lb_avg_jct'] / 60:,.2f}"  # the lower bound in the same unit
    assert "makespan lower bound 3.50 min; fifo 4.33 min" in out


def test_run_notes_under_the_table_name_only_what_was_dropped(tmp_path: Path) -> None:
    """A job larger than the cluster and nothing skipped printed "; 1 jobs larger than the
    cluster dropped"; a CPU-only job alone added "0 jobs larger than the cluster dropped".
    The title counts the jobs simulated, as --json's "jobs" does (it said 2 for 1)."""
    big = tmp_path / "big.csv"
    big.write_text(HEADER + "a,0,100,64\nb,1,100,1\n")
    out = _ok(["run", "--trace", str(big), "--nodes", "1", "--policy", "fifo"])
    lines = out.splitlines()
    assert lines[-1] == "1 job larger than the cluster dropped"
    assert lines[0].strip().startswith(f"{big}: 1 jobs on 1×8 GPUs")
    cpu = tmp_path / "cpu.csv"
    cpu.write_text(HEADER + "a,0,100,0\nb,1,100,1\n")
    out = _ok(["run", "--trace", str(cpu), "--nodes", "1", "--policy", "fifo"])
    assert out.splitlines()[-1] == "1 CPU-only jobs skipped"
    assert "larger than the cluster" not in out


def test_all_cpu_only_history_says_they_use_no_gpu(tmp_path: Path) -> None:
    """CPU jobs only: the error said "(they use no GPU, or more than the 8 GPUs)"."""
    h = tmp_path / "jobs.json"
    h.write_text(json.dumps([_row(0, 0), _row(1, 0), _row(2, 0)]))
    msg = _error(["run", "--history", str(h), "--nodes", "1", "--policy", "fifo"])
    assert "all 3 jobs were dropped (3 use no GPU)" in msg and "more than" not in msg
    t = tmp_path / "mixed.csv"
    t.write_text(HEADER + "a,0,100,0\nb,1,100,20\n")
    msg = _error(["whatif", "--trace", str(t), "--nodes", "1", "--gpus-delta", "8"])
    assert (
        "all 2 jobs were dropped (1 uses no GPU, 1 needs more than the 8 GPUs of the today "
        "cluster)" in msg
    )


def test_a_row_with_too_few_fields_is_named(tmp_path: Path) -> None:
    """A row short of a cell said "column for 'gpus' has None, not a number"."""
    t = tmp_path / "short.csv"
    t.write_text(HEADER + "a,0,100,1\nb,5,100\n")
    with pytest.raises(ValidationError) as e:
        load_csv(t)
    assert e.value.message == (
        "short.csv, row 3: 3 fields, but the header has 4: no value for column(s) num_gpu"
    )
    # a missing cell of a column that is not read does not matter
    t.write_text("job_id,submission_time,duration,num_gpu,note\na,0,100,1\n")
    [j] = load_csv(t)
    assert (j.id, j.gpus) == ("a", 1)


def test_a_missing_field_in_the_mapping_names_itself_in_the_hint(tmp_path: Path) -> None:
    t = tmp_path / "g.csv"
    t.write_text("id,t,run,g\nx,0,60,1\n")
    res = runner.invoke(
        sim.app, ["run", "--trace", str(t), "--nodes", "1", "--map", "submit=t", "--map", "id=id"]
    )
    assert isinstance(res.exception, ValidationError)
    assert res.exception.hint == "map it to a column of the header: --map gpus=COLUMN"


@pytest.mark.parametrize(
    ("change", "field", "got"),
    [
        ({"resources": {"gpus": 1.5}}, "resources.gpus", "1.5"),  # was cut to 1 GPU
        ({"resources": {"gpus": -2}}, "resources.gpus", "-2"),  # was a CPU-only job
        ({"resources": {"gpus": True}}, "resources.gpus", "True"),  # was 1 GPU
        ({"resources": {"gpus": 2, "nodes": "x"}}, "resources.nodes", "'x'"),
        ({"priority": "high"}, "priority", "'high'"),  # was a ValueError traceback
    ],
)
def test_history_counts_must_be_whole_numbers(
    tmp_path: Path, change: dict[str, Any], field: str, got: str
) -> None:
    h = tmp_path / "jobs.json"
    h.write_text(json.dumps([{**_row(0, 1), **change}]))
    with pytest.raises(ValidationError) as e:
        load_history(h)
    assert e.value.message.startswith(f"history jobs.json, job 0: {field} must be a whole number")
    assert e.value.message.endswith(f"got {got}")


def test_history_counts_that_are_whole_still_read(tmp_path: Path) -> None:
    h = tmp_path / "jobs.json"
    rows = [
        _row(0, 2.0, priority=-3),
        _row(1, "4", resources={"gpus": "4", "nodes": 2}),
        _row(2, None, priority=None),
        _row(3, 1, max_runtime_s=True),  # not an estimate of 1 s
    ]
    h.write_text(json.dumps(rows))
    jobs, skipped = load_history(h)
    assert skipped == 0
    assert [(j.gpus, j.priority) for j in jobs] == [(2, -3), (8, 0), (0, 0), (1, 0)]
    assert jobs[3].max_runtime is None


def test_whatif_reads_the_whole_server_history_page_by_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It asked for the newest 10,000 jobs once and simulated those alone, saying nothing."""
    rows = [
        {
            "id": f"j{i:06d}",
            "state": "SUCCEEDED",
            "priority": 0,
            "resources": {"gpus": 0},
            "submitted_at": "2026-11-01T00:00:00Z",
            "started_at": "2026-11-01T00:00:00Z",
            "finished_at": "2026-11-01T00:01:00Z",
        }
        for i in range(10_003)
    ]
    calls: list[tuple[int, str | None]] = []

    class PagedClient:
        def list_jobs(
            self, *, limit: int, before: str | None = None, **_kw: Any
        ) -> list[dict[str, Any]]:
            calls.append((limit, before))
            start = (
                0
                if before is None
                else next(i for i, r in enumerate(rows) if r["id"] == before) + 1
            )
            return rows[start : start + limit]

    monkeypatch.setattr("aistack.client.Client", PagedClient)
    res = runner.invoke(sim.app, ["whatif", "--gpus-delta", "8", "--nodes", "1"])
    assert isinstance(res.exception, ValidationError), res.output
    assert "all 10003 jobs were dropped (10003 use no GPU)" in str(res.exception), res.exception
    assert calls == [(10_000, None), (10_000, "j009999")]
