"""run_gang honours grace_s: a rank that survives its SIGTERM is sent SIGKILL grace_s later, not
sooner and not much later (measured from the moment the rank saw the SIGTERM)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from aistack.launch import build_rank_envs, run_gang

# the rank notes when it got the SIGTERM, then keeps running (until the SIGKILL)
RANK = (
    "import signal, sys, time\n"
    "def on_term(*_):\n"
    "    open(sys.argv[1], 'w').write(repr(time.time()))\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "time.sleep(60)\n"
)


@pytest.mark.parametrize("grace", [0.0, 1.5])
def test_sigkill_follows_the_sigterm_after_grace_s(tmp_path: Path, grace: float) -> None:
    termed = tmp_path / "termed"
    ranks = build_rank_envs("torch", ["127.0.0.1"], 1, 29999, "t")
    res = run_gang(
        ranks, [sys.executable, "-c", RANK, str(termed)], None, timeout_s=0.5, grace_s=grace
    )
    ended = time.time()
    assert res.timed_out and res.rank_exit_codes == [128 + signal.SIGKILL]
    if grace == 0:  # the SIGKILL comes at once: the rank may not even have run its handler
        assert res.duration_s < 0.5 + 1.5, res.duration_s
        return
    waited = ended - float(termed.read_text())
    # the supervision loop polls every 0.1 s; a slow machine may add a little more
    assert grace <= waited < grace + 1.5, waited
