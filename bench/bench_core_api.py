"""API throughput: N job submissions from 8 concurrent clients; throughput and latency
percentiles. Runs against the in-memory executor (jobs finish at once, so the numbers are the
API + DB + scheduler, not process start-up) and, beside it, the local executor."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _server import BenchServer  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def run(executor: str, total: int, clients: int) -> list[object]:
    lat: list[float] = []
    lock = threading.Lock()
    errors = [0]
    with BenchServer(AISTACK_EXECUTOR=executor) as srv:
        per = total // clients

        def worker() -> None:
            c = srv.client()
            for _ in range(per):
                t0 = time.perf_counter()
                try:
                    c.submit({"command": "true", "name": "bench"})
                except Exception:  # noqa: BLE001
                    with lock:
                        errors[0] += 1
                    continue
                dt_ = time.perf_counter() - t0
                with lock:
                    lat.append(dt_)

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stored = len(srv.client().list_jobs(limit=10000))
    return [
        executor,
        per * clients,
        clients,
        round(per * clients / wall, 1),
        round(pct(lat, 50) * 1000, 2),
        round(pct(lat, 99) * 1000, 2),
        errors[0],
        stored,
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    total = 200 if a.quick else a.jobs
    rows = [run("memory", total, a.clients)]
    rows.append(run("local", min(total, 200), a.clients))
    report(
        "core_api_throughput",
        f"API: job submissions from {a.clients} concurrent clients",
        [
            "executor",
            "submissions",
            "clients",
            "throughput (req/s)",
            "p50 (ms)",
            "p99 (ms)",
            "errors",
            "jobs stored",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
