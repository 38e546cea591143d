"""The Ray node agent's rank reaper, without Ray: a NodeAgent runs in a process of its own,
starts two ranks, and that process is SIGKILLed (what ``ray.kill`` does to an actor). No
rank, nor anything a rank started (in its process group or in a session of its own), may
keep running; processes that are not the agent's are left alone. Also its scan of /proc,
which must not block on a process in state D, and which finds what is below the agent's
processes; its ``--subreaper`` mode, under which each rank of a Slurm job runs, and its
``--subreaper --strays`` mode, under which each rank of a Ray node agent runs."""

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


def _child_pid(p: subprocess.Popen[bytes]) -> int:
    assert p.stdout is not None
    return int(p.stdout.readline())


def test_targets_include_what_is_below_a_token_holder_or_a_group_member() -> None:
    """A process that cleared its environment and left its group (``env -i setsid``) has
    neither the token nor a listed group: the reaper finds it below its parent (a rank's
    process, or the rank's subreaper that adopted it). Not what is below a process that is
    not the agent's."""
    from aistack.executors.rank_reaper import TOKEN_ENV, targets

    token = "t" * 32
    # each starts a sleep with an empty environment in a session of its own, prints its pid
    spawn = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen(['/bin/sleep', '300'], env={}, start_new_session=True); "
        "print(c.pid, flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", spawn],
        env={**os.environ, TOKEN_ENV: token},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    member = subprocess.Popen(
        [sys.executable, "-c", spawn],
        env={k: v for k, v in os.environ.items() if k != TOKEN_ENV},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", spawn],
        env={**os.environ, TOKEN_ENV: "other"},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    procs = [holder, member, other]
    kids: list[int] = []
    try:
        kids = [_child_pid(p) for p in procs]
        found = targets(token, {member.pid})
        assert {holder.pid, kids[0], member.pid, kids[1]} <= set(found), found
        assert found[kids[0]] == kids[0] and found[kids[1]] == kids[1]  # their own groups
        assert other.pid not in found and kids[2] not in found
    finally:
        for pid in kids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for p in procs:
            p.kill()
            p.wait(5)


def _stray_status(pid: int) -> str:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2 :][:1].decode()
    return "gone"


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper: Linux only")
def test_the_subreaper_of_a_ray_rank_ends_its_strays_only(tmp_path: Path) -> None:
    """``rank_reaper.py --subreaper --strays`` (each rank of a Ray node agent runs under it):
    the process started is not the subreaper but its parent, which only waits for it (Ray
    SIGKILLs the direct children of a worker that ends); both end as the command did. Once
    the command has exited, the subreaper SIGKILLs the strays only, the processes that
    neither the rank's group nor its token finds (``env -i setsid``, daemonized or not); a
    process still in the group (the agent stops it) and one in a session of its own that
    kept the token (the reaper finds it) are left alone. A signal ignored when it starts
    stays ignored for the command; the others it ignores get their default back. The
    command gets LC_CTYPE as the agent says (Python sets it where the locale is C)."""
    import uuid

    from aistack.executors import rank_reaper
    from aistack.testing.procs import escaping_command, kill_marked, marked_pids

    token = "t" * 32
    argv = [sys.executable, "-I", "-S", rank_reaper.__file__, "--subreaper", "--strays", "bash"]

    def run(command: str, *opts: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv[:-1], *opts, argv[-1], "-c", command],
            env={**os.environ, rank_reaper.TOKEN_ENV: token, **env},
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            start_new_session=True,  # as the agent starts it: it leads the rank's group
            preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN),
        )

    assert run("exit 7").returncode == 7
    assert run("kill -s TERM $$").returncode == -signal.SIGTERM
    res = run(
        'echo "$PPID $AISTACK_SUBREAPER"; ps -o ppid= -p $PPID; grep SigIgn /proc/self/status'
    )
    parent, grandparent, ignored = res.stdout.splitlines()
    assert parent.split()[0] != grandparent.strip(), res  # the subreaper is not the root
    assert len(parent.split()) == 1, res  # no AISTACK_SUBREAPER for a Ray rank
    mask = int(ignored.split()[1], 16)
    assert mask & (1 << (signal.SIGUSR2 - 1)), res  # ignored when it started: still
    assert mask & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGTERM - 1)) == 0, res
    c_locale = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    c_locale["LANG"] = "C"
    show = 'echo "${LC_CTYPE-unset}"'
    res = subprocess.run(
        [*argv[:-1], "--lc-ctype", argv[-1], "-c", show],
        env={**c_locale, rank_reaper.TOKEN_ENV: token},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.stdout == "unset\n", res  # not C.UTF-8
    assert run(show, "--lc-ctype=C", LANG="C").stdout == "C\n"

    marker = f"aistack-strays-{uuid.uuid4().hex[:12]}"
    kept: list[int] = []
    try:
        res = run(
            "sleep 300 >/dev/null 2>&1 & echo $!; setsid sleep 300 >/dev/null 2>&1 & echo $!; "
            f"{escaping_command(marker)}; exit 3"
        )
        assert res.returncode == 3, res
        kept = [int(x) for x in res.stdout.split()[:2]]
        assert res.stdout.split()[2] == "started", res
        assert marked_pids(marker) == [], "a stray outlived the subreaper"
        assert [_stray_status(p) for p in kept] == ["S", "S"], res  # the agent's, the reaper's
    finally:
        kill_marked(marker)
        for pid in kept:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper: Linux only")
def test_the_reaper_ends_what_a_ray_ranks_subreaper_adopted(tmp_path: Path) -> None:
    """Ray SIGKILLs the direct child of the agent (the subreaper's parent) as the agent dies;
    the subreaper stays, with the strays it adopted below it, and the reaper stops them all,
    also when they ignore SIGTERM (SIGKILL after the grace period: the strays are found
    below the subreaper before it is killed)."""
    import uuid

    from aistack.executors import rank_reaper
    from aistack.testing.procs import escaping_command, kill_marked, marked_pids

    token = "t" * 32
    marker = f"aistack-adopted-{uuid.uuid4().hex[:12]}"
    command = "trap '' TERM; " + escaping_command(marker, "echo started; exec sleep 300")
    top = subprocess.Popen(
        [sys.executable, "-I", "-S", rank_reaper.__file__, "--subreaper", "--strays"]
        + ["bash", "-c", command],
        env={**os.environ, rank_reaper.TOKEN_ENV: token},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    left: list[int] = []
    try:
        assert top.stdout is not None and top.stdout.readline() == b"started\n"
        assert len(marked_pids(marker)) == 2
        below = rank_reaper.descendants(top.pid)
        os.kill(top.pid, signal.SIGKILL)  # what Ray does to it
        top.wait(5)
        time.sleep(0.2)
        assert len(below) == 4 and [_stray_status(p) for p in below] == ["S"] * 4, below
        found = rank_reaper.targets(token, set())
        assert set(below) <= set(found), (below, found)  # the strays are among them
        assert rank_reaper.reap(token, set(), grace_s=0.5) >= len(below)
        left = [p for p in below if _stray_status(p) not in ("gone", "Z")]
        assert left == [], "what the subreaper adopted outlived the reaper"
    finally:
        kill_marked(marker)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if top.poll() is None:
            top.kill()
