"""Dynamic batching vs batch size 1: the tiny GPT on CPU behind one replica.

For each configuration a replica process serves ``builtin:tiny-gpt``; a load generator in a
second process (127.0.0.1) runs closed-loop clients at rising concurrency. Goal: at high
concurrency, batching gives >= 3x the throughput of batch size 1 at equal or better p99.

    .venv/bin/python bench/bench_serving_batching.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from _serving import Proc, loadgen  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer levels, shorter runs (< 60 s)")
    ap.add_argument("--model", default="builtin:tiny-gpt")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=32)
    args = ap.parse_args()
    levels = [1, 8, 32] if args.quick else [1, 4, 16, 32, 64]
    seconds = 4.0 if args.quick else 10.0
    body = {"prompt": "The quick brown fox", "max_tokens": args.max_tokens, "temperature": 0}
    configs = [
        ("batch size 1", 1, 0.0),
        (f"dynamic (max {args.max_batch}, 5 ms)", args.max_batch, 5.0),
    ]
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, max_batch, wait_ms in configs:
            p = Proc(
                "aistack.serving.replica",
                [
                    "--model",
                    args.model,
                    "--max-batch-size",
                    str(max_batch),
                    "--max-wait-ms",
                    str(wait_ms),
                ],
                Path(tmp),
                f"b{max_batch}",
            )
            try:
                url = p.wait()
                loadgen(url, "2:1", body)  # warm-up
                steps = ",".join(f"{c}:{seconds}" for c in levels)
                results[label] = loadgen(url, steps, body, max_requests=50_000)
            finally:
                p.stop()
    base_label, dyn_label = configs[0][0], configs[1][0]
    rows = []
    for i, c in enumerate(levels):
        b, d = results[base_label][i], results[dyn_label][i]
        rows.append(
            [
                c,
                round(b["throughput_rps"], 1),
                round(b["p50_ms"], 1),
                round(b["p99_ms"], 1),
                round(d["throughput_rps"], 1),
                round(d["p50_ms"], 1),
                round(d["p99_ms"], 1),
                round(d["throughput_rps"] / b["throughput_rps"], 2)
                if b["throughput_rps"]
                else None,
                b["failed"] + d["failed"],
            ]
        )
    report(
        "serving_batching",
        f"{args.model} on CPU, {args.max_tokens} tokens/request: batch size 1 vs dynamic batching",
        [
            "concurrency (clients)",
            "bs=1 throughput (req/s)",
            "bs=1 p50 (ms)",
            "bs=1 p99 (ms)",
            "dynamic throughput (req/s)",
            "dynamic p50 (ms)",
            "dynamic p99 (ms)",
            "speed-up (x)",
            "failed (requests)",
        ],
        rows,
        {
            "goal": ">= 3x throughput at equal or better p99 under high concurrency",
            "quick": args.quick,
            "seconds_per_level": seconds,
            "raw": results,
        },
    )


if __name__ == "__main__":
    main()
