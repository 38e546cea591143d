"""The local executor's supervisor and the processes a job leaves behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final

PY = sys.executable

# forks a daemon that leaves the job's session and process group (setsid), writes its pid
# and sleeps; the job's main process ends at once
DAEMON = (
    "import os, sys, time\n"
    "if os.fork():\n"
    "    os._exit(0)\n"
    "os.setsid()\n"
    "if os.fork():\n"
    "    os._exit(0)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(120)\n"
)


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _launch(
    tmp_path: Path, job_id: str, command: str, distributed: str | None = None
) -> tuple[LocalExecutor, str]:
    """One job on one CPU of this machine's node, with the local executor."""
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id=job_id,
            attempt=0,
            command=command,
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            distributed=distributed,
            procs_per_node=1 if distributed else None,
        )
    )
    return ex, handle


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper is Linux only")
@pytest.mark.parametrize("distributed", [None, "torch"])
def test_a_daemon_that_left_the_process_group_ends_with_the_job(
    tmp_path: Path, distributed: str | None
) -> None:
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    pid_file = tmp_path / "daemon.pid"
    cmd = f"{PY} {script} {pid_file}{'.$RANK' if distributed else ''}; sleep 0.5"
    ex, handle = _launch(tmp_path, "d1", cmd, distributed)
    pid = 0
    try:
        st = wait_final(ex, handle, 30)
        assert st.state == "succeeded", st
        pid = int(Path(f"{pid_file}{'.0' if distributed else ''}").read_text())
        assert _gone(pid), "the job's daemon outlived the job"
    finally:
        if pid and psutil.pid_exists(pid):
            psutil.Process(pid).kill()


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper is Linux only")
def test_a_daemon_marked_to_outlive_the_job_is_spared(tmp_path: Path) -> None:
    """`aistack serve deploy` inside a job starts a service controller that must keep
    running after the job (its environment carries AISTACK_OUTLIVES_JOB=1)."""
    from aistack.executors.supervisor import OUTLIVES_JOB_ENV
    from aistack.serving.manager import OUTLIVES_JOB_ENV as SERVING_MARK

    assert SERVING_MARK == OUTLIVES_JOB_ENV
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    pid_file = tmp_path / "daemon.pid"
    ex, handle = _launch(
        tmp_path, "d2", f"{OUTLIVES_JOB_ENV}=1 {PY} {script} {pid_file}; sleep 0.5"
    )
    pid = 0
    try:
        assert wait_final(ex, handle, 30).state == "succeeded"
        pid = int(pid_file.read_text())
        time.sleep(1.5)  # past the supervisor's end
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    finally:
        if pid and psutil.pid_exists(pid):
            psutil.Process(pid).kill()


def test_a_cancel_right_after_launch_cancels_instead_of_losing_the_job(tmp_path: Path) -> None:
    """A cancel while the supervisor was still importing killed it (no SIGTERM handler yet):
    the job looked lost and was requeued, and its process could be left running. Now the
    executor signals only a ready supervisor, and one that starts late reads cancel.json."""
    marker = tmp_path / "ran"
    ex, handle = _launch(tmp_path, "c1", f"touch {marker}; sleep 30")
    ex.cancel(handle, grace_s=1.0)  # at once: the supervisor is still starting
    st = wait_final(ex, handle, 30)
    assert st.state == "cancelled", st
    assert not marker.exists()  # the job never began


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper is Linux only")
@pytest.mark.parametrize("how", ["exits", "cancelled"])
def test_a_leftover_that_cleared_its_environment_ends_with_the_job(
    tmp_path: Path, how: str
) -> None:
    """Two sleeps the command leaves behind clear their environment (env -i) and leave its
    session (setsid), one daemonized (a double fork): no tag, group or session finds them,
    but they stay the supervisor's descendants (its child subreaper), and end with the job,
    whether its command exits or it is cancelled."""
    import uuid

    from aistack.testing.procs import escaping_command, kill_marked, marked_pids, wait_until

    marker = f"aistack-left-{uuid.uuid4().hex[:12]}"
    then = "echo started; exit 0" if how == "exits" else "echo started; exec sleep 300"
    ex, handle = _launch(tmp_path, "e1", escaping_command(marker, then))
    try:
        if how == "cancelled":
            log = tmp_path / "job" / "output.log"
            assert wait_until(lambda: log.exists() and "started" in log.read_text(), 30)
            assert len(marked_pids(marker)) == 2
            ex.cancel(handle, grace_s=1.0)
        st = wait_final(ex, handle, 30)
        assert st.state == ("succeeded" if how == "exits" else "cancelled"), st
        wait_until(lambda: not marked_pids(marker), 5)
        assert marked_pids(marker) == [], "a leftover without the job's tag outlived the job"
    finally:
        kill_marked(marker)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
def test_the_supervisor_reads_no_environment_of_a_process_in_state_d(tmp_path: Path) -> None:
    """At the job's end the supervisor reads each descendant's environment (a service
    controller marked to outlive the job is spared): reading it from a process with a
    thread in uninterruptible sleep (state D) can block until it wakes, and the job's end
    with it. Such a process is killed without the read (here a sleep that the check says
    is in D, in a process of its own, whose reader fails on that read)."""
    code = (
        "import subprocess, psutil\n"
        "from aistack.executors import supervisor, rank_reaper\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "real = psutil.Process.environ\n"
        "def environ(self):\n"
        "    if self.pid == child.pid:\n"
        "        raise AssertionError('read the environment of a process in state D')\n"
        "    return real(self)\n"
        "psutil.Process.environ = environ\n"
        "rank_reaper.in_disk_sleep = lambda pid: int(pid) == child.pid\n"
        "try:\n"
        "    supervisor._kill_descendants()\n"
        "finally:\n"
        "    child.kill()\n"
        "print(child.wait(10))\n"
    )
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (0, "-9\n"), res.stderr[-2000:]


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_a_working_directory_that_is_no_folder_fails_saying_which(
    tmp_path: Path, kind: str
) -> None:
    # a file given as workdir was reported as "does not exist", which sent users looking for
    # a path that is there
    wd = tmp_path / "wd"
    if kind == "file":
        wd.write_text("x")
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id=f"wd-{kind}",
            attempt=0,
            command=f"touch {tmp_path / 'ran'}",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            workdir=str(wd),
        )
    )
    st = wait_final(ex, handle, 30)
    why = "is not a folder" if kind == "file" else "does not exist"
    assert st.state == "failed" and st.reason == f"working directory {str(wd)!r} {why}", st
    assert not (tmp_path / "ran").exists()
