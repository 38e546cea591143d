"""The reference GPT on a GPU in bf16: tokens/s and MFU, whether the loader keeps up, and the
NCCL all-reduce bus bandwidth where the machine has two GPUs or more.

Each model size runs the trainer a job runs (``python -m aistack.train.run``: bf16 autocast,
``torch.compile``, fused AdamW, ShardLoader with its prefetch thread) on one GPU, over random
token shards written to a temporary directory, and reads its per-step metrics file. Reported per
size: median step time, tokens/s and MFU over the steps after the warm-up (compilation), the
host time spent getting batches per step (``data_wait_s``: ~0 when the loader keeps up), and the
loader alone at the same batch shape on the CPU (its tokens/s over the trainer's: the headroom).
MFU = (6·N + attention FLOPs per token) × tokens/s over the device's peak dense BF16 FLOP/s
(``aistack.train.flops``, from the planning catalog).

Without CUDA nothing is measured: it says so and writes no result file, so a CPU ``make bench``
never replaces a GPU result. ``--cpu-smoke`` runs the same path on the CPU with a tiny model (a
check of this script, not a result: its file goes to the temporary directory, not bench/results).

    .venv/bin/python bench/bench_train_gpu.py [--quick] [--steps N] [--sizes 124M,350M,1.3B]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

# GPT-2 small / medium and a 1.3B model (vocab padded to a multiple of 64, as nanoGPT does)
SIZES: dict[str, dict[str, int]] = {
    "124M": dict(n_layer=12, n_head=12, n_embd=768, seq_len=1024, micro_batch_size=32),
    "350M": dict(n_layer=24, n_head=16, n_embd=1024, seq_len=1024, micro_batch_size=32),
    "1.3B": dict(n_layer=24, n_head=16, n_embd=2048, seq_len=2048, micro_batch_size=8),
}
SMOKE = dict(n_layer=2, n_head=2, n_embd=64, seq_len=64, micro_batch_size=8)
VOCAB = 50304
WARMUP = 10  # steps left out of the medians: compilation, allocator and cuDNN autotuning


def _shards(root: Path, tokens: int, vocab: int) -> Path:
    from aistack.train.shards import write_token_shard

    rng = np.random.default_rng(0)
    per = tokens // 4
    for i in range(4):
        write_token_shard(root / f"data-{i}.tok", [rng.integers(0, vocab, per)], vocab)
    return root


def _loader_rate(data: Path, seq_len: int, batch: int, seconds: float = 3.0) -> float:
    """Tokens/s the ShardLoader delivers alone (int64 tensors, one thread, no GPU copy)."""
    from aistack.train.loader import ShardLoader

    files = sorted(str(p) for p in data.glob("*.tok"))
    ld = ShardLoader(files, seq_len=seq_len, batch_size=batch, seed=0)
    n, t0 = 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            x, _y = ld.next_batch()
            n += x.numel()
    finally:
        ld.close()
    return n / (time.perf_counter() - t0)


class TrainFailed(RuntimeError):
    """One size's trainer failed or ran past its time: the others still run and report."""


