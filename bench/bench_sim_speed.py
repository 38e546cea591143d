"""Simulator speed: a 100,000-job trace per policy on one core (goal < 60 s each).

The trace is synthetic but ITP-like (80% 1-GPU jobs, up to 64-GPU gangs, log-normal
runtimes with a heavy tail), one job every 300 s on average, on 25 nodes × 8 GPUs
(offered load 0.76). Time is the process CPU time of one `simulate()` call (the shared
benchmark machine has other work running, so wall time is also shown).

    .venv/bin/python bench/bench_sim_speed.py [--quick] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.scheduler import get_policy  # noqa: E402
from aistack.scheduler.simulator import (
    SimConfig,
    offered_load,
    simulate,
    synthetic_mix,
    with_estimates,
)  # noqa: E402

# the default with its optional sibling learning (docs/scheduler.md)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default-sib": ("default", {"siblings": "burst"})
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10,000 jobs instead of 100,000")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument(
        "--policies", default="fifo,easy,sjf,fairshare,priority,las,srtf,default,default-sib"
    )
    args = ap.parse_args()
    n = args.jobs or (10_000 if args.quick else 100_000)
    trace = with_estimates(synthetic_mix(n, seed=1, mean_gap_s=300.0))
    cfg = SimConfig(nodes=25, gpus_per_node=8)
    load = offered_load(trace, cfg.total_gpus)
    rows = []
    for p in args.policies.split(","):
        w0, c0 = time.perf_counter(), time.process_time()
        name, opts = VARIANTS.get(p, (p, {}))
        r = simulate(trace, get_policy(name, explain=False, **opts), cfg)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        m = r.metrics
        rows.append(
            [
                p,
                n,
                m["events"],
                m["passes"],
                m["preemptions"],
                round(cpu, 1),
                round(wall, 1),
                round(1e6 * cpu / max(1, m["passes"]), 1),
                "yes" if cpu * 100_000 / n < 60 else "no",
            ]
        )
        print(f"{p}: {cpu:.1f} s cpu, {wall:.1f} s wall", flush=True)
    report(
        "bench_sim_speed",
        f"simulator speed: {n:,} jobs, 25×8 GPUs, load {load:.2f}",
        [
            "policy",
            "jobs",
            "events",
            "passes",
            "preemptions",
            "cpu s",
            "wall s",
            "µs cpu / pass",
            "< 60 s per 100k",
        ],
        rows,
        {"goal_s_per_100k": 60, "offered_load": load},
    )


if __name__ == "__main__":
    main()
