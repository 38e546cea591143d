"""CLI: `aistack plan ...` and `aistack cost report --records` (offline), JSON keys and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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
