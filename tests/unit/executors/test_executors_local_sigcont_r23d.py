"""A stop (cancel, preemption, max_runtime) of a job whose processes are stopped (SIGSTOP,
``kill -STOP``, a Ctrl-Z'd shell): a stopped process holds the stop signal pending until it is
continued, so without a SIGCONT it could not save its checkpoint in the grace period and was
SIGKILLed at its end. The supervisor (and the gang runner, for a distributed job's ranks) now
sends SIGCONT after the stop signal, as Slurm's scancel and systemd do."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final, wait_until

PY = sys.executable

# saves a "checkpoint" for 1 s on SIGTERM, then exits 0
CKPT = """\
import os, signal, sys, time
def stop(s, f):
    print("got", signal.Signals(s).name, flush=True)
    time.sleep(1.0)
    print("checkpoint saved", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(120)
"""


def _stopped(pids: list[int]) -> bool:
    try:
        return all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids)
    except psutil.Error:
        return False


def _group(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (OSError, psutil.Error):
            continue
    return out


def _launch(tmp_path: Path, **kw: object) -> tuple[LocalExecutor, str]:
    (tmp_path / "ckpt.py").write_text(CKPT)
    ex = LocalExecutor(cpus=2)
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="c1",
            attempt=0,
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0, 1))}),
            job_dir=tmp_path / "job",
            env={"AISTACK_GRACE_S": "15"},
            **kw,  # type: ignore[arg-type]
        )
    )
    return ex, handle


def _wait_ready(tmp_path: Path, n: int = 1) -> None:
    log = tmp_path / "job" / "output.log"
    assert wait_until(lambda: log.exists() and log.read_text().count("ready") >= n, 30, 0.05), (
        log.read_text() if log.exists() else "no output.log"
    )


def test_a_stopped_job_gets_its_stop_signal_and_checkpoints_in_the_grace_period(
    tmp_path: Path,
) -> None:
    ex, handle = _launch(tmp_path, command=f"{PY} {tmp_path / 'ckpt.py'}; echo after")
    _wait_ready(tmp_path)
    pgid = json.loads((tmp_path / "job" / "status.json").read_text())["pgid"]
    pids = _group(pgid)
    assert len(pids) >= 2, pids  # the shell and the program
    os.killpg(pgid, signal.SIGSTOP)  # the whole job, as a `kill -STOP -PGID` would
    assert wait_until(lambda: _stopped(pids), 10, 0.05), pids
    t0 = time.monotonic()
    ex.cancel(handle, grace_s=15)
    st = wait_final(ex, handle, 60)
    took = time.monotonic() - t0
    text = (tmp_path / "job" / "output.log").read_text()
    # old code: the SIGTERM stayed pending for the whole grace period, then SIGKILL (-9)
    assert "got SIGTERM" in text and "checkpoint saved" in text, text
    assert (st.state, st.exit_code) == ("cancelled", -15), st
    assert took < 12, took  # ended once the program had saved, not at the SIGKILL (15 s)


def test_a_stopped_distributed_job_lets_every_rank_checkpoint(tmp_path: Path) -> None:
    ex, handle = _launch(
        tmp_path,
        command=f"{PY} {tmp_path / 'ckpt.py'}",
        distributed="torch",
        procs_per_node=2,
    )
    _wait_ready(tmp_path, 2)
    gang = json.loads((tmp_path / "job" / "gang.json").read_text())
    rank_pids = [p for g in gang["pgids"] for p in _group(int(g))]
    assert len(rank_pids) == 2, (gang, rank_pids)
    for g in gang["pgids"]:
        os.killpg(int(g), signal.SIGSTOP)  # the ranks, not the gang runner
    assert wait_until(lambda: _stopped(rank_pids), 10, 0.05), rank_pids
    ex.preempt(handle, grace_s=15, reason="a higher-priority job")
    st = wait_final(ex, handle, 60)
    text = (tmp_path / "job" / "output.log").read_text()
    assert text.count("checkpoint saved") == 2, text
    assert st.state == "preempted" and st.reason == "a higher-priority job", st
