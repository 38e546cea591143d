"""Autoscaling under a step load: time to scale up, failed requests, time to scale down.

A service (controller + router + replicas, as `aistack serve deploy` starts it) serves a model
whose capacity per replica is bounded: by default ``builtin:echo?delay_ms=50`` with batch
size 1 (20 requests/s per replica, no CPU used while "computing", so extra replicas add real
capacity on a 2-core machine; pass --model builtin:tiny-gpt for the GPT). A load generator in a
second process steps from low to high concurrency and back. The service status is sampled
every 0.25 s. Writes bench/results/serving_autoscale.json and serving_autoscale.png (replicas
and latency over time).

    .venv/bin/python bench/bench_serving_autoscale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, report  # noqa: E402
from _serving import loadgen  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter phases (< 60 s)")
    ap.add_argument("--model", default="builtin:echo?delay_ms=50")
    ap.add_argument("--max-replicas", type=int, default=4)
    args = ap.parse_args()
    low, high = 2, 16
    if args.quick:
        phases, cooldown = [(low, 6.0), (high, 18.0), (low, 18.0)], 5.0
    else:
        phases, cooldown = [(low, 15.0), (high, 40.0), (low, 45.0)], 15.0
    tmp = tempfile.mkdtemp(prefix="aistack-bench-serve-")
    os.environ["AISTACK_HOME"] = tmp
    from aistack.serving import manager
    from aistack.settings import reset_settings_cache

    reset_settings_cache()
    autoscale = {
        "min_replicas": 1,
        "max_replicas": args.max_replicas,
        "target_inflight": 4.0,
        "upscale_delay_s": 1.0,
        "downscale_cooldown_s": cooldown,
        "metric_window_s": 2.0,
    }
    t_deploy = time.perf_counter()
    st = manager.deploy(
        args.model,
        name="bench",
        max_batch_size=1,
        wait_ready_s=180,
        extra={"autoscale": autoscale, "health_interval_s": 0.25},
    )
    deploy_s = time.perf_counter() - t_deploy
    samples: list[tuple[float, int, int]] = []  # t, ready, desired
    stop = threading.Event()
    t0 = [0.0]

    def sample() -> None:
        while not stop.is_set():
            try:
                s = manager.status("bench")
                samples.append(
                    (time.perf_counter() - t0[0], s["ready_replicas"], s["desired_replicas"])
                )
            except Exception:  # noqa: BLE001 - a missed sample is only a gap in the plot
                pass
            time.sleep(0.25)

    out = Path(tmp) / "load.json"
    try:
        t0[0] = time.perf_counter()
        threading.Thread(target=sample, daemon=True).start()
        steps = ",".join(f"{c}:{d}" for c, d in phases)
        summary = loadgen(st["url"], steps, {"prompt": "hello", "max_tokens": 8}, out=out)
        time.sleep(1.0)
        stop.set()
        final = manager.status("bench")
    finally:
        manager.delete("bench")
    records = json.loads(out.read_text())["records"]
    step_up_t = phases[0][1]
    step_down_t = phases[0][1] + phases[1][1]
    first_desired = next((t for t, _, d in samples if t >= step_up_t and d > 1), None)
    first_ready = next((t for t, r, _ in samples if t >= step_up_t and r > 1), None)
    peak = max((r for _, r, _ in samples), default=0)
    peak_t = next((t for t, r, _ in samples if r == peak), None)
    back = next((t for t, _, d in samples if t >= step_down_t and d == 1), None)
    failed = sum(1 for _, _, s in records if s != 200)
    rows = [
        ["load step up (2 → 16 clients) at", f"{step_up_t:.1f} s"],
        [
            "scale-up decided after",
            f"{first_desired - step_up_t:.2f} s" if first_desired else "never",
        ],
        [
            "second replica ready after",
            f"{first_ready - step_up_t:.2f} s" if first_ready else "never",
        ],
        [
            "peak replicas (ready)",
            f"{peak} replicas at {peak_t:.1f} s" if peak_t is not None else "-",
        ],
        ["load step down (16 → 2 clients) at", f"{step_down_t:.1f} s"],
        [
            "scaled back to 1 desired after",
            f"{back - step_down_t:.2f} s (cooldown {cooldown:g} s)"
            if back
            else "not within the run",
        ],
        ["requests sent", f"{len(records)} requests"],
        ["requests failed", f"{failed} requests"],
        ["deploy (1 replica ready)", f"{deploy_s:.2f} s"],
    ]
    for s in summary:
        rows.append(
            [
                f"phase {s['concurrency']} clients, {s['seconds']:g} s",
                f"{s['throughput_rps']:.1f} req/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms",
            ]
        )
    png = RESULTS / "serving_autoscale.png"
    _plot(samples, records, phases, png)
    report(
        "serving_autoscale",
        f"autoscaling under a step load ({args.model}, target 4 in-flight/replica)",
        ["measure", "value"],
        rows,
        {
            "quick": args.quick,
            "plot": str(png),
            "phases": phases,
            "autoscale": autoscale,
            "decisions": final["autoscaler"]["decisions"],
            "samples": samples,
            "failed": failed,
        },
    )


def _plot(samples, records, phases, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(9, 4.5))
    ts = [s[0] for s in samples]
    ax1.step(ts, [s[1] for s in samples], where="post", label="ready replicas", color="tab:blue")
    ax1.step(
        ts,
        [s[2] for s in samples],
        where="post",
        label="desired replicas",
        color="tab:blue",
        linestyle="--",
    )
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("replicas")
    ax2 = ax1.twinx()
    # per-second p50 / p99 of requests by start time
    buckets: dict[int, list[float]] = {}
    for start, lat, status in records:
        if status == 200:
            buckets.setdefault(int(start), []).append(lat * 1000)
    secs = sorted(buckets)
    from aistack.serving.metrics import quantile

    ax2.plot(
        secs, [quantile(buckets[s], 0.5) for s in secs], color="tab:orange", label="p50 latency"
    )
    ax2.plot(
        secs,
        [quantile(buckets[s], 0.99) for s in secs],
        color="tab:red",
        label="p99 latency",
        alpha=0.7,
    )
    ax2.set_ylabel("latency (ms)")
    edge = 0.0
    for c, d in phases:
        ax1.axvspan(edge, edge + d, alpha=0.06 if c > 4 else 0.0, color="gray")
        edge += d
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    ax1.set_title("step load: replicas and latency over time")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
