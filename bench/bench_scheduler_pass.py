"""One scheduling pass with 10,000 queued jobs on a 64-GPU inventory (8 nodes × 8 GPUs).

Server mode: every waiting job gets a pending reason and an estimated start. The cluster
is busy (most GPUs held by running jobs with max_runtime), the queue is a random mix of
1–16-GPU jobs, priorities 0–2, several projects with a quota. Goal (issue #2): < 50 ms.

    .venv/bin/python bench/bench_scheduler_pass.py [--quick] [--queue 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.scheduler import get_policy  # noqa: E402
from aistack.scheduler.types import (  # noqa: E402
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)


def build(queue_len: int, seed: int = 0) -> tuple[list[JobRequest], ClusterState]:
    rng = random.Random(seed)
    nodes = []
    running = []
    for k in range(8):
        busy = rng.choice([8, 8, 7, 6, 4])
        free_g = frozenset(range(busy, 8))
        nodes.append(
            NodeState(
                name=f"n{k}",
                gpu_type="H100",
                gpus_total=tuple(range(8)),
                gpus_free=free_g,
                cpus_total=tuple(range(64)),
                cpus_free=frozenset(range(busy * 4, 64)),
                memory_total_mb=1_000_000,
                memory_free_mb=1_000_000 - busy * 50_000,
            )
        )
        for g in range(busy):
            running.append(
                RunningJob(
                    id=f"r{k}-{g}",
                    project=f"p{g % 4}",
                    allocation=Allocation(
                        nodes={
                            f"n{k}": NodeAlloc(
                                gpus=(g,), cpus=tuple(range(g * 4, g * 4 + 4)), memory_mb=50_000
                            )
                        }
                    ),
                    start_time=-rng.uniform(0, 3600),
                    max_runtime_s=rng.choice([3600.0, 7200.0, 14400.0]),
                    protected_until=0.0,
                )
            )
    sizes = [1] * 60 + [2] * 15 + [4] * 12 + [8] * 10 + [16] * 3
    queue = []
    for i in range(queue_len):
        g = rng.choice(sizes)
        queue.append(
            JobRequest(
                id=f"j{i}",
                project=f"p{rng.randrange(6)}",
                priority=rng.choice([0, 0, 0, 1, 2]),
                submit_time=float(i),
                gpus=min(8, g),
                nodes=max(1, g // 8),
                cpus=4,
                memory_mb=20_000,
                max_runtime_s=rng.choice([600.0, 3600.0, 7200.0, None]),
            )
        )
    return queue, ClusterState(
        nodes=tuple(nodes), running=tuple(running), gpu_quotas={"p5": 8, "p4": 16}
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--queue", type=int, default=10_000)
    ap.add_argument("--policies", default="default,easy,priority,fifo,fairshare,las")
    args = ap.parse_args()
    reps = 5 if args.quick else 20
    queue, cluster = build(args.queue)
    rows = []
    for name in args.policies.split(","):
        pol = get_policy(name)
        times = []
        cpu = []
        d = None
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            d = pol.schedule(queue, cluster, 0.0)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        assert d is not None
        with_est = sum(1 for p in d.pending.values() if p.estimated_start is not None)
        rows.append(
            [
                name,
                len(queue),
                len(d.starts),
                len(d.pending),
                with_est,
                round(statistics.median(times), 2),
                round(sorted(times)[int(0.95 * (len(times) - 1))], 2),
                round(statistics.median(cpu), 2),
                "yes" if statistics.median(times) < 50 else "no",
            ]
        )
    report(
        "bench_scheduler_pass",
        f"one scheduling pass, {len(queue):,} queued jobs, 64 GPUs (8×8), pending reasons + estimates",
        [
            "policy",
            "queued",
            "starts",
            "pending reasons",
            "with estimate",
            "p50 (ms)",
            "p95 (ms)",
            "p50 CPU (ms)",
            "goal < 50 ms (p50)",
        ],
        rows,
        {"reps": reps, "goal_ms": 50},
    )


if __name__ == "__main__":
    main()
