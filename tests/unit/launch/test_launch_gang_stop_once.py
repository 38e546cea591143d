"""run_gang sends each started rank its stop signal exactly once (then SIGKILL after the grace
period): many trainers treat a second SIGTERM as "quit now" and abandon their checkpoint.

Each rank here counts the stop signals it gets (one line per signal in ``sig.<RANK>``), then
"checkpoints" for ``CHECKPOINT_S`` (a second signal in that time is counted too) and exits 0.
The test wraps ``os.kill`` and ``os.killpg``: after the driver sends a rank SIGTERM/SIGINT, it
waits until that rank has counted it, so two signals sent back to back are never merged into
one by the kernel (a second signal that arrives before the first is handled is lost) and a
double delivery is always seen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.launch import build_rank_envs, run_gang

CHECKPOINT_S = 0.8

RANK = f"""
import os, signal, sys, time
d = sys.argv[1]
rank = os.environ["RANK"]
exit_code = int(os.environ.get("STOP_EXIT_" + rank, "0"))
got = []

def on_stop(signum, _frame):
    with open(os.path.join(d, "sig." + rank), "a") as fh:
        fh.write(signal.Signals(signum).name + "\\n")
    got.append(signum)

signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGINT, on_stop)
with open(os.path.join(d, "ready." + rank + ".tmp"), "w") as fh:
    fh.write(str(os.getpid()))
os.rename(os.path.join(d, "ready." + rank + ".tmp"), os.path.join(d, "ready." + rank))
end = time.monotonic() + 20
while not got and time.monotonic() < end:
    time.sleep(0.005)
if exit_code:
    os._exit(exit_code)
end = time.monotonic() + {CHECKPOINT_S}  # checkpointing
while time.monotonic() < end:
    time.sleep(0.005)
