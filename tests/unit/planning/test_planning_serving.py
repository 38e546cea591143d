"""Inference sizing against hand-computed memory and bandwidth-bound decode."""

from __future__ import annotations

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.inference import kv_bytes_per_token, plan_serving


def test_kv_cache_per_token_llama3_70b() -> None:
    # 80 layers, 8 KV heads x 128, K and V, 2 bytes
    assert kv_bytes_per_token(layers=80, kv_heads=8, head_dim=128) == 327_680
    assert kv_bytes_per_token(layers=80, kv_heads=8, head_dim=128, kv_precision="fp8") == 163_840


def test_70b_on_h100_hand_computed() -> None:
    p = plan_serving(
        params=70e9, gpu="H100", layers=80, hidden=8192, kv_heads=8, context=4096, concurrency=1
    )
    assert p.weights_gb == pytest.approx(140.0)
    assert p.kv_cache_gb == pytest.approx(327_680 * 4096 / 1e9)
    assert p.gpus_per_replica == 4  # 141.3 GB / (0.9 * 80 - 2) GB = 2.02 -> 4 (power of two)
    step = (140e9 + 0.5 * 327_680 * 4096) / (4 * 3.35e12 * 0.8)
    assert p.step_ms == pytest.approx(step * 1000)
    assert p.bound == "memory bandwidth"
    assert p.tokens_per_s_per_sequence == pytest.approx(1 / step)


def test_replicas_for_target_and_quantization_halves_weights() -> None:
    p = plan_serving(
        params=8e9,
        gpu="H100",
        layers=32,
        hidden=4096,
        kv_heads=8,
        context=8192,
        concurrency=64,
        target_tokens_per_s=20_000,
    )
    assert p.replicas * p.tokens_per_s_per_replica >= 20_000
    assert (p.replicas - 1) * p.tokens_per_s_per_replica < 20_000
    q = plan_serving(params=8e9, gpu="H100", precision="fp8", layers=32, hidden=4096, kv_heads=8)
    assert q.weights_gb == pytest.approx(8.0)


def test_serving_bad_input() -> None:
    with pytest.raises(ValidationError, match="concurrency"):
        plan_serving(params=8e9, gpu="H100", concurrency=0)
    with pytest.raises(ValidationError, match="precision"):
        plan_serving(params=8e9, gpu="H100", precision="int3")
    with pytest.raises(ValidationError, match="more than 8"):
        plan_serving(params=1e12, gpu="L40S")
    with pytest.raises(NotFoundError, match="did you mean"):
        plan_serving(params=8e9, gpu="L40")
