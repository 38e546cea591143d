"""Counts in serving's words: a rollout that succeeded said "1 replicas on models:/gpt/2", and
`serve status` gave the autoscaler's reason as "0 replicas clipped to [1, 2]" (an interval to
decode); now "1 replica on …" and "that is 0 replicas, raised to the minimum of 1"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aistack.serving.autoscaler import Autoscaler, LoadSample
from aistack.serving.spec import AutoscaleConfig


def test_a_recommendation_below_the_minimum_says_it_was_raised() -> None:
    _, why = Autoscaler(cfg=AutoscaleConfig(min_replicas=1, max_replicas=2)).recommend(0.0, 1)
    assert why == (
        "0.0 requests in flight (avg over 2 s), target 4 per replica; "
        "that is 0 replicas, raised to the minimum of 1"
    )


def test_a_recommendation_above_the_maximum_says_it_was_held() -> None:
    a = Autoscaler(cfg=AutoscaleConfig(min_replicas=1, max_replicas=2, target_inflight=1))
    a.observe(LoadSample(t=0.0, inflight=5.0, queue_delay_ms=0.0))
    assert a.recommend(0.0, 1) == (
        2,
        "5.0 requests in flight (avg over 2 s), target 1 per replica; "
        "that is 5 replicas, held to the maximum of 2",
    )
    a = Autoscaler(cfg=AutoscaleConfig(min_replicas=0, max_replicas=2, target_inflight=4))
    a.observe(LoadSample(t=0.0, inflight=1.0, queue_delay_ms=0.0))
    assert a.recommend(0.0, 1)[1] == "1.0 requests in flight (avg over 2 s), target 4 per replica"


class _Launcher:
    name = "fake"

    def launch(self, **_kw: Any) -> str:
        return "h"

    def status(self, handle: str) -> Any:
        from aistack.serving.launcher import LaunchStatus

        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def test_a_rollout_to_one_replica_says_1_replica(aistack_home: Path, tmp_path: Path) -> None:
    from aistack.serving.controller import Replica, ServiceController
    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(name="chat", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    ctl.replicas["r1"] = Replica(
        id="r1",
        model_uri="builtin:echo",
        handle="old1",
        state="ready",
        ready_file=tmp_path / "r1.json",
        log_path=tmp_path / "r1.log",
    )
    ctl._seq = 1

    async def go() -> dict[str, Any]:
        ctl.start_rollout("builtin:echo?seed=2", "builtin:echo?seed=2")
        for _ in range(300):
            for r in ctl.replicas.values():
                if r.state == "starting" and r.for_rollout:
                    r.state = "ready"
            if ctl.rollout["state"] != "running":
                break
            await asyncio.sleep(0.01)
        await ctl._rollout_task
        return dict(ctl.rollout)

    rollout = asyncio.run(go())
    assert (rollout["state"], rollout["message"]) == (
        "succeeded",
        "1 replica on builtin:echo?seed=2",
    )
