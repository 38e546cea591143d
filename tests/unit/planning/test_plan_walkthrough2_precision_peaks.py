"""A precision the GPU has no tensor cores for is refused, in `plan train` and `plan serve`.
V100 has FP16 tensor cores only; the catalog's 125 TFLOP/s is the FP16 rate, and `--precision
bf16` was priced at it as if V100 ran BF16. Without --precision a plan uses the GPU's 16-bit
precision (fp16 on a V100)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError
from aistack.planning.catalog import default_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.training import plan_training


def test_catalog_says_v100_has_no_bf16() -> None:
    cat = default_catalog()
    assert cat.accelerator("V100").bf16 is False
    assert all(a.bf16 for a in cat.accelerators.values() if a.generation != "volta")
    assert cat.accelerator("V100").peak_tflops("fp16") == 125


@pytest.mark.parametrize(
    ("gpu", "precision", "words", "use"),
    [
        ("V100", "bf16", "V100-32GB has no BF16 tensor cores", "use fp16"),
        ("V100", "fp8", "V100-32GB has no FP8 tensor cores", "use fp16"),
        ("A100", "fp8", "A100-80GB has no FP8 tensor cores", "use bf16"),
        ("A100-40GB", "fp8", "A100-40GB has no FP8 tensor cores", "use bf16"),
    ],
)
def test_train_refuses_a_precision_without_a_peak(
    gpu: str, precision: str, words: str, use: str
) -> None:
    with pytest.raises(ValidationError) as e:
        plan_training(params=7e9, tokens=1e12, gpu=gpu, gpus=64, precision=precision)
    assert words in str(e.value)
    assert (e.value.hint or "").startswith(use)
    assert e.value.details["field"] == "precision"


def test_train_v100_fp16_is_at_the_fp16_rate() -> None:
    p = plan_training(params=7e9, tokens=1e12, gpu="V100", gpus=64, precision="fp16")
    assert p.peak_tflops_per_gpu == 125


def test_serve_v100_bf16_refused_fp16_kept() -> None:
    with pytest.raises(ValidationError, match="V100-32GB has no BF16 tensor cores"):
        plan_serving(params=7e9, gpu="V100", precision="bf16")
    p = plan_serving(params=7e9, gpu="V100", precision="fp16")
    assert p.kv_precision == "fp16"  # the default KV cache is at the weights' 16 bits


def test_without_a_precision_a_v100_plans_in_fp16() -> None:
    """The default is the GPU's 16-bit precision: `plan train --gpu V100` without
    --precision was refused, naming an option the user never gave."""
    t = plan_training(params=7e9, tokens=1e12, gpu="V100", gpus=64)
    assert (t.precision, t.peak_tflops_per_gpu) == ("fp16", 125)
    s = plan_serving(params=7e9, gpu="V100")
    assert (s.precision, s.kv_precision) == ("fp16", "fp16")
    assert plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=64).precision == "bf16"
    assert plan_serving(params=7e9, gpu="H100").precision == "bf16"


def test_cli_names_the_option(aistack_home: Path) -> None:
    args = ["train", "--params", "7B", "--tokens", "1T", "--gpu", "V100", "--gpus", "8"]
    res = CliRunner().invoke(plan_app, [*args, "--precision", "bf16"])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith("--precision: V100-32GB has no BF16 tensor cores")
    res = CliRunner().invoke(plan_app, args)
    assert res.exit_code == 0, res.output
    assert "on V100-32GB (fp16)" in res.output
