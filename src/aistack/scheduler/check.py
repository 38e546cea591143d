"""Checks any caller can run on a Decision (the server in debug mode, tests, the simulator).

``validate_decision`` verifies the contract every policy promises: starts only for queued
jobs, gangs complete (``nodes`` nodes × ``gpus`` per node, right GPU type), GPU indices and
CPU ids free and never handed out twice, memory within what is free, quotas respected,
preemptions only of preemptible, unprotected running jobs, and a Pending for every
queued job that does not start (when the policy explains).
"""

from __future__ import annotations

from collections.abc import Sequence

from aistack.compute.resources import gpu_type_matches
from aistack.errors import AistackError
from aistack.scheduler.types import ClusterState, Decision, JobRequest


class InvariantViolation(AistackError):
    """A policy or the simulator broke an invariant: a bug, never a user error."""

    code = "invariant"
    status = 500


def validate_decision(
    queue: Sequence[JobRequest],
    cluster: ClusterState,
    decision: Decision,
    now: float = 0.0,
    *,
    require_pending: bool = True,
) -> None:
    jobs = {j.id: j for j in queue}
    nodes = {n.name: n for n in cluster.nodes}
    free_g = {n.name: set(n.gpus_free) for n in cluster.nodes}
    free_c = {n.name: set(n.cpus_free) for n in cluster.nodes}
    free_m = {n.name: n.memory_free_mb for n in cluster.nodes}
    used: dict[str, int] = {}
    for r in cluster.running:
        used[r.project] = used.get(r.project, 0) + r.allocation.total_gpus
    started: set[str] = set()
    for s in decision.starts:
        j = jobs.get(s.job_id)
        if j is None:
            raise InvariantViolation(f"start of {s.job_id}, which is not queued")
        if s.job_id in started:
            raise InvariantViolation(f"{s.job_id} started twice")
        started.add(s.job_id)
        a = s.allocation.nodes
        if len(a) != j.nodes:
            raise InvariantViolation(f"{j.id}: {len(a)} nodes, asked {j.nodes} (gang)")
        for name, na in a.items():
            n = nodes.get(name)
            if n is None or not n.schedulable:
                raise InvariantViolation(f"{j.id}: node {name} unknown or not schedulable")
            if not gpu_type_matches(n.gpu_type, j.gpu_type):
                raise InvariantViolation(f"{j.id}: node {name} is {n.gpu_type}, asked {j.gpu_type}")
            if len(na.gpus) != j.gpus or len(set(na.gpus)) != j.gpus:
                raise InvariantViolation(f"{j.id}: {len(na.gpus)} GPUs on {name}, asked {j.gpus}")
            if not free_g[name].issuperset(na.gpus):
                raise InvariantViolation(f"{j.id}: GPUs {na.gpus} on {name} not free")
            free_g[name].difference_update(na.gpus)
            if len(na.cpus) != j.cpus or not free_c[name].issuperset(na.cpus):
                raise InvariantViolation(f"{j.id}: CPUs {na.cpus} on {name} wrong or not free")
            free_c[name].difference_update(na.cpus)
            if na.memory_mb != j.memory_mb or na.memory_mb > free_m[name]:
                raise InvariantViolation(f"{j.id}: memory {na.memory_mb} MB on {name}")
            free_m[name] -= na.memory_mb
        q = cluster.gpu_quotas.get(j.project)
        used[j.project] = used.get(j.project, 0) + j.total_gpus
        if q is not None and used[j.project] > q:
            raise InvariantViolation(f"{j.id}: project {j.project} over its quota {q}")
    running = {r.id: r for r in cluster.running}
    for p in decision.preemptions:
        victim = running.get(p.job_id)
        if victim is None:
            raise InvariantViolation(f"preempted {p.job_id}, which is not running")
        if not victim.preemptible or victim.protected_until > now:
            raise InvariantViolation(f"preempted {p.job_id}, which is protected")
    if require_pending:
        for j in queue:
            if j.id not in started and j.id not in decision.pending:
                raise InvariantViolation(f"{j.id} waits without a pending reason")
