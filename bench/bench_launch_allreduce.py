"""All-reduce bus bandwidth per message size (nccl-tests style) through aistack.launch.

.venv/bin/python bench/bench_launch_allreduce.py [--quick] [--backend gloo|nccl] [--nprocs 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backend", default="gloo")
    ap.add_argument("--nprocs", type=int, default=2)
    a = ap.parse_args()
    from aistack.launch.allreduce import human_bytes, parse_sizes, run_allreduce

    sizes = parse_sizes("1K..4M" if a.quick else "1K..64M")
    res = run_allreduce(backend=a.backend, nprocs=a.nprocs, sizes=sizes)
    rows = [
        [human_bytes(r["size_bytes"]), r["iters"], r["time_us"], r["algbw_gbps"], r["busbw_gbps"]]
        for r in res["rows"]
    ]
    report(
        f"launch_allreduce_{a.backend}_{a.nprocs}",
        f"all-reduce sum float32, {a.backend}, {res['nprocs']} processes on one machine",
        ["size", "iters", "time (µs)", "algbw (GB/s)", "busbw (GB/s)"],
        rows,
        {"raw": res, "quick": a.quick},
    )


if __name__ == "__main__":
    main()
