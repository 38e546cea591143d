"""The local executor's supervisor and the processes a job leaves behind."""

from __future__ import annotations

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
