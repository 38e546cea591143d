"""run_gang's stops that do not come from a rank: its timeout_s, and a stop signal that
arrives while the ranks are still being started."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.launch import build_rank_envs, run_gang


def _ranks(n: int = 2):
    return build_rank_envs("torch", ["127.0.0.1"], n, 29999, "t")


def test_a_gang_past_its_timeout_is_stopped_and_reported(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = run_gang(_ranks(2), ["sleep", "30"], tmp_path / "log", timeout_s=1, grace_s=2)
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 4.0, elapsed
    assert res.timed_out is True
    assert res.exit_code == 124
    assert res.rank_exit_codes == [128 + signal.SIGTERM, 128 + signal.SIGTERM]
    assert res.ranks_started == 2
    assert res.message.startswith("gang timed out after 1 s and was stopped"), res.message
    assert res.signals_forwarded == []
    # the ranks our own stop ended did not fail: no rank is blamed
    assert res.failed_rank is None and "rank" not in res.message, res.message


def test_a_timed_out_rank_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    cmd = 'if [ "$RANK" = 0 ]; then trap "" TERM; fi; sleep 30; exit 0'
    t0 = time.monotonic()
    res = run_gang(_ranks(2), cmd, None, timeout_s=0.5, grace_s=0.5)
    assert time.monotonic() - t0 < 4.0
    assert res.timed_out and res.exit_code == 124
    assert res.rank_exit_codes[0] == 128 + signal.SIGKILL
    assert res.rank_exit_codes[1] == 128 + signal.SIGTERM


def test_a_gang_that_ends_before_its_timeout_is_not_touched() -> None:
    res = run_gang(_ranks(2), ["true"], None, timeout_s=30)
    assert res.exit_code == 0 and res.timed_out is False
    assert res.rank_exit_codes == [0, 0] and res.ranks_started == 2
    assert res.message == "all 2 ranks exited with 0"


def test_ranks_that_ended_before_the_timeout_are_not_reported_timed_out() -> None:
    """The ranks exit at once; the supervision loop only starts after the deadline (a slow
    on_start): their exits were queued before it, so the gang succeeded, not timed out (the
    timeout was checked before the queued exits were read: exit 124, ranks [0, 0])."""
    res = run_gang(_ranks(2), ["true"], None, on_start=lambda _pids: time.sleep(1.0), timeout_s=0.5)
    assert res.timed_out is False, res
    assert res.exit_code == 0 and res.rank_exit_codes == [0, 0]
    assert res.message == "all 2 ranks exited with 0"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "5"])
def test_a_bad_timeout_is_a_validation_error_naming_the_field(bad: Any) -> None:
    with pytest.raises(ValidationError, match=r"^timeout_s: must be a positive") as ei:
        run_gang(_ranks(1), ["true"], None, timeout_s=bad)
    assert ei.value.details == {"field": "timeout_s"}


def _popen_then_signal(monkeypatch: pytest.MonkeyPatch, after: int, sig: int) -> list[list[str]]:
    """Make the gang module's Popen deliver ``sig`` to this process once rank ``after`` has
    been started (inside Popen: the handler runs before run_gang has recorded the rank)."""
    import aistack.launch.gang as gang

    real = subprocess.Popen
    calls: list[list[str]] = []

    def popen(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = real(argv, **kw)
        calls.append(argv)
        if len(calls) == after + 1:
            os.kill(os.getpid(), sig)
        return p

    monkeypatch.setattr(gang.subprocess, "Popen", popen)
    return calls


def test_sigterm_while_starting_starts_no_further_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _popen_then_signal(monkeypatch, after=0, sig=signal.SIGTERM)
    started: list[list[int]] = []
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.monotonic()
    # grace_s=20: a rank that missed the SIGTERM would run until the SIGKILL 20 s later
    res = run_gang(_ranks(8), ["sleep", "30"], None, on_start=started.append, grace_s=20)
    assert time.monotonic() - t0 < 5.0
    assert signal.getsignal(signal.SIGTERM) == before
    assert len(calls) == 1
    assert res.ranks_started == 1
    assert res.rank_exit_codes == [128 + signal.SIGTERM] + [None] * 7
    assert res.signals_forwarded == ["SIGTERM"]
    assert res.exit_code == 128 + signal.SIGTERM and res.failed_rank == 0
    assert res.timed_out is False
    assert res.message.startswith("gang stopped by SIGTERM before all ranks started (1 of 8")
    # the rank that did start is reported, so the caller records its process group
    assert len(started) == 1 and len(started[0]) == 1


def test_sigint_after_some_ranks_started_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _popen_then_signal(monkeypatch, after=2, sig=signal.SIGINT)
    t0 = time.monotonic()
    res = run_gang(_ranks(6), ["sleep", "30"], None, grace_s=20)
    assert time.monotonic() - t0 < 5.0
    assert len(calls) == 3 and res.ranks_started == 3
    assert res.rank_exit_codes == [128 + signal.SIGINT] * 3 + [None] * 3
    assert res.signals_forwarded == ["SIGINT"]
    assert res.exit_code == 128 + signal.SIGINT
    assert "(3 of 6 started)" in res.message
