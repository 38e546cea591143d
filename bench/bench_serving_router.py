"""Router overhead: latency through the router vs straight to the replica.

One replica serves the fake echo model (no model time, so the numbers are HTTP + routing);
the same load (a second process on 127.0.0.1) goes (a) straight to the replica, (b) through
a standalone router process (``python -m aistack.serving.router``) in front of it.

    .venv/bin/python bench/bench_serving_router.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _serving import Proc, free_port, loadgen  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="builtin:echo")
    args = ap.parse_args()
    levels = [1, 16] if args.quick else [1, 4, 16, 64]
    seconds = 5.0 if args.quick else 10.0
    body = {"prompt": "hello router", "max_tokens": 8}
    with tempfile.TemporaryDirectory() as tmp:
        rep = Proc(
            "aistack.serving.replica",
            ["--model", args.model, "--max-batch-size", "1"],
            Path(tmp),
            "replica",
        )
        router = None
        try:
            direct_url = rep.wait()
            port = free_port()
            router = Proc(
                "aistack.serving.router",
                ["--replica", direct_url, "--port", str(port)],
                Path(tmp),
                "router",
            )
            router_url = router.wait(url=f"http://127.0.0.1:{port}")
            steps = ",".join(f"{c}:{seconds}" for c in levels)
            loadgen(direct_url, "2:1", body)
            loadgen(router_url, "2:1", body)
            import psutil

            direct = loadgen(direct_url, steps, body)
            rproc = psutil.Process(router.proc.pid)
            c0 = sum(rproc.cpu_times()[:2])
            routed = loadgen(router_url, steps, body)
            router_cpu_s = sum(rproc.cpu_times()[:2]) - c0
            n_routed = sum(s["requests"] for s in routed)
        finally:
            if router:
                router.stop()
            rep.stop()
    print(
        f"router CPU time: {1000 * router_cpu_s / max(1, n_routed):.2f} ms per request ({n_routed} requests)"
    )
    rows = []
    for i, c in enumerate(levels):
        d, r = direct[i], routed[i]
        rows.append(
            [
                c,
                round(d["p50_ms"], 2),
                round(r["p50_ms"], 2),
                round(r["p50_ms"] - d["p50_ms"], 2),
                round(d["p99_ms"], 2),
                round(r["p99_ms"], 2),
                round(d["throughput_rps"], 1),
                round(r["throughput_rps"], 1),
                d["failed"] + r["failed"],
            ]
        )
    report(
        "serving_router",
        f"router overhead ({args.model}, one replica, {seconds:g} s per level)",
        [
            "concurrency (clients)",
            "direct p50 (ms)",
            "router p50 (ms)",
            "added p50 (ms)",
            "direct p99 (ms)",
            "router p99 (ms)",
            "direct throughput (req/s)",
            "router throughput (req/s)",
            "failed (requests)",
        ],
        rows,
        {
            "quick": args.quick,
            "direct": direct,
            "router": routed,
            "router_cpu_ms_per_request": round(1000 * router_cpu_s / max(1, n_routed), 3),
        },
    )


if __name__ == "__main__":
    main()
