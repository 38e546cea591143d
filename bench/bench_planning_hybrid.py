"""Own vs burst on real GPU cluster traces (Microsoft ITP, 10 clusters, 69,351 jobs).

For each cluster the unconstrained demand (every job running from its submission for its
duration) is replayed hour by hour against every fleet size of 8x H100 servers
(hgx-h100-oem from the catalog); the overflow is rented on p5.48xlarge on-demand. Reports the
cheapest fleet and what it saves against renting everything and against owning the peak, and
how long the planner takes.

    .venv/bin/python bench/bench_planning_hybrid.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.planning.catalog import load_catalog  # noqa: E402
from aistack.planning.whatif import (  # noqa: E402
    demand_profile,
    hybrid_sweep,
    peak_concurrency,
    read_trace_csv,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "itp"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="three clusters only (< 60 s)")
    args = ap.parse_args()
    files = sorted(TRACES.glob("cluster*.csv"))
    if not files:
        print(f"no traces under {TRACES} (the shared data folder is absent)")
        return
    if args.quick:
        files = files[:3]
    cat = load_catalog(include_user=False)
    rows = []
    for f in files:
        t = time.perf_counter()
        ivs = read_trace_csv(str(f))
        s = hybrid_sweep(
            demand_profile(ivs),
            peak_gpus=peak_concurrency(ivs),  # the most GPUs at once, not the busiest hour's mean
            gpu="H100",
            server="hgx-h100-oem",
            instance="p5.48xlarge",
            catalog=cat,
        )
        secs = time.perf_counter() - t
        b = s.best
        rows.append(
            [
                f.stem,
                len(ivs),
                f"{s.span_hours / 24:,.0f} d",
                f"{s.mean_gpus:,.1f}",
                f"{s.peak_gpus:,.0f}",
                b.owned_gpus,
                f"{b.owned_utilization:.0%}",
                f"${s.all_cloud.cost_usd_per_month:,.0f}",
                f"${s.own_peak.cost_usd_per_month:,.0f}",
                f"${b.cost_usd_per_month:,.0f}",
                f"{1 - b.cost_usd_per_month / s.all_cloud.cost_usd_per_month:.0%}",
                f"{1 - b.cost_usd_per_month / s.own_peak.cost_usd_per_month:.0%}",
                f"{secs * 1000:,.0f} ms",
            ]
        )
    report(
        "planning_hybrid_itp",
        "Own vs burst on ITP cluster traces (8x H100 servers owned, p5.48xlarge on-demand for the overflow)",
        [
            "cluster",
            "jobs",
            "span",
            "mean GPUs",
            "peak GPUs",
            "best owned GPUs",
            "owned busy",
            "all cloud /month",
            "own peak /month",
            "best mix /month",
            "saving vs cloud",
            "saving vs own peak",
            "planner time",
        ],
        rows,
        {"server": "hgx-h100-oem", "instance": "p5.48xlarge", "quick": args.quick},
    )


if __name__ == "__main__":
    main()
