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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aistack.errors import ValidationError

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "tensorflow", "mxnet")
# the most processes one gang may have: well above the largest trainings (~100k ranks), and a
# bound on the builder's time and memory (a million ranks took 10 s and 1.6 GB: a typo such
# as procs_per_host=10**7 looked like a hang)
MAX_WORLD_SIZE = 1 << 18
# Linux refuses to start a process with one environment string ("NAME=value", its NUL
# included) longer than MAX_ARG_STRLEN: TF_CONFIG lists every worker
MAX_ENV_STRING_BYTES = 128 * 1024
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
    """A TCP port that is free on ``host`` (an address or name of this machine; IPv4 or
    IPv6, ``""``: every interface) right now (the OS picks it)."""
    hint = "use an address of this machine, e.g. '127.0.0.1'"
    if not isinstance(host, str):
        raise ValidationError(
            f"host: must be a host name or address, got {host!r}", hint=hint, field="host"
        )
    try:
        infos = socket.getaddrinfo(host or "0.0.0.0", 0, type=socket.SOCK_STREAM)
        # IPv4 first: a name such as 'localhost' means 127.0.0.1, as it did before IPv6
        family, kind, proto, _, addr = min(infos, key=lambda i: i[0] != socket.AF_INET)
    except (OSError, UnicodeError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError(
            f"host: cannot resolve {host!r} ({why})", hint=hint, field="host"
        ) from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise ValidationError(
                f"host: cannot listen on {host!r} ({exc.strerror or exc}): not an address of "
                "this machine",
                hint=hint,
                field="host",
            ) from None
        return int(s.getsockname()[1])


def check_env(env: Any, field: str) -> dict[str, str]:
    """``env`` (None: empty) as a dict of environment variables, or a ValidationError naming
    ``field`` and the variable. Names: non-empty text without ``=`` or NUL; values: text
    without NUL, or a number (written as text, as before); None, True/False and other objects
    are refused (``str(None)`` would have set ``"None"``)."""
    if env is None:
        return {}
    hint = "e.g. {'NCCL_DEBUG': 'INFO'}; leave a variable out to keep it unset"
    if not isinstance(env, Mapping):
        raise ValidationError(
            f"{field}: must be a mapping of variable names to values, got {type(env).__name__}",
            hint=hint,
            field=field,
        )
    out: dict[str, str] = {}
    for k, v in env.items():
        if not isinstance(k, str) or not k or "=" in k or "\0" in k:
            raise ValidationError(
                f"{field}: {k!r} is not an environment variable name",
                hint="a name such as 'NCCL_DEBUG': not empty, without '=' or NUL",
                field=field,
            )
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            raise ValidationError(
                f"{field}: {k} must be a string, got {v!r}",
                hint="write the value as text, e.g. '1' or 'true'; leave the variable out to "
                "keep it unset",
                field=field,
            )
        if "\0" in v:
            raise ValidationError(
                f"{field}: the value of {k} contains a NUL character, which an environment "
                "cannot hold",
                hint="remove the NUL (\\0) from the value",
                field=field,
            )
        out[k] = v
    return out


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity (a job's pinned cores), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _validate(
    hosts: list[str], procs_per_host: int, master_port: int, gpus_per_host: list[list[int]] | None
) -> None:
    if isinstance(hosts, str):  # (a str is a sequence of one-letter hosts)
        raise ValidationError(
            f"hosts: must be a list of host names, got the string {hosts!r}",
            hint=f"e.g. hosts=[{hosts!r}]",
            field="hosts",
        )
    if (
        not isinstance(hosts, list | tuple)
        or not hosts
        or not all(isinstance(h, str) and h.strip() for h in hosts)
    ):
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
    if len(hosts) * procs_per_host > MAX_WORLD_SIZE:
        raise ValidationError(
            f"procs_per_host: {len(hosts)} host(s) × {procs_per_host} processes is "
            f"{len(hosts) * procs_per_host:,} ranks, more than the {MAX_WORLD_SIZE:,} a gang "
            "may have",
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
        if isinstance(gpus_per_host, str) or not isinstance(gpus_per_host, list | tuple):
            raise ValidationError(
                f"gpus_per_host: must be one list of GPU indices per host, got {gpus_per_host!r}",
                hint="e.g. gpus_per_host=[[0, 1]] for one host running 2 processes",
                field="gpus_per_host",
            )
        if len(gpus_per_host) != len(hosts):
            raise ValidationError(
                f"gpus_per_host: one list per host expected ({len(hosts)}), got {len(gpus_per_host)}",
                field="gpus_per_host",
            )
        for h, gpus in zip(hosts, gpus_per_host, strict=True):
            if not isinstance(gpus, list | tuple) or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus
            ):
                raise ValidationError(
                    f"gpus_per_host: host {h} has {gpus!r}, not a list of GPU indices "
                    "(integers ≥ 0)",
                    hint="e.g. gpus_per_host=[[0, 1]] for one host running 2 processes",
                    field="gpus_per_host",
                )
            if len(gpus) != procs_per_host:
                raise ValidationError(
                    f"gpus_per_host: host {h} has {len(gpus)} GPUs for {procs_per_host} processes",
                    hint="give exactly one GPU index per process (procs_per_host = GPUs per host)",
                    field="gpus_per_host",
                )


def _check_tf(workers: list[str], master_port: int, procs_per_host: int) -> None:
    """TensorFlow's workers listen on ``master_port + local_rank``: all of them must be ports,
    and TF_CONFIG (every worker's address) must fit in one environment string."""
    top = master_port + procs_per_host - 1
    if top > 65535:
        raise ValidationError(
            f"master_port: tensorflow workers listen on master_port + local rank, "
            f"{master_port}..{top} here, past the last TCP port 65535",
            hint=f"use a master_port of at most {65536 - procs_per_host}, e.g. free_port()",
            field="master_port",
        )
    longest = json.dumps(
        {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": len(workers) - 1},
        },
        separators=(",", ":"),
    )
    size = len(f"TF_CONFIG={longest}".encode()) + 1
    if size > MAX_ENV_STRING_BYTES:
        raise ValidationError(
            f"procs_per_host: TF_CONFIG for {len(workers):,} tensorflow workers is {size:,} "
            f"bytes, more than the {MAX_ENV_STRING_BYTES:,} Linux allows one environment "
            "variable (no worker could start)",
            hint="use fewer processes or hosts, or shorter host names",
            field="procs_per_host",
        )


def job_base_env(env: dict[str, str]) -> dict[str, str] | None:
    """What of a job's own environment its rank environments keep (the ``base_env`` of
    :func:`build_rank_envs`): its ``OMP_NUM_THREADS``, which the ranks would otherwise set from
    their share of the CPUs. The same under the local gang, Slurm and Ray."""
    return {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"]} if "OMP_NUM_THREADS" in env else None


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
    except ``OMP_NUM_THREADS`` which a user value keeps (its values are text; numbers are
    written as text, anything else is refused: :func:`check_env`). ``threads_per_proc`` sets
    ``OMP_NUM_THREADS`` (default: the cores this process may run on — its CPU affinity, i.e.
    a job's pinned cores — divided by ``procs_per_host``, at least 1). At most
    ``MAX_WORLD_SIZE`` ranks in all.
    """
    fw = normalize_framework(framework)
    _validate(hosts, procs_per_host, master_port, gpus_per_host)
    base = check_env(base_env, "base_env")
    if threads_per_proc is not None and (
        isinstance(threads_per_proc, bool)
        or not isinstance(threads_per_proc, int)
        or threads_per_proc < 0
    ):
        raise ValidationError(
            f"threads_per_proc: must be an integer ≥ 1 (or 0 / None: the usable cores shared "
            f"between the processes), got {threads_per_proc!r}",
            hint="e.g. threads_per_proc=4",
            field="threads_per_proc",
        )
    nnodes = len(hosts)
    world = nnodes * procs_per_host
    master = hosts[0]
    isolate = (fw != "torch") if isolate_gpus is None else bool(isolate_gpus)
    threads = threads_per_proc or max(1, usable_cpus() // procs_per_host)
    tf_workers = [f"{h}:{master_port + lr}" for h in hosts for lr in range(procs_per_host)]
    if fw == "tensorflow":
        _check_tf(tf_workers, master_port, procs_per_host)

    ranks: list[RankSpec] = []
    for node, host in enumerate(hosts):
        for local in range(procs_per_host):
            rank = node * procs_per_host + local
            env: dict[str, str] = dict(base)
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
    common = check_env(base_env, "base_env")
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
