"""The Ray node agent's rank reaper, without Ray: a NodeAgent runs in a process of its own,
starts two ranks, and that process is SIGKILLed (what ``ray.kill`` does to an actor). No
rank, nor anything a rank started (in its process group or in a session of its own), may
keep running; processes that are not the agent's are left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux /proc")

RANK = """
import os, subprocess, sys, time
plain = subprocess.Popen(["/bin/sleep", "300"], env={})
detached = subprocess.Popen(["/bin/sleep", "300"], start_new_session=True)
out = os.path.join(sys.argv[1], "rank" + os.environ["AISTACK_RANK"])
with open(out + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {plain.pid} {detached.pid}")
os.replace(out + ".tmp", out)
time.sleep(300)
"""

AGENT = """
import sys, time
from aistack.executors.ray_actors import NodeAgent
agent = NodeAgent()
cmd = f"{sys.executable} {sys.argv[1]} {sys.argv[2]}"
agent.start(cmd, None, [(0, {"AISTACK_RANK": "0"}), (1, {"AISTACK_RANK": "1"})])
print("started", flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ranks_end_when_their_agent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    out = tmp_path / "pids"
    out.mkdir()
    bystander = subprocess.Popen(["/bin/sleep", "300"], start_new_session=True)
    pids: list[int] = []
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(script), str(out)], stdout=subprocess.PIPE
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline() == b"started\n"
        deadline = time.monotonic() + 30
        while len(list(out.glob("rank?"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids += [int(x) for p in sorted(out.glob("rank?")) for x in p.read_text().split()]
        assert len(pids) == 6 and all(_alive(p) for p in pids)

        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in pids if _alive(p)] == [], "rank processes outlived their agent"
        assert _alive(bystander.pid)  # not one of the agent's
    finally:
        bystander.kill()
        bystander.wait(5)
        if agent.poll() is None:
            agent.kill()
        for pid in pids:  # what a failed run left behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_reaper_stops_token_and_group_processes_only() -> None:
    """``reap`` finds a rank by its token and a token-less process by its listed group,
    SIGKILLs one that ignores SIGTERM after the grace period, and leaves others alone."""
    from aistack.executors.rank_reaper import TOKEN_ENV, reap, targets

    token = "t" * 32
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(300)",
        ],
        env={**os.environ, TOKEN_ENV: token},
        start_new_session=True,
    )
    grouped = subprocess.Popen(["/bin/sleep", "300"], env={}, start_new_session=True)
    other = subprocess.Popen(
        ["/bin/sleep", "300"], env={TOKEN_ENV: "other"}, start_new_session=True
    )
    try:
        time.sleep(0.3)  # the python above has set its handler
        found = targets(token, {grouped.pid})
        assert set(found) == {stubborn.pid, grouped.pid}
        assert reap(token, {grouped.pid}, grace_s=0.5) == 2
        for p in (stubborn, grouped):
            p.wait(5)
        assert stubborn.returncode == -signal.SIGKILL  # it ignored SIGTERM
        assert grouped.returncode == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for p in (stubborn, grouped, other):
            if p.poll() is None:
                p.kill()
                p.wait(5)
