"""Where jobs run. ``get_executor(settings)`` picks one from ``AISTACK_EXECUTOR``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aistack.executors.base import ExecStatus, Executor, LaunchRequest, UsageSample

if TYPE_CHECKING:
    from aistack.settings import Settings

__all__ = ["ExecStatus", "Executor", "LaunchRequest", "UsageSample", "get_executor"]


def get_executor(settings: Settings) -> Executor:
    kind = settings.executor
    if kind == "local":
        from aistack.executors.local import LocalExecutor

        return LocalExecutor(cpus=settings.cpus)
    if kind == "memory":
        from aistack.executors.memory import MemoryExecutor

        return MemoryExecutor()
    if kind == "ray":
        from aistack.executors.ray import RayExecutor

        return RayExecutor(  # type: ignore[call-arg]
            address=settings.ray_address or "auto",
            lost_after_s=settings.ray_lost_after_s,
            health_interval_s=settings.ray_health_interval_s,
            retry_interval_s=settings.ray_retry_interval_s,
        )
    if kind == "slurm":
        from aistack.executors.slurm import SlurmExecutor

        return SlurmExecutor(partition=settings.slurm_partition)  # type: ignore[call-arg]
    from aistack.errors import ValidationError

    raise ValidationError(
        f"AISTACK_EXECUTOR={kind!r} is not known", hint="use local, ray, slurm or memory"
    )
