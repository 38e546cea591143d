"""Fixtures shared by the serving unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class CharTokenizer:
    """Character tokenizer with the two methods ReferenceGPTGenerator uses."""

    class _Enc:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

    def encode(self, text: str) -> _Enc:
        return self._Enc([ord(c) % 64 for c in text])

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(48 + i) for i in ids)


@pytest.fixture
def tiny_reference_gpt() -> Any:
    """A ReferenceGPTGenerator over a 1-layer GPT with seeded random weights (vocab 64)."""
    model_mod = pytest.importorskip("aistack.train.model")
    import torch

    from aistack.serving.generators import ReferenceGPTGenerator

    torch.manual_seed(0)
    gpt = model_mod.GPT(
        model_mod.GPTConfig(vocab_size=64, seq_len=32, n_layer=1, n_head=2, n_embd=32)
    )
    gpt.eval()
    return ReferenceGPTGenerator(gpt, CharTokenizer())


@pytest.fixture
def replica() -> Iterator[Any]:
    """A replica of the built-in echo model behind a TestClient (a test file may define its own
    ``replica``: another model, served names, or server exceptions kept as answers)."""
    from fastapi.testclient import TestClient

    from aistack.serving.models import load_model
    from aistack.serving.replica import ReplicaServer

    server = ReplicaServer(load_model("builtin:echo"), name="t", max_batch_size=8, max_wait_ms=2)
    with TestClient(server.app()) as c:
        yield c
