"""/cluster: nodes, devices, what is allocated to which job, live utilization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.scheduler.types import Allocation
from aistack.server.context import ServerContext
from aistack.server.db.models import Job
from aistack.server.deps import get_ctx, get_db
from aistack.server.schemas.jobs import ACTIVE_STATES

router = APIRouter(tags=["cluster"])


@router.get("/cluster")
def cluster(db: Session = Depends(get_db), ctx: ServerContext = Depends(get_ctx)) -> dict[str, Any]:
    nodes = ctx.loop.nodes() if ctx.loop is not None else ctx.executor.inventory()
    active = db.execute(select(Job).where(Job.state.in_(ACTIVE_STATES))).scalars().all()
    holders: dict[tuple[str, str, int], str] = {}
    mem_used: dict[str, int] = {}
    unreadable: list[str] = []  # active jobs whose stored allocation cannot be read
    for j in active:
        try:
            alloc = Allocation.from_dict(j.allocation or {})
        except Exception:  # noqa: BLE001 - one odd row must not take the cluster view down
            unreadable.append(j.id)
            continue
        for node, a in alloc.nodes.items():
            for g in a.gpus:
                holders[(node, "gpu", g)] = j.id
            for c in a.cpus:
                holders[(node, "cpu", c)] = j.id
            mem_used[node] = mem_used.get(node, 0) + a.memory_mb
    live: dict[str, Any] = {}
    if ctx.executor.name == "local":
        from aistack.compute.inventory import live_utilization

        live = live_utilization()
    out_nodes = []
    for n in nodes:
        gpus = [
            {
                "index": g.index,
                "uuid": g.uuid,
                "name": g.name,
                # None where the engine does not say (Slurm GRES, Ray): it read as "0 GiB"
                "memory_mb": g.memory_mb or None,
                "job": holders.get((n.name, "gpu", g.index)),
                "util_percent": next(
                    (x["util_percent"] for x in live.get("gpus", []) if x["index"] == g.index), None
                ),
            }
            for g in n.gpus
        ]
        cpus_alloc = {
            c: holders[(n.name, "cpu", c)] for c in range(n.cpus) if (n.name, "cpu", c) in holders
        }
        out_nodes.append(
            {
                "name": n.name,
                "address": n.address,
                "executor": ctx.executor.name,
                # what the engine says of the node: a Slurm node's state and partitions, a Ray
                # node's custom resources and accelerator type (none for the local executor)
                "labels": dict(n.labels),
                "cpus": n.cpus,
                "cpus_allocated": len(cpus_alloc),
                "cpu_jobs": cpus_alloc,
                "memory_mb": n.memory_mb,
                "memory_allocated_mb": mem_used.get(n.name, 0),
                "gpus": gpus,
                "gpus_allocated": sum(1 for g in gpus if g["job"]),
                "cpu_percent": live.get("cpu_percent"),
                "memory_used_mb": live.get("memory_used_mb"),
            }
        )
    return {
        "executor": ctx.executor.name,
        "nodes": out_nodes,
        "totals": {
            "gpus": sum(len(n.gpus) for n in nodes),
            "cpus": sum(n.cpus for n in nodes),
            "gpus_allocated": sum(x["gpus_allocated"] for x in out_nodes),
            "cpus_allocated": sum(x["cpus_allocated"] for x in out_nodes),
        },
        "scheduler": {
            "policy": getattr(getattr(ctx.loop, "policy", None), "name", None),
            "last_pass_ms": round(ctx.loop.last_pass_s * 1000, 3) if ctx.loop else None,
            # passes that failed as a whole (also /metrics), and the last one's error while
            # passes still fail (None once one works again)
            "failed_passes": ctx.loop.errors if ctx.loop else None,
            "last_error": ctx.loop.last_error if ctx.loop else None,
            "unreadable_allocations": unreadable,
        },
    }


@router.get("/cluster/history")
def history(ctx: ServerContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    """Cluster utilization samples of the last hour (one per monitor interval)."""
    return list(ctx.loop.history) if ctx.loop is not None else []
