"""submit → RUNNING latency through each executor on this machine: local (per-job supervisor),
Ray (a two-node ray.cluster_utils cluster: placement group + coordinator + node agents) and
Slurm (private munged/slurmctld/slurmd: sbatch + scheduling + srun).

The latency is measured at the executor contract: from ``launch()`` until ``poll()`` first
reports ``running`` (polled every 20 ms), for short jobs run one after another. Server and
DB overhead are not included (bench_core_submit measures those). Goal (not a pass/fail):
local p50 < 0.5 s; Ray and Slurm report what they cost.

    .venv/bin/python bench/bench_executors_latency.py [--quick] [--only local,ray,slurm]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.executors.base import Executor, LaunchRequest  # noqa: E402
from aistack.scheduler.types import Allocation, NodeAlloc  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def measure(ex: Executor, alloc: Allocation, n: int, tag: str) -> tuple[list[float], int]:
    lat: list[float] = []
    failures = 0
    root = Path(tempfile.mkdtemp(prefix=f"aistack-bench-{tag}-"))
    for i in range(n):
        req = LaunchRequest(
            job_id=f"{tag}{i}",
            attempt=0,
            command="sleep 1",
            allocation=alloc,
            job_dir=root / f"{tag}{i}",
        )
        t0 = time.perf_counter()
        h = ex.launch(req)
        while True:
            st = ex.poll(h)
            if st.state == "running" or st.final:
                break
            time.sleep(0.02)
        dt = time.perf_counter() - t0
        if st.state == "running" or st.state == "succeeded":
            lat.append(dt)
        else:
            failures += 1
        ex.cancel(h, grace_s=1)
        deadline = time.monotonic() + 60
        while not ex.poll(h).final and time.monotonic() < deadline:
            time.sleep(0.05)
    return lat, failures


def row(name: str, setup_s: float, lat: list[float], failures: int) -> list[Any]:
    if not lat:
        return [name, len(lat), failures, setup_s, None, None, None, None]
    return [
        name,
        len(lat),
        failures,
        round(setup_s, 2),
        round(statistics.median(lat), 3),
        round(pct(lat, 95), 3),
        round(min(lat), 3),
        round(max(lat), 3),
    ]


def bench_local(n: int) -> list[Any]:
    from aistack.executors.local import LocalExecutor

    t0 = time.perf_counter()
    ex = LocalExecutor(cpus=1)
    node = ex.inventory()[0]
    setup = time.perf_counter() - t0
    lat, fail = measure(ex, Allocation(nodes={node.name: NodeAlloc(cpus=(0,))}), n, "local")
    return row("local", setup, lat, fail)


def bench_ray(n: int) -> list[Any]:
    from aistack.executors.ray import RayExecutor
    from aistack.testing.raycluster import start_ray_cluster

    t0 = time.perf_counter()
    cluster = start_ray_cluster(nodes=2, gpus_per_node=2)
    try:
        ex = RayExecutor(address=cluster.address)
        nodes = ex.inventory()
        setup = time.perf_counter() - t0
        one = Allocation(nodes={nodes[0].name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256)})
        two = Allocation(
            nodes={n_.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256) for n_ in nodes}
        )
        lat1, f1 = measure(ex, one, n, "ray1_")
        lat2, f2 = measure(ex, two, n, "ray2_")
    finally:
        cluster.shutdown()
    return [row("ray, 1-node job", setup, lat1, f1), row("ray, 2-node gang", setup, lat2, f2)]


def bench_slurm(n: int) -> list[Any]:
    from aistack.executors.slurm import SlurmExecutor
    from aistack.testing.slurm import slurm_unavailable_reason, start_slurm

    reason = slurm_unavailable_reason()
    if reason:
        return ["slurm (skipped: " + reason + ")", 0, 0, None, None, None, None, None]
    t0 = time.perf_counter()
    cluster = start_slurm(gpus=2)
    try:
        ex = SlurmExecutor(slurm_conf=cluster.conf_path)
        node = ex.inventory()[0]
        setup = time.perf_counter() - t0
        lat, fail = measure(
            ex,
            Allocation(nodes={node.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256)}),
            n,
            "slurm",
        )
        ex.close()
    finally:
        cluster.stop()
    return row("slurm", setup, lat, fail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="5 jobs per executor (< 60 s plus Ray start-up)"
    )
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--only", default="local,ray,slurm")
    args = ap.parse_args()
    n = args.jobs or (5 if args.quick else 20)
    only = set(args.only.split(","))
    rows: list[list[Any]] = []
    if "local" in only:
        rows.append(bench_local(n))
    if "slurm" in only:
        rows.append(bench_slurm(n))
    if "ray" in only:
        rows.extend(bench_ray(n))
    report(
        "executors_latency",
        f"submit → RUNNING latency per executor ({n} sequential jobs each)",
        ["executor", "jobs", "failed", "setup (s)", "p50 (s)", "p95 (s)", "min (s)", "max (s)"],
        rows,
        {
            "jobs_per_executor": n,
            "goal": "local p50 < 0.5 s; Ray/Slurm reported as measured",
            "quick": args.quick,
        },
    )


if __name__ == "__main__":
    main()
