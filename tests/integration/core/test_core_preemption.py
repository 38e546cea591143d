"""Preemption with real local jobs: the victim gets SIGTERM, checkpoints in its grace period,
is requeued with its attained service kept, and resumes from the checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

VICTIM = r"""
if [ -f ckpt ]; then echo "resumed from step $(cat ckpt)"; exit 0; fi
trap 'echo 42 > ckpt; echo checkpointed; exit 0' TERM
echo started; while true; do sleep 0.1; done
"""


def test_priority_preempts_and_victim_resumes(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(AISTACK_PREEMPT_PROTECT_S="0")
    c = srv.client()
    work = tmp_path / "work"
    work.mkdir()
    low = c.submit(
        {
            "name": "low",
            "script": VICTIM,
            "priority": 0,
            "resources": {"cpus": 2},
            "workdir": str(work),
        }
    )
    deadline = time.monotonic() + 30
    while c.get_job(low["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    high = c.submit(
        {"name": "high", "command": "echo urgent", "priority": 10, "resources": {"cpus": 1}}
    )
    assert c.wait(high["id"], timeout=60)["state"] == "SUCCEEDED"
    j = c.wait(low["id"], timeout=60)
    assert j["state"] == "SUCCEEDED"
    assert j["attempt"] == 1 and j["preempt_count"] == 1
    assert j["attained_service_s"] > 0.5  # its first run was counted
    first = c.logs(low["id"], attempt=0)["text"]
    assert "checkpointed" in first
    assert "resumed from step 42" in c.logs(low["id"])["text"]
    kinds = [e["kind"] for e in c.events(low["id"])]
    assert kinds.count("started") == 2 and "preempting" in kinds and "preempted" in kinds
