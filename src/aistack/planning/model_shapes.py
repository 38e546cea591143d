"""Published model shapes: the default shape of a model given only by its parameter count.

Without ``layers``/``hidden`` the planners used N ≈ 12·L·h² with h ≈ 128·L: 70e9 parameters gave
71 layers x 9,088 hidden, 71 heads, and `plan serve` assumed all 71 heads were KV heads, while
every current open model of that size uses grouped-query attention with 8 KV heads (Llama 2/3
70B, Qwen2.5 72B): its KV cache was ~8x too large. A parameter count within 25 % of one of the
published models below takes that model's shape (layers, hidden, heads, KV heads); another
count keeps the formula for layers and hidden, and `plan serve` assumes all heads are KV heads
(full multi-head attention, the most KV cache: 8 for any count gave GPT-3 175B, which has 96, a
twelfth of its KV cache); `kv_heads` (--kv-heads) gives grouped-query attention.

Each entry: the model's configuration as published by its authors (``config.json`` on the
model's Hugging Face page, and for Llama 3 the paper's table 3), and the parameter count its
model card gives. All have heads of 128 dimensions (hidden / heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# a parameter count this close to a published model's (either way) takes its shape: 7B and 8B
# models share Llama 3.1 8B's; 20B lies between Qwen2.5 14B and 32B and keeps the formula
MATCH_RATIO = 1.25


@dataclass(frozen=True, kw_only=True)
class PublishedShape:
    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    source: str
    as_of: str  # the date the configuration was published (the model's release)


PUBLISHED_SHAPES: tuple[PublishedShape, ...] = (
    PublishedShape(
        name="Llama 3.2 3B",
        params=3.21e9,
        layers=28,
        hidden=3072,
        heads=24,
        kv_heads=8,
        source="https://huggingface.co/meta-llama/Llama-3.2-3B (config.json, model card)",
        as_of="2024-09-25",
    ),
    PublishedShape(
        name="Llama 3.1 8B",
        params=8.03e9,
        layers=32,
        hidden=4096,
        heads=32,
        kv_heads=8,
        source="Llama 3 paper (arXiv:2407.21783) table 3; "
        "https://huggingface.co/meta-llama/Llama-3.1-8B (config.json, model card)",
        as_of="2024-07-23",
    ),
    PublishedShape(
        name="Qwen2.5 14B",
        params=14.7e9,
        layers=48,
        hidden=5120,
        heads=40,
        kv_heads=8,
        source="https://huggingface.co/Qwen/Qwen2.5-14B (config.json, model card)",
        as_of="2024-09-19",
    ),
    PublishedShape(
        name="Qwen2.5 32B",
        params=32.5e9,
        layers=64,
        hidden=5120,
        heads=40,
        kv_heads=8,
        source="https://huggingface.co/Qwen/Qwen2.5-32B (config.json, model card)",
        as_of="2024-09-19",
    ),
    PublishedShape(
        # Llama 2 70B (2023-07-18) has the same 80 x 8192, 64 heads, 8 KV heads
        name="Llama 3.1 70B",
        params=70.6e9,
        layers=80,
        hidden=8192,
        heads=64,
        kv_heads=8,
        source="Llama 3 paper (arXiv:2407.21783) table 3; "
        "https://huggingface.co/meta-llama/Llama-3.1-70B (config.json, model card)",
        as_of="2024-07-23",
    ),
    PublishedShape(
        name="Llama 3.1 405B",
        params=405e9,
        layers=126,
        hidden=16384,
        heads=128,
        kv_heads=8,
        source="Llama 3 paper (arXiv:2407.21783) table 3; "
        "https://huggingface.co/meta-llama/Llama-3.1-405B (config.json, model card)",
        as_of="2024-07-23",
    ),
)


def nearest_published(params: float) -> PublishedShape | None:
    """The published model whose parameter count is nearest ``params`` (by ratio), where it is
    within :data:`MATCH_RATIO` of it; else None."""
    if not params > 0:
        return None
    best = min(PUBLISHED_SHAPES, key=lambda s: abs(math.log(params / s.params)))
    return best if abs(math.log(params / best.params)) <= math.log(MATCH_RATIO) else None
