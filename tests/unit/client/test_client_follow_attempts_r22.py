"""follow_logs follows a later attempt even when it started and ended between two polls: the
logs' ``final`` is the job's, so the follower stopped at the earlier attempt's end and never
showed the retry's output."""

from __future__ import annotations

from typing import Any

from aistack.client import Client


class _Scripted(Client):
    """Attempt 0 wrote 'first\\n'; by the next poll, attempt 1 ran and the job ended."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int]] = []
        self.logs_of = {0: "first\n", 1: "second\n"}

    def logs(self, job_id: str, *, offset: int = 0, attempt: int | None = None) -> dict[str, Any]:  # type: ignore[override]
        self.calls.append((attempt, offset))
        att = 1 if attempt is None else attempt
        if attempt is None and not self.calls[:-1]:
            att = 0  # the first read: the job is on attempt 0, still running
        text = self.logs_of[att][offset:]
        final = len(self.calls) > 1  # from the second read on, the job (attempt 1) has ended
        return {
            "job_id": job_id,
            "attempt": att,
            "offset": offset,
            "next_offset": offset + len(text),
            "text": text,
            "final": final,
        }

    def get_job(self, job_id: str) -> dict[str, Any]:  # type: ignore[override]
        return {"id": job_id, "attempt": 1, "state": "SUCCEEDED"}


def test_a_retry_that_ran_between_two_polls_is_followed() -> None:
    c = _Scripted()
    out = "".join(c.follow_logs("j1", poll_s=0.01))
    assert out == "first\nsecond\n"
    assert (1, 0) in c.calls  # it read attempt 1 from its start
