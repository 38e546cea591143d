"""CLI: `aistack plan ...` and `aistack cost report --records` (offline), JSON keys and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from aistack.cli.cost import app as cost_app
from aistack.cli.plan import app as plan_app
from aistack.errors import NotFoundError, ValidationError

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(aistack_home: Path) -> Path:
    return aistack_home


def test_plan_train_json_has_required_keys() -> None:
    res = runner.invoke(
        plan_app,
        ["train", "--params", "70B", "--tokens", "2T", "--gpu", "H100", "--gpus", "1024", "--json"],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for k in ("flops", "gpu_hours", "gpus", "days", "memory_per_gpu_gb"):
        assert k in d
    assert d["flops"] == pytest.approx(6 * 70e9 * 2e12)
    assert d["gpus"] == 1024 and d["days"] == pytest.approx(d["gpu_hours"] / 1024 / 24)


def test_plan_serve_and_tco_json_and_chart(tmp_path: Path) -> None:
    res = runner.invoke(
        plan_app,
        [
            "serve",
            "--params",
            "8B",
            "--gpu",
            "L40S",
            "--kv-heads",
            "8",
            "--concurrency",
            "16",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["gpus"] >= 1
    png = tmp_path / "tco.png"
    res = runner.invoke(
        plan_app,
        [
            "tco",
            "--gpus",
            "16",
            "--gpu",
            "H100",
            "--utilization",
            "60%",
            "--chart",
            str(png),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["utilization"] == pytest.approx(0.6) and d["chart"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plan_catalog_warns_on_old_prices() -> None:
    res = runner.invoke(plan_app, ["catalog", "--today", "2026-11-28"])
    assert res.exit_code == 0, res.output
    assert "older than a year" in res.stdout and "dgx-a100 price_usd" in res.stdout
    d = json.loads(
        runner.invoke(
            plan_app, ["catalog", "--today", "2026-11-28", "--kind", "instance", "--json"]
        ).stdout
    )
    assert d["stale_count"] > 0 and all(f["kind"] == "instance" for f in d["figures"])


def test_cost_report_offline_records(tmp_path: Path) -> None:
    f = tmp_path / "usage.json"
    f.write_text(
        json.dumps(
            {
                "allocations": [
                    {
                        "job_id": "1",
                        "project": "llm",
                        "user": "ann",
                        "node": "n1",
                        "gpus": 8,
                        "gpu_type": "NVIDIA H100 80GB HBM3",
                        "cpus": 64,
                        "start": "2026-11-01T00:00:00Z",
                        "end": "2026-11-02T00:00:00Z",
                        "gpu_util": 70.0,
                        "cpu_util": 20.0,
                    },
                ],
                "projects": [{"name": "llm", "gpu_quota": 16, "monthly_budget_usd": 1000}],
            }
        )
    )
    res = runner.invoke(
        cost_app,
        [
            "report",
            "--records",
            str(f),
            "--now",
            "2026-11-28T00:00:00Z",
            "--sheet",
            "lambda",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["total"]["gpu_hours"] == pytest.approx(192)
    assert d["total"]["cost_usd"] == pytest.approx(192 * 2.99)
    assert d["budgets"][0]["status"] == "ok" and d["budgets"][0]["spend_usd"] == pytest.approx(
        192 * 2.99
    )
    res = runner.invoke(
        cost_app,
        ["report", "--records", str(f), "--now", "2026-11-28T00:00:00Z", "--project", "llm"],
    )
    assert (
        res.exit_code == 0
        and "Budgets (this month)" in res.stdout
        and "At your measured" in res.stdout
    )


def test_errors_raise_user_errors() -> None:
    res = runner.invoke(
        plan_app, ["train", "--params", "0", "--tokens", "1T", "--gpu", "H100", "--gpus", "8"]
    )
    assert isinstance(res.exception, ValidationError) and "params" in str(res.exception)
    res = runner.invoke(plan_app, ["train", "--params", "7 bn", "--tokens", "1T", "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError) and "--params" in str(res.exception)
    res = runner.invoke(plan_app, ["tco", "--gpus", "8", "--instance", "p5.48xlarg"])
    assert isinstance(res.exception, NotFoundError) and "p5.48xlarge" in str(res.exception)
    res = runner.invoke(cost_app, ["report", "--records", "/nonexistent.json"])
    assert isinstance(res.exception, ValidationError)


def test_main_prints_error_without_traceback(aistack_home: Path) -> None:
    env = {**os.environ, "AISTACK_HOME": str(aistack_home)}
    env.pop("AISTACK_DEBUG", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "aistack.cli.main",
            "plan",
            "train",
            "--params",
            "7B",
            "--tokens",
            "1T",
            "--gpu",
            "H100",
            "--days",
            "0.0001",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2
    assert "no number of H100-SXM GPUs can finish" in out.stderr and "Traceback" not in out.stderr


def test_plan_hybrid_from_trace(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(
        "job_id,submission_time,duration,num_gpu\n"
        + "".join(f"j{i},{i * 3600},{3600 * 20},8\n" for i in range(200))
    )
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["best"]["cost_usd"] <= d["all_cloud"]["cost_usd"] and d["peak_gpus"] > 0
    res = runner.invoke(plan_app, ["hybrid", "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError) and "--trace" in str(res.exception)


@pytest.mark.parametrize("value", ["1.5", "2", "150%", "0", "-0.3"])
def test_tco_utilization_above_100_percent_is_an_error(value: str) -> None:
    """QA #3: '1.5' used to mean 1.5 % (and '2' 2 %), while '1' meant 100 %."""
    res = runner.invoke(
        plan_app, ["tco", "--gpus", "8", "--gpu", "H100", "--utilization", value, "--json"]
    )
    assert isinstance(res.exception, ValidationError), res.output
    assert "--utilization" in str(res.exception) and "60%" in (res.exception.hint or "")


