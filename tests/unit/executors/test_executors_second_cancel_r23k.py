"""A second, shorter cancel of a job already stopping (the server now passes it on): the
Slurm and Ray executors bring the SIGKILL forward, never postpone it, and send the job its
stop signal once. Slurm kept the first deadline whatever came after (``--grace 2`` after
``--grace 60`` waited the 60 s) and sent ``scancel --signal`` again; Ray's coordinator
ignored a cancel once it had told its agents to stop."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.timeout(60)


class _FakeSlurm(SlurmExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:3] == ("scontrol", "show", "job"):
            now = dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
            line = (
                "JobId=42 JobName=x JobState=RUNNING Reason=None ExitCode=0:0 "
                f"SubmitTime=2020-01-01T00:00:00 StartTime={now} EndTime=Unknown NodeList=n1"
            )
            return subprocess.CompletedProcess(args, 0, line + "\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def _controller_down(self) -> str | None:
        return None


def test_slurm_a_shorter_second_cancel_brings_the_deadline_forward_signalling_once(
    tmp_path: Path,
) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    ex = _FakeSlurm()
    try:
        ex.cancel(f"slurm:42:{job_dir}", grace_s=60)
        first = float((job_dir / "cancel_requested").read_text())
        ex.cancel(f"slurm:42:{job_dir}", grace_s=2)
        second = float((job_dir / "cancel_requested").read_text())
        assert second < first - 50 and second <= time.time() + 2  # it stayed at the first
        assert ex._timers[-1].interval <= 2.0  # the SIGKILL timer of the new deadline
        signals = [c for c in ex.calls if c[0] == "scancel"]
        assert signals == [("scancel", "--signal=TERM", "42")]  # sent once, not twice
        ex.cancel(f"slurm:42:{job_dir}", grace_s=120)  # a longer one postpones nothing
        assert float((job_dir / "cancel_requested").read_text()) == second
    finally:
        ex.close()


ray = pytest.importorskip("ray")


def test_ray_agent_hasten_brings_the_sigkill_forward_never_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aistack.executors.ray_actors import NodeAgent

    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    a = NodeAgent()
    try:
        trap = f"{sys.executable} -c 'import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); time.sleep(60)'"  # noqa: E501
        a.start(trap, None, [(0, {"AISTACK_RANK": "0"})])
        time.sleep(1.0)
        t0 = time.monotonic()
        a.stop(60.0)
        time.sleep(0.5)
        a.hasten(120.0)  # never postpones
        assert a._kill_by is not None and a._kill_by <= t0 + 60.5
        a.hasten(0.5)
        p = next(iter(a._procs.values()))
        p.wait(30)  # killed about 1 s after the stop, not 60 s
        assert time.monotonic() - t0 < 30
        assert p.returncode == -signal.SIGKILL
    finally:
        for p in a._procs.values():
            if isinstance(p, subprocess.Popen) and p.poll() is None:
                a._signal_ranks(signal.SIGKILL)
                p.wait(10)
        if a._reaper is not None:
            a._reaper.close()


class _Call:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


def test_ray_coordinator_passes_a_cancel_after_the_stop_to_its_agents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ray")
    from test_ray_walkthrough_output import _coordinator

    hastened: list[float] = []

    class _Agent:
        hasten = _Call(hastened.append)

    c = _coordinator(monkeypatch, [_Agent()])  # type: ignore[list-item]
    c.cancel(60.0)
    assert hastened == [] and c._cancel == 60.0  # not stopping yet: the supervisor sends it
    c.cancel(90.0)
    assert c._cancel == 60.0  # the shorter stands
    c._stop_sent = True  # (the supervisor told the agents to stop, with 60 s)
    c.cancel(2.0)
    assert hastened == [2.0]  # it was ignored
