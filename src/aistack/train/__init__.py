"""Training: a streaming token-shard loader, a reference GPT, and a trainer with DDP,
mixed precision, checkpoints on aistack storage and exact resume.

Heavy parts (torch) load lazily: ``from aistack.train import ShardLoader`` needs numpy only.
"""

from __future__ import annotations

from typing import Any

from aistack.train.loader import ShardLoader, expand_paths
from aistack.train.shards import open_shard, write_token_shard

__all__ = [
    "CheckpointStore",
    "GPT",
    "GPTConfig",
    "ShardLoader",
    "TrainConfig",
    "expand_paths",
    "open_shard",
    "train",
    "write_token_shard",
]

_LAZY = {
    "CheckpointStore": "aistack.train.checkpoint",
    "GPT": "aistack.train.model",
    "GPTConfig": "aistack.train.model",
    "TrainConfig": "aistack.train.config",
    "train": "aistack.train.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
