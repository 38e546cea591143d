"""Entry point for distributed jobs under the local supervisor:
``python -m aistack.executors.gang JOB_DIR``.

Builds one environment per rank with :func:`aistack.launch.build_rank_envs` (torchrun-style for
torch, and the JAX / TensorFlow / MXNet equivalents) and runs the ranks with
:func:`aistack.launch.run_gang`: if one rank fails the others are stopped, and the failing rank's
message is written to ``gang_result.json`` for the job record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aistack.executors.supervisor import write_json_atomic


def main() -> int:
    job_dir = Path(sys.argv[1])
    cfg = json.loads((job_dir / "launch.json").read_text())
    from aistack.launch import build_rank_envs, free_port, run_gang

    gpus = [int(g) for g in cfg.get("gpus") or []]
    hosts = cfg.get("hosts") or ["127.0.0.1"]
    procs = int(
        cfg.get("procs_per_node") or (len(gpus) if gpus else max(1, len(cfg.get("cpus") or [1])))
    )
    ranks = build_rank_envs(
        cfg["distributed"],
        hosts,
        procs,
        free_port(),
        cfg["job_id"],
        gpus_per_host=[gpus] if gpus else None,
    )
    result = run_gang(ranks, cfg["command"], sys.stdout.buffer, cwd=cfg.get("workdir") or None)
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
