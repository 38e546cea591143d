"""`plan serve --precision fp32` at the FP32 peak (it was planned at the BF16 tensor peak, 15x
too fast on an H100), refused where the catalog cites no FP32 figure; units on the serve header."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aistack.cli.main import app
from aistack.errors import ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.report import render_serve
from aistack.planning.training import plan_training

CAT = load_catalog(include_user=False)


@pytest.mark.parametrize(
    ("gpu", "peak", "shown"),
    [("H100", 67.0, "67"), ("A100", 19.5, "19.5"), ("V100", 15.7, "15.7"), ("H200", 67.0, "67")],
)
def test_fp32_at_the_fp32_peak(gpu: str, peak: float, shown: str) -> None:
    p = plan_serving(params=8e9, gpu=gpu, precision="fp32", catalog=CAT)
    assert p.compute_precision == "fp32"
    assert p.compute_peak == pytest.approx(peak)
    bf16 = plan_serving(params=8e9, gpu=gpu, catalog=CAT)
    # the prefill is compute-bound: slower by the ratio of the peaks
    ratio = CAT.accelerator(gpu).bf16_tflops / peak
    assert p.prefill_ms == pytest.approx(
        bf16.prefill_ms * ratio * bf16.gpus_per_replica / p.gpus_per_replica
    )
    text = render_serve(p)
    assert f"fp32 at {shown} TFLOP/s peak per GPU (dense)" in text
    assert "FP32 peak" in " ".join(p.notes)
    # TF32 came with Ampere: no TF32 advice on a V100
    assert ("allow_tf32" in " ".join(p.notes)) == (gpu != "V100")


@pytest.mark.parametrize("gpu", ["B200", "MI300X", "H800"])
def test_fp32_refused_where_the_peak_is_unknown(gpu: str) -> None:
    with pytest.raises(ValidationError, match="FP32 peak of .* is unknown") as exc:
        plan_serving(params=8e9, gpu=gpu, precision="fp32", catalog=CAT)
    assert exc.value.details.get("field") == "precision"
    assert "fp32_tflops" in (exc.value.hint or "")


def test_fp32_peaks_carry_their_datasheet() -> None:
    for a in CAT.accelerators.values():
        if a.fp32_tflops is not None:
            assert f"FP32 {a.fp32_tflops:g} TFLOP/s" in a.source, a.name
    rows = {f.name: f.value for f in CAT.figures() if f.field == "fp32_tflops"}
    assert rows["H100-SXM"] == 67 and rows["V100-32GB"] == 15.7  # `plan catalog` lists them


def test_fp32_training_refused() -> None:
    with pytest.raises(ValidationError, match="fp32 training is not planned"):
        plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=8, precision="fp32", catalog=CAT)


def test_serve_header_units_and_one_sequence() -> None:
    p = plan_serving(params=70e9, gpu="H100", catalog=CAT)
    text = render_serve(p)
    assert "8 KV heads x 128 dims" in text
    assert "x 1 sequence," in text and "1 sequences" not in text
    r = CliRunner().invoke(
        app, ["plan", "serve", "--params", "8B", "--gpu", "H100", "--precision", "fp32"]
    )
    assert r.exit_code == 0, r.output
    assert "fp32 at 67 TFLOP/s" in r.output
