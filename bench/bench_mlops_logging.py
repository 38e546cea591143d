"""Tracking benchmark: the buffered metrics logger vs per-call ``mlflow.log_metric``, to the same
embedded MLflow server (aistack.mlops.server under /mlflow, uvicorn on 127.0.0.1, behind a token),
plus the server's start-up time and memory.

- buffered: N points (100,000; --quick 20,000) through BufferedMetricsLogger (log_batch of
  1,000), timed from the first log() to close() returning; then every point is read back
  (none lost is checked, not assumed).
- per-call: a bounded sample of MlflowClient.log_metric calls (500; --quick 200), one HTTP
  request each; its rate is extrapolated to N points (said so in the table).
- start-up: seconds from process start to /mlflow/health answering, cold (new AISTACK_HOME,
  MLflow creates its SQLite schema) and warm (same home again); RSS of the server process.
- the full `aistack up` server (API + scheduler + dashboard + MLflow) start-up and RSS too.

Goal (issue #7): buffered ≥ 50× faster than per-call; embedded default starts in < 10 s.

    .venv/bin/python bench/bench_mlops_logging.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import report  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _full_server_startup(home: Path) -> dict:
    """`python -m aistack up` in a fresh home: seconds until /mlflow/health answers, and RSS."""
    import httpx
    import psutil

    from aistack.mlops.testing import free_port

    port = free_port()
    env = {**os.environ, "AISTACK_HOME": str(home)}
    env.pop("AISTACK_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    api_s = None
    logf = (home / "up.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aistack", "up", "--port", str(port)],
        env=env,
        stdout=logf,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = t0 + 120
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                return {
                    "error": f"exited {proc.returncode}: {(home / 'up.log').read_text()[-300:]}"
                }
            tok = home / "token"
            if api_s is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        api_s = time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
            if tok.exists() and api_s is not None:
                try:
                    r = httpx.get(
                        f"http://127.0.0.1:{port}/mlflow/health",
                        headers={"Authorization": f"Bearer {tok.read_text().strip()}"},
                        timeout=60,
                    )
                    if r.status_code == 200:
                        startup = time.perf_counter() - t0
                        time.sleep(1.0)  # let the scheduling loop settle before reading RSS
                        p = psutil.Process(proc.pid)
                        rss = sum(x.memory_info().rss for x in [p, *p.children(recursive=True)])
                        return {"api_ready_s": api_s, "startup_s": startup, "rss_mb": rss / 2**20}
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        return {"error": "no answer from /mlflow/health in 120 s"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="20,000 points, 200 per-call samples")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--per-call", type=int, default=None)
    ap.add_argument("--skip-full-server", action="store_true")
    a = ap.parse_args()
    n = a.points or (20_000 if a.quick else 100_000)
    n_call = a.per_call or (200 if a.quick else 500)

    import mlflow

    from aistack.mlops.logger import BufferedMetricsLogger
    from aistack.mlops.testing import TrackingServer

    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-mlops-"))
    srv = TrackingServer(tmp / "home", token="bench-token")
    srv.start()
    cold_s, cold_api_s, rss_idle = srv.startup_s, srv.api_ready_s, srv.rss_mb()
    srv.stop()
    srv.start()
    warm_s, warm_api_s = srv.startup_s, srv.api_ready_s
    os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token or ""
    try:
        client = mlflow.MlflowClient(srv.tracking_uri)
        exp = client.create_experiment("bench")

        # per-call baseline: a bounded sample, extrapolated
        run_pc = client.create_run(exp, run_name="per-call").info.run_id
        client.log_metric(run_pc, "warmup", 0.0)
        t0 = time.perf_counter()
        for i in range(n_call):
            client.log_metric(run_pc, "loss", 1.0 / (i + 1), step=i)
        per_call_s = time.perf_counter() - t0
        per_call_rate = n_call / per_call_s
        per_call_got = len(client.get_metric_history(run_pc, "loss"))

        # buffered logger: all N points
        run_b = client.create_run(exp, run_name="buffered").info.run_id
        t0 = time.perf_counter()
        ml = BufferedMetricsLogger(run_id=run_b, tracking_uri=srv.tracking_uri)
        for i in range(n):
            ml.log("loss", 1.0 / (i + 1), step=i)
        t_logged = time.perf_counter() - t0
        ml.close()
        buffered_s = time.perf_counter() - t0
        got = client.get_metric_history(run_b, "loss")
        steps = sorted(m.step for m in got)
        lost = n - len(set(steps))
        rss_after = srv.rss_mb()
    finally:
        srv.stop()

    buffered_rate = n / buffered_s
    speedup = buffered_rate / per_call_rate
    full = {} if a.skip_full_server else _full_server_startup(tmp / "full-home")

    rows = [
        [
            "per-call mlflow.log_metric",
            n_call,
            round(per_call_s, 3),
            round(per_call_rate, 1),
            round(n / per_call_rate, 1),
            "extrapolated from the sample",
            n_call - per_call_got,
        ],
        [
            "BufferedMetricsLogger",
            n,
            round(buffered_s, 3),
            round(buffered_rate, 1),
            round(buffered_s, 1),
            f"measured; log() calls took {t_logged:.3f} s",
            lost,
        ],
    ]
    print(
        f"speed-up {speedup:.1f}x (goal >= 50x); {ml.requests} log_batch requests, "
        f"{ml.retries} retries, lost {lost} of {n} points"
    )
    print(
        f"embedded tracking server: answers /healthz after {cold_api_s:.2f} s (cold) / "
        f"{warm_api_s:.2f} s (warm); MLflow ready after {cold_s:.2f} s (cold, creates its DB) / "
        f"{warm_s:.2f} s (warm), "
        f"RSS {rss_idle:.0f} MiB idle, {rss_after:.0f} MiB after the run (goal: start < 10 s)"
    )
    if full:
        if "error" in full:
            print(f"full `aistack up`: not measured ({full['error']})")
        else:
            print(
                f"full `aistack up` (API+scheduler+dashboard+MLflow): /healthz after "
                f"{full['api_ready_s']:.2f} s, /mlflow ready after {full['startup_s']:.2f} s, "
                f"RSS {full['rss_mb']:.0f} MiB"
            )
    load = os.getloadavg()
    report(
        "mlops_logging",
        f"Tracking: {n:,} metric points, buffered logger vs per-call log_metric "
        f"(speed-up {speedup:.1f}x, goal >= 50x)",
        [
            "method",
            "points sent",
            "time (s)",
            "rate (points/s)",
            f"time for {n:,} points (s)",
            "how",
            "points lost",
        ],
        rows,
        extra={
            "points": n,
            "per_call_sample": n_call,
            "speedup_x": speedup,
            "goal_speedup_x": 50,
            "log_batch_requests": ml.requests,
            "retries": ml.retries,
            "points_lost": lost,
            "server_cold_api_ready_s": cold_api_s,
            "server_warm_api_ready_s": warm_api_s,
            "server_cold_start_s": cold_s,
            "server_warm_start_s": warm_s,
            "server_rss_idle_mb": rss_idle,
            "server_rss_after_mb": rss_after,
            "full_server": full,
            "goal_startup_s": 10,
            "load_average_1m_at_start": load_start,
            "load_average_1m_at_end": load[0],
            "cpu_count": os.cpu_count(),
            "quick": a.quick,
        },
    )


if __name__ == "__main__":
    main()
