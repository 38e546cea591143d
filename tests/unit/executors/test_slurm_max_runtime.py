"""The Slurm executor's own max_runtime (to the second; Slurm's --time counts whole minutes)
and the order of a task's stdout and stderr in the log, without Slurm: rendered sbatch
scripts run under a fake srun that starts the tasks on this machine, and poll reads the
files they leave against a scripted fake of scontrol. Also what a command leaves running
(ended with its rank, also once it cleared its environment and left the rank's process
tree), and the rank's scan of /proc, which must not block on a process in state D."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.executors import rank_reaper
from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor, render_sbatch
from aistack.executors.supervisor import _failure_reason
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import escaping_command, kill_marked, marked_pids, trapping_command

pytestmark = pytest.mark.timeout(120)

# a fake srun: every task at once, as Slurm starts them (job control on: a background job
# of a shell without it would ignore SIGINT); exit code the highest task code, as srun's
_SRUN = r"""#!/bin/bash
set -m
for a in "$@"; do case $a in --nodes=*) N=${a#*=};; --ntasks-per-node=*) P=${a#*=};; esac; done
while [[ $1 == --* ]]; do shift; done
pids=()
for ((n = 0; n < N; n++)); do for ((l = 0; l < P; l++)); do
  SLURM_NODEID=$n SLURM_LOCALID=$l SLURM_PROCID=$((n * P + l)) "$@" &
  pids+=($!)
done; done
rc=0
for p in "${pids[@]}"; do wait "$p"; c=$?; [ "$c" -gt "$rc" ] && rc=$c; done
exit $rc
"""
_SCONTROL = "#!/bin/bash\necho \"$3\" | tr ',' '\\n'\n"


def _req(tmp_path: Path, command: str, **kw: object) -> LaunchRequest:
    base: dict[str, object] = dict(
        job_id="j-1",
        attempt=1,
        command=command,
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,), memory_mb=128)}),
        job_dir=tmp_path / "job",
    )
    base.update(kw)
    req = LaunchRequest(**base)  # type: ignore[arg-type]
    req.job_dir.mkdir(parents=True, exist_ok=True)
    return req


def _run(
    tmp_path: Path, req: LaunchRequest, env_extra: dict[str, str | None] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the rendered script as the batch step would (stdout and stderr kept apart, to see
    which stream the task's lines went to), with the files ``launch`` puts beside it;
    returns it and how long it took."""
    shutil.copyfile(rank_reaper.__file__, req.job_dir / "rank_reaper.py")  # as launch does
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("srun", _SRUN), ("scontrol", _SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "h"}
    for k, v in (env_extra or {}).items():  # None: not in the environment
        env.pop(k, None)
        if v is not None:
            env[k] = v
    t0 = time.monotonic()
    res = subprocess.run(
        ["bash", "-c", render_sbatch(req).script],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    return res, time.monotonic() - t0


class _Scontrol(SlurmExecutor):
    """``scontrol show job`` answered from a dict."""

    def __init__(self, jobs: dict[str, str]) -> None:
        super().__init__()
        self.jobs = jobs

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        line = self.jobs.get(args[-1]) if args[:3] == ("scontrol", "show", "job") else None
        if line is None:
            return subprocess.CompletedProcess(args, 1, "", "Invalid job id specified")
        return subprocess.CompletedProcess(args, 0, line + "\n", "")


def test_a_tasks_stderr_is_in_its_stdout_in_the_order_written(tmp_path: Path) -> None:
    """One stream per task, as the local executor's output.log: srun carries a task's
    stdout and stderr apart and wrote err1 after out2 (seen on Slurm 22.05)."""
    req = _req(tmp_path, "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3")
    res, _ = _run(tmp_path, req)
    assert res.returncode == 3
    assert res.stdout.splitlines() == ["out1", "err1", "out2", "err2"]
    assert res.stderr == ""
    # so the failure reason quotes the last lines as the local executor's log has them
    log = req.log_path  # sbatch --output: the batch step's stdout and stderr
    log.write_text(res.stdout + res.stderr)
    ex = _Scontrol({})
    assert ex.poll(f"slurm:9:{req.job_dir}").reason == "exited with code 3:\n" + res.stdout.strip()
    assert _failure_reason(3, log, req.command).endswith("last output: err1 | out2 | err2")


def test_max_runtime_stops_the_command_to_the_second(tmp_path: Path) -> None:
    """75 s would be 2 minutes of Slurm's --time: the watchdog sends SIGTERM at max_runtime,
    the command checkpoints and exits 0, and the job is TIMEOUT in the local executor's
    words."""
    req = _req(
        tmp_path,
        trapping_command("TERM", "echo got TERM", sleep_s=20),
        max_runtime_s=1.5,
        env={"AISTACK_GRACE_S": "5"},
    )
    assert "#SBATCH --time=00:01:00" in render_sbatch(req).script  # the backstop
    res, took = _run(tmp_path, req)
    assert res.returncode == 0 and res.stdout.splitlines() == ["started", "got TERM"], res
    assert 1.5 <= took < 8
    assert (req.job_dir / "timed_out").read_text() == "1.5\n"
    assert not (req.job_dir / "failed_rank").exists()
    ex = _Scontrol({"3": "JobId=3 JobState=COMPLETED Reason=None ExitCode=0:0 NodeList=n1"})
    st = ex.poll(f"slurm:3:{req.job_dir}")
    assert (st.state, st.exit_code, st.reason) == ("timeout", 0, "exceeded max_runtime of 1.5 s")
    forgotten = ex.poll(f"slurm:4:{req.job_dir}")  # Slurm no longer knows the job
    assert (forgotten.state, forgotten.reason) == ("timeout", "exceeded max_runtime of 1.5 s")


def test_max_runtime_kills_after_the_grace_period(tmp_path: Path) -> None:
    """A command that ignores SIGTERM, and the process it started, are SIGKILLed once the
    grace period (AISTACK_GRACE_S, as for a cancel) has passed; each rank of a gang has its
    own watchdog."""
    req = _req(
        tmp_path,
        "trap '' TERM; echo started $RANK; sleep 30; echo not killed",
        max_runtime_s=1,
        env={"AISTACK_GRACE_S": "1"},
        allocation=Allocation(nodes={"n1": NodeAlloc(gpus=(0, 1), cpus=(0, 1))}),
        distributed="torch",
    )
    res, took = _run(tmp_path, req)
    assert res.returncode == 137, res
    assert "not killed" not in res.stdout
    assert sorted(x for x in res.stdout.splitlines() if x.startswith("started")) == [
        "started 0",
        "started 1",
    ]
    assert 2 <= took < 10
    assert (req.job_dir / "timed_out").read_text() == "1\n"
    ex = _Scontrol({"3": "JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=137:0"})
    st = ex.poll(f"slurm:3:{req.job_dir}")
    assert (st.state, st.exit_code, st.reason) == ("timeout", 137, "exceeded max_runtime of 1 s")


def test_a_job_within_max_runtime_is_left_alone(tmp_path: Path) -> None:
    req = _req(tmp_path, "sleep 0.3; echo done", max_runtime_s=30)
    res, took = _run(tmp_path, req)
    assert (res.returncode, res.stdout) == (0, "done\n")
    assert took < 5  # the watchdog's sleep does not hold the task
    assert not (req.job_dir / "timed_out").exists()


def test_a_cancel_before_max_runtime_stays_a_cancel(tmp_path: Path) -> None:
    """The watchdog still stops the command but records no timeout when a cancel came
    first; a timeout that came first stays a timeout when a cancel follows."""
    req = _req(tmp_path, "sleep 20", max_runtime_s=0.5, env={"AISTACK_GRACE_S": "1"})
    (req.job_dir / "cancel_requested").write_text("1\n")
    res, took = _run(tmp_path, req)
    assert res.returncode == 143 and took < 8
    assert not (req.job_dir / "timed_out").exists()
    ex = _Scontrol({"3": "JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=143:0"})
    assert ex.poll(f"slurm:3:{req.job_dir}").state == "cancelled"
    (req.job_dir / "timed_out").write_text("0.5\n")
    st = ex.poll(f"slurm:3:{req.job_dir}")
    assert (st.state, st.reason) == ("timeout", "exceeded max_runtime of 0.5 s")


def test_stop_signal_and_grace_come_from_the_request(tmp_path: Path) -> None:
    script = render_sbatch(
        _req(
            tmp_path,
            "true",
            max_runtime_s=75,
            stop_signal="SIGUSR1",
            env={"AISTACK_GRACE_S": "2.5"},
        )
    ).script
    assert "kill -s USR1 $pids" in script and "+ 2500))" in script and "+ 75000))" in script
    assert "#SBATCH --time=00:01:15" in script
    with pytest.raises(ValidationError, match="stop_signal"):
        render_sbatch(_req(tmp_path, "true", max_runtime_s=5, stop_signal="SIGNOPE"))
    with pytest.raises(ValidationError, match="AISTACK_GRACE_S"):
        render_sbatch(_req(tmp_path, "true", max_runtime_s=5, env={"AISTACK_GRACE_S": "soon"}))
    assert "aistack_watchdog" not in render_sbatch(_req(tmp_path, "true")).script


def test_the_python_in_the_job_is_unaffected(tmp_path: Path) -> None:
    """SIGINT stays the command's to handle (a background job of a non-interactive shell
    would ignore it): the command runs in the foreground, the watchdog beside it."""
    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    req = _req(tmp_path, f'{sys.executable} -c "{code}"', max_runtime_s=30)
    res, _ = _run(tmp_path, req)
    assert (res.returncode, res.stdout) == (0, "True\n")


def test_the_watchdog_clock_does_not_follow_the_date(tmp_path: Path) -> None:
    """The watchdog measured max_runtime with `date +%s%N`: a change of the date (NTP step, a
    clock set by hand) moved the deadline, and a `date` without %N stopped it. It reads the
    time since boot (/proc/uptime) now; `date` is only the fallback."""
    script = render_sbatch(_req(tmp_path, "true", max_runtime_s=5)).script
    fn = script[script.index("aistack_ms() {") :]
    fn = fn[: fn.index("\n}\n") + 3]
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "date").write_text("#!/bin/sh\necho 4102444800000000000\n")  # the year 2100
    (bin_dir / "date").chmod(0o755)
    out = subprocess.run(
        ["bash", "-c", fn + "aistack_ms"],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        check=True,
    ).stdout.strip()
    uptime_ms = float(Path("/proc/uptime").read_text().split()[0]) * 1000
    assert abs(int(out) - uptime_ms) < 5000, out


@pytest.fixture
def marker() -> Iterator[str]:
    """A name unique to one test's leftovers; whatever still carries it afterwards is
    killed by PID (so a failing run leaves no sleepers behind)."""
    mark = f"aistack-left-{uuid.uuid4().hex[:12]}"
    yield mark
    kill_marked(mark)


def _gone(marker: str, timeout_s: float = 5) -> list[int]:
    """The processes named ``marker...`` still running after at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := marked_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper, /proc: Linux only")
@pytest.mark.parametrize("max_runtime_s", [None, 1.5])
def test_a_leftover_that_cleared_its_environment_ends_with_the_rank(
    tmp_path: Path, marker: str, max_runtime_s: float | None
) -> None:
    """The command leaves two sleeps that clear their environment (env -i: no
    AISTACK_RANK_TAG) and leave its session (setsid), one of them daemonized (a double
    fork). Neither the tag nor the rank's process tree found them (reparented to init):
    they outlived the job, holding its GPUs. The rank's supervisor is their subreaper now,
    and they end with the rank: when the command exits (the task's code stays the
    command's), and when the watchdog stops it at max_runtime."""
    then = "echo started; exec sleep 30" if max_runtime_s else "echo started; exit 3"
    req = _req(
        tmp_path,
        escaping_command(marker, then),
        max_runtime_s=max_runtime_s,
        env={"AISTACK_GRACE_S": "1"},
    )
    res, took = _run(tmp_path, req)
    assert res.stdout.splitlines()[:1] == ["started"], res  # then bash's "Terminated"
    assert res.returncode == (143 if max_runtime_s else 3), res
    assert _gone(marker) == [], "a leftover without the rank's tag outlived the job"
    assert took < 15


@pytest.mark.skipif(sys.platform != "linux", reason="child subreaper: Linux only")
@pytest.mark.parametrize("lc_ctype", [None, "C"])
def test_the_subreaper_leaves_the_commands_locale_as_it_was(
    tmp_path: Path, lc_ctype: str | None
) -> None:
    """python3 sets LC_CTYPE=C.UTF-8 in its environment where the locale is C (PEP 538),
    and the rank's subreaper is a python3: the command got an LC_CTYPE it was not given."""
    req = _req(tmp_path, 'echo "ctype=${LC_CTYPE-unset}"')
    res, _ = _run(
        tmp_path, req, {"LC_ALL": None, "LANG": None, "LANGUAGE": None, "LC_CTYPE": lc_ctype}
    )
    assert res.returncode == 0, res
    assert res.stdout.strip() == f"ctype={lc_ctype or 'unset'}", res


def _tagged_scan(tmp_path: Path) -> str:
    """The rank's scan for its tag (aistack_tagged) from the rendered script, reading
    ``tmp_path/proc`` instead of /proc."""
    script = render_sbatch(_req(tmp_path, "true")).script
    fn = script[script.index("aistack_tagged() {") :]
    fn = fn[: fn.index("\n}\n") + 3]
    return fn.replace("/proc/", f"{tmp_path}/proc/")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_the_tag_scan_skips_the_environment_of_a_process_in_state_d(tmp_path: Path) -> None:
    """Reading /proc/PID/environ of a process in uninterruptible sleep (state D: one of its
    threads holds or waits for the lock of its memory map) can block until it wakes, and
    the rank's scan with it: the command's leftovers stayed, and the job RUNNING. The scan
    reads the state of each thread first (/proc/PID/task/TID/stat does not block) and
    leaves a process with a thread in D to its next pass. Here that environ is a named
    pipe without a writer: reading it blocks for good, as a real one may."""
    proc = tmp_path / "proc"
    fifo = proc / "102" / "environ"
    for pid, states, environ in (
        (101, "S", b"AISTACK_RANK_TAG=7.0.0.99"),  # the rank's
        (102, "SD", None),  # its second thread is in D: its environ blocks
        (103, "R", b"AISTACK_RANK_TAG=8.0.0.1"),  # another rank's
    ):
        for i, state in enumerate(states):
            task = proc / str(pid) / "task" / str(pid + 1000 * i)
            task.mkdir(parents=True)
            (task / "stat").write_text(f"{pid + 1000 * i} (a) b) {state} 1 {pid} {pid} 0\n")
        (proc / str(pid) / "stat").write_text(f"{pid} (a) b) {states[0]} 1 {pid} {pid} 0\n")
        if environ is None:
            os.mkfifo(fifo)
        else:
            (proc / str(pid) / "environ").write_bytes(b"A=1\0" + environ + b"\0B=2\0")
    try:
        out = subprocess.run(
            ["bash", "-c", _tagged_scan(tmp_path) + "aistack_tagged 7.0.0.99"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("the scan blocked on the environment of a process in state D")
    finally:
        with contextlib.suppress(OSError):  # a reader blocked on the pipe: let it go
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert out.split() == ["101"], out
