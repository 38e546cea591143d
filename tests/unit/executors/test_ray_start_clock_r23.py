"""A Ray job's start is on the server's clock, not on the clock of the host its coordinator
runs on: the coordinator stamped ``started_at`` with its own ``time.time()``, so a worker host
an hour behind made a job's runtime, GPU-hours and preemption protection an hour longer."""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import pytest

from aistack.executors import ray_driver
from aistack.executors.ray_driver import _Driver, on_local_clock


class _Remote:
    def __init__(self, value: Any) -> None:
        self.value = value

    def remote(self, *a: Any) -> Any:
        return self.value(*a) if callable(self.value) else self.value


class _Coordinator:
    def __init__(self, skew_s: float) -> None:
        def status() -> dict[str, Any]:
            there = time.time() + skew_s
            return {"state": "running", "started_at": there - 5.0, "now": there}

        self.status = _Remote(status)
        self.read_log = _Remote(lambda offset: (b"", offset))


@pytest.mark.parametrize("skew_s", [-3600.0, 0.0, 90.0])
def test_poll_puts_the_coordinators_start_on_the_local_clock(
    monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    fake = types.ModuleType("ray")
    fake.get = lambda ref, timeout=None: ref  # type: ignore[attr-defined]
    fake.exceptions = types.SimpleNamespace(  # type: ignore[attr-defined]
        RayActorError=type("RayActorError", (Exception,), {}),
        GetTimeoutError=type("GetTimeoutError", (Exception,), {}),
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    d = _Driver({})
    monkeypatch.setattr(d, "_actor", lambda name, ns: _Coordinator(skew_s))
    res = d.poll_job("c", None, 0, 5.0)
    st = res["status"]
    # started 5 s ago by the coordinator's clock: 5 s ago by this one (it read 3605 s ago)
    assert abs(time.time() - 5.0 - st["started_at"]) < 1.0, st
    assert "now" not in st
    assert st["state"] == "running"


def test_a_synchronised_clock_keeps_the_stamp_and_no_stamp_is_left_alone() -> None:
    # within half the round trip (+50 ms): the stamp as it was
    st = on_local_clock({"started_at": 100.0, "now": 200.02}, 199.9, 200.1)
    assert st == {"started_at": 100.0}
    st = on_local_clock({"started_at": 100.0, "now": 150.0}, 199.9, 200.1)
    assert st == {"started_at": 150.0}
    assert on_local_clock({"state": "starting", "now": 1.0}, 5.0, 6.0) == {"state": "starting"}
    assert on_local_clock({"started_at": 3.0}, 5.0, 6.0) == {"started_at": 3.0}
    assert ray_driver.on_local_clock is on_local_clock
