"""``Executor.handle_in``: the handle of a launch the server did not get to record, found from
what the executor's launch wrote in the attempt's folder (the server stopped between the two)."""

from __future__ import annotations

import time
from pathlib import Path

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.executors.memory import MemoryExecutor
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc


def test_a_local_launch_is_found_by_its_folder_and_stopped_through_it(tmp_path: Path) -> None:
    ex = LocalExecutor(cpus=1)
    d = tmp_path / "job" / "0"
    assert ex.handle_in(d) is None  # nothing launched there
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="j1",
            attempt=0,
            command="sleep 60",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=d,
        )
    )
    assert ex.handle_in(d) == handle
    ex.cancel(ex.handle_in(d) or "", grace_s=0.5)
    deadline = time.monotonic() + 30
    while not (st := ex.poll(handle)).final and time.monotonic() < deadline:
        time.sleep(0.1)
    assert st.state == "cancelled"


def test_a_slurm_launch_is_found_by_the_job_id_it_wrote(tmp_path: Path) -> None:
    ex = SlurmExecutor(pin_nodes=False)  # runs no Slurm command
    d = tmp_path / "0"
    d.mkdir()
    assert ex.handle_in(d) is None
    (d / "slurm_job_id").write_text("oops\n")  # not a job id: not a launch
    assert ex.handle_in(d) is None
    (d / "slurm_job_id").write_text("4242\n")
    assert ex.handle_in(d) == f"slurm:4242:{d}"
    assert SlurmExecutor.parse_handle(ex.handle_in(d) or "") == ("4242", d)


def test_an_executor_that_cannot_tell_says_none(tmp_path: Path) -> None:
    assert MemoryExecutor().handle_in(tmp_path) is None


def test_a_ray_launch_is_found_by_the_coordinator_record_it_wrote(tmp_path: Path) -> None:
    from aistack.executors.ray import RayExecutor

    ex = RayExecutor(address="127.0.0.1:1", retry_interval_s=60)  # connects on first use only
    try:
        assert ex.handle_in(tmp_path) is None
        (tmp_path / "ray.json").write_text('{"coordinator": "aistack-job-j1-0"}')
        assert ex.handle_in(tmp_path) == f"ray:{tmp_path}"
    finally:
        ex.close()