def _train(  # type: ignore[no-untyped-def]
    data: Path,
    work: Path,
    name: str,
    model: dict[str, int],
    steps: int,
    smoke: bool,
    timeout_s: float,
):
    metrics = work / f"{name}.jsonl"
    cmd = [sys.executable, "-m", "aistack.train.run", "--data", str(data), "--run-name", name]
    for k, v in model.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    cmd += [
        "--max-steps", str(steps), "--warmup-steps", "5", "--checkpoint-every", "1000000",
        "--keep-checkpoints", "1", "--metrics-file", str(metrics), "--no-resume",
        "--log-every", "10", "--no-mlflow", "--no-save-model",
    ]  # fmt: skip
    cmd += ["--device", "cpu", "--dtype", "float32"] if smoke else ["--compile"]
    env = {**os.environ, "AISTACK_HOME": str(work / "home"), "WORLD_SIZE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=False, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as e:
        raise TrainFailed(f"{name}: trainer still running after {timeout_s:.0f} s") from e
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise TrainFailed(f"{name}: trainer exited {p.returncode}\n{p.stderr[-3000:]}")
    recs = [json.loads(line) for line in metrics.read_text().splitlines()]
    return recs[min(WARMUP, len(recs) - 1) :], wall, p.stderr


def _nccl(ngpus: int, quick: bool) -> dict | None:  # type: ignore[type-arg]
    if ngpus < 2:
        return None
    from aistack.launch.allreduce import parse_sizes, run_allreduce

    return run_allreduce(  # type: ignore[no-any-return]
        backend="nccl", nprocs=ngpus, sizes=parse_sizes("1M..256M" if quick else "1M..1G")
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="124M and 350M, 40 steps")
    ap.add_argument("--steps", type=int, default=0, help="steps per size (default 40 / 60)")
    ap.add_argument("--sizes", default="", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per size's trainer")
    a = ap.parse_args()
    import torch

    smoke = a.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print(
            "bench_train_gpu: no CUDA device on this machine: GPU tokens/s, MFU, loader "
            "keep-up and NCCL bandwidth NOT measured; no result file written "
            "(--cpu-smoke checks this script on the CPU)"
        )
        return
    names = [s for s in a.sizes.split(",") if s] or (["124M", "350M"] if a.quick else list(SIZES))
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        raise SystemExit(f"--sizes: unknown {unknown}; use {', '.join(SIZES)}")
    steps = a.steps or (40 if a.quick else 60)
    if smoke:
        names, steps = ["smoke"], a.steps or 15
    device = "cpu (smoke)" if smoke else torch.cuda.get_device_name(0)
    ngpus = 0 if smoke else torch.cuda.device_count()
    rows, raw, failed = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-train-gpu-") as tmp:
        work = Path(tmp)
        data = _shards(work / "shards", 2_000_000 if smoke else 40_000_000, VOCAB)
        for name in names:
            model = SMOKE if smoke else SIZES[name]
            try:
                recs, wall, log_tail = _train(
                    data, work, f"gpt-{name}", model, steps, smoke, a.timeout
                )
            except TrainFailed as e:  # report it, keep the sizes that ran
                print(e, file=sys.stderr)
                failed[name] = str(e)[-3000:]
                continue
            step_s = statistics.median(r["step_time_s"] for r in recs)
            tps = statistics.median(r["tokens_per_s"] for r in recs)
            mfus = [r["mfu"] for r in recs if r.get("mfu") is not None]
            wait_s = statistics.median(r["data_wait_s"] for r in recs)
            loader_tps = _loader_rate(data, model["seq_len"], model["micro_batch_size"])
            found = re.search(r"([\d.]+)M parameters", log_tail)
            params = f"{found.group(1)} M" if found else "?"
            rows.append(
                [
                    name,
                    params,
                    model["seq_len"],
                    model["micro_batch_size"] * model["seq_len"],
                    step_s * 1e3,
                    tps,
                    statistics.median(mfus) * 100 if mfus else None,
                    wait_s * 1e3,
                    wait_s / step_s * 100,
                    loader_tps / tps,
                    wall,
                ]
            )
            raw[name] = {"model": model, "steps_used": len(recs), "records": recs}
        nccl = _nccl(ngpus, a.quick)
    extra = {
        "device": device,
        "gpus": ngpus,
        "steps": steps,
        "warmup_steps_dropped": WARMUP,
        "quick": a.quick,
        "smoke": smoke,
        "goal": "MFU >= 40% in bf16 on an H100/H200-class GPU; loader keeps up (data wait ~0)",
        "nccl_allreduce": nccl
        if nccl is not None
        else "not measured: needs 2 GPUs or more on one machine",
        "failed": failed,
        "raw": raw,
    }
    report(
        "train_gpu_cpu_smoke" if smoke else "train_gpu",
        f"Reference GPT, {'float32 (smoke check)' if smoke else 'bf16 + torch.compile'}, "
        f"1 × {device}: median of steps after the first {WARMUP} of {steps}",
        [
            "model",
            "parameters",
            "seq len",
            "tokens/step",
            "step (ms)",
            "tokens/s",
            "MFU (%)",
            "data wait (ms/step)",
            "data wait (% of step)",
            "loader alone (× trainer tokens/s)",
            "run wall (s)",
        ],
        rows,
        extra,
        out_dir=Path(tempfile.gettempdir()) if smoke else None,
    )
    if nccl is not None:
        from aistack.launch.allreduce import human_bytes

        report(
            "train_gpu_nccl",
            f"NCCL all-reduce sum float32, {ngpus} × {device}",
            ["size", "iters", "time (µs)", "algbw (GB/s)", "busbw (GB/s)"],
            [
                [
                    human_bytes(r["size_bytes"]),
                    r["iters"],
                    r["time_us"],
                    r["algbw_gbps"],
                    r["busbw_gbps"],
                ]
                for r in nccl["rows"]
            ],  # fmt: skip
            {"raw": nccl},
        )


if __name__ == "__main__":
    main()
