"""Stops of a Ray job merged as the local executor merges them (supervisor.merge_stop_request):
the first SIGKILL deadline stands unless a later stop's is sooner, and a cancel is never turned
into a preemption. A cancel made while the cluster was unreachable was kept in
``ray_cancel.json`` and a second one overwrote it (``--grace 60`` after ``--grace 2`` waited the
60 s once the cluster answered); a preemption after a cancel (or a cancel after a preemption)
ended the job ``preempted`` (the server, which knows of the cancel, ended it cancelled all the
same; a caller of the executor alone requeued it). Without Ray: a fake link."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed, ValidationError
from aistack.executors.base import LaunchRequest
from aistack.executors.ray import RayExecutor
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = pytest.mark.timeout(60)

NODE = "b" * 56
COORD = "aistack-job-j1-0"


class _Link:
    """A cluster that is up or down; a cancelled coordinator reports ``cancelled`` once
    ``end()`` is called (its gang stopped)."""

    address = "10.0.0.2:6379"

    def __init__(self) -> None:
        self.up = True
        self.ended = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        if not self.up:
            raise ConnectionFailed(f"the Ray cluster at {self.address} is unreachable")
        self.calls.append((method, args))
        if method == "launch":
            return {"unpinned": None}
        if method == "poll_job":
            state = "cancelled" if self.ended else "running"
            return {
                "status": {"state": state, "exit_code": -15 if self.ended else None},
                "log": b"",
                "offset": args[2],
            }
        if method in ("cancel", "finish"):
            return True
        raise AssertionError(method)

    def unavailable_reason(self) -> str | None:
        return None if self.up else f"the Ray cluster at {self.address} is unreachable"

    def down_for(self) -> float | None:
        return None if self.up else 1.0

    def close(self) -> None:
        pass

    def cancels(self) -> list[float]:
        return [float(a[2]) for m, a in self.calls if m == "cancel"]


def _launched(tmp_path: Path) -> tuple[RayExecutor, _Link, str]:
    link = _Link()
    ex = RayExecutor(address=link.address, lost_after_s=600)
    ex._link = link  # type: ignore[assignment]
    req = LaunchRequest(
        job_id="j1",
        attempt=0,
        command="sleep 100",
        allocation=Allocation(nodes={NODE: NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "j1-0",
    )
    return ex, link, ex.launch(req)


def test_a_longer_kept_cancel_does_not_replace_a_shorter_one(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    link.up = False
    ex.cancel(h, grace_s=2)
    ex.cancel(h, grace_s=60)  # overwrote the first: 60 s were sent once Ray answered
    link.up = True
    assert ex.poll(h).state == "running"
    sent = link.cancels()
    assert len(sent) == 1 and 0.0 <= sent[0] <= 2.0, sent
    assert not (tmp_path / "j1-0" / "ray_cancel.json").exists()


def test_a_shorter_kept_cancel_brings_the_first_forward(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    link.up = False
    ex.cancel(h, grace_s=60)
    ex.cancel(h, grace_s=5)
    link.up = True
    ex.poll(h)
    sent = link.cancels()
    assert len(sent) == 1 and 3.0 < sent[0] <= 5.0, sent


def test_a_kept_cancel_whose_deadline_passed_is_sent_with_no_grace_left(tmp_path: Path) -> None:
    """The cluster answered after the SIGKILL time the server gave: the job is stopped at
    once (it got the whole grace period again, counted from the reconnect)."""
    ex, link, h = _launched(tmp_path)
    link.up = False
    ex.cancel(h, grace_s=30)
    kept = tmp_path / "j1-0" / "ray_cancel.json"
    rec = json.loads(kept.read_text())
    assert rec["kind"] == "cancel" and rec["deadline"] == pytest.approx(time.time() + 30, abs=10)
    rec["t"] -= 40.0  # as if the cancel was made 40 s ago
    rec["deadline"] -= 40.0
    kept.write_text(json.dumps(rec))
    link.up = True
    ex.poll(h)
    assert link.cancels() == [0.0]


def test_a_kept_cancel_of_an_earlier_aistack_is_still_sent(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    kept = tmp_path / "j1-0" / "ray_cancel.json"
    kept.write_text(json.dumps({"grace_s": 7}))
    ex.poll(h)
    sent = link.cancels()
    assert len(sent) == 1 and 5.0 < sent[0] <= 7.0, sent
    assert not kept.exists()
    # and one merged with it keeps its deadline (the file's time + 7 s), not a later one
    kept.write_text(json.dumps({"grace_s": 7}))
    old = time.time() - 100
    os.utime(kept, (old, old))
    link.up = False
    ex.cancel(h, grace_s=60)
    assert json.loads(kept.read_text())["deadline"] == pytest.approx(old + 7, abs=1)


def test_a_preemption_after_a_kept_cancel_ends_cancelled(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    link.up = False
    ex.cancel(h, grace_s=10)
    ex.preempt(h, grace_s=30, reason="job j2 (priority 10) outranks it")
    link.up = True
    ex.poll(h)
    sent = link.cancels()
    assert len(sent) == 1 and 8.0 < sent[0] <= 10.0, sent
    link.ended = True
    st = ex.poll(h)
    assert st.state == "cancelled", st  # it said 'preempted'


def test_a_preemption_after_a_sent_cancel_ends_cancelled(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    ex.cancel(h, grace_s=10)
    ex.preempt(h, grace_s=30, reason="job j2 (priority 10) outranks it")
    assert link.cancels()[0] == 10.0 and link.cancels()[1] <= 10.0  # never postponed
    link.ended = True
    assert ex.poll(h).state == "cancelled"


def test_a_cancel_after_a_preemption_ends_cancelled(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    ex.preempt(h, grace_s=30, reason="job j2 (priority 10) outranks it")
    ex.cancel(h, grace_s=60)
    sent = link.cancels()
    assert sent[0] == 30.0 and 28.0 < sent[1] <= 30.0, sent  # the preemption's SIGKILL stands
    link.ended = True
    assert ex.poll(h).state == "cancelled"


def test_a_preemption_alone_still_ends_preempted_with_its_reason(tmp_path: Path) -> None:
    ex, link, h = _launched(tmp_path)
    link.up = False
    ex.preempt(h, grace_s=30, reason="job j2 (priority 10) outranks it")
    link.up = True
    ex.poll(h)
    link.ended = True
    st = ex.poll(h)
    assert (st.state, st.reason) == ("preempted", "job j2 (priority 10) outranks it")


@pytest.mark.parametrize("grace", [-1.0, float("nan"), "soon"])
def test_a_bad_grace_period_is_refused_with_how_to_fix_it(tmp_path: Path, grace: Any) -> None:
    ex, link, h = _launched(tmp_path)
    with pytest.raises(ValidationError) as err:
        ex.cancel(h, grace_s=grace)
    assert "grace_s" in err.value.message and "e.g. grace_s=30" in (err.value.hint or "")
    assert link.cancels() == []
