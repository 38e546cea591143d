"""Entry point for distributed jobs under the local supervisor:
``python -m aistack.executors.gang JOB_DIR``.

Builds one environment per rank with :func:`aistack.launch.build_rank_envs` (torchrun-style for
torch, and the JAX / TensorFlow / MXNet equivalents) and runs the ranks with
:func:`aistack.launch.run_gang`: if one rank fails the others are stopped, and the failing rank's
message is written to ``gang_result.json`` for the job record.

* ``gang.json`` records the process groups of the ranks (and of MXNet's parameter-server
  processes), so that the supervisor can SIGKILL them when the grace period of a cancel ends,
  even if it has to kill this process first;
* the grace period between the forwarded SIGTERM and SIGKILL is the one of the cancel or
  preemption (``cancel.json``), else the job's (``launch.json``);
* ``OMP_NUM_THREADS`` of a rank is its share of the job's pinned cores (this process's CPU
  affinity, set by the supervisor), unless the job's env sets it;
* ``distributed: mxnet`` also starts the scheduler and server roles a ``dist_*`` kvstore
  needs (``python -c "import mxnet"`` with DMLC_ROLE set); when aistack's Python cannot
  import mxnet the job fails at once with a message saying so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aistack.executors.supervisor import write_json_atomic


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _start_mxnet_ps(
    hosts: list[str], procs: int, port: int, env: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    from aistack.launch import build_mxnet_ps_envs

    out: list[subprocess.Popen[bytes]] = []
    pgid = 0
    for _host, _role, ps_env in build_mxnet_ps_envs(hosts, procs, port):
        p = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", "import mxnet"],
            env={**env, **ps_env},
            stdin=subprocess.DEVNULL,
            process_group=pgid,
        )
        pgid = pgid or p.pid
        out.append(p)
    return out


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    if not procs:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(procs[0].pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(procs[0].pid, signal.SIGKILL)
    for p in procs:
        p.wait()


def main() -> int:
    job_dir = Path(sys.argv[1])
    cfg = json.loads((job_dir / "launch.json").read_text())
    from aistack.launch import build_rank_envs, free_port, normalize_framework, run_gang
    from aistack.launch.env import job_base_env, usable_cpus

    gpus = [int(g) for g in cfg.get("gpus") or []]
    hosts = cfg.get("hosts") or ["127.0.0.1"]
    procs = int(
        cfg.get("procs_per_node") or (len(gpus) if gpus else max(1, len(cfg.get("cpus") or [1])))
    )
    fw = normalize_framework(cfg["distributed"])
    user_env = {str(k): str(v) for k, v in (cfg.get("env") or {}).items()}
    base_env = job_base_env(user_env)
    port = free_port()
    ranks = build_rank_envs(
        fw,
        hosts,
        procs,
        port,
        cfg["job_id"],
        gpus_per_host=[gpus] if gpus else None,
        base_env=base_env,
        threads_per_proc=max(1, usable_cpus() // procs),
    )
    default_grace = float(cfg.get("grace_s", 10.0))

    def grace() -> float:
        return float(_read(job_dir / "cancel.json").get("grace_s", default_grace))

    ps: list[subprocess.Popen[bytes]] = []
    if fw == "mxnet":
        if importlib.util.find_spec("mxnet") is None:
            msg = (
                "distributed: mxnet starts the parameter-server scheduler and servers with "
                f"aistack's Python ({sys.executable}), which cannot import mxnet; install mxnet "
                "there, or run the job without 'distributed:' and start the DMLC roles yourself"
            )
            sys.stderr.write(f"aistack: {msg}\n")
            write_json_atomic(
                job_dir / "gang_result.json", {"exit_code": 2, "failed_rank": None, "message": msg}
            )
            return 2
        ps = _start_mxnet_ps(hosts, procs, port, dict(os.environ))
    pgids = [p.pid for p in ps[:1]]

    def on_start(pids: list[int]) -> None:
        # rank 0 leads the ranks' process group
        write_json_atomic(job_dir / "gang.json", {"pgids": [pids[0], *pgids]})

    if ps:
        write_json_atomic(job_dir / "gang.json", {"pgids": pgids})
    try:
        result = run_gang(
            ranks,
            cfg["command"],
            sys.stdout.buffer,
            cwd=cfg.get("workdir") or None,
            on_start=on_start,
            grace_s=grace,
        )
    finally:
        _stop(ps)
    write_json_atomic(
        job_dir / "gang_result.json",
        {
            "exit_code": result.exit_code,
            "failed_rank": result.failed_rank,
            "message": result.message,
        },
    )
    return int(result.exit_code)


if __name__ == "__main__":
    sys.exit(main())
