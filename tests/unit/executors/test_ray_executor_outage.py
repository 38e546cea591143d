"""The Ray executor while its cluster is unreachable, without a Ray cluster: a link to a port
where nothing listens (the real RayConnection), and a fake link for what happens to jobs
across an outage. Fast and offline."""

from __future__ import annotations

import importlib.util
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed
from aistack.executors.base import LaunchRequest
from aistack.executors.ray import RayExecutor
from aistack.executors.ray_connection import host_port
from aistack.scheduler.types import Allocation, NodeAlloc

NODE = "a" * 56


def _req(tmp_path: Path, job_id: str = "j1", attempt: int = 0) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id,
        attempt=attempt,
        command="sleep 100",
        allocation=Allocation(nodes={NODE: NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / f"{job_id}-{attempt}",
    )


class FakeLink:
    """Stands in for RayConnection: a cluster with one coordinator per launched job."""

    address = "10.0.0.1:6379"

    def __init__(self) -> None:
        self.up = True
        self.down_since: float | None = None
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.coordinators: set[str] = set()

    def go_down(self, ago_s: float = 0.0) -> None:
        self.up, self.down_since = False, time.time() - ago_s

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        if not self.up:
            raise ConnectionFailed(self.unavailable_reason() or "")
        self.calls.append((method, args))
        if method == "nodes":
            return [{"NodeID": NODE, "Alive": True, "Resources": {"CPU": 4.0}}]
        if method == "launch":
            self.coordinators.add(args[1])
            return {"unpinned": None}
        if method == "poll_job":
            if args[0] not in self.coordinators:
                return {"gone": True}
            return {"status": {"state": "running"}, "log": b"", "offset": args[2]}
        if method in ("cancel", "finish"):
            found = args[0] in self.coordinators
            if method == "finish":
                self.coordinators.discard(args[0])
            return found
        raise AssertionError(method)

    def unavailable_reason(self) -> str | None:
        if self.up:
            return None
        return f"the Ray cluster at {self.address} is unreachable (connection refused)"

    def down_for(self) -> float | None:
        return None if self.up or self.down_since is None else time.time() - self.down_since

    def close(self) -> None:
        pass


def _executor(link: FakeLink, lost_after_s: float = 60.0) -> RayExecutor:
    ex = RayExecutor(address=link.address, lost_after_s=lost_after_s)
    ex._link = link  # type: ignore[assignment]
    return ex


def test_running_job_waits_out_a_short_outage_and_is_lost_after_a_long_one(
    tmp_path: Path,
) -> None:
    link = FakeLink()
    ex = _executor(link, lost_after_s=60)
    h = ex.launch(_req(tmp_path))
    assert ex.poll(h).state == "running"
    link.go_down(ago_s=5)
    st = ex.poll(h)
    assert (st.state, st.reason) == ("running", link.unavailable_reason())
    link.go_down(ago_s=61)
    st = ex.poll(h)
    assert st.state == "lost"
    assert st.reason == (f"{link.unavailable_reason()}; given up after 60 s without its cluster")
    assert ex.poll(h).state == "lost"  # sticky, without asking Ray
    # back: the coordinator given up meanwhile is removed, so the requeued job runs once
    link.up = True
    ex._reap_leftovers()
    assert ("finish", ("aistack-job-j1-0", "aistack", 30.0)) in link.calls
    assert link.coordinators == set() and ex._to_reap == {}


def test_launch_during_an_outage_is_lost_at_once_and_inventory_is_empty(tmp_path: Path) -> None:
    link = FakeLink()
    ex = _executor(link)
    link.go_down()
    assert ex.inventory() == []
    h = ex.launch(_req(tmp_path))
    st = ex.poll(h)
    assert st.state == "lost"  # the server requeues a lost job; a failed one would not be
    assert st.reason == f"not started: {link.unavailable_reason()}"
    assert link.calls == []


def test_cancel_during_an_outage_is_kept_and_sent_when_the_cluster_is_back(
    tmp_path: Path,
) -> None:
    link = FakeLink()
    ex = _executor(link)
    h = ex.launch(_req(tmp_path))
    link.go_down()
    ex.cancel(h, grace_s=3)  # returns, does not raise
    assert (tmp_path / "j1-0" / "ray_cancel.json").exists()
    link.up = True
    assert ex.poll(h).state == "running"
    # the grace period left of the cancel's 3 s (counted from the cancel, not the reconnect)
    sent = [a for m, a in link.calls if m == "cancel"]
    assert [a[:2] for a in sent] == [("aistack-job-j1-0", "aistack")]
    assert 2.0 < sent[0][2] <= 3.0
    assert not (tmp_path / "j1-0" / "ray_cancel.json").exists()


def test_ray_addresses_give_the_endpoint_to_check() -> None:
    assert host_port("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert host_port("ray://head:10001") == ("head", 10001)
    assert host_port("auto") is None and host_port(None) is None
    assert host_port("head") is None


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="pip install 'aistack[ray]'")
def test_a_cluster_that_is_not_there_is_reported_without_waiting(tmp_path: Path) -> None:
    """Nothing listens at the address: no Ray driver is started (a plain TCP connect says
    so), nothing waits, and the reason names the cluster and how to start it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = RayExecutor(address=f"127.0.0.1:{port}", retry_interval_s=60)
    try:
        assert ex.unavailable_reason() is None  # not tried yet
        assert ex.inventory() == []
        reason = ex.unavailable_reason() or ""
        assert reason.startswith(
            f"the Ray cluster at 127.0.0.1:{port} is unreachable "
            f"(127.0.0.1:{port}: connection refused; since "
        ), reason
        assert f"`ray start --head --port={port}` on 127.0.0.1" in reason
        assert ex.link.pid is None and ex.link.connects == 0
        h = ex.launch(_req(tmp_path))
        assert ex.poll(h).state == "lost"
        with pytest.raises(ConnectionFailed, match="is unreachable"):
            ex.signal(h, 10)
    finally:
        ex.close()


def test_outage_settings_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """AISTACK_RAY_* outage settings are part of Settings (validated at start) and reach the
    executor the server builds."""
    from aistack.executors import get_executor
    from aistack.settings import load_settings

    monkeypatch.setenv("AISTACK_EXECUTOR", "ray")
    monkeypatch.setenv("AISTACK_RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("AISTACK_RAY_LOST_AFTER_S", "7.5")
    monkeypatch.setenv("AISTACK_RAY_HEALTH_INTERVAL_S", "0.5")
    monkeypatch.setenv("AISTACK_RAY_RETRY_INTERVAL_S", "2")
    ex = get_executor(load_settings())
    assert isinstance(ex, RayExecutor)
    assert (ex.address, ex.lost_after_s, ex.health_interval_s, ex.retry_interval_s) == (
        "127.0.0.1:1",
        7.5,
        0.5,
        2.0,
    )
    for env in ("AISTACK_RAY_LOST_AFTER_S", "AISTACK_RAY_HEALTH_INTERVAL_S"):
        monkeypatch.delenv(env)
    assert load_settings().ray_lost_after_s == 90.0  # the defaults
    assert load_settings().ray_health_interval_s == 5.0


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_outage_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from aistack.errors import ValidationError
    from aistack.settings import load_settings

    monkeypatch.setenv("AISTACK_RAY_LOST_AFTER_S", value)
    with pytest.raises(ValidationError, match="AISTACK_RAY_LOST_AFTER_S") as err:
        load_settings()
    assert err.value.hint == "fix or unset that environment variable"
