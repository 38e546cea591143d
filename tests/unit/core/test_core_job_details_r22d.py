"""``aistack jobs ID``: the service of a preempted job is GPU-seconds, not seconds (a 3-GPU job
that ran 2.6 min before its preemption read "ran 7.9 min in all"); a queued job the scheduler
gave no start estimate reads "unknown", not "not estimated yet" (as if a later pass would)."""

from __future__ import annotations

from typing import Any

from aistack.cli import jobs as jobs_cli


def _job(**kw: Any) -> dict[str, Any]:
    j: dict[str, Any] = {
        "id": "b32c0c9e374a",
        "name": "a",
        "project": "default",
        "user": "root",
        "kind": "batch",
        "state": "QUEUED",
        "priority": 0,
        "pending_reason": None,
        "estimated_start": None,
        "exit_code": None,
        "failure_reason": None,
        "stop_reason": None,
        "attempt": 0,
        "retries_left": 0,
        "devices": None,
        "resources": {"gpus": 3, "gpu_type": None, "cpus": 1, "memory": None, "nodes": 1},
        "max_runtime_s": 600.0,
        "preemptible": True,
        "command": "sleep",
        "inputs": [],
        "workdir": "/tmp",
        "mlflow_run_id": None,
        "preempt_count": 0,
        "attained_service_s": 0.0,
        "submitted_at": "2026-12-01T06:58:30Z",
        "started_at": None,
        "finished_at": None,
    }
    j.update(kw)
    return j


def _rows(j: dict[str, Any]) -> dict[str, str]:
    return dict(jobs_cli._job_details(j, "http://h:1"))


def test_attained_service_is_shown_as_run_time_and_gpu_hours() -> None:
    # live: a 3-GPU job preempted after 158.9 s: attained_service_s 476.6 GPU-seconds
    rows = _rows(_job(attempt=1, preempt_count=1, attained_service_s=476.638))
    assert rows["all attempts"] == "ran 2.6 min in all (0.13 GPU-hours)"
    # two nodes × 2 GPUs: 4 GPUs
    res = {"gpus": 2, "gpu_type": None, "cpus": 1, "memory": None, "nodes": 2}
    rows = _rows(_job(attempt=1, attained_service_s=4 * 7200.0, resources=res))
    assert rows["all attempts"] == "ran 2.0 h in all (8.00 GPU-hours)"
    # a CPU-only job: seconds, no GPU-hours
    res = {"gpus": 0, "gpu_type": None, "cpus": 2, "memory": None, "nodes": 1}
    rows = _rows(
        _job(
            attempt=2,
            attained_service_s=90.0,
            resources=res,
            state="SUCCEEDED",
            started_at="2026-12-01T07:00:00Z",
            finished_at="2026-12-01T07:00:10Z",
        )
    )
    assert rows["all attempts"] == "ran 1.5 min in all"


def test_a_running_later_attempt_says_the_service_is_of_the_earlier_ones() -> None:
    rows = _rows(
        _job(
            state="RUNNING",
            attempt=1,
            preempt_count=1,
            attained_service_s=360.0,
            started_at="2026-12-01T07:00:00Z",
        )
    )
    assert "all attempts" not in rows
    assert rows["before this"] == "earlier attempts ran 2.0 min (0.10 GPU-hours)"


def test_an_estimate_the_scheduler_cannot_give_reads_unknown() -> None:
    reason = "project q at its GPU quota (1/1 GPUs in use)"
    rows = _rows(_job(pending_reason=reason))
    assert rows["est. start"] == "unknown (see the pending reason)"
    # not looked at yet (just submitted): no reason either
    rows = _rows(_job())
    assert rows["est. start"] == "not estimated yet (the scheduler has not looked at it)"
