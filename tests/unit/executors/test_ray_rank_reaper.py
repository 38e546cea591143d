"""The Ray node agent's rank reaper, without Ray: a NodeAgent runs in a process of its own,
starts two ranks, and that process is SIGKILLed (what ``ray.kill`` does to an actor). No
rank, nor anything a rank started (in its process group or in a session of its own), may
keep running; processes that are not the agent's are left alone. Also its scan of /proc,
which must not block on a process in state D, and its ``--subreaper`` mode, under which
each rank of a Slurm job runs."""

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


def test_the_scan_skips_the_environment_of_a_process_in_state_d(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading /proc/PID/environ of a process in uninterruptible sleep (state D: one of its
    threads holds or waits for the lock of its memory map) can block until it wakes, and
    the reaper with it: the ranks of a dead agent kept running. The scan reads the state of
    each thread first (/proc/PID/task/TID/stat does not block) and leaves the environment
    of a process with a thread in D alone; its group still finds it. Here /proc is a copy
    whose reader fails the test on that read."""
    from aistack.executors import rank_reaper

    token = "t" * 32
    proc = tmp_path / "proc"
    for pid, states, environ in (
        (101, "S", f"{rank_reaper.TOKEN_ENV}={token}"),  # a rank
        (102, "SD", f"{rank_reaper.TOKEN_ENV}={token}"),  # a rank with a thread in D
        (103, "R", f"{rank_reaper.TOKEN_ENV}=other"),  # another agent's
    ):
        for i, state in enumerate(states):
            task = proc / str(pid) / "task" / str(pid + 1000 * i)
            task.mkdir(parents=True)
            (task / "stat").write_text(f"{pid + 1000 * i} (a) b) {state} 1 {pid} {pid} 0\n")
        (proc / str(pid) / "stat").write_text(f"{pid} (a) b) {states[0]} 1 {pid} {pid} 0\n")
        (proc / str(pid) / "environ").write_bytes(f"A=1\0{environ}\0".encode())

    def fake(path: object) -> str:
        text = str(path)
        if text == "/proc/102/environ":
            raise AssertionError("read the environment of a process in state D: it can block")
        return f"{tmp_path}{text}" if text.startswith("/proc") else text

    real_open = open

    class _Os:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def listdir(self, path: str) -> list[str]:
            return os.listdir(fake(path))

    monkeypatch.setattr(rank_reaper, "open", lambda p, *a: real_open(fake(p), *a), raising=False)
    monkeypatch.setattr(rank_reaper, "os", _Os())
    assert rank_reaper.targets(token, set()) == {101: 101}
    assert rank_reaper.targets(token, {102}) == {101: 101, 102: 102}  # found by its group


def _subreap(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    from aistack.executors import rank_reaper

    argv = [sys.executable, "-I", "-S", rank_reaper.__file__, "--subreaper", "bash", "-c"]
    return subprocess.run(
        [*argv, command], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper: Linux only")
def test_the_subreaper_runs_the_command_and_ends_what_it_left(tmp_path: Path) -> None:
    """``rank_reaper.py --subreaper`` (each rank of a Slurm job runs under it) passes the
    command's exit on (its code, or its signal), tells the command its pid (the rank's shell
    looks below it), gives it the default signal dispositions (Python ignores SIGPIPE), and
    SIGKILLs and reaps what the command left once it has exited (a daemon whose parent was
    gone, reparented to the subreaper)."""
    import uuid

    from aistack.executors import rank_reaper
    from aistack.testing.procs import kill_marked, marked_pids

    probe = [sys.executable, "-I", "-S", rank_reaper.__file__, "--probe"]
    assert subprocess.run(probe, timeout=30).returncode == 0
    assert _subreap(tmp_path, "exit 7").returncode == 7
    assert _subreap(tmp_path, "kill -s TERM $$").returncode == -signal.SIGTERM
    res = _subreap(tmp_path, 'echo "$AISTACK_SUBREAPER $PPID"; grep SigIgn /proc/self/status')
    first, ignored = res.stdout.splitlines()
    assert first.split()[0] == first.split()[1], res
    assert (
        int(ignored.split()[1], 16) & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGTERM - 1)) == 0
    )
    marker = f"aistack-sr-{uuid.uuid4().hex[:12]}"
    try:
        res = _subreap(tmp_path, f"(exec -a {marker} sleep 300 &); exit 3")
        assert res.returncode == 3, res
        assert marked_pids(marker) == [], "the daemon outlived the subreaper"
    finally:
        kill_marked(marker)
