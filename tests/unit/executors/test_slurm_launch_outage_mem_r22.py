"""Two launch problems of the Slurm executor, without Slurm (its commands are answered from a
script):

* sbatch failing because slurmctld stopped answering between the scheduler's ping and the
  launch made the server FAIL the job for good ("could not start the job: cannot reach
  slurmctld"); now the launch returns a handle that polls lost at once ("not started: …"),
  which the server requeues without using a retry, as for a Ray outage; a sbatch that timed
  out (slurmctld may have queued it) has its job scancelled once slurmctld answers.
* a job that asks no memory took a whole node where slurm.conf sets no DefMemPerCPU (sbatch
  then gives it all of the node's memory), so two 1-GPU jobs could not share a node; now it
  gets ``--mem-per-cpu`` = the node's memory per CPU there, and the site's default elsewhere.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = pytest.mark.timeout(60)

_NODE = (
    "NodeName=vm Arch=x86_64 CPUTot=2 Gres=gpu:2 NodeAddr=127.0.0.1 RealMemory=4000 "
    "State=IDLE Partitions=debug"
)
_NO_DEFAULT = (
    "PartitionName=debug Default=YES JobDefaults=(null) DefMemPerNode=UNLIMITED "
    "MaxMemPerNode=UNLIMITED Nodes=vm State=UP"
)
_UNREACHABLE = (
    "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
    "(connect failure)"
)


class _Slurm(SlurmExecutor):
    """A one-node cluster; ``sbatch`` answers as set in ``sbatch``; calls are recorded."""

    def __init__(self, partition_line: str = _NO_DEFAULT, **kw: object) -> None:
        super().__init__(slurm_conf="/etc/slurm-test/slurm.conf", **kw)  # type: ignore[arg-type]
        self.partition_line = partition_line
        self.sbatch = "ok"  # ok | unreachable | timeout
        self.squeue_ids = ""
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:2] == ("scontrol", "ping"):
            return subprocess.CompletedProcess(args, 0, "Slurmctld(primary) at vm is UP\n", "")
        if args[0] == "sbatch":
            if self.sbatch == "unreachable":
                res = subprocess.CompletedProcess(args, 1, "", _UNREACHABLE)
                self._failed(args, res)
            if self.sbatch == "timeout":
                from aistack.executors.slurm import SlurmCommandTimeout

                raise SlurmCommandTimeout("sbatch", 30)
            return subprocess.CompletedProcess(args, 0, "4242\n", "")
        if args[:3] == ("scontrol", "show", "node"):
            return subprocess.CompletedProcess(args, 0, _NODE + "\n", "")
        if args[:3] == ("scontrol", "show", "partition"):
            return subprocess.CompletedProcess(args, 0, self.partition_line + "\n", "")
        if args[0] == "squeue":
            return subprocess.CompletedProcess(args, 0, self.squeue_ids, "")
        return subprocess.CompletedProcess(args, 0, "", "")


def _req(tmp_path: Path, memory_mb: int = 0, cpus: tuple[int, ...] = (0,)) -> LaunchRequest:
    return LaunchRequest(
        job_id="j1",
        attempt=1,
        command="python train.py",
        allocation=Allocation(nodes={"vm": NodeAlloc(gpus=(0,), cpus=cpus, memory_mb=memory_mb)}),
        job_dir=tmp_path / "j1-1",
    )


def _mem_lines(req: LaunchRequest) -> list[str]:
    script = (req.job_dir / "job.sbatch").read_text()
    return [line for line in script.splitlines() if line.startswith("#SBATCH --mem")]


def test_sbatch_that_cannot_reach_slurmctld_is_lost_not_failed(tmp_path: Path) -> None:
    ex = _Slurm()
    ex.unavailable_reason()  # the scheduler's check: slurmctld answers
    ex.sbatch = "unreachable"  # ... and stops answering before the launch
    req = _req(tmp_path)
    handle = ex.launch(req)  # no exception: the server would FAIL the job on one
    assert handle == f"slurm:0:{req.job_dir}"
    st = ex.poll(handle)
    assert st.state == "lost"  # the server requeues a lost job (a failed one is not)
    assert st.final and st.reason is not None
    assert st.reason.startswith("not started: cannot reach slurmctld: sbatch: error:")
    assert "Unable to contact slurm controller" in st.reason
    assert ex._ping is None  # the next unavailable_reason() pings at once
    ex.cancel(handle, grace_s=1)  # nothing to scancel: no Slurm command
    assert not any(c[0] == "scancel" for c in ex.calls)
    # a later attempt in the same folder does not inherit the marker
    ex.sbatch = "ok"
    assert ex.launch(req) == f"slurm:4242:{req.job_dir}"
    assert not (req.job_dir / "not_started").exists()


def test_a_launch_while_slurmctld_is_known_down_runs_no_sbatch(tmp_path: Path) -> None:
    ex = _Slurm()
    ex._ping, ex._down_since = (1e18, "the Slurm controller does not answer"), 1.0
    handle = ex.launch(_req(tmp_path))
    assert handle.startswith("slurm:0:")
    assert ex.poll(handle).reason == "not started: the Slurm controller does not answer"
    assert not any(c[0] == "sbatch" for c in ex.calls)


def test_a_sbatch_that_timed_out_has_its_job_scancelled_once_slurmctld_answers(
    tmp_path: Path,
) -> None:
    ex = _Slurm()
    ex.sbatch = "timeout"
    handle = ex.launch(_req(tmp_path))
    assert ex.poll(handle).reason == "not started: sbatch did not answer within 30 s"
    ex.squeue_ids = "777\n"  # slurmctld had queued it after all
    ex.inventory()  # the next scheduling pass, slurmctld answering
    assert ("scancel", "777") in ex.calls
    assert ex._to_reap == set()
    n = len(ex.calls)
    ex.inventory()
    assert not any(c[0] == "squeue" for c in ex.calls[n:])  # reaped once


def test_a_job_without_memory_gets_the_nodes_memory_per_cpu_where_slurm_sets_no_default(
    tmp_path: Path,
) -> None:
    ex = _Slurm()
    req = _req(tmp_path, cpus=(0,))
    ex.launch(req)
    assert _mem_lines(req) == ["#SBATCH --mem-per-cpu=2000M"]  # 4000 MB / 2 CPUs


@pytest.mark.parametrize(
    "line",
    [
        "PartitionName=debug Default=YES JobDefaults=(null) DefMemPerCPU=1000 Nodes=vm",
        "PartitionName=debug Default=YES JobDefaults=(null) DefMemPerNode=3000 Nodes=vm",
        "PartitionName=debug Default=YES JobDefaults=DefMemPerGPU=2048 DefMemPerNode=UNLIMITED",
    ],
)
def test_the_sites_memory_default_is_left_to_sbatch(tmp_path: Path, line: str) -> None:
    ex = _Slurm(partition_line=line)
    req = _req(tmp_path)
    ex.launch(req)
    assert _mem_lines(req) == []


def test_memory_asked_or_given_in_extra_args_wins(tmp_path: Path) -> None:
    ex = _Slurm()
    req = _req(tmp_path, memory_mb=512)
    ex.launch(req)
    assert _mem_lines(req) == ["#SBATCH --mem=512M"]
    ex = _Slurm(extra_sbatch_args=("--mem=8G",))
    req = _req(tmp_path / "b")
    ex.launch(req)
    assert _mem_lines(req) == ["#SBATCH --mem=8G"]  # the admin's, not with --mem-per-cpu
