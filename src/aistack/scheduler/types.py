"""The scheduler's contract: plain, immutable data in, a Decision out.

Semantics shared by every policy and by the simulator:

* ``JobRequest.gpus`` / ``cpus`` / ``memory_mb`` are **per node**; a job asks for
  ``nodes`` nodes and gets ``nodes × gpus`` GPUs in total, all at once (gang).
* ``ClusterState.nodes`` describe *free* capacity right now (running jobs already
  subtracted) plus the totals; ``ClusterState.running`` lists what runs.
* Times are seconds on whatever clock the caller uses (wall clock in the server,
  virtual clock in the simulator). The scheduler has no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class NodeAlloc:
    """What one job holds on one node."""

    gpus: tuple[int, ...] = ()  # device indices on that node
    cpus: tuple[int, ...] = ()  # CPU core ids on that node (pinned)
    memory_mb: int = 0


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """A job's whole gang allocation: node name → NodeAlloc."""

    nodes: dict[str, NodeAlloc] = field(default_factory=dict)

    @property
    def total_gpus(self) -> int:
        return sum(len(a.gpus) for a in self.nodes.values())

    @property
    def total_cpus(self) -> int:
        return sum(len(a.cpus) for a in self.nodes.values())

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {
            n: {"gpus": list(a.gpus), "cpus": list(a.cpus), "memory_mb": a.memory_mb}
            for n, a in self.nodes.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]] | None) -> Allocation:
        out: dict[str, NodeAlloc] = {}
        for n, a in (data or {}).items():
            out[n] = NodeAlloc(
                gpus=tuple(int(x) for x in a.get("gpus") or ()),
                cpus=tuple(int(x) for x in a.get("cpus") or ()),
                memory_mb=int(a.get("memory_mb") or 0),
            )
        return cls(nodes=out)


@dataclass(frozen=True, kw_only=True)
class NodeState:
    """A node's totals and what is free now."""

    name: str
    gpu_type: str | None = None
    gpus_total: tuple[int, ...] = ()
    gpus_free: frozenset[int] = frozenset()
    cpus_total: tuple[int, ...] = ()
    cpus_free: frozenset[int] = frozenset()
    memory_total_mb: int = 0
    memory_free_mb: int = 0
    schedulable: bool = True


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """A queued job as the scheduler sees it."""

    id: str
    project: str = "default"
    user: str = "default"
    priority: int = 0  # higher runs first
    submit_time: float = 0.0
    gpus: int = 0  # per node
    gpu_type: str | None = None
    cpus: int = 1  # per node
    memory_mb: int = 0  # per node
    nodes: int = 1
    max_runtime_s: float | None = None  # the user's estimate / limit
    attained_service_s: float = 0.0  # GPU-seconds (or CPU-seconds) already received (LAS)
    preemptible: bool = True
    # simulation only: the true duration (SRTF/SJF oracles); None in the server
    true_duration_s: float | None = None

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.nodes


@dataclass(frozen=True, kw_only=True)
class RunningJob:
    id: str
    project: str = "default"
    user: str = "default"
    priority: int = 0
    allocation: Allocation = field(default_factory=Allocation)
    start_time: float = 0.0
    submit_time: float = 0.0
    max_runtime_s: float | None = None
    attained_service_s: float = 0.0
    preemptible: bool = True
    # earliest time at which it may be preempted again (anti-thrashing)
    protected_until: float = 0.0
    true_duration_s: float | None = None

    @property
    def expected_end(self) -> float | None:
        return None if self.max_runtime_s is None else self.start_time + self.max_runtime_s


@dataclass(frozen=True, kw_only=True)
class ClusterState:
    nodes: tuple[NodeState, ...] = ()
    running: tuple[RunningJob, ...] = ()
    # project → max GPUs it may hold at once (absent: unlimited)
    gpu_quotas: dict[str, int] = field(default_factory=dict)
    # decayed historical usage per project and per user (GPU-seconds), for fair share
    usage: dict[str, float] = field(default_factory=dict)
    # fair-share weights (shares) per project; absent → 1
    shares: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Start:
    job_id: str
    allocation: Allocation
    backfilled: bool = False


@dataclass(frozen=True, kw_only=True)
class Preempt:
    job_id: str
    reason: str
    for_job: str | None = None


@dataclass(frozen=True, kw_only=True)
class Pending:
    job_id: str
    reason: str  # human text: "needs 4 GPUs on one node; largest free block is 2; ..."
    estimated_start: float | None = None  # on the caller's clock, None = unknown


@dataclass(frozen=True, kw_only=True)
class Decision:
    starts: tuple[Start, ...] = ()
    preemptions: tuple[Preempt, ...] = ()
    pending: dict[str, Pending] = field(default_factory=dict)
    # the head job's reservation, if any: job id → (time, node names)
    reservations: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)
    # nodes the pass placed nothing on because the running jobs' allocations there contradict
    # the node (a GPU it does not list, one GPU held twice, a held GPU listed free): name → why
    blocked_nodes: dict[str, str] = field(default_factory=dict)
