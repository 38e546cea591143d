"""The jobs table does not say the head's start twice ("reserved to start in 9.4 min (est.
start in 9.4 min)"); other queued jobs keep their estimate."""

from __future__ import annotations

import datetime as dt

from aistack.cli.jobs import _job_row


def _queued(reason: str) -> dict[str, object]:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9)).isoformat()
    return {
        "id": "j1",
        "name": "x",
        "project": "default",
        "user": "u",
        "state": "QUEUED",
        "priority": 0,
        "pending_reason": reason,
        "estimated_start": soon,
        "resources": {"gpus": 4, "cpus": 1, "nodes": 1},
        "submitted_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def test_the_heads_start_is_said_once() -> None:
    row = " ".join(_job_row(_queued("first in line, reserved to start in 9.0 min")))
    assert row.count("in 9.0 min") == 1 and "est. start" not in row


def test_others_keep_their_estimate() -> None:
    row = " ".join(_job_row(_queued("waiting behind job h (first in line)")))
    assert "est. start in" in row
