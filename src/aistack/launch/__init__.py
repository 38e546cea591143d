"""Distributed launch: per-rank environments (torch, jax, tensorflow, mxnet), a local gang
runner, and the all-reduce bandwidth benchmark (:mod:`aistack.launch.allreduce`)."""

from aistack.launch.env import (
    FRAMEWORKS,
    RankSpec,
    build_mxnet_ps_envs,
    build_rank_envs,
    free_port,
    normalize_framework,
)
from aistack.launch.gang import GangResult, run_gang

__all__ = [
    "FRAMEWORKS",
    "GangResult",
    "RankSpec",
    "build_mxnet_ps_envs",
    "build_rank_envs",
    "free_port",
    "normalize_framework",
    "run_gang",
]
