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
