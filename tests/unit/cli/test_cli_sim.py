"""`aistack sim run|whatif`: inputs that used to crash or mislead (empty runs, CPU-only history,
bad factors and paths, BOM CSVs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import sim
from aistack.errors import ValidationError
from aistack.scheduler.simulator import TraceJob, load_csv, with_estimates

runner = CliRunner()
HEADER = "job_id,submission_time,duration,num_gpu\n"


def _row(i: int, gpus: int, *, start_min: int = 1, minutes: int = 1) -> dict[str, Any]:
    return {
        "id": f"j{i}",
        "state": "SUCCEEDED",
        "submitted_at": f"2026-01-01T00:{i:02d}:00Z",
        "started_at": f"2026-01-01T00:{i + start_min:02d}:00Z",
        "finished_at": f"2026-01-01T00:{i + start_min + minutes:02d}:00Z",
        "resources": {"gpus": gpus, "cpus": 1},
    }


@pytest.fixture
def server_history(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`sim whatif` without --trace/--history reads the server's jobs: give it these rows."""
    rows: list[dict[str, Any]] = []

    class FakeClient:
        def list_jobs(self, **_kw: Any) -> list[dict[str, Any]]:
            return rows

    monkeypatch.setattr("aistack.client.Client", FakeClient)
    return rows


def _error(res: Any) -> str:
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    return str(res.exception)


def test_whatif_on_a_cpu_only_history_is_a_clear_error(server_history) -> None:  # type: ignore[no-untyped-def]
    server_history.extend([_row(0, 0), _row(3, 0)])
    res = runner.invoke(sim.app, ["whatif", "--gpus-delta", "8", "--nodes", "1"])
    msg = _error(res)
    assert "no job to simulate" in msg and "all 2 jobs were dropped" in msg
    assert "server history" in msg and "/tmp" not in msg


