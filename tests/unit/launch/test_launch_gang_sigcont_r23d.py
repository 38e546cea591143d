"""run_gang's stop reaches ranks whose processes are stopped (SIGSTOP, Ctrl-Z): SIGCONT
follows the stop signal, so they checkpoint in the grace period instead of holding the
SIGTERM pending until the SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil

from aistack.launch import build_rank_envs, run_gang
from aistack.testing.procs import wait_until

RANK = """\
import signal, sys, time
def stop(s, f):
    time.sleep(0.5)
    print("checkpoint saved", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(120)
"""


def test_stopped_ranks_get_the_stop_signal_and_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "rank.py").write_text(RANK)
    log = tmp_path / "gang.log"
    pids: list[int] = []
    problems: list[str] = []

    def stopper() -> None:
        # every rank ready (its handler set), then stopped, then the gang gets SIGTERM
        if not wait_until(lambda: log.exists() and log.read_text().count("ready") == 2, 30, 0.05):
            problems.append("ranks not ready in 30 s")
        for p in pids:
            os.kill(p, signal.SIGSTOP)

        def stopped() -> bool:
            try:
                return all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids)
            except psutil.Error:
                return False

        if not wait_until(stopped, 10, 0.05):
            problems.append("ranks not stopped in 10 s")
        os.kill(os.getpid(), signal.SIGTERM)  # run_gang (main thread) forwards it

    th = threading.Thread(target=stopper, daemon=True)
    t0 = time.monotonic()
    res = run_gang(
        build_rank_envs("torch", ["127.0.0.1"], 2, 29999, "t"),
        [sys.executable, str(tmp_path / "rank.py")],
        log,
        on_start=lambda started: (pids.extend(started), th.start()),
        grace_s=15,
    )
    took = time.monotonic() - t0
    th.join(5)
    assert not problems, problems
    text = log.read_text()
    # old code: the ranks held the SIGTERM until the SIGKILL 15 s later (exit codes 137)
    assert text.count("checkpoint saved") == 2, text
    assert res.rank_exit_codes == [0, 0], res
    assert res.signals_forwarded == ["SIGTERM"], res
    assert took < 12, took
