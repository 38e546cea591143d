"""The executor contract: where a job's processes run.

An executor is small on purpose; aistack's scheduler decides *what* runs *where*, the
executor only makes it happen and reports back.

* ``inventory()`` returns the nodes it offers (GPUs, CPUs, memory).
* ``launch(req)`` returns at once with a handle (a string that survives a server restart:
  it is stored in the DB). The job's processes keep running if the server dies.
* ``poll(handle)`` returns the current ExecStatus; a final state is sticky.
* ``cancel(handle, grace_s)`` returns at once; the job reaches CANCELLED through ``poll``
  (the job's ``stop_signal``, SIGTERM by default, then SIGKILL after ``grace_s``).
* ``usage(handle)`` returns the latest sampled resource use, or None.
* ``signal(handle, sig)`` (optional) forwards a signal, e.g. SIGUSR1 to checkpoint.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aistack.compute.resources import Node
from aistack.errors import ValidationError
from aistack.scheduler.types import Allocation

ExecState = Literal[
    "starting", "running", "succeeded", "failed", "cancelled", "preempted", "timeout", "lost"
]
FINAL_EXEC_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "cancelled", "preempted", "timeout", "lost"}
)


@dataclass(kw_only=True)
class LaunchRequest:
    job_id: str
    attempt: int
    command: str  # a shell command line
    allocation: Allocation
    job_dir: Path  # per-attempt directory: log, status files
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    max_runtime_s: float | None = None
    distributed: str | None = None  # torch | jax | tensorflow | mxnet | None
    procs_per_node: int | None = None  # for distributed: default = GPUs per node or 1
    stop_signal: str = "SIGTERM"
    name: str = ""

    @property
    def log_path(self) -> Path:
        return self.job_dir / "output.log"


@dataclass(kw_only=True)
class ExecStatus:
    state: ExecState
    exit_code: int | None = None
    reason: str | None = None
    pid: int | None = None
    node: str | None = None
    # a final status: when the job ended (epoch seconds), where the executor recorded it; the
    # server stamps it instead of its own first look (a job that ended while it was down)
    finished_at: float | None = None
    # a running or final status: when the job really started on the engine (epoch seconds),
    # where the engine says (Slurm's StartTime): later than the launch when the engine held it
    # in its own queue first; the server moves the job's start (and its GPU-hours) to it
    started_at: float | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_EXEC_STATES


@dataclass(kw_only=True)
class UsageSample:
    t: float
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    gpu_util: float | None = None  # percent, mean over the job's GPUs
    gpu_mem_mb: float | None = None


class Executor(abc.ABC):
    name: str = "base"

    @abc.abstractmethod
    def inventory(self) -> list[Node]:
        """The nodes this executor offers, with their devices."""

    @abc.abstractmethod
    def launch(self, req: LaunchRequest) -> str:
        """Start the job; return a durable handle at once."""

    @abc.abstractmethod
    def poll(self, handle: str) -> ExecStatus:
        """Current state of a launched job (works after a server restart)."""

    @abc.abstractmethod
    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """Ask the job to stop; returns at once."""

    def preempt(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        """Stop the job so that it can be requeued (it gets its stop signal and ``grace_s`` to
        checkpoint). Default: the same as cancel; the server remembers it asked for preemption."""
        self.cancel(handle, grace_s)

    def handle_in(self, job_dir: Path) -> str | None:
        """The handle of a launch into ``job_dir`` that the caller did not get to record (it
        stopped between ``launch`` and storing the handle), read from what ``launch`` wrote
        there; None if nothing says there was one, or this executor cannot tell."""
        return None

    def usage(self, handle: str) -> UsageSample | None:  # noqa: B027 - optional
        return None

    def usage_since(self, handle: str, after_t: float | None) -> list[UsageSample]:
        """Samples taken after ``after_t`` (epoch seconds; None: all still kept), oldest first.
        The server calls it while the job runs and once more when it has ended, so a job
        shorter than the server's monitor interval still has its samples. Default: the
        latest sample, if newer."""
        u = self.usage(handle)
        return [u] if u is not None and (after_t is None or u.t > after_t) else []

    def signal(self, handle: str, sig: int) -> None:  # noqa: B027 - optional
        from aistack.errors import NotSupportedError

        raise NotSupportedError(f"executor {self.name!r} cannot forward signals")

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections (Ray, Slurm): called at server shutdown."""


def stop_grace_s(grace_s: object) -> float:
    """A stop's grace period (seconds between the stop signal and SIGKILL) as a float, or a
    ValidationError naming the field: NaN, a bool, a string or a negative number is none."""
    from aistack.executors.supervisor import finite_seconds

    g = finite_seconds(grace_s)
    if g is None or g < 0:
        raise ValidationError(
            f"grace_s: {grace_s!r} is not a number of seconds of 0 or more",
            hint="give the seconds between the stop signal and SIGKILL, e.g. grace_s=30",
            field="grace_s",
        )
    return g
