"""``Client.follow_logs`` says which attempt wrote each piece of output: it yields LogText, a
``str`` with an ``attempt`` (`aistack logs -f` wrapped ``c.logs`` to learn it). Callers that
treat the pieces as text (join, write, compare) are unchanged."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from aistack.client import Client, LogText


class _Retried(Client):
    """Attempt 0 wrote 'one\\n' and failed; attempt 1 (the retry) wrote 'two\\n' and ended."""

    def __init__(self) -> None:
        self.reads = 0

    def logs(self, job_id: str, *, offset: int = 0, attempt: int | None = None) -> dict[str, Any]:  # type: ignore[override]
        self.reads += 1
        att = 0 if attempt is None else attempt
        text = {0: "one\n", 1: "two\n"}[att][offset:]
        return {
            "job_id": job_id,
            "attempt": att,
            "offset": offset,
            "next_offset": offset + len(text),
            "text": text,
            "final": att == 1,
        }

    def get_job(self, job_id: str) -> dict[str, Any]:  # type: ignore[override]
        return {"id": job_id, "attempt": 1, "state": "FAILED"}


def test_follow_logs_says_the_attempt_of_each_piece() -> None:
    pieces = list(_Retried().follow_logs("j1", poll_s=0.01))
    assert [(str(p), p.attempt) for p in pieces] == [("one\n", 0), ("two\n", 1)]
    assert all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == "one\ntwo\n"  # (as before: plain text to callers)


def test_a_log_text_is_a_str_that_keeps_its_attempt() -> None:
    t = LogText("hi\n", 2)
    assert t == "hi\n" and t.attempt == 2 and t.upper() == "HI\n"
    assert repr(t) == "LogText('hi\\n', attempt=2)"
    for other in (pickle.loads(pickle.dumps(t)), copy.copy(t), copy.deepcopy(t)):
        assert other == "hi\n" and other.attempt == 2