sys.exit(0)
"""


def _ranks(n: int):
    return build_rank_envs("torch", ["127.0.0.1"], n, 29999, "t")


def _wait(cond: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return False


class _Ranks:
    """What the ranks of one test wrote: their pids, and the stop signals each counted."""

    def __init__(self, d: Path) -> None:
        self.d = d

    def ready(self, rank: int) -> bool:
        return (self.d / f"ready.{rank}").exists()

    def pids(self) -> dict[int, int]:
        out = {}
        for f in self.d.glob("ready.*"):
            if f.suffix != ".tmp":
                out[int(f.suffix[1:])] = int(f.read_text())
        return out

    def got(self, rank: int) -> list[str]:
        f = self.d / f"sig.{rank}"
        return f.read_text().split() if f.exists() else []


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture
def ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Ranks:
    """The ranks' directory; os.kill / os.killpg wrapped so each stop signal a running rank is
    sent is counted by it before the driver goes on (module docstring)."""
    r = _Ranks(tmp_path)
    real_kill, real_killpg = os.kill, os.killpg

    def targets(pid: int | None, pgid: int | None) -> dict[int, int]:
        out = {}
        for rank, p in r.pids().items():
            if not _running(p):
                continue
            if p == pid:
                out[rank] = len(r.got(rank))
            elif pgid is not None:
                with contextlib.suppress(OSError):
                    if os.getpgid(p) == pgid:
                        out[rank] = len(r.got(rank))
        return out

    def settle(before: dict[int, int]) -> None:
        # (a rank that exits at once on the signal may end before it counted it: no wait)
        _wait(
            lambda: all(len(r.got(k)) > n or not _running(r.pids()[k]) for k, n in before.items()),
            timeout=2.0,
        )

    def kill(pid: int, sig: int) -> None:
        before = targets(pid, None) if sig in (signal.SIGTERM, signal.SIGINT) else {}
        real_kill(pid, sig)
        settle(before)

    def killpg(pgid: int, sig: int) -> None:
        before = targets(None, pgid) if sig in (signal.SIGTERM, signal.SIGINT) else {}
        real_killpg(pgid, sig)
        settle(before)

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "killpg", killpg)
    return r


def _signal_me(sig: int) -> None:
    signal.raise_signal(sig)


@pytest.mark.parametrize(
    ("sig", "when"),
    [
        (signal.SIGTERM, "after_fork"),
        (signal.SIGINT, "after_fork"),
        (signal.SIGTERM, "before_fork"),
    ],
)
def test_a_stop_signal_while_rank_1_starts_reaches_each_started_rank_once(
    ranks: _Ranks, monkeypatch: pytest.MonkeyPatch, sig: int, when: str
) -> None:
    """The driver gets ``sig`` inside Popen of rank 1: after rank 1's process exists (and has
    joined the ranks' process group) or before it is forked. Ranks 0 and 1 each get ``sig``
    exactly once; rank 2 is never started."""
    import aistack.launch.gang as gang

    real = subprocess.Popen
    calls: list[int] = []

    def popen(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        calls.append(len(calls))
        if len(calls) == 2 and when == "before_fork":
            assert _wait(lambda: ranks.ready(0))
            _signal_me(sig)  # the handler runs here: before run_gang has recorded rank 1
        p = real(argv, **kw)
        if len(calls) == 2:
            assert _wait(lambda: ranks.ready(0) and ranks.ready(1))
            if when == "after_fork":
                _signal_me(sig)  # rank 1 runs in the group already; run_gang does not know it
        return p

    monkeypatch.setattr(gang.subprocess, "Popen", popen)
    started: list[list[int]] = []
    t0 = time.monotonic()
    res = run_gang(
        _ranks(3),
        [sys.executable, "-c", RANK, str(ranks.d)],
        None,
        on_start=started.append,
        grace_s=20,
    )
    elapsed = time.monotonic() - t0
    name = signal.Signals(sig).name
    assert [ranks.got(0), ranks.got(1)] == [[name], [name]], res
    assert not ranks.ready(2) and ranks.got(2) == []
    assert len(calls) == 2 and res.ranks_started == 2
    assert len(started) == 1 and len(started[0]) == 2
    assert res.rank_exit_codes == [0, 0, None]
    assert res.signals_forwarded == [name]
    assert res.exit_code == 128 + sig and res.failed_rank is None and not res.timed_out
    assert res.message == f"gang stopped by {name} before all ranks started (2 of 3 started)"
    assert elapsed < 5.0, elapsed


def test_a_rank_failing_after_a_forwarded_stop_does_not_make_the_others_get_it_again(
    ranks: _Ranks,
) -> None:
    """The driver forwards SIGTERM (a cancel); rank 0 exits 3 on it at once, rank 1
    checkpoints. Rank 0 is the failed rank, as before, but rank 1 is not sent SIGTERM a second
    time for that failure."""

    def on_start(_pids: list[int]) -> None:
        assert _wait(lambda: ranks.ready(0) and ranks.ready(1))
        _signal_me(signal.SIGTERM)

    t0 = time.monotonic()
    res = run_gang(
        _ranks(2),
        [sys.executable, "-c", RANK, str(ranks.d)],
        None,
        on_start=on_start,
        grace_s=20,
        env={**os.environ, "STOP_EXIT_0": "3"},
    )
    assert [ranks.got(0), ranks.got(1)] == [["SIGTERM"], ["SIGTERM"]], res
    assert res.rank_exit_codes == [3, 0]
    assert res.exit_code == 3 and res.failed_rank == 0 and not res.timed_out
    assert res.signals_forwarded == ["SIGTERM"]
    assert res.message.startswith("rank 0 exited with code 3 after SIGTERM was forwarded")
    assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize("first", ["timeout", "failure"])
def test_a_stop_signal_to_the_driver_while_the_gang_already_stops_is_not_sent_again(
    ranks: _Ranks, first: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The gang is already stopping (its timeout_s, or rank 0 failed) when the driver gets
    SIGTERM (a cancel): rank 1, checkpointing after the gang's own SIGTERM, does not get a
    second one."""
    sent: list[float] = []

    def on_start(_pids: list[int]) -> None:
        def cancel() -> None:
            if _wait(lambda: ranks.got(1)):
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=cancel, daemon=True).start()
        assert _wait(lambda: ranks.ready(0) and ranks.ready(1))
        if first == "failure":
            os.kill(ranks.pids()[0], signal.SIGTERM)  # rank 0 exits 3 on it: a failure

    late: list[int] = []
    # (run_gang restores this handler: should the thread's SIGTERM come only after run_gang
    # returned, it does not end pytest)
    before = signal.signal(signal.SIGTERM, lambda signum, _f: late.append(signum))
    t0 = time.monotonic()
    try:
        res = run_gang(
            _ranks(2),
            [sys.executable, "-c", RANK, str(ranks.d)],
            None,
            on_start=on_start,
            grace_s=20,
            env={**os.environ, "STOP_EXIT_0": "3"},
            timeout_s=0.5 if first == "timeout" else None,
        )
    finally:
        signal.signal(signal.SIGTERM, before)
    assert len(sent) == 1 and late == []  # the driver got it while the gang was stopping
    assert [ranks.got(0), ranks.got(1)] == [["SIGTERM"], ["SIGTERM"]], res
    assert "SIGTERM received while the ranks are stopping; not sent again" in caplog.text
    assert res.signals_forwarded == []
    assert res.rank_exit_codes == [3, 0]
    assert time.monotonic() - t0 < 5.0
    if first == "timeout":
        # rank 0's exit 3 came from the timeout's own stop: not a failure
        assert res.timed_out and res.exit_code == 124 and res.failed_rank is None
        assert res.message == "gang timed out after 0.5 s and was stopped"
    else:
        assert not res.timed_out and res.exit_code == 3 and res.failed_rank == 0
        assert res.message == "rank 0 exited with code 3"
