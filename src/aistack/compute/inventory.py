"""The local machine's inventory: GPUs through NVML (nvidia-ml-py) when present, else CPUs and
memory through psutil. Utilization sampling for the monitor."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import psutil

from aistack.compute.resources import GpuDevice, Node

log = logging.getLogger(__name__)
_nvml_lock = threading.Lock()
_nvml_ok: bool | None = None


def _nvml() -> Any | None:
    global _nvml_ok
    with _nvml_lock:
        if _nvml_ok is False:
            return None
        try:
            import pynvml

            if not _nvml_ok:
                pynvml.nvmlInit()
                _nvml_ok = True
            return pynvml
        except Exception as exc:  # noqa: BLE001 - NVML absent is the normal CPU case
            log.debug("NVML not available: %s", exc)
            _nvml_ok = False
            return None


def detect_gpus() -> list[GpuDevice]:
    nv = _nvml()
    if nv is None:
        return []
    out = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        name = nv.nvmlDeviceGetName(h)
        uuid = nv.nvmlDeviceGetUUID(h)
        mem = nv.nvmlDeviceGetMemoryInfo(h).total
        out.append(
            GpuDevice(
                index=i,
                uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                name=name.decode() if isinstance(name, bytes) else str(name),
                memory_mb=int(mem // 2**20),
            )
        )
    return out


def local_node(*, cpus: int | None = None, name: str | None = None) -> Node:
    """This machine as a Node. ``cpus`` caps the CPU slots offered (default: the cores we may use)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = psutil.cpu_count() or 1
    n_cpus = min(cpus, usable) if cpus else usable
    return Node(
        name=name or socket.gethostname().split(".")[0],
        cpus=n_cpus,
        memory_mb=int(psutil.virtual_memory().total // 2**20),
        gpus=tuple(detect_gpus()),
        address="127.0.0.1",
    )


def gpu_utilization(indices: list[int]) -> tuple[float | None, float | None]:
    """Mean GPU utilization (percent) and total used memory (MB) over these device indices."""
    nv = _nvml()
    if nv is None or not indices:
        return None, None
    utils, mem = [], 0.0
    for i in indices:
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
            utils.append(float(nv.nvmlDeviceGetUtilizationRates(h).gpu))
            mem += nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
        except Exception:  # noqa: BLE001
            continue
    return (sum(utils) / len(utils) if utils else None), mem


def live_utilization() -> dict[str, Any]:
    """Machine-wide live numbers for `aistack cluster`."""
    vm = psutil.virtual_memory()
    gpus = []
    nv = _nvml()
    if nv is not None:
        for d in detect_gpus():
            util, mem = gpu_utilization([d.index])
            gpus.append({"index": d.index, "util_percent": util, "memory_used_mb": mem})
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_used_mb": int((vm.total - vm.available) // 2**20),
        "memory_total_mb": int(vm.total // 2**20),
        "gpus": gpus,
    }