@pytest.mark.parametrize(("value", "expected"), [("1", 1.0), ("0.6", 0.6), ("60%", 0.6)])
def test_tco_utilization_fraction_or_percent(value: str, expected: float) -> None:
    res = runner.invoke(
        plan_app, ["tco", "--gpus", "8", "--gpu", "H100", "--utilization", value, "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["utilization"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--params", "7B", "--gpu", "H100", "--layers", "0"], "layers"),
        (["serve", "--params", "7B", "--gpu", "H100", "--hidden", "0"], "hidden"),
        (["serve", "--params", "7B", "--gpu", "H100", "--layers", "-3"], "layers"),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "8"]
            + ["--layers", "0"],
            "layers",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "64"]
            + ["--zero-stage", "5"],
            "zero_stage",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "64"]
            + ["--zero-stage", "-1"],
            "zero_stage",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "64"]
            + ["--pp", "1000"],
            "pp",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "8"]
            + ["--tp", "8", "--pp", "2"],
            "tp x pp",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "64"]
            + ["--batch-tokens", "100", "--seq-len", "4096"],
            "batch_tokens",
        ),
    ],
)
def test_plan_bad_shapes_are_validation_errors(args: list[str], needle: str) -> None:
    """QA #10/#15: tracebacks (ZeroDivisionError, KeyError) or plans for impossible geometries.
    The planner names its field (``layers: ...``); the command says it as its option."""
    res = runner.invoke(plan_app, args)
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    option = needle if needle == "tp x pp" else "--" + needle.replace("_", "-")
    assert str(res.exception).startswith(option)
    assert res.exception.details["field"] == ("--tp" if needle == "tp x pp" else option)


def test_plan_hybrid_one_long_job_is_refused_not_hung(tmp_path: Path) -> None:
    """QA #9: one job of 1e12 s allocated 277 M steps and hung (or ran out of memory)."""
    f = tmp_path / "t6.csv"
    f.write_text("job_id,submission_time,duration,num_gpu\nx,0,1e12,8\n")
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError), res.output
    assert "steps" in str(res.exception) and "--step-minutes" in (res.exception.hint or "")
    res = runner.invoke(
        plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100", "--step-minutes", "-5"]
    )
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception).startswith("--step-minutes")


def test_plan_hybrid_warns_on_a_short_trace(tmp_path: Path) -> None:
    """QA #8: a 1-hour sample was extrapolated to a month and a purchase recommended silently."""
    f = tmp_path / "t3.csv"
    f.write_text("job_id,submission_time,duration,num_gpu\nx,0,3600,8\n")
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100"])
    assert res.exit_code == 0, res.output
    assert "warning: the demand covers only 1.0 hours" in res.stdout  # not "0.0 days"


