"""The in-memory executor reports the reason a preemption was given, or none (the server then
says it in its own words); it reported the state itself, which read "preempted   preempted"
in the job's events."""

from __future__ import annotations

from pathlib import Path

from aistack.executors.base import LaunchRequest
from aistack.executors.memory import MemoryExecutor
from aistack.scheduler.types import Allocation, NodeAlloc


def _launch(ex: MemoryExecutor, tmp_path: Path, jid: str) -> str:
    return ex.launch(
        LaunchRequest(
            job_id=jid,
            attempt=0,
            command="x",
            allocation=Allocation(nodes={"mem0": NodeAlloc(gpus=(0,))}),
            job_dir=tmp_path / jid,
            env={"AISTACK_FAKE_DURATION_S": "100"},
        )
    )


def test_stop_reasons(tmp_path: Path) -> None:
    ex = MemoryExecutor()
    a, b, c = (_launch(ex, tmp_path, j) for j in ("a", "b", "c"))
    ex.preempt(a, reason="preempted by job h (priority 10)")
    ex.preempt(b)
    ex.cancel(c)
    assert ex.poll(a).state == "preempted"
    assert ex.poll(a).reason == "preempted by job h (priority 10)"
    assert ex.poll(b).reason is None and ex.poll(c).reason is None
    assert ex.poll(c).state == "cancelled"
