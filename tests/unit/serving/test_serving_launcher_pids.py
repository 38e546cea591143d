"""A replica handle of the process launcher names one process, not a PID: a controller that
adopts replicas after a restart took (and `stop` signalled) an unrelated process that had been
given the PID of a replica that died."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.serving.launcher import ProcessLauncher

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that leads its own process group (as a daemon would)."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _still_alive(proc: subprocess.Popen[bytes]) -> bool:
    time.sleep(0.3)  # a SIGTERM sent by stop() has arrived by then
    return proc.poll() is None


def test_a_reused_pid_with_another_start_time_is_exited_and_never_signalled(
    stranger: subprocess.Popen[bytes],
) -> None:
    handle = f"{stranger.pid}@1"  # the replica that had this PID started at another time
    launcher = ProcessLauncher()  # a restarted controller: it did not start the process

    st = launcher.status(handle)
    assert st.state == "exited"
    assert st.reason is not None and "another process" in st.reason
    launcher.stop(handle, grace_s=0.1, reason="scaled down")
    assert _still_alive(stranger)


def test_an_old_pid_only_handle_of_something_other_than_a_replica_is_exited(
    stranger: subprocess.Popen[bytes],
) -> None:
    """Handles of an older controller are the PID alone: `sleep` is not a replica."""
    launcher = ProcessLauncher()
    st = launcher.status(str(stranger.pid))
    assert st.state == "exited"
    assert st.reason is not None and "other than a replica" in st.reason
    launcher.stop(str(stranger.pid), grace_s=0.1)
    assert _still_alive(stranger)


def test_an_old_pid_only_handle_of_a_live_replica_is_still_running() -> None:
    # the command line of a replica (`python -m aistack.serving.replica ...`), in its own session
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-m", "aistack.serving.replica"], start_new_session=True
    )
    try:
        time.sleep(0.2)  # exec done: /proc/PID/cmdline is the python one
        assert ProcessLauncher().status(str(proc.pid)).state == "running"
    finally:
        proc.kill()
        proc.wait()


def test_a_launched_replica_is_found_again_by_a_new_launcher_and_stopped(tmp_path: Path) -> None:
    from aistack.serving.launcher import process_start

    first = ProcessLauncher()
    handle = first.launch(
        name="serve-svc-r1",
        command=["sleep", "30"],
        env={},
        resources={},
        priority=0,
        log_path=tmp_path / "r1.log",
    )
    pid_s, _, start = handle.partition("@")
    assert int(pid_s) > 0 and start == process_start(int(pid_s))
    assert first.status(handle).state == "running"

    adopted = ProcessLauncher()  # after a controller restart: the handle from state.json
    assert adopted.status(handle).state == "running"
    adopted.stop(handle, grace_s=5.0, reason="service deleted")
    st = first.status(handle)
    deadline = time.monotonic() + 5.0
    while st.state != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
        st = first.status(handle)
    assert st.state == "exited"
    assert st.reason == "killed by signal SIGTERM"
    assert adopted.status(handle).state == "exited"


def test_a_handle_that_is_not_a_pid_is_exited() -> None:
    launcher = ProcessLauncher()
    for handle in ("abc", f"{os.getpid()}@", "-1@5"):
        assert launcher.status(handle).state == "exited", handle
        launcher.stop(handle)  # nothing to signal, no error


def test_handle_pid_reads_new_and_old_handles() -> None:
    from aistack.serving.launcher import handle_pid

    assert handle_pid("4242@123456") == 4242
    assert handle_pid("4242") == 4242  # written by an older controller
    for bad in ("abc", "4242@", "job-1"):
        with pytest.raises(ValueError):
            handle_pid(bad)
