"""The in-memory executor: a fake that is part of the product, for tests and demos of the
scheduling loop without processes. A job "runs" for ``AISTACK_FAKE_DURATION_S`` seconds (from its
env, default 0) and exits with ``AISTACK_FAKE_EXIT_CODE`` (default 0)."""

from __future__ import annotations

import itertools
import time

from aistack.compute.resources import GpuDevice, Node
from aistack.executors.base import ExecStatus, Executor, LaunchRequest


class MemoryExecutor(Executor):
    name = "memory"

    def __init__(
        self, nodes: list[Node] | None = None, *, gpus_per_node: int = 4, n_nodes: int = 1
    ) -> None:
        self._nodes = nodes or [
            Node(
                name=f"mem{i}",
                cpus=8,
                memory_mb=64 * 1024,
                gpus=tuple(
                    GpuDevice(index=g, uuid=f"GPU-mem{i}-{g}", name="FakeGPU", memory_mb=80 * 1024)
                    for g in range(gpus_per_node)
                ),
            )
            for i in range(n_nodes)
        ]
        self._jobs: dict[str, dict[str, float | str | None]] = {}
        self._ids = itertools.count(1)

    def inventory(self) -> list[Node]:
        return list(self._nodes)

    def launch(self, req: LaunchRequest) -> str:
        h = f"mem-{next(self._ids)}-{req.job_id}"
        self._jobs[h] = {
            "start": time.time(),
            "duration": float(req.env.get("AISTACK_FAKE_DURATION_S", 0)),
            "exit": int(req.env.get("AISTACK_FAKE_EXIT_CODE", 0)),
            "stopped": None,
            "max_runtime": req.max_runtime_s,
        }
        return h

    def poll(self, handle: str) -> ExecStatus:
        j = self._jobs.get(handle)
        if j is None:
            return ExecStatus(
                state="lost", reason="unknown to the in-memory executor (server restarted)"
            )
        if j["stopped"]:
            # the reason the stop was given (the server's own words otherwise: the state alone
            # read "preempted   preempted" in the job's events)
            why = j.get("stop_reason")
            return ExecStatus(
                state=str(j["stopped"]),  # type: ignore[arg-type]
                exit_code=-15,
                reason=str(why) if why else None,
            )
        elapsed = time.time() - float(j["start"])  # type: ignore[arg-type]
        max_rt = j["max_runtime"]
        if max_rt and elapsed > float(max_rt) and float(j["duration"]) > float(max_rt):  # type: ignore[arg-type]
            return ExecStatus(state="timeout", exit_code=-15, reason="exceeded max_runtime")
        if elapsed < float(j["duration"]):  # type: ignore[arg-type]
            return ExecStatus(state="running")
        code = int(j["exit"])  # type: ignore[arg-type]
        return ExecStatus(
            state="succeeded" if code == 0 else "failed",
            exit_code=code,
            reason=None if code == 0 else f"exit code {code}",
        )

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        if handle in self._jobs:
            self._jobs[handle]["stopped"] = "cancelled"

    def preempt(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        if handle in self._jobs:
            self._jobs[handle]["stopped"] = "preempted"
            self._jobs[handle]["stop_reason"] = reason
