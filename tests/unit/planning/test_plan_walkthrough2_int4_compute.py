"""`plan serve --precision int4|fp4`: 4-bit weights are weight-only quantization (AWQ, GPTQ): read
at 4 bits, multiplied at 16 bits. Prefill and a compute-bound decode were at the FP8 peak (twice
the BF16 one on an H100), so a 2,048-token int4 prefill of 70B read 290 ms instead of 580 ms."""

from __future__ import annotations

import pytest

from aistack.planning.inference import PREFILL_MFU, plan_serving

SHAPE = {"params": 70e9, "layers": 80, "hidden": 8192, "kv_heads": 8, "prompt": 2048}


@pytest.mark.parametrize("precision", ["int4", "fp4"])
def test_four_bit_weights_compute_at_the_bf16_peak(precision: str) -> None:
    q = plan_serving(**SHAPE, gpu="H100", precision=precision)  # type: ignore[arg-type]
    assert q.gpus_per_replica == 1
    assert q.prefill_ms == pytest.approx(2 * 70e9 * 2048 / (989e12 * PREFILL_MFU) * 1000)
    bf16 = plan_serving(**SHAPE, gpu="H100", precision="bf16")  # type: ignore[arg-type]
    assert q.prefill_ms == pytest.approx(bf16.prefill_ms * bf16.gpus_per_replica)
    # the weights are still read at 4 bits
    assert q.weights_gb == pytest.approx(bf16.weights_gb / 4)
    assert any(
        f"{precision} weights taken as weight-only quantization" in n
        and "multiplied at bf16 (989 TFLOP/s peak)" in n
        for n in q.notes
    )


def test_compute_bound_decode_uses_the_bf16_peak() -> None:
    # 256 sequences of a 1,024-token context: compute bound on an H100
    q = plan_serving(
        params=70e9,
        gpu="H100",
        precision="int4",
        layers=80,
        hidden=8192,
        kv_heads=8,
        context=1024,
        concurrency=256,
    )
    assert q.bound == "compute"
    n = q.gpus_per_replica
    assert q.step_ms == pytest.approx(2 * 70e9 * 256 / (n * 989e12 * PREFILL_MFU) * 1000)


def test_eight_bit_weights_stay_at_fp8() -> None:
    q = plan_serving(**SHAPE, gpu="H100", precision="fp8")  # type: ignore[arg-type]
    n = q.gpus_per_replica
    assert q.prefill_ms == pytest.approx(2 * 70e9 * 2048 / (n * 1979e12 * PREFILL_MFU) * 1000)
    assert not any("weight-only" in n for n in q.notes)
