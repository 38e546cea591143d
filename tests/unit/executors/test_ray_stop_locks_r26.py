"""A stop of one Ray job no longer waits behind another job's stop that waits on the cluster.

A cancel is sent to the job's coordinator under a lock (its stop record is read, merged,
written and sent by one thread at a time). The lock was the executor's: while the cluster did
not answer one job's cancel (up to the call's timeout, minutes with a hung driver), a cancel of
any other job, from the API or the scheduler loop, waited for it. Now each job has its own.
Without Ray: a fake link."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from test_ray_walkthrough_output import ReachableLink  # noqa: E402

from aistack.executors.base import LaunchRequest  # noqa: E402
from aistack.executors.ray import RayExecutor  # noqa: E402
from aistack.scheduler.types import Allocation, NodeAlloc  # noqa: E402

pytestmark = pytest.mark.timeout(60)


class _Link(ReachableLink):
    """A cluster whose coordinator of job ``a`` answers a cancel only once ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = threading.Event()  # a's cancel has reached the cluster
        self.cancels: list[tuple[str, float]] = []

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        if method == "launch":
            return {"unpinned": None}
        if method == "cancel":
            name, _ns, grace = args
            if name.startswith("aistack-job-a-"):
                self.waiting.set()
                assert self.release.wait(30)
            self.cancels.append((name, grace))
            return True
        raise AssertionError(method)


def _launch(ex: RayExecutor, tmp_path: Path, job_id: str) -> str:
    return ex.launch(
        LaunchRequest(
            job_id=job_id,
            attempt=0,
            command="sleep 60",
            allocation=Allocation(nodes={"n" * 56: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / job_id,
        )
    )


def test_a_cancel_waiting_on_the_cluster_does_not_hold_up_another_jobs_cancel(
    tmp_path: Path,
) -> None:
    link = _Link()
    ex = RayExecutor(address=link.address)
    ex._link = link  # type: ignore[assignment]
    ha, hb = _launch(ex, tmp_path, "a"), _launch(ex, tmp_path, "b")
    t = threading.Thread(target=ex.cancel, args=(ha, 30.0), daemon=True)
    t.start()
    assert link.waiting.wait(10)  # a's cancel holds its lock, waiting for the cluster
    done = threading.Event()
    tb = threading.Thread(target=lambda: (ex.cancel(hb, 20.0), done.set()), daemon=True)
    tb.start()
    # old code: b's cancel waited for a's answer (here: until released)
    assert done.wait(10), "b's cancel waited for a's"
    assert [n for n, _ in link.cancels] == ["aistack-job-b-0"]
    link.release.set()
    t.join(10)
    assert [n for n, _ in link.cancels] == ["aistack-job-b-0", "aistack-job-a-0"]
    assert [g for _, g in link.cancels] == [20.0, 30.0]
