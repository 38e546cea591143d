"""All-reduce bandwidth test through torch.distributed, reported like nccl-tests.

For a message of ``S`` bytes and ``n`` ranks, with ``t`` the slowest rank's mean time per
all-reduce: ``algbw = S / t`` and ``busbw = algbw * 2 * (n - 1) / n`` (the nccl-tests
definition: the bandwidth each link must carry in a ring all-reduce, comparable across
rank counts). The driver (:func:`run_allreduce`) starts ``nprocs`` worker processes on this
machine through :func:`aistack.launch.build_rank_envs` and :func:`aistack.launch.run_gang`;
rank 0 writes the result as JSON.

Run a worker by hand: ``python -m aistack.launch.allreduce --out r.json --sizes 1K..64M``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, ValidationError
from aistack.launch.env import build_rank_envs, free_port
from aistack.launch.gang import run_gang

log = logging.getLogger(__name__)

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:I?B)?\s*$", re.IGNORECASE)
BACKENDS = ("gloo", "nccl")


def parse_size(text: str, *, field: str = "sizes") -> int:
    """'64M' → 67108864 bytes (binary units)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValidationError(
            f"{field}: cannot read {text!r} as a size", hint="use bytes with K/M/G, e.g. 1K, 64M"
        )
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 4:
        raise ValidationError(f"{field}: {text!r} is below one float32 (4 bytes)", hint="e.g. 1K")
    return value


def parse_sizes(spec: str, *, factor: int = 2) -> list[int]:
    """'1K..64M' → 1K, 2K, 4K … 64M (×factor); '1K,1M' → those two sizes."""
    spec = str(spec).strip()
    if ".." in spec:
        lo_s, hi_s = spec.split("..", 1)
        lo, hi = parse_size(lo_s), parse_size(hi_s)
        if hi < lo:
            raise ValidationError(f"sizes: range {spec!r} runs backwards", hint="e.g. 1K..64M")
        out = []
        s = lo
        while s <= hi:
            out.append(s)
            s *= factor
        return out
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValidationError("sizes: empty", hint="e.g. 1K..64M or 1K,1M")
    return [parse_size(p) for p in parts]


def human_bytes(n: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def bus_factor(nprocs: int) -> float:
    return 2.0 * (nprocs - 1) / nprocs if nprocs > 1 else 0.0


def run_allreduce(
    *,
    backend: str = "gloo",
    nprocs: int = 2,
    sizes: list[int] | None = None,
    iters: int | None = None,
    warmup: int = 3,
    timeout_s: float = 600.0,
    log_file: str | Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark with ``nprocs`` local processes; returns ``{"rows": [...], ...}``.

    Each row: ``size_bytes, count, iters, time_us, algbw_gbps, busbw_gbps`` (GB/s = 1e9 B/s,
    as nccl-tests prints). ``iters`` defaults to an amount that keeps each size ≈ 0.5 s.
    """
    if backend not in BACKENDS:
        raise ValidationError(
            f"backend: unknown {backend!r}", hint=f"use one of: {', '.join(BACKENDS)}"
        )
    if nprocs < 1:
        raise ValidationError(f"nprocs: must be ≥ 1, got {nprocs}", hint="e.g. --nprocs 2")
    sizes = sizes or parse_sizes("1K..64M")
    gpus = None
    if backend == "nccl":
        import torch

        n_gpu = torch.cuda.device_count()
        if n_gpu < nprocs:
            raise ValidationError(
                f"backend: nccl needs one GPU per process ({nprocs}), this machine has {n_gpu}",
                hint="use --backend gloo on CPU, or lower --nprocs",
            )
        gpus = [list(range(nprocs))]
    ranks = build_rank_envs(
        "torch", ["127.0.0.1"], nprocs, free_port(), "allreduce", gpus_per_host=gpus
    )
    with tempfile.TemporaryDirectory(prefix="aistack-allreduce-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "aistack.launch.allreduce",
            "--backend",
            backend,
            "--out",
            str(out),
            "--sizes",
            ",".join(str(s) for s in sizes),
            "--warmup",
            str(warmup),
        ]
        if iters:
            cmd += ["--iters", str(iters)]
        res = run_gang(ranks, cmd, log_file if log_file is not None else Path(tmp) / "log")
        if res.exit_code != 0 or not out.exists():
            raise BackendError(f"all-reduce benchmark failed: {res.message}")
        return json.loads(out.read_text())


def _worker(argv: list[str] | None = None) -> int:
    """One rank of the benchmark (started by run_allreduce, or by torchrun)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="gloo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1K..64M")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=0.5)
    a = ap.parse_args(argv)

    import torch
    import torch.distributed as dist

    dist.init_process_group(backend=a.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.backend == "nccl":
        import os

        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)

        def sync() -> None:
            torch.cuda.synchronize(device)
    else:
        device = torch.device("cpu")

        def sync() -> None:
            return None

    rows = []
    for size in parse_sizes(a.sizes):
        count = size // 4
        buf = torch.ones(count, dtype=torch.float32, device=device)
        for _ in range(a.warmup):
            dist.all_reduce(buf)
        sync()
        if a.iters:
            iters = a.iters
        else:  # calibrate: one timed op, then enough to fill the budget (same on all ranks)
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            sync()
            probe = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device=device)
            dist.all_reduce(probe, op=dist.ReduceOp.MAX)
            iters = int(max(3, min(200, a.budget_s / max(probe.item(), 1e-6))))
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)
        sync()
        elapsed = torch.tensor(
            [(time.perf_counter() - t0) / iters], dtype=torch.float64, device=device
        )
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        t = float(elapsed.item())
        algbw = size / t / 1e9
        rows.append(
            {
                "size_bytes": size,
                "count": count,
                "iters": iters,
                "time_us": t * 1e6,
                "algbw_gbps": algbw,
                "busbw_gbps": algbw * bus_factor(world),
            }
        )
    if rank == 0:
        payload = {
            "backend": a.backend,
            "nprocs": world,
            "dtype": "float32",
            "op": "sum",
            "rows": rows,
            "busbw_formula": "algbw * 2 * (n - 1) / n",
            "torch": torch.__version__,
        }
        Path(a.out).write_text(json.dumps(payload, indent=2))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    _code = _worker()
    # leave without the interpreter's teardown of torch's C++ objects: after a clean run gloo
    # can still abort the process there (SIGABRT, "terminate called without an active
    # exception"), which would fail a finished measurement (aistack.train.run does the same)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_code)
