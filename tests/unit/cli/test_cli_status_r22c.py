"""`aistack status` tells the truth:

* it counted the active jobs of one page of the API (500): a queue of 10,500 jobs read
  "QUEUED 500";
* with no nodes (a Slurm controller or Ray cluster that does not answer, whose executor then
  offers none) it printed "GPUs 0/0 allocated, CPUs 0/0 allocated" under "ok": an idle
  cluster, not one where no job can start; it says so now, with the queued jobs' reason;
* a scheduler whose passes fail, and an MLflow that failed to start, were not mentioned.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.client import Client

runner = CliRunner()


class _Fake:
    url = "http://aistack.test"

    def __init__(self, n_jobs: int, *, nodes: int = 1, **sched: Any) -> None:
        self.jobs = [
            {"id": f"j{i:05d}", "state": "RUNNING" if i < 2 else "QUEUED"} for i in range(n_jobs)
        ][::-1]  # newest first, as the API answers
        for j in self.jobs:
            if j["state"] == "QUEUED":
                j["pending_reason"] = "slurmctld does not answer `scontrol ping` (since 10:00)"
        self.nodes = nodes
        self.sched = sched
        self.mlflow: dict[str, Any] = {"state": "ready", "error": None}

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": "0.1.0",
            "executor": "slurm",
            "uptime_s": 60,
            "mlflow": self.mlflow,
        }

    # the SDK's own paging (status reads every active job through it) over this fake's pages
    iter_jobs = Client.iter_jobs
    _iter_jobs = Client._iter_jobs

    def list_jobs(
        self, *, all: bool = True, limit: int = 500, before: str | None = None, **_kw: Any
    ) -> list[dict[str, Any]]:
        assert all is False
        start = 0 if before is None else [j["id"] for j in self.jobs].index(before) + 1
        return self.jobs[start : start + limit]

    def cluster(self) -> dict[str, Any]:
        nodes = [{"name": f"n{i}"} for i in range(self.nodes)]
        return {
            "executor": "slurm",
            "nodes": nodes,
            "totals": {
                "gpus": 8 * self.nodes,
                "gpus_allocated": 2 if self.nodes else 0,
                "cpus": 64 * self.nodes,
                "cpus_allocated": 4 if self.nodes else 0,
            },
            "scheduler": {
                "policy": "default",
                "failed_passes": 0,
                "last_error": None,
                **self.sched,
            },
        }


def _status(monkeypatch: pytest.MonkeyPatch, fake: _Fake) -> str:
    monkeypatch.setattr(jobs_cli, "client", lambda: fake)
    res = runner.invoke(app, ["status"])
    assert res.exit_code == 0, res.output
    return res.output


def test_status_counts_every_active_job_not_one_page(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _status(monkeypatch, _Fake(20_500))
    assert out.splitlines() == [
        "server http://aistack.test: ok (version 0.1.0, executor slurm, up 1.0 min)",
        "GPUs 2/8 allocated, CPUs 4/64 allocated",
        "jobs: QUEUED 20498, RUNNING 2",
    ]
    monkeypatch.setattr(jobs_cli, "client", lambda: _Fake(20_500))
    res = runner.invoke(app, ["status", "--json"])
    assert '"QUEUED": 20498' in res.output


def test_status_with_no_nodes_says_no_job_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _status(monkeypatch, _Fake(3, nodes=0))
    assert "GPUs 0/0" not in out
    assert (
        "no nodes: the slurm executor offers none, so no job can start; queued jobs wait: "
        "slurmctld does not answer `scontrol ping` (since 10:00)"
    ) in out
    out = _status(monkeypatch, _Fake(0, nodes=0))
    assert "no nodes: the slurm executor offers none, so no job can start\n" in out


def test_status_says_when_the_scheduler_or_mlflow_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _Fake(1, failed_passes=7, last_error="OperationalError: database is locked")
    fake.mlflow = {"state": "failed", "error": "no module named mlflow"}
    out = _status(monkeypatch, fake)
    assert (
        "scheduler: its passes fail (7 failed so far), so no queued job starts; last error: "
        "OperationalError: database is locked"
    ) in out
    assert "MLflow: failed: no module named mlflow" in out
    # a scheduler that works again (last_error None) and a ready MLflow: nothing said
    out = _status(monkeypatch, _Fake(1, failed_passes=7))
    assert "scheduler" not in out and "MLflow" not in out
