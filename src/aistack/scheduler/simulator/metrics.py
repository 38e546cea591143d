"""Metrics of a simulation run, by job-size class, with lower bounds.

JCT = finish − submit; wait = JCT − runtime (all time a job was not making progress,
including waits after preemptions and restart costs); first_wait = first start − submit;
slowdown = JCT / max(runtime, 10 s). Utilization = busy GPU-seconds / (GPUs × makespan).
Lower bounds: average JCT ≥ mean runtime; makespan ≥ max(latest submit + runtime,
total GPU-seconds / GPUs) from the first submission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from aistack.scheduler.simulator.engine import SimResult

SIZE_CLASSES: tuple[tuple[str, int, int], ...] = (
    ("1 GPU", 1, 1),
    ("2-4 GPUs", 2, 4),
    ("5-8 GPUs", 5, 8),
    ("9+ GPUs", 9, 1 << 30),
)


def jain(values: list[float]) -> float | None:
    """Jain's fairness index of positive values (1 = perfectly equal)."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) < 2:
        return None
    s2 = float((x**2).sum())
    return float(x.sum() ** 2 / (len(x) * s2)) if s2 > 0 else 1.0


def _stats(jct: np.ndarray, wait: np.ndarray, slow: np.ndarray, fw: np.ndarray) -> dict[str, Any]:
    if len(jct) == 0:
        return {"jobs": 0}
    p = np.percentile
    return {
        "jobs": int(len(jct)),
        "avg_jct": float(jct.mean()),
        "p50_jct": float(p(jct, 50)),
        "p95_jct": float(p(jct, 95)),
        "p99_jct": float(p(jct, 99)),
        "avg_wait": float(wait.mean()),
        "p50_wait": float(p(wait, 50)),
        "p95_wait": float(p(wait, 95)),
        "p99_wait": float(p(wait, 99)),
        "max_wait": float(wait.max()),
        "avg_first_wait": float(fw.mean()),
        "avg_slowdown": float(slow.mean()),
        "p99_slowdown": float(p(slow, 99)),
    }


def arrays(res: SimResult) -> dict[str, np.ndarray]:
    sub = np.fromiter((j.submit for j in res.jobs), float, len(res.jobs))
    dur = np.fromiter((j.duration for j in res.jobs), float, len(res.jobs))
    fin = np.asarray(res.finish, dtype=float)
    fs = np.asarray(res.first_start, dtype=float)
    jct = fin - sub
    return {
        "submit": sub,
        "runtime": dur,
        "finish": fin,
        "jct": jct,
        "wait": np.maximum(0.0, jct - dur),
        "first_wait": fs - sub,
        "slowdown": jct / np.maximum(dur, 10.0),
        "gpus": np.asarray([j.gpus for j in res.jobs], dtype=int),
        "alloc": np.asarray(res.alloc_gpus, dtype=float),
    }


def compute_metrics(res: SimResult) -> dict[str, Any]:
    if not res.jobs:  # every job was dropped (0 GPUs or larger than the cluster)
        return {"jobs": 0, "policy": res.policy, "dropped": len(res.dropped)}
    a = arrays(res)
    total = res.config.total_gpus
    t0 = float(a["submit"].min())
    makespan = float(a["finish"].max()) - t0
    work = float((a["alloc"] * a["runtime"]).sum())
    m: dict[str, Any] = {"policy": res.policy}
    m.update(_stats(a["jct"], a["wait"], a["slowdown"], a["first_wait"]))
    m["utilization"] = res.busy_gpu_s / (total * makespan) if makespan > 0 else 0.0
    m["makespan_s"] = makespan
    m["preemptions"] = int(sum(res.preemptions))
    m["dropped"] = len(res.dropped)
    m["gpus"] = total
    m["offered_load"] = work / (total * max(1.0, float(a["submit"].max()) - t0))
    m["lb_avg_jct"] = float(a["runtime"].mean())
    m["lb_makespan_s"] = max(float((a["submit"] + a["runtime"]).max()) - t0, work / total)
    by: dict[str, Any] = {}
    for label, lo, hi in SIZE_CLASSES:
        mask = (a["gpus"] >= lo) & (a["gpus"] <= hi)
        if mask.any():
            by[label] = _stats(
                a["jct"][mask], a["wait"][mask], a["slowdown"][mask], a["first_wait"][mask]
            )
    m["by_size"] = by
    for attr in ("user", "project"):
        groups: dict[str, list[float]] = {}
        for i, j in enumerate(res.jobs):
            groups.setdefault(getattr(j, attr), []).append(float(a["slowdown"][i]))
        if len(groups) > 1:
            m[f"jain_{attr}s"] = jain([float(np.mean(v)) for v in groups.values()])
    m["passes"] = res.passes
    m["events"] = res.events
    return m
