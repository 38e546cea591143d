"""`plan serve --kv-heads` must divide the attention heads (GQA). It was only checked against the
hidden size: 100 KV heads on a 64-head model (hidden 8192 / head_dim 128) was accepted and
priced 100 heads of KV cache. `--heads` gives the head count when it is not hidden / head_dim."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError
from aistack.planning.inference import plan_serving

SHAPE = {"params": 70e9, "gpu": "H100", "layers": 80, "hidden": 8192}


@pytest.mark.parametrize("kv", [100, 65, 7, 3])
def test_kv_heads_not_dividing_the_heads_is_refused(kv: int) -> None:
    with pytest.raises(ValidationError) as e:
        plan_serving(**SHAPE, kv_heads=kv)  # type: ignore[arg-type]
    assert e.value.details["field"] == "kv_heads"
    assert str(e.value).startswith(f"kv_heads: {kv} key/value heads for 64 attention heads")
    assert "must divide the attention heads" in str(e.value)


@pytest.mark.parametrize("kv", [1, 8, 64])
def test_dividing_kv_heads_are_kept(kv: int) -> None:
    p = plan_serving(**SHAPE, kv_heads=kv)  # type: ignore[arg-type]
    assert p.kv_heads == kv
    assert p.kv_per_token_mb == pytest.approx(2 * 80 * kv * 128 * 2 / 1e6)


def test_heads_option_for_a_model_whose_heads_are_not_hidden_over_head_dim() -> None:
    # Gemma-7B: hidden 3072, 16 heads of 256 (16 x 256 = 4096), 16 KV heads
    gemma = {"params": 8.5e9, "gpu": "H100", "layers": 28, "hidden": 3072, "head_dim": 256}
    with pytest.raises(ValidationError) as e:
        plan_serving(**gemma, kv_heads=16)  # type: ignore[arg-type]
    assert "16 key/value heads for 12 attention heads" in str(e.value)
    assert "`heads`" in (e.value.hint or "")
    p = plan_serving(**gemma, kv_heads=16, heads=16)  # type: ignore[arg-type]
    assert p.kv_heads == 16
    # without --kv-heads, full multi-head attention is the given heads
    assert plan_serving(**gemma, heads=16).kv_heads == 16  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="3 key/value heads for 16 attention heads"):
        plan_serving(**gemma, kv_heads=3, heads=16)  # type: ignore[arg-type]


def test_inferred_shape_bounds_kv_heads_but_does_not_ask_them_to_divide() -> None:
    # 20e9 (near no published model's shape) infers 47 heads, which no GQA count divides
    assert plan_serving(params=20e9, gpu="H100", kv_heads=8).kv_heads == 8
    with pytest.raises(ValidationError, match="100 key/value heads for 47 attention heads"):
        plan_serving(params=20e9, gpu="H100", kv_heads=100)
    # 70e9 takes Llama 3.1 70B's published shape: 64 heads
    with pytest.raises(ValidationError, match="100 key/value heads for 64 attention heads"):
        plan_serving(params=70e9, gpu="H100", kv_heads=100)


def test_cli_names_the_option(aistack_home: Path) -> None:
    res = CliRunner().invoke(
        plan_app,
        ["serve", "--params", "70B", "--gpu", "H100", "--hidden", "8192", "--kv-heads", "100"],
    )
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith("--kv-heads: 100 key/value heads for 64 attention heads")
    res = CliRunner().invoke(
        plan_app,
        ["serve", "--params", "70B", "--gpu", "H100", "--heads", "64", "--kv-heads", "8"],
    )
    assert res.exit_code == 0, res.output
    assert "8 KV heads" in res.output
