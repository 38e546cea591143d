"""A small closed-loop HTTP load generator for services (used by the serving benchmarks).

``python -m aistack.serving.loadgen --url URL --path /v1/completions --body '{...}'
--steps 4:10,16:20 [--max-requests N] [--out FILE.json]``

``--steps`` is a list of ``concurrency:seconds``; each worker sends its next request as soon
as the previous one is answered. The run is bounded by the steps' total time and by
``--max-requests``. The output has a summary per step and, with ``--out``, every request as
``[start offset s, latency s, status]`` (status -1: connection error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aistack.serving.metrics import quantile

# A step's workers (one task each, and an idle connection each): as many as a replica can be
# sent at once (spec.MAX_TARGET_INFLIGHT); a step lasts a day at most (spec.MAX_TIME_S).
MAX_CONCURRENCY = 1_000_000
MAX_STEP_S = 86_400.0


def parse_steps(text: str) -> list[tuple[int, float]]:
    """``4:10,16:20`` → ``[(4, 10.0), (16, 20.0)]``. A concurrency from 0 to 1000000 and a
    finite number of seconds > 0 and <= 86400: ``4:nan`` ran no request (NaN fails every
    comparison, so it was taken), ``4:inf`` never ended and ``1000000000:1`` started a
    billion workers."""
    steps: list[tuple[int, float]] = []
    for part in text.split(","):
        c, _, d = part.partition(":")
        try:
            steps.append((int(c), float(d)))
        except ValueError:
            raise SystemExit(
                f"--steps: cannot read {part!r}; use concurrency:seconds, e.g. 4:10"
            ) from None
    if not steps:
        raise SystemExit("--steps: give at least one concurrency:seconds with seconds > 0")
    for workers, seconds in steps:
        if not 0 <= workers <= MAX_CONCURRENCY:
            raise SystemExit(
                f"--steps: concurrency {workers} is out of range; use 0 to "
                f"{MAX_CONCURRENCY:,} workers"
            )
        if not 0 < seconds <= MAX_STEP_S:  # also NaN and infinity
            raise SystemExit(
                f"--steps: a step of {seconds:g} seconds is out of range; use a number of "
                f"seconds > 0 and <= {MAX_STEP_S:g}"
            )
    return steps


async def run(
    url: str,
    body: bytes,
    steps: list[tuple[int, float]],
    *,
    max_requests: int = 100_000,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    from urllib.parse import urlsplit

    from aistack.serving.upstream import UpstreamError, UpstreamPool

    records: list[tuple[float, float, int, int]] = []  # start, latency, status, step
    t0 = time.perf_counter()
    sent = 0
    u = urlsplit(url)
    base, target = f"{u.scheme}://{u.netloc}", (u.path or "/") + (f"?{u.query}" if u.query else "")
    # the same lean keep-alive client as the router, so the load generator's own CPU use
    # (it shares the machine) stays small
    client = UpstreamPool(read_timeout_s=timeout_s, max_idle=max(c for c, _ in steps) + 4)
    headers = [("content-type", "application/json")]
    try:
        for si, (conc, dur) in enumerate(steps):
            end = time.perf_counter() + dur

            async def worker(si: int = si, end: float = end) -> None:
                nonlocal sent
                while time.perf_counter() < end and sent < max_requests:
                    sent += 1
                    start = time.perf_counter()
                    try:
                        status = (await client.request(base, "POST", target, headers, body))[0]
                    except UpstreamError:
                        status = -1
                    records.append((start - t0, time.perf_counter() - start, status, si))

            if conc == 0:
                await asyncio.sleep(dur)
            else:
                await asyncio.gather(*(worker() for _ in range(conc)))
    finally:
        await client.close()
    summary = []
    for si, (conc, dur) in enumerate(steps):
        rows = [r for r in records if r[3] == si]
        ok = [r[1] for r in rows if r[2] == 200]
        span = (max(r[0] + r[1] for r in rows) - min(r[0] for r in rows)) if rows else dur
        summary.append(
            {
                "concurrency": conc,
                "seconds": dur,
                "requests": len(rows),
                "ok": len(ok),
                "failed": len(rows) - len(ok),
                "throughput_rps": len(ok) / span if span > 0 else 0.0,
                "p50_ms": quantile(ok, 0.5) * 1000,
                "p99_ms": quantile(ok, 0.99) * 1000,
            }
        )
    return {"steps": summary, "records": [[round(a, 4), round(b, 5), c] for a, b, c, _ in records]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aistack.serving.loadgen")
    ap.add_argument("--url", required=True, help="service base URL")
    ap.add_argument("--path", default="/v1/completions")
    ap.add_argument("--body", default='{"prompt": "Hello", "max_tokens": 16, "temperature": 0}')
    ap.add_argument("--steps", default="8:10", help="concurrency:seconds[,…]")
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--out", help="write the full result (with every request) here")
    args = ap.parse_args(argv)
    result = asyncio.run(
        run(
            args.url.rstrip("/") + args.path,
            args.body.encode(),
            parse_steps(args.steps),
            max_requests=args.max_requests,
        )
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh)
    sys.stdout.write(json.dumps(result["steps"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
