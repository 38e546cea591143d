"""Submit → RUNNING latency on the embedded default (SQLite + local executor), p50/p95.

Each job is submitted alone on an idle cluster; latency = the server's started_at minus its
submitted_at (the scheduler pass, the DB writes and the process launch), and, beside it, what a
client polling every 10 ms observes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _server import BenchServer  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 30 if a.quick else a.jobs
    server_lat, client_lat = [], []
    with BenchServer() as srv:
        c = srv.client()
        for _ in range(n):
            t0 = time.perf_counter()
            j = c.submit({"command": "true"})
            while True:
                j = c.get_job(j["id"])
                if j["state"] != "QUEUED":
                    break
                time.sleep(0.01)
            client_lat.append(time.perf_counter() - t0)
            j = c.wait(j["id"], timeout=60, poll_s=0.05)
            s = dt.datetime.fromisoformat(j["submitted_at"])
            r = dt.datetime.fromisoformat(j["started_at"])
            server_lat.append((r - s).total_seconds())
        startup = srv.startup_s
    rows = [
        [
            "server (started_at − submitted_at)",
            n,
            round(pct(server_lat, 50), 4),
            round(pct(server_lat, 95), 4),
            round(statistics.mean(server_lat), 4),
        ],
        [
            "client (POST → sees RUNNING, 10 ms polls)",
            n,
            round(pct(client_lat, 50), 4),
            round(pct(client_lat, 95), 4),
            round(statistics.mean(client_lat), 4),
        ],
    ]
    report(
        "core_submit_latency",
        "submit → RUNNING latency, embedded default (goal p50 < 0.5 s)",
        ["measured", "jobs", "p50 (s)", "p95 (s)", "mean (s)"],
        rows,
        {"server_startup_s": round(startup, 2), "goal_p50_s": 0.5},
    )


if __name__ == "__main__":
    main()