def test_demand_profile_matches_step_by_step() -> None:
    from aistack.planning.whatif import demand_profile

    prof = demand_profile([(0, 3 * 3600 + 1800, 8), (1800, 7200, 2)], step_s=3600)
    assert prof == pytest.approx([9.0, 10.0, 8.0, 4.0])


def test_cost_report_asks_the_server_for_the_whole_month_for_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--since later than the first of the month fetched only the window's allocations, so the
    month's budget spend was understated (a project over its budget read 'ok')."""
    import aistack.cli.cost as cost_mod

    early = {
        "job_id": "early", "project": "llm", "user": "a", "node": "n", "gpus": 8,
        "gpu_type": "H100", "cpus": 8, "start": "2026-11-02T00:00:00Z",
        "end": "2026-11-04T00:00:00Z", "gpu_util": 50.0, "cpu_util": 10.0,
    }  # fmt: skip
    asked: list[dict[str, str]] = []

    class FakeClient:
        def request(self, method: str, path: str, params: dict[str, str] | None = None) -> object:
            if path == "/projects":
                return [{"name": "llm", "monthly_budget_usd": 1000.0}]
            asked.append(dict(params or {}))
            since = (params or {}).get("since", "")
            return [early] if since <= early["end"] else []

    monkeypatch.setattr(cost_mod, "client", lambda: FakeClient())
    res = runner.invoke(
        cost_app, ["report", "--since", "2026-11-20", "--now", "2026-11-28T00:00:00Z", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert asked[0]["since"].startswith("2026-11-01T00:00:00")
    d = json.loads(res.stdout)
    assert d["total"]["gpu_hours"] == 0 and d["records"] == 0  # nothing in the window
    (b,) = d["budgets"]
    assert b["spend_usd"] == pytest.approx(384 * 6.88) and b["status"] == "over"


def test_plan_train_shows_the_communication_bound_wall_clock() -> None:
    res = runner.invoke(
        plan_app,
        ["train", "--params", "70e9", "--tokens", "2e12", "--gpu", "H100", "--gpus", "1024"],
    )
    assert res.exit_code == 0, res.output
    wall = next(ln for ln in res.stdout.splitlines() if ln.startswith("wall clock"))
    assert "27.3 days compute-bound" in wall and "35.1 days communication-bound" in wall


def test_cost_report_small_values_are_not_rounded_to_zero(tmp_path: Path) -> None:
    recs = [
        {
            "job_id": str(i),
            "project": proj,
            "user": "ann",
            "node": "n1",
            "gpus": gpus,
            "gpu_type": "H100" if gpus else None,
            "cpus": 1,
            "start": "2026-11-28T12:00:00Z",
            "end": end,
            "gpu_util": 50.0 if gpus else None,
            "cpu_util": 20.0,
        }
        for i, (proj, gpus, end) in enumerate(
            [("default", 1, "2026-11-28T12:02:00Z"), ("research", 0, "2026-11-28T12:06:00Z")]
        )
    ]
    f = tmp_path / "usage.json"
    f.write_text(
        json.dumps(
            {
                "allocations": recs,
                "projects": [{"name": "default", "gpu_quota": 1, "monthly_budget_usd": 0.001}],
            }
        )
    )
    res = runner.invoke(cost_app, ["report", "--records", str(f), "--now", "2026-11-28T12:06:00Z"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "(6 minutes, 2 allocations)" in out
    total = next(ln for ln in out.splitlines() if ln.startswith("total "))
    assert total.split()[2:4] == ["0.0333", "0.133"]  # GPU-h, CPU-h (one decimal: 0.0, 0.1)
    budget = next(ln for ln in out.splitlines() if ln.startswith("default  2026-11"))
    assert "$0.001" in budget and "$0.00 " not in budget


_COMMANDS = [
    (plan_app, ["serve", "--params", "7B", "--gpu", "H100"]),
    (plan_app, ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100", "--gpus", "8"]),
    (plan_app, ["tco", "--gpus", "8", "--gpu", "H100"]),
    (plan_app, ["catalog"]),
    (cost_app, ["report", "--records", "RECORDS"]),
]


@pytest.mark.parametrize(
    ("app", "args"), _COMMANDS, ids=["serve", "train", "tco", "catalog", "cost-report"]
)
def test_non_utf8_or_folder_catalog_is_a_clear_error(
    tmp_path: Path, aistack_home: Path, app: object, args: list[str]
) -> None:
    """Audit: UnicodeDecodeError tracebacks; a folder was reported as 'no such file'."""
    records = tmp_path / "r.json"
    records.write_text("[]")
    args = [str(records) if a == "RECORDS" else a for a in args]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"accelerators: []\n# caf\xe9\n")
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    for extra, needle in ((latin, "is not UTF-8"), (folder, "is a folder")):
        res = runner.invoke(app, [*args, "--catalog", str(extra)])  # type: ignore[arg-type]
        assert isinstance(res.exception, ValidationError), (res.output, res.exception)
        # both name their option, not load_catalog's words ("catalog file 'x' ...")
        assert str(res.exception).startswith(f"--catalog: {str(extra)!r} {needle}")
    # the same file in AISTACK_HOME/catalog/ is named, with how to fix it
    (aistack_home / "catalog").mkdir(parents=True)
    (aistack_home / "catalog" / "latin.yaml").write_bytes(latin.read_bytes())
    res = runner.invoke(app, args)  # type: ignore[arg-type]
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert "latin.yaml' is not UTF-8" in str(res.exception)


def _tco_chart(chart: Path | str) -> Result:
    return runner.invoke(plan_app, ["tco", "--gpus", "8", "--gpu", "H100", "--chart", str(chart)])


def test_tco_chart_paths_that_cannot_be_written_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: IsADirectoryError / FileNotFoundError / FileExistsError tracebacks, after the
    plan was computed."""
    import aistack.planning.tco as tco

    (tmp_path / "dir.png").mkdir()
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "a.txt").write_text("x")
    computed: list[int] = []
    real = tco.plan_tco
    monkeypatch.setattr(tco, "plan_tco", lambda **k: computed.append(1) or real(**k))
    cases = [
        (tmp_path / "dir.png", "is a folder"),
        ("/proc/x.png", "cannot write '/proc/x.png'"),
        (tmp_path / "d1" / "a.txt" / "x.png", "a.txt' is a file, not a folder"),
    ]
    for chart, needle in cases:
        res = _tco_chart(chart)
        assert isinstance(res.exception, ValidationError), (chart, res.output, res.exception)
        assert str(res.exception).startswith("--chart: ") and needle in str(res.exception)
    assert computed == []  # refused before the plan was computed
    assert sorted(p.name for p in (tmp_path / "d1").iterdir()) == ["a.txt"]


def test_tco_chart_creates_missing_parent_folders_like_sim_plot(tmp_path: Path) -> None:
    png = tmp_path / "new" / "sub" / "tco.png"
    res = _tco_chart(png)
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("b,100,nan,1", "line 3: duration is 'nan', not a finite number"),
        ("b,100,inf,1", "line 3: duration is 'inf', not a finite number"),
        ("b,100", "line 3: no duration value"),
        ("b,100,60", "line 3: no num_gpu value"),
        ("b,,60,1", "line 3: submission_time is empty"),
        ("b,100,60,two", "line 3: num_gpu is 'two', not a number"),
    ],
    ids=["nan", "inf", "short-duration", "short-gpus", "empty", "text"],
)
def test_plan_hybrid_bad_trace_rows_name_the_line_and_field(
    tmp_path: Path, row: str, needle: str
) -> None:
    """Audit: a nan duration was dropped without a word; a short row said
    'float() argument must be ... not NoneType'."""
    f = tmp_path / "t.csv"
    f.write_text(f"job_id,submission_time,duration,num_gpu\na,0,3600,8\n{row}\n")
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert str(res.exception).startswith(f"trace: {str(f)!r} {needle}"), str(res.exception)


def test_plan_hybrid_non_utf8_trace_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes(b"job_id,submission_time,duration,num_gpu\ncaf\xe9,0,3600,8\n")
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert "is not UTF-8" in str(res.exception) and "UTF-8" in (res.exception.hint or "")
