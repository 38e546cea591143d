"""Every number the CLI prints has a unit: its column header or the text around it says it
(h, s, %, ×, GPUs, GiB, req/s, ms, ...). Each table is read back cell by cell and checked
against the command's --json, so a unit and the value under it are asserted together.

Fixed by the audit: `sim run` and `sim whatif` (the units in the headers, plain numbers in the
cells, which rich no longer cuts to "15.…" or "slowdo…"), `projects ls|set` ("share" is a
fair-share weight), `plan hybrid` ("mean 8.9" → "mean 8.9 GPUs")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.main import app

runner = CliRunner()
HEADER = "job_id,submission_time,duration,num_gpu\n"
WIDE = {"COLUMNS": "250"}


def _trace(tmp_path: Path) -> Path:
    """60 jobs of 1-4 GPUs, 10 min apart, 10-70 min long: a queue builds on 4 GPUs."""
    f = tmp_path / "trace.csv"
    f.write_text(
        HEADER + "".join(f"j{i},{i * 600},{600 * (1 + i % 7)},{1 + i % 4}\n" for i in range(60))
    )
    return f


def _ok(args: list[str], env: dict[str, str] | None = None) -> str:
    res = runner.invoke(app, args, env=env or WIDE)
    assert res.exit_code == 0, res.output
    return res.stdout


def _table(out: str) -> tuple[list[str], list[list[str]]]:
    """A rich table's headers (each header's lines joined with spaces) and its rows (a first
    cell wrapped onto a line of its own is joined too: ``lower bound``)."""
    heads: list[list[str]] = []
    rows: list[list[str]] = []
    for line in out.splitlines():
        if line.startswith("┃"):
            heads.append([c.strip() for c in line.strip().strip("┃").split("┃")])
        elif line.startswith("│"):
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if rows and cells[0] and not any(cells[1:]):  # the first cell's next line
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
            else:
                rows.append(cells)
    headers = [" ".join(p for p in parts if p) for parts in zip(*heads, strict=True)]
    return headers, rows


def _h(seconds: float) -> str:
    return f"{seconds / 3600:,.2f}"


# -- sim ----------------------------------------------------------------------------------------

SIM_RUN_COLUMNS = [
    "policy",
    "avg JCT (h)",
    "p50 JCT (h)",
    "p95 JCT (h)",
    "p99 JCT (h)",
    "avg wait (h)",
    "p99 wait (h)",
    "max wait (h)",
    "avg slowdown (×)",
    "utilization (%)",
    "preemptions",
    "sim time (s)",
]


def test_sim_run_table_says_each_columns_unit_in_its_header(tmp_path: Path) -> None:
    args = ["sim", "run", "--trace", str(_trace(tmp_path)), "--nodes", "1"]
    args += ["--gpus-per-node", "4", "--policy", "fifo,srtf"]
    metrics = {m["policy"]: m for m in json.loads(_ok([*args, "--json"]))}
    out = _ok(args)
    headers, rows = _table(out)
    assert headers == SIM_RUN_COLUMNS
    assert [r[0] for r in rows] == ["fifo", "srtf", "lower bound"]
    for row in rows[:2]:
        m = metrics[row[0]]
        times = ("avg_jct", "p50_jct", "p95_jct", "p99_jct", "avg_wait", "p99_wait", "max_wait")
        assert row[1:8] == [_h(m[k]) for k in times]
        assert row[8] == f"{m['avg_slowdown']:.2f}"
        assert row[9] == f"{100 * m['utilization']:.1f}"
        assert row[10] == f"{m['preemptions']:,}"
        assert float(row[11]) >= 0  # the simulator's own run time, in s
    lower = rows[2]
    assert lower[1] == _h(metrics["fifo"]["lb_avg_jct"]) and lower[5] == "0.00"
    # the line under the table gives its unit with each value
    assert f"makespan lower bound {_h(metrics['fifo']['lb_makespan_s'])} h;" in out


@pytest.mark.parametrize("columns", ["120", "130"])
def test_sim_run_table_is_not_cut_in_a_120_column_terminal(tmp_path: Path, columns: str) -> None:
    """Units in every cell made the table ~150 columns wide: at 120, rich cut the headers to
    "slowdo…", "utiliz…", "preemp…" (and at 80 the numbers with their units)."""
    args = ["sim", "run", "--trace", str(_trace(tmp_path)), "--nodes", "1"]
    out = _ok([*args, "--gpus-per-node", "4"], env={"COLUMNS": columns})
    assert "…" not in out
    headers, rows = _table(out)
    assert headers == SIM_RUN_COLUMNS
    assert [r[0] for r in rows] == ["default", "fifo", "easy", "las", "srtf", "lower bound"]


def test_sim_run_table_is_turned_in_an_80_column_terminal(tmp_path: Path) -> None:
    """80 columns (a pipe's width): the table has a row per metric, each named with its unit,
    and a column per policy; at 80 columns it cut every number to "7…" or "15.…"."""
    args = ["sim", "run", "--trace", str(_trace(tmp_path)), "--nodes", "1"]
    args += ["--gpus-per-node", "4"]
    metrics = {m["policy"]: m for m in json.loads(_ok([*args, "--json"]))}
    out = _ok(args, env={"COLUMNS": "80"})
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    headers, rows = _table(out)
    policies = ["default", "fifo", "easy", "las", "srtf"]
    assert headers == ["policy", *policies, "lower bound"]
    assert [r[0] for r in rows] == SIM_RUN_COLUMNS[1:]
    by_metric = {r[0]: r[1:] for r in rows}
    assert by_metric["avg JCT (h)"] == [
        *(_h(metrics[p]["avg_jct"]) for p in policies),
        _h(metrics["default"]["lb_avg_jct"]),
    ]
    assert by_metric["p99 wait (h)"] == [*(_h(metrics[p]["p99_wait"]) for p in policies), ""]
    assert by_metric["utilization (%)"][:5] == [
        f"{100 * metrics[p]['utilization']:.1f}" for p in policies
    ]
    assert by_metric["avg slowdown (×)"][:5] == [
        f"{metrics[p]['avg_slowdown']:.2f}" for p in policies
    ]


def test_sim_whatif_table_says_each_columns_unit_in_its_header(tmp_path: Path) -> None:
    args = ["sim", "whatif", "--trace", str(_trace(tmp_path)), "--nodes", "1"]
    args += ["--gpus-per-node", "4", "--gpus-delta", "4"]
    d = json.loads(_ok([*args, "--json"]))
    out = _ok(args)
    headers, rows = _table(out)
    assert headers == [
        "cluster",
        "GPUs",
        "avg JCT (h)",
        "p95 wait (h)",
        "p99 wait (h)",
        "max wait (h)",
        "utilization (%)",
    ]
    for row, m, gpus in ((rows[0], d["today"], 4), (rows[1], d["whatif"], 8)):
        assert row[1] == str(gpus)
        assert row[2:6] == [_h(m[k]) for k in ("avg_jct", "p95_wait", "p99_wait", "max_wait")]
        assert row[6] == f"{100 * m['utilization']:.1f}"
    assert [r[0] for r in rows] == ["today", "what-if"]
    today, whatif = d["today"]["p95_wait"], d["whatif"]["p95_wait"]
    assert f"p95 wait drops from {_h(today)} h to {_h(whatif)} h" in " ".join(out.split())


def test_sim_run_plot_axes_say_their_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    saved: list[Any] = []
    real = Figure.savefig

    def savefig(self: Any, *a: Any, **kw: Any) -> Any:
        saved.append(self)
        return real(self, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    png = tmp_path / "jct.png"
    args = ["sim", "run", "--trace", str(_trace(tmp_path)), "--nodes", "1"]
    _ok([*args, "--gpus-per-node", "4", "--policy", "fifo", "--plot", str(png)])
    assert png.stat().st_size > 0
    [ax] = saved[0].axes
    assert ax.get_xlabel().startswith("job completion time (hours, log scale")
    assert ax.get_ylabel() == "fraction of jobs"
    assert ax.get_xscale() == "log"


# -- projects -----------------------------------------------------------------------------------


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for module in ("aistack.cli.jobs", "aistack.cli.projects"):
        monkeypatch.setattr(f"{module}.client", lambda: api.client)
    return api


def test_projects_share_is_said_to_be_a_fair_share_weight(cli) -> None:  # type: ignore[no-untyped-def]
    out = _ok(["projects", "set", "llm", "--gpu-quota", "4", "--budget", "500", "--share", "2"])
    assert "project llm: quota 4 GPUs, fair-share weight 2, budget $500.00/month" in out
    headers, rows = _table(_ok(["projects", "ls"]))
    assert headers == ["project", "GPU quota", "fair-share weight", "monthly budget"]
    assert ["llm", "4 GPUs", "2", "$500.00"] in rows


def test_cluster_and_status_numbers_have_units(cli) -> None:  # type: ignore[no-untyped-def]
    """(These had their units already: kept so.)"""
    _ok(["submit", "--cmd", "sleep 100", "--gpus", "2", "--name", "a"])
    cli.ctx.loop.run_once()
    out = _ok(["cluster"])
    headers, rows = _table(out)
    assert headers == ["node", "device", "model", "memory", "allocated to", "util"]
    assert rows[0][1] == "8 CPUs" and rows[0][2] == "" and rows[0][3] == "64.0 GiB"
    assert rows[0][4].startswith("1 CPUs: ")
    assert [r[1] for r in rows[1:]] == ["GPU 0", "GPU 1", "GPU 2", "GPU 3"]
    assert all(r[3] == "80 GiB" for r in rows[1:])
    assert "GPUs allocated 2/4, CPUs allocated 1/8; last scheduling pass " in out
    assert out.rstrip().endswith(" ms")
    out = _ok(["status"])
    assert "GPUs 2/4 allocated, CPUs 1/8 allocated" in out and "jobs: RUNNING 1" in out


# -- plan hybrid --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "mean", "peak"),
    [
        # 200 jobs of 8 GPUs for 20 h, an hour apart
        ([(i * 3600, 20 * 3600, 8) for i in range(200)], None, None),
        # under one GPU on average: "mean 0.1" lost two of its three figures
        ([(0, 3600, 1), (20 * 3600, 3600, 1)], "0.0952", "1"),
    ],
)
def test_plan_hybrid_says_the_mean_demand_in_gpus(
    tmp_path: Path, jobs: list[tuple[int, int, int]], mean: str | None, peak: str | None
) -> None:
    f = tmp_path / "t.csv"
    f.write_text(HEADER + "".join(f"j{i},{s},{d},{g}\n" for i, (s, d, g) in enumerate(jobs)))
    args = ["plan", "hybrid", "--trace", str(f), "--gpu", "H100"]
    d = json.loads(_ok([*args, "--json"]))
    mean = mean or f"{d['mean_gpus']:,.1f}"
    peak = peak or f"{d['peak_gpus']:,.0f}"
    out = _ok(args)
    head = out.splitlines()[0]
    assert f"{d['demand_gpu_hours']:,.0f} GPU-hours (mean {mean} GPUs, peak {peak} GPUs);" in head
    assert head.startswith(f"Own vs burst: {d['span_hours'] / 24:,.1f} days of demand, ")
