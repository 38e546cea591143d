"""A plain torchrun-style DDP script: nothing in it knows about aistack.

Run it with torchrun::

    torchrun --nproc_per_node=2 examples/train/ddp_torchrun.py --out /tmp/ddp

or as an aistack job with ``distributed: torch`` (aistack sets the same environment).
Each rank writes its final parameters to ``<out>/rank<N>.pt``. ``--fail-rank N`` makes rank
N raise after the first step (to see a failing gang).
"""

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fail-rank", type=int, default=-1)
    args = parser.parse_args()

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)  # reads MASTER_ADDR, RANK, WORLD_SIZE, ...
    rank = dist.get_rank()
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")

    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
    ).to(device)
    ddp = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)

    gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own data
    try:
        train(args, ddp, opt, gen, device, rank)
    except BaseException:
        # tear the group down before the interpreter does: a gloo thread still running at
        # exit can make the process abort (SIGABRT) instead of exiting with the error
        dist.destroy_process_group()
        raise
    os.makedirs(args.out, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, f"{args.out}/rank{rank}.pt")
    dist.barrier()  # every rank done with the group before any tears it down
    dist.destroy_process_group()


def train(args, ddp, opt, gen, device, rank) -> None:  # type: ignore[no-untyped-def]
    for step in range(args.steps):
        x = torch.randn(32, 16, generator=gen).to(device)
        y = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0 and rank == args.fail_rank:
            raise RuntimeError(f"rank {rank} failed on purpose at step {step}")
        if rank == 0 and step % 5 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)


if __name__ == "__main__":
    main()
    # leave without the interpreter's teardown of torch's C++ objects: after a clean run,
    # gloo's threads can still abort the process there (SIGABRT, "terminate called without
    # an active exception"; seen now and then on a loaded 2-core machine), and torchrun or
    # aistack would then report a finished rank as failed. The group is destroyed above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
