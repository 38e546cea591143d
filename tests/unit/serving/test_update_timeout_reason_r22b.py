"""`serve update` that timed out said only "still rolling out after 600 s", though the rollout
was waiting for a new replica the scheduler could not place (a full cluster: a rollout starts
each new replica before it stops an old one). Now it says the step and the replica's reason."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ConflictError
from aistack.serving import manager

QUEUED = (
    "queued by the scheduler: needs 2 CPUs on one node; largest free block is 0 CPUs; 1 job ahead"
)


def test_a_timed_out_update_says_where_the_rollout_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    st = {
        "name": "tg",
        "rollout": {
            "from": "builtin:tiny-gpt",
            "to": "builtin:echo",
            "state": "running",
            "message": "step 1/2: waiting for r3",
        },
        "replicas": [
            {"id": "r1", "state": "ready", "reason": None},
            {"id": "r3", "state": "starting", "reason": QUEUED},
        ],
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    monkeypatch.setattr(manager, "_post", lambda *a, **k: {})
    with pytest.raises(ConflictError) as ei:
        manager.update("tg", "builtin:echo", wait_s=0.3)
    assert ei.value.message == (
        "update of 'tg' to builtin:echo still rolling out after 0.3 s (step 1/2: waiting for "
        f"r3, {QUEUED}); it goes on in the background"
    )
    assert ei.value.hint.endswith(
        "each new replica starts before an old one stops, so a rollout needs room for one "
        "replica more than the service runs"
    )
    # a replica that is starting for another reason than a queue: the step alone
    st["replicas"][1]["reason"] = None  # type: ignore[index]
    with pytest.raises(ConflictError) as ei:
        manager.update("tg", "builtin:echo", wait_s=0.3)
    assert "still rolling out after 0.3 s (step 1/2: waiting for r3); it goes on" in str(
        ei.value.message
    )


def test_no_rollout_in_the_status_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    st: dict[str, Any] = {"name": "tg", "rollout": None, "replicas": []}
    monkeypatch.setattr(manager, "status", lambda name: st)
    monkeypatch.setattr(manager, "_post", lambda *a, **k: {})
    with pytest.raises(ConflictError) as ei:
        manager.update("tg", "builtin:echo", wait_s=0.3)
    assert ei.value.message == (
        "update of 'tg' to builtin:echo still rolling out after 0.3 s; it goes on in the background"
    )
