"""Text generators: what the ``/v1/completions`` endpoint calls.

``TextGenerator`` is the protocol; ``EchoGenerator`` is a fake (no torch) shipped for tests and
demos; ``aistack.serving.tinygpt.TinyGPT`` is a small byte-level GPT in torch.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class TextGenerator(Protocol):
    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        """Continue each prompt by at most ``max_tokens`` tokens; one completion per prompt."""
        ...


class EchoGenerator:
    """Fake model: the completion is the prompt reversed, cut to ``max_tokens`` characters.

    ``delay_ms`` is a fixed cost per model call plus ``per_item_ms`` per prompt (a batch of n
    costs ``delay_ms + n * per_item_ms``), which makes batching measurable without torch.
    """

    def __init__(self, *, delay_ms: float = 0.0, per_item_ms: float = 0.0) -> None:
        self.delay_ms = delay_ms
        self.per_item_ms = per_item_ms

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        cost = self.delay_ms + self.per_item_ms * len(prompts)
        if cost > 0:
            time.sleep(cost / 1000.0)
        return [p[::-1][:max_tokens] for p in prompts]

    def predict(self, records: list[dict]) -> list[dict]:
        cost = self.delay_ms + self.per_item_ms * len(records)
        if cost > 0:
            time.sleep(cost / 1000.0)
        return [{"echo": r} for r in records]


class ReferenceGPTGenerator:
    """``TextGenerator`` over ``aistack.train``'s reference GPT and its tokenizer.

    The reference GPT has no padding mask, so a batch is split into groups of prompts with the
    same token length; each group runs as one batched ``GPT.generate`` call. Only the new
    tokens are decoded (the OpenAI completions API returns the continuation).
    """

    def __init__(self, model: object, tokenizer: object) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        import torch

        ids = [self.tokenizer.encode(p).ids or [0] for p in prompts]  # type: ignore[attr-defined]
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(ids):
            groups.setdefault(len(t), []).append(i)
        out = [""] * len(prompts)
        for length, idx in groups.items():
            batch = torch.tensor([ids[i] for i in idx], dtype=torch.long)
            gen = self.model.generate(batch, max_tokens, temperature=temperature)  # type: ignore[attr-defined]
            for row, i in enumerate(idx):
                out[i] = self.tokenizer.decode(gen[row, length:].tolist())  # type: ignore[attr-defined]
        return out
