"""Per-rank environment for distributed frameworks, built from a list of hosts only.

The same builder serves the local executor (``hosts=["127.0.0.1"]``), Ray (one entry per
placement-group bundle node) and Slurm (the expanded ``SLURM_JOB_NODELIST``): it needs
nothing but the hosts, the processes per host and a port.

Rank layout: host ``h`` runs local ranks ``0..procs_per_host-1``; the global rank is
``h * procs_per_host + local_rank`` (torchrun's layout). ``hosts[0]`` is the master /
coordinator / parameter-server root.

=============  ==================================================================
framework      variables (in addition to ``base_env``)
=============  ==================================================================
torch          MASTER_ADDR, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE,
               LOCAL_WORLD_SIZE, GROUP_RANK, NODE_RANK, GROUP_WORLD_SIZE, ROLE_NAME,
               ROLE_RANK, ROLE_WORLD_SIZE, TORCHELASTIC_RUN_ID,
               TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_MAX_RESTARTS,
               TORCHELASTIC_USE_AGENT_STORE=False (there is no agent: rank 0 hosts the
               TCPStore, as with ``init_method="env://"``), OMP_NUM_THREADS
jax            JAX_COORDINATOR_ADDRESS (host:port), JAX_COORDINATOR_PORT,
               JAX_NUM_PROCESSES, JAX_PROCESS_ID, JAX_LOCAL_DEVICE_IDS (with GPUs);
               a script calls ``jax.distributed.initialize(
               os.environ["JAX_COORDINATOR_ADDRESS"], int(os.environ["JAX_NUM_PROCESSES"]),
               int(os.environ["JAX_PROCESS_ID"]))`` (recent jax reads the address itself)
tensorflow     TF_CONFIG = {"cluster": {"worker": [host:port+local_rank, ...]},
               "task": {"type": "worker", "index": rank}} — each worker listens on
               ``master_port + local_rank`` of its host
mxnet          DMLC_ROLE=worker, DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER,
               DMLC_NUM_WORKER, DMLC_WORKER_ID, DMLC_NODE_HOST; the scheduler and server
               processes a ``dist_*`` kvstore also needs come from
               :func:`build_mxnet_ps_envs`
=============  ==================================================================

GPUs: with ``gpus_per_host`` each process gets CUDA_VISIBLE_DEVICES. For torch the value is
the host's whole allocation (e.g. ``"2,3"``) so that the torchrun idiom
``torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))`` keeps working unmodified; the
process's own GPU is ``AISTACK_GPU``. For jax, tensorflow and mxnet each process sees only
its own GPU. ``isolate_gpus=True`` forces one visible GPU per process for every framework
(then a torch script must use ``cuda:0``).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field

from aistack.errors import ValidationError

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "tensorflow", "mxnet")
_ALIASES = {
    "torch": "torch",
    "pytorch": "torch",
    "jax": "jax",
    "tensorflow": "tensorflow",
    "tf": "tensorflow",
    "mxnet": "mxnet",
}


@dataclass(kw_only=True)
class RankSpec:
    """One process of a gang: where it runs and the environment additions it needs."""

    host: str
    rank: int
    local_rank: int
    env: dict[str, str] = field(default_factory=dict)


def normalize_framework(framework: str) -> str:
    """'pytorch' → 'torch', 'tf' → 'tensorflow'; anything unknown → ValidationError."""
    key = str(framework or "").strip().lower()
    if key not in _ALIASES:
        raise ValidationError(
            f"distributed: unknown framework {framework!r}",
            hint=f"use one of: {', '.join(FRAMEWORKS)}",
            field="distributed",
            allowed=list(FRAMEWORKS),
        )
    return _ALIASES[key]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return int(s.getsockname()[1])


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity (a job's pinned cores), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _validate(
    hosts: list[str], procs_per_host: int, master_port: int, gpus_per_host: list[list[int]] | None
) -> None:
    if not hosts or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise ValidationError(
            f"hosts: need at least one non-empty host name, got {hosts!r}",
            hint="e.g. hosts=['127.0.0.1']",
            field="hosts",
        )
    if len(set(hosts)) != len(hosts):
        raise ValidationError(
            f"hosts: each host may appear once, got {hosts!r}",
            hint="raise procs_per_host instead of repeating a host",
            field="hosts",
        )
    if (
        isinstance(procs_per_host, bool)
        or not isinstance(procs_per_host, int)
        or procs_per_host < 1
    ):
        raise ValidationError(
            f"procs_per_host: must be an integer ≥ 1, got {procs_per_host!r}",
            hint="one process per GPU, or per CPU slot without GPUs",
            field="procs_per_host",
        )
    if (
        isinstance(master_port, bool)
        or not isinstance(master_port, int)
        or not 1 <= master_port <= 65535
    ):
        raise ValidationError(
            f"master_port: must be a TCP port 1..65535, got {master_port!r}",
            hint="use aistack.launch.free_port()",
            field="master_port",
        )
    if gpus_per_host is not None:
        if len(gpus_per_host) != len(hosts):
            raise ValidationError(
                f"gpus_per_host: one list per host expected ({len(hosts)}), got {len(gpus_per_host)}",
                field="gpus_per_host",
            )
        for h, gpus in zip(hosts, gpus_per_host, strict=True):
            if len(gpus) != procs_per_host:
                raise ValidationError(
                    f"gpus_per_host: host {h} has {len(gpus)} GPUs for {procs_per_host} processes",
                    hint="give exactly one GPU index per process (procs_per_host = GPUs per host)",
                    field="gpus_per_host",
                )


def build_rank_envs(
    framework: str,
    hosts: list[str],
    procs_per_host: int,
    master_port: int,
    job_id: str,
    gpus_per_host: list[list[int]] | None = None,
    base_env: dict[str, str] | None = None,
    *,
    threads_per_proc: int | None = None,
    isolate_gpus: bool | None = None,
) -> list[RankSpec]:
    """One :class:`RankSpec` per process, ordered by global rank (see the module docstring).

    ``base_env`` is copied into every rank first; the framework variables override it,
    except ``OMP_NUM_THREADS`` which a user value keeps. ``threads_per_proc`` sets
    ``OMP_NUM_THREADS`` (default: the cores this process may run on — its CPU affinity, i.e.
    a job's pinned cores — divided by ``procs_per_host``, at least 1).
    """
    fw = normalize_framework(framework)
    _validate(hosts, procs_per_host, master_port, gpus_per_host)
    nnodes = len(hosts)
    world = nnodes * procs_per_host
    master = hosts[0]
    isolate = (fw != "torch") if isolate_gpus is None else bool(isolate_gpus)
    threads = threads_per_proc or max(1, usable_cpus() // procs_per_host)
    tf_workers = [f"{h}:{master_port + lr}" for h in hosts for lr in range(procs_per_host)]

    ranks: list[RankSpec] = []
    for node, host in enumerate(hosts):
        for local in range(procs_per_host):
            rank = node * procs_per_host + local
            env: dict[str, str] = {str(k): str(v) for k, v in (base_env or {}).items()}
            env.setdefault("OMP_NUM_THREADS", str(threads))
            env["AISTACK_JOB_ID"] = str(job_id)
            env["AISTACK_RANK"] = str(rank)
            env["AISTACK_WORLD_SIZE"] = str(world)
            if gpus_per_host is not None:
                own = gpus_per_host[node][local]
                env["AISTACK_GPU"] = str(own)
                if isolate:
                    env["CUDA_VISIBLE_DEVICES"] = str(own)
                else:
                    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus_per_host[node])
            if fw == "torch":
                env.update(
                    MASTER_ADDR=master,
                    MASTER_PORT=str(master_port),
                    RANK=str(rank),
                    LOCAL_RANK=str(local),
                    WORLD_SIZE=str(world),
                    LOCAL_WORLD_SIZE=str(procs_per_host),
                    GROUP_RANK=str(node),
                    NODE_RANK=str(node),
                    GROUP_WORLD_SIZE=str(nnodes),
                    ROLE_NAME="default",
                    ROLE_RANK=str(rank),
                    ROLE_WORLD_SIZE=str(world),
                    TORCHELASTIC_RUN_ID=str(job_id),
                    TORCHELASTIC_RESTART_COUNT="0",
                    TORCHELASTIC_MAX_RESTARTS="0",
                    TORCHELASTIC_USE_AGENT_STORE="False",
                )
            elif fw == "jax":
                env.update(
                    JAX_COORDINATOR_ADDRESS=f"{master}:{master_port}",
                    JAX_COORDINATOR_PORT=str(master_port),
                    JAX_NUM_PROCESSES=str(world),
                    JAX_PROCESS_ID=str(rank),
                    JAX_PROCESS_COUNT=str(world),
                )
                if gpus_per_host is not None:
                    env["JAX_LOCAL_DEVICE_IDS"] = "0" if isolate else str(local)
            elif fw == "tensorflow":
                env["TF_CONFIG"] = json.dumps(
                    {
                        "cluster": {"worker": tf_workers},
                        "task": {"type": "worker", "index": rank},
                    },
                    separators=(",", ":"),
                )
            else:  # mxnet
                env.update(
                    DMLC_ROLE="worker",
                    DMLC_PS_ROOT_URI=master,
                    DMLC_PS_ROOT_PORT=str(master_port),
                    DMLC_NUM_SERVER=str(nnodes),
                    DMLC_NUM_WORKER=str(world),
                    DMLC_WORKER_ID=str(rank),
                    DMLC_NODE_HOST=host,
                )
            ranks.append(RankSpec(host=host, rank=rank, local_rank=local, env=env))
    return ranks


def build_mxnet_ps_envs(
    hosts: list[str], procs_per_host: int, master_port: int, base_env: dict[str, str] | None = None
) -> list[tuple[str, str, dict[str, str]]]:
    """The non-worker processes of an MXNet parameter-server job: ``(host, role, env)``.

    One scheduler on ``hosts[0]`` and one server per host. Each runs
    ``python -c "import mxnet"`` (MXNet starts its role from DMLC_ROLE on import).
    """
    _validate(hosts, procs_per_host, master_port, None)
    common = {str(k): str(v) for k, v in (base_env or {}).items()}
    common.update(
        DMLC_PS_ROOT_URI=hosts[0],
        DMLC_PS_ROOT_PORT=str(master_port),
        DMLC_NUM_SERVER=str(len(hosts)),
        DMLC_NUM_WORKER=str(len(hosts) * procs_per_host),
    )
    out: list[tuple[str, str, dict[str, str]]] = [
        (hosts[0], "scheduler", {**common, "DMLC_ROLE": "scheduler", "DMLC_NODE_HOST": hosts[0]})
    ]
    for h in hosts:
        out.append((h, "server", {**common, "DMLC_ROLE": "server", "DMLC_NODE_HOST": h}))
    return out
