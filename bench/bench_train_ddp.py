"""DDP on CPU: the reference GPT's step time with 2 processes (gloo) vs 1 process, on this
machine, both started through aistack.launch (build_rank_envs + run_gang).

Same per-process micro-batch in both runs (weak scaling): 2 processes handle twice the tokens
per step. Rows: 1 process with all N cores as threads, 1 process with 1 thread, and
2 processes with N/2 threads each. On a 2-core machine 2 processes × 1 thread against
1 process × 1 thread is the scaling figure (ideal 2.0).

    .venv/bin/python bench/bench_train_ddp.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    from aistack.launch import build_rank_envs, free_port, run_gang
    from aistack.train.shards import write_token_shard

    steps = 15 if a.quick else 60
    model = (
        dict(n_layer=2, n_head=2, n_embd=64, seq_len=64, micro_batch_size=8, vocab=2048)
        if a.quick
        else dict(n_layer=4, n_head=4, n_embd=128, seq_len=128, micro_batch_size=8, vocab=4096)
    )
    cores = os.cpu_count() or 1
    rows = []
    extra: dict = {"model": model, "steps": steps, "cores": cores, "quick": a.quick}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        rng = np.random.default_rng(0)
        write_token_shard(
            Path(tmp) / "data.tok", [rng.integers(0, model["vocab"], 400_000)], model["vocab"]
        )
        results = {}
        configs = [(1, max(1, cores)), (1, 1), (2, max(1, cores // 2))]
        for nprocs, threads in configs:
            metrics = Path(tmp) / f"m{nprocs}_{threads}.jsonl"
            ranks = build_rank_envs(
                "torch", ["127.0.0.1"], nprocs, free_port(), f"bench{nprocs}",
                base_env={"AISTACK_HOME": str(Path(tmp) / "home")},
                threads_per_proc=threads,
            )  # fmt: skip
            cmd = [
                sys.executable, "-m", "aistack.train.run", "--data", str(Path(tmp) / "data.tok"),
                "--run-name", f"ddp{nprocs}x{threads}", "--n-layer", str(model["n_layer"]),
                "--n-head", str(model["n_head"]), "--n-embd", str(model["n_embd"]),
                "--seq-len", str(model["seq_len"]), "--micro-batch-size",
                str(model["micro_batch_size"]), "--max-steps", str(steps),
                "--checkpoint-every", "100000", "--metrics-file", str(metrics), "--no-resume",
            ]  # fmt: skip
            res = run_gang(ranks, cmd, Path(tmp) / f"log{nprocs}_{threads}")
            if res.exit_code != 0:
                raise SystemExit(res.message)
            recs = [json.loads(line) for line in metrics.read_text().splitlines()]
            times = [r["step_time_s"] for r in recs[3:]]  # skip warm-up steps
            step_s = statistics.median(times)
            tps = model["micro_batch_size"] * model["seq_len"] * nprocs / step_s
            results[(nprocs, threads)] = (step_s, tps)
        base_tps = results[(1, 1)][1]
        for (nprocs, threads), (step_s, tps) in results.items():
            rows.append(
                [
                    nprocs,
                    threads,
                    model["micro_batch_size"] * model["seq_len"] * nprocs,
                    step_s * 1e3,
                    tps,
                    tps / base_tps,
                ]
            )
    report(
        "train_ddp_cpu",
        f"Reference GPT ({model['n_layer']} layers, d={model['n_embd']}, T={model['seq_len']}) "
        f"DDP on CPU, gloo, median step over {steps - 3} steps",
        [
            "processes",
            "threads/process",
            "tokens/step",
            "step time (ms)",
            "tokens/s",
            "× (1 process, 1 thread)",
        ],
        rows,
        extra,
    )


if __name__ == "__main__":
    main()
