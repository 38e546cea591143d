"""DDP step time through the Ray executor: the same 2-rank torch DDP job (gloo, CPU) placed
as a 2-node gang (one rank on each of two Ray nodes, STRICT_SPREAD) and on 1 node (both ranks
in one bundle, STRICT_PACK), plus a 1-rank baseline.

The Ray "nodes" are raylets of a ray.cluster_utils cluster on this one machine (fake GPUs, no
real network between them), so the 2-node number shows the executor's placement and the
gloo rendezvous across nodes work and what they cost here, not a real interconnect. Each
rank trains a small MLP (≈1.1 M parameters) for N steps; rank 0 prints the mean step time
after warm-up, which aistack collects from the job's log.

    .venv/bin/python bench/bench_executors_ddp.py [--quick]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.executors.base import LaunchRequest  # noqa: E402
from aistack.scheduler.types import Allocation, NodeAlloc  # noqa: E402

TRAIN = """
import os, time, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
steps, warm = int(os.environ["BENCH_STEPS"]), int(os.environ["BENCH_WARMUP"])
torch.set_num_threads(1)
world = int(os.environ.get("WORLD_SIZE", "1"))
if world > 1:
    dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512))
if world > 1:
    model = DDP(model)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 512), torch.randn(64, 512)
times = []
for i in range(steps + warm):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    if i >= warm:
        times.append(time.perf_counter() - t0)
rank = int(os.environ.get("RANK", "0"))
if rank == 0:
    ms = 1000 * sum(times) / len(times)
    print(f"STEP_MS {ms:.3f} node={os.environ.get('AISTACK_RAY_NODE_ID', '')[:12]} loss={loss.item():.4f}", flush=True)
if world > 1:
    dist.destroy_process_group()
"""


def run_job(
    ex: Any, alloc: Allocation, root: Path, tag: str, steps: int, warm: int, ppn: int | None
) -> tuple[float | None, float, str]:
    script = root / "train.py"
    script.write_text(TRAIN)
    req = LaunchRequest(
        job_id=tag,
        attempt=0,
        command=f"{sys.executable} {script}",
        allocation=alloc,
        job_dir=root / tag,
        env={"BENCH_STEPS": str(steps), "BENCH_WARMUP": str(warm), "GLOO_SOCKET_IFNAME": "lo"},
        distributed="torch" if (ppn or 1) * len(alloc.nodes) > 1 else None,
        procs_per_node=ppn,
    )
    t0 = time.perf_counter()
    h = ex.launch(req)
    while not (st := ex.poll(h)).final:
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    text = req.log_path.read_text() if req.log_path.exists() else ""
    m = re.search(r"STEP_MS ([0-9.]+)", text)
    if st.state != "succeeded" or not m:
        return None, wall, f"{st.state}: {st.reason} {text[-300:]}"
    return float(m.group(1)), wall, st.state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 steps per layout")
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    steps = args.steps or (50 if args.quick else 300)
    warm = 10
    from aistack.executors.ray import RayExecutor
    from aistack.testing.raycluster import start_ray_cluster

    cluster = start_ray_cluster(nodes=2, gpus_per_node=2, cpus_per_node=2)
    rows: list[list[Any]] = []
    notes: dict[str, str] = {}
    try:
        ex = RayExecutor(address=cluster.address)
        nodes = ex.inventory()
        root = Path(tempfile.mkdtemp(prefix="aistack-bench-ddp-"))
        layouts = [
            (
                "1 rank, 1 node (baseline)",
                Allocation(nodes={nodes[0].name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=512)}),
                1,
            ),
            (
                "2 ranks, 1 node (STRICT_PACK)",
                Allocation(
                    nodes={nodes[0].name: NodeAlloc(gpus=(0, 1), cpus=(0, 1), memory_mb=1024)}
                ),
                2,
            ),
            (
                "2 ranks, 2 nodes (STRICT_SPREAD)",
                Allocation(
                    nodes={n.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=512) for n in nodes}
                ),
                1,
            ),
        ]
        for i, (name, alloc, ppn) in enumerate(layouts):
            ms, wall, state = run_job(ex, alloc, root, f"ddp{i}", steps, warm, ppn)
            rows.append([name, steps, ms, round(wall, 2)])
            if ms is None:
                notes[name] = state
    finally:
        cluster.shutdown()
    report(
        "executors_ddp_ray",
        "torch DDP (gloo, CPU) step time through the Ray executor: 2 nodes vs 1 node",
        ["layout", "steps", "mean step (ms)", "job wall time incl. start (s)"],
        rows,
        {
            "steps": steps,
            "warmup_steps": warm,
            "model": "MLP 512-1024-512, batch 64",
            "failures": notes,
            "quick": args.quick,
        },
    )


if __name__ == "__main__":
    main()
