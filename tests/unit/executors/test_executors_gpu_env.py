"""What a job with GPUs sees in its environment (no GPU needed: the job only prints it)."""

from __future__ import annotations

import sys
from pathlib import Path

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final

SHOW = "import os; print('ENV', *(os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER', 'NVIDIA_VISIBLE_DEVICES')))"  # noqa: E501


def _env_of(tmp_path: Path, gpus: tuple[int, ...]) -> list[str | None]:
    script = tmp_path / "show.py"
    script.write_text(SHOW)
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="g1",
            attempt=0,
            command=f"{sys.executable} {script}",
            allocation=Allocation(nodes={node: NodeAlloc(gpus=gpus, cpus=(0,))}),
            job_dir=tmp_path / "job",
        )
    )
    st = wait_final(ex, handle, 30)
    assert st.state == "succeeded", st
    line = next(
        x for x in (tmp_path / "job" / "output.log").read_text().splitlines() if x.startswith("ENV")
    )
    return line.split()[1:]


def test_gpu_indices_are_in_nvml_order_for_cuda_too(tmp_path: Path) -> None:
    """The allocation's indices are NVML's (PCI bus order): without CUDA_DEVICE_ORDER=PCI_BUS_ID
    CUDA numbers devices fastest first, and on a host of mixed GPUs a job would use a device
    that another job holds."""
    assert _env_of(tmp_path, (1, 3)) == ["1,3", "PCI_BUS_ID", "1,3"]
