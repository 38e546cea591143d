"""`plan serve` without a model shape: a 70e9 model was 71 layers x 9,088 hidden with 71 KV
heads (KV cache ~8x a real 70B's, which has 8: grouped-query attention); the plan now takes a
published model's shape, says which, and shows the matmuls' precision and peak. POST
/plan/hybrid with intervals reports the most GPUs at once, as the CLI does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.planning.catalog import load_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.report import render_serve
from aistack.planning.training import infer_shape, plan_training
from aistack.server.deps import get_ctx
from aistack.server.routers.planning import router

CAT = load_catalog(include_user=False)


def test_published_shapes_have_128_dimension_heads_dividing_into_kv_heads() -> None:
    from aistack.planning.model_shapes import PUBLISHED_SHAPES

    for s in PUBLISHED_SHAPES:
        assert s.hidden == 128 * s.heads, s.name
        assert s.heads % s.kv_heads == 0, s.name
        assert s.source and s.as_of, s.name


def test_a_70b_model_without_a_shape_is_llama_70b() -> None:
    p = plan_serving(params=70e9, gpu="H100", concurrency=32, catalog=CAT)
    assert (p.layers, p.hidden, p.heads, p.kv_heads, p.head_dim) == (80, 8192, 64, 8, 128)
    assert p.shape_source == "published: Llama 3.1 70B"
    # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes
    assert p.kv_per_token_mb == pytest.approx(0.32768)
    assert p.kv_cache_gb == pytest.approx(327_680 * 4096 * 32 / 1e9)
    # the same as giving Llama 70B's shape
    given = plan_serving(
        params=70e9, gpu="H100", concurrency=32, layers=80, hidden=8192, kv_heads=8, catalog=CAT
    )
    assert given.kv_cache_gb == pytest.approx(p.kv_cache_gb)
    assert given.gpus_per_replica == p.gpus_per_replica == 4
    assert given.shape_source == "given"
    assert any("Llama 3.1 70B" in n and "8 KV heads" in n for n in p.notes)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (8e9, "Llama 3.1 8B"),
        (7e9, "Llama 3.1 8B"),
        (405e9, "Llama 3.1 405B"),
        (72e9, "Llama 3.1 70B"),
    ],
)
def test_nearest_published_model(params: float, name: str) -> None:
    from aistack.planning.model_shapes import nearest_published

    ref = nearest_published(params)
    assert ref is not None and ref.name == name


def test_a_count_far_from_every_published_model_keeps_the_formula_with_all_kv_heads() -> None:
    # (8 KV heads here under-sized models like GPT-3 175B, 96 KV heads: r22e)
    from aistack.planning.model_shapes import nearest_published

    assert nearest_published(20e9) is None and nearest_published(1e12) is None
    p = plan_serving(params=20e9, gpu="H100", catalog=CAT)
    assert p.shape_source == "estimated"
    assert p.kv_heads == p.heads == p.hidden // 128
    assert any("assumed full multi-head attention" in n for n in p.notes)


def test_a_shape_given_keeps_all_heads_as_kv_heads_by_default() -> None:
    p = plan_serving(params=70e9, gpu="H100", layers=80, hidden=8192, catalog=CAT)
    assert p.kv_heads == 64 and p.heads == 64


def test_training_shape_is_the_published_one_too() -> None:
    s = infer_shape(70e9)
    assert (s.layers, s.hidden, s.heads, s.published) == (80, 8192, 64, "Llama 3.1 70B")
    t = plan_training(params=70e9, tokens=2e12, gpu="H100", gpus=1024, catalog=CAT)
    assert (t.shape.layers, t.shape.hidden) == (80, 8192)
    assert any("Llama 3.1 70B" in n for n in t.notes)


@pytest.mark.parametrize(
    ("gpu", "precision", "compute", "peak", "unit"),
    [
        ("H100", None, "bf16", 989.0, "TFLOP/s"),
        ("H100", "fp8", "fp8", 1979.0, "TFLOP/s"),
        ("A100", "int8", "int8", 624.0, "TOPS"),
        ("H100", "int4", "bf16", 989.0, "TFLOP/s"),
    ],
)
def test_the_plan_says_at_which_precision_and_peak_the_matmuls_run(
    gpu: str, precision: str | None, compute: str, peak: float, unit: str
) -> None:
    p = plan_serving(params=8e9, gpu=gpu, precision=precision, catalog=CAT)
    assert (p.compute_precision, p.compute_peak_unit) == (compute, unit)
    assert p.compute_peak == pytest.approx(peak, rel=0.01)
    d = p.to_dict()
    assert d["compute_precision"] == compute and d["compute_peak_unit"] == unit
    text = render_serve(p)
    assert f"{compute} at {p.compute_peak:,.0f} {unit} peak per GPU" in text


def test_cli_shows_the_shape_and_where_it_came_from(aistack_home: Path) -> None:
    res = CliRunner().invoke(plan_app, ["serve", "--params", "70B", "--gpu", "H100"])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert (
        "80 layers x 8192 hidden, 64 heads, 8 KV heads x 128 dims (shape of Llama 3.1 70B)" in first
    )
    assert "matmuls" in res.output and "bf16 at 989 TFLOP/s peak per GPU" in res.output
    assert "8 KV heads (its grouped-query attention); give --kv-heads" in res.output


def _api(home: Path) -> TestClient:
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    app.dependency_overrides[get_ctx] = lambda: SimpleNamespace(settings=SimpleNamespace(home=home))
    return TestClient(app)


def test_api_serve_defaults_to_the_published_shape(aistack_home: Path) -> None:
    r = _api(aistack_home).post("/api/v1/plan/serve", json={"params": 70e9, "gpu": "H100"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["layers"], d["hidden"], d["heads"], d["kv_heads"]) == (80, 8192, 64, 8)
    assert d["shape_source"] == "published: Llama 3.1 70B"


def test_api_hybrid_intervals_report_the_peak_at_once(aistack_home: Path) -> None:
    # two 8-GPU jobs of half an hour, one after the other, in one hourly step: the step's mean
    # is 8 GPUs, and so is the peak; two at the same time: 16 at once, for half the hour (mean 8)
    body = {"intervals": [[0, 1800, 8], [0, 1800, 8]], "step_minutes": 60, "gpu": "H100"}
    r = _api(aistack_home).post("/api/v1/plan/hybrid", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["peak_gpus"] == 16 and d["peak_at_once"] is True


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            ["serve", "--params", "70B", "--gpu", "H100", "--prompt", "5000"],
            "--prompt: 5,000 tokens",
        ),
        (
            ["serve", "--params", "70B", "--active-params", "80B", "--gpu", "H100"],
            "--active-params: 8e10",
        ),
        (
            ["train", "--params", "7B", "--active-params", "8B", "--tokens", "1T", "--gpu", "H100"],
            "--active-params: 8e9",
        ),
    ],
)
def test_cross_field_errors_name_the_options(
    aistack_home: Path, args: list[str], start: str
) -> None:
    from aistack.errors import ValidationError

    res = CliRunner().invoke(plan_app, args)
    assert isinstance(res.exception, ValidationError), res.output
    msg = str(res.exception)
    assert msg.startswith(start) and "cannot exceed --" in msg
