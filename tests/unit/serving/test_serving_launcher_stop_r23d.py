"""``JobLauncher.stop`` keeps the grace period when the server refuses the reason: its retry
without the reason sent no ``grace_s`` either, so the server's default applied and a replica
meant to drain its requests for a minute was SIGKILLed after 10 s."""

from __future__ import annotations

from typing import Any

from aistack.errors import ValidationError
from aistack.serving.launcher import JobLauncher


class _RefusesReasons:
    """A server that refuses any reason (an older API) but knows grace_s."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def cancel(
        self, job_id: str, reason: str | None = None, grace_s: float | None = None
    ) -> dict[str, Any]:
        if reason is not None:
            raise ValidationError("reason: unknown key")
        self.calls.append({"id": job_id, "grace_s": grace_s})
        return {}


class _RefusesEverything:
    def __init__(self) -> None:
        self.tries: list[dict[str, Any]] = []

    def cancel(self, job_id: str, **kw: Any) -> dict[str, Any]:
        self.tries.append(kw)
        raise ValidationError("refused")


def test_the_retry_without_the_reason_keeps_the_grace_period() -> None:
    c = _RefusesReasons()
    JobLauncher(client=c).stop("j1", grace_s=60.0, reason="service s scaled down")
    assert c.calls == [{"id": "j1", "grace_s": 60.0}]  # old code: grace_s None (the default)


def test_without_a_reason_the_grace_period_goes_at_once() -> None:
    c = _RefusesReasons()
    JobLauncher(client=c).stop("j2", grace_s=5.0)
    assert c.calls == [{"id": "j2", "grace_s": 5.0}]


def test_what_is_left_out_one_thing_at_a_time() -> None:
    c = _RefusesEverything()
    JobLauncher(client=c).stop("j3", grace_s=7.0, reason="r")  # logged, not raised
    assert c.tries == [{"reason": "r", "grace_s": 7.0}, {"grace_s": 7.0}, {"reason": "r"}, {}]