def test_whatif_on_a_server_without_finished_jobs(server_history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server_history.append({**_row(0, 1), "started_at": None, "finished_at": None})
    res = runner.invoke(sim.app, ["whatif", "--gpus-delta", "8", "--nodes", "1"])
    msg = _error(res)
    assert "no finished jobs yet" in msg and "--map" not in msg and ".json" not in msg


def test_whatif_larger_cluster_reports_cpu_jobs_not_misfits(server_history, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server_history.extend([_row(0, 2), _row(1, 4, minutes=5), _row(2, 0), _row(4, 0), _row(5, 0)])
    made: list[str] = []
    import tempfile

    real = tempfile.NamedTemporaryFile

    def spy(*a: Any, **kw: Any) -> Any:
        f = real(*a, **kw)
        made.append(f.name)
        return f

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", spy)
    res = runner.invoke(
        sim.app, ["whatif", "--gpus-delta", "4", "--nodes", "1", "--gpus-per-node", "4"]
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "server history: 2 GPU jobs" in out
    assert "3 CPU-only jobs skipped" in out
    assert "no longer fit" not in out
    assert made == []  # no temp file left behind


def test_whatif_smaller_cluster_counts_only_new_misfits(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    t.write_text(HEADER + "a,1,100,1\nb,2,100,8\nc,3,100,16\nd,4,100,0\n")
    res = runner.invoke(
        sim.app, ["whatif", "--trace", str(t), "--gpus-delta", "-8", "--nodes", "2"]
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "1 job no longer fits the smaller cluster" in out  # c (16 GPUs); not d (0 GPUs)
    # the p95 comparison is between runs of different jobs: the sentence says so
    assert "(the smaller cluster's run leaves out 1 job that fits only the larger one)" in out
    assert "1 CPU-only jobs skipped" in out


def test_run_where_every_job_is_dropped(tmp_path: Path) -> None:
    t = tmp_path / "allhuge.csv"
    t.write_text(HEADER + "a,1,100,1000\n")
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(t), "--nodes", "1", "--gpus-per-node", "8", "--policy", "fifo"],
    )
    msg = _error(res)
    assert "no job to simulate" in msg and "all 1 jobs were dropped" in msg and "8 GPUs" in msg


@pytest.mark.parametrize("extra", [["--gpus-per-node", "0"], ["--nodes", "0"]])
def test_whatif_zero_gpus_per_node_or_nodes(tmp_path: Path, extra: list[str]) -> None:
    t = tmp_path / "one.csv"
    t.write_text(HEADER + "a,5,100,1\n")
    args = ["whatif", "--gpus-delta", "8", "--nodes", "1", "--trace", str(t), *extra]
    assert "must be at least 1" in _error(runner.invoke(sim.app, args))


@pytest.mark.parametrize("factor", ["-1", "0", "nan", "inf"])
def test_estimate_factor_must_be_finite_and_positive(factor: str) -> None:
    tr = [TraceJob(id="a", submit=0, duration=100, gpus=1)]
    with pytest.raises(ValidationError, match="finite number > 0"):
        with_estimates(tr, factor)
    assert with_estimates(tr, "0.5")[0].max_runtime == 50  # under-estimates stay allowed


def test_bad_plot_path_fails_before_simulating(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    t = tmp_path / "one.csv"
    t.write_text(HEADER + "a,5,100,1\n")

    def no_sim(*_a: Any, **_kw: Any) -> None:
        raise AssertionError("simulated before checking --plot")

    monkeypatch.setattr(sim, "_run_policies", no_sim)
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file" / "x.png", tmp_path):
        res = runner.invoke(
            sim.app,
            ["run", "--trace", str(t), "--nodes", "1", "--policy", "fifo", "--plot", str(bad)],
        )
        assert "--plot" in _error(res)


def test_csv_with_a_utf8_bom_reads(tmp_path: Path) -> None:
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"a,5,100,1\n")
    [j] = load_csv(p)
    assert (j.id, j.submit, j.duration, j.gpus) == ("a", 5.0, 100.0, 1)


def test_limit_below_one(tmp_path: Path) -> None:
    t = tmp_path / "one.csv"
    t.write_text(HEADER + "a,5,100,1\n")
    for n in ("0", "-1"):
        res = runner.invoke(
            sim.app, ["run", "--trace", str(t), "--nodes", "1", "--policy", "fifo", "--limit", n]
        )
        assert "--limit: must be at least 1" in _error(res)


def test_json_history_still_replays(tmp_path: Path) -> None:
    h = tmp_path / "jobs.json"
    h.write_text(json.dumps([_row(0, 1), _row(1, 2)]))
    res = runner.invoke(
        sim.app, ["run", "--history", str(h), "--nodes", "1", "--policy", "fifo", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["jobs"] == 2


def test_option_explain_and_bad_depths(tmp_path: Path) -> None:
    """--option fifo.explain=true crashed (explain passed twice); a negative
    estimate_depth was accepted and cut the queue's estimates short."""
    t = tmp_path / "one.csv"
    t.write_text(HEADER + "a,5,100,1\nb,6,50,1\n")
    base = ["run", "--trace", str(t), "--nodes", "1", "--gpus-per-node", "1", "--json"]
    res = runner.invoke(sim.app, [*base, "--policy", "fifo", "--option", "fifo.explain=true"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["avg_jct"] == (100 + 149) / 2
    for opt in ("easy.estimate_depth=-1", "easy.max_preempt_heads=-1", "easy.default_runtime_s=0"):
        res = runner.invoke(sim.app, [*base, "--policy", "easy", "--option", opt])
        assert "must be" in _error(res), opt


def test_plot_keeps_zero_length_jobs_on_the_log_axis(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A log axis drops JCT 0: a trace of zero-length jobs gave an empty CDF plot."""
    import matplotlib.axes

    drawn: list[Any] = []
    real = matplotlib.axes.Axes.step

    def spy(self: Any, x: Any, y: Any, *a: Any, **kw: Any) -> Any:
        drawn.append(list(x))
        return real(self, x, y, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "step", spy)
    t = tmp_path / "zero.csv"
    t.write_text(HEADER + "a,0,0,1\nb,0,0,1\n")
    png = tmp_path / "jct.png"
    res = runner.invoke(
        sim.app, ["run", "--trace", str(t), "--nodes", "1", "--policy", "fifo", "--plot", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 0
    assert drawn == [[1 / 3600, 1 / 3600]]


def test_run_a_slurm_clusters_own_history(sacct_file: Path) -> None:
    """`--format slurm` replays `sacct --parsable2` output; the skipped rows are counted."""
    t = sacct_file
    args = ["run", "--trace", str(t), "--format", "slurm", "--nodes", "1", "--policy", "fifo"]
    res = runner.invoke(sim.app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    [m] = json.loads(res.stdout)
    assert (m["jobs"], m["dropped"]) == (3, 1)  # 1001, 1002, 1004_1 run; 1005 has no GPU
    out = runner.invoke(sim.app, args, env={"COLUMNS": "250"}).output
    assert "1 job steps (sacct without -X) skipped; 2 jobs without a start or an end time" in out
    assert "1 CPU-only jobs skipped" in out
    # without --format the error names it; --format without --trace is refused
    assert "--format slurm" in _error(runner.invoke(sim.app, args[:3] + args[5:]))
    res = runner.invoke(
        sim.app,
        ["whatif", "--gpus-delta", "8", "--nodes", "1", "--format", "slurm", "--history", str(t)],
    )
    assert "--format: only with --trace" in _error(res)


def test_bad_files_sizes_and_numbers_are_clear_errors(tmp_path: Path) -> None:
    """A folder or a non-UTF-8 file as the trace, a cluster too large to set up (it hung), a
    NaN cost, a plot suffix matplotlib cannot write (found only after the simulation), an
    option of the wrong type: each a ValidationError that says what to change."""
    t = tmp_path / "one.csv"
    t.write_text(HEADER + "a,5,100,1\n")
    nonutf = tmp_path / "latin1.csv"
    nonutf.write_bytes(HEADER.encode() + "é,5,100,1\n".encode("latin-1"))
    run = ["run", "--nodes", "1", "--policy", "fifo"]
    cases: list[tuple[list[str], str]] = [
        (["--trace", str(tmp_path)], "is a folder, not a file"),
        (["--trace", str(nonutf)], "not UTF-8 text"),
        (["--trace", str(t), "--nodes", "100000000"], "more than the simulator takes"),
        (["--trace", str(t), "--gpus-per-node", "100000"], "gpus_per_node: must be 1 to 1024"),
        (["--trace", str(t), "--preempt-cost", "nan"], "preempt_cost_s: must be a finite"),
        (["--trace", str(t), "--protect", "-1"], "protect_s: must be a finite"),
        (["--trace", str(t), "--plot", str(tmp_path / "out.txt")], "cannot write a .txt file"),
    ]
    for extra, want in cases:
        assert want in _error(runner.invoke(sim.app, [*run, *extra])), extra
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(t), "--nodes", "1", "--policy", "default"]
        + ["--option", "default.max_wait_factor=abc"],
    )
    assert "option max_wait_factor must be a number, got 'abc'" in _error(res)
    for bad in (tmp_path, nonutf):
        res = runner.invoke(
            sim.app, ["whatif", "--gpus-delta", "8", "--nodes", "1", "--history", str(bad)]
        )
        assert "is a folder" in _error(res) or "not UTF-8 text" in _error(res)


def test_run_title_gives_the_offered_load_a_unit(tmp_path: Path) -> None:
    """The title printed 'offered load 0.50': a bare number (of what?). It is the GPU-seconds
    asked for over the GPU-seconds the cluster has while jobs arrive: a percent of capacity."""
    t = tmp_path / "two.csv"
    t.write_text(HEADER + "a,0,100,4\nb,200,100,4\n")
    res = runner.invoke(
        sim.app,
        ["run", "--trace", str(t), "--nodes", "1", "--gpus-per-node", "8", "--policy", "fifo"],
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "offered load 50 % of GPU capacity" in out
