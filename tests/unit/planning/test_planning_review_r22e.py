"""Review r22e. (1) hybrid_sweep checked only the profile's peak against the sweep caps, then
swept to ``peak_gpus`` (the most GPUs at once, from the intervals): 20 jobs of 1,000,000 GPUs
for a millisecond gave a peak of 20,000,001 and millions of fleet sizes x 720 steps, a server
thread busy for hours. (2) `plan serve` gave 8 KV heads (GQA) to every parameter count that
matches no published model: GPT-3 175B (96 KV heads) got a twelfth of its KV cache."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.whatif import (
    MAX_DEMAND_GPUS,
    demand_profile,
    hybrid_sweep,
    peak_concurrency,
)
from aistack.server.deps import get_ctx
from aistack.server.routers.planning import router

CAT = load_catalog(include_user=False)
DAY = 86400.0
# one GPU for 30 days, and 20 jobs of a million GPUs for a millisecond, all at the start
HUGE_PEAK = [(0.0, 30 * DAY, 1)] + [(0.0, 0.001, 1_000_000)] * 20


def test_a_peak_gpus_over_the_cap_is_refused_at_once() -> None:
    prof = demand_profile(HUGE_PEAK, step_s=3600.0)
    peak = peak_concurrency(HUGE_PEAK)
    assert (len(prof), peak) == (720, 20_000_001)
    assert max(prof) < 10  # the profile's own peak is under every cap
    t0 = time.monotonic()
    with pytest.raises(ValidationError) as e:
        hybrid_sweep(prof, gpu="H100", catalog=CAT, peak_gpus=peak)
    assert time.monotonic() - t0 < 2.0
    assert "peak demand is 20,000,001 GPUs" in str(e.value)
    assert f"{MAX_DEMAND_GPUS:,} GPUs" in str(e.value)
    assert "absurd GPU count" in (e.value.hint or "")


def test_a_peak_gpus_under_the_gpu_cap_still_counts_in_the_sweep_size() -> None:
    # 900,000 GPUs at once on 8-GPU servers: 112,501 fleet sizes x 2,000 steps = 225 million
    prof = [1.0] * 2000
    with pytest.raises(ValidationError, match=r"112,501 fleet sizes .* over 2,000 steps"):
        hybrid_sweep(prof, gpu="H100", catalog=CAT, peak_gpus=900_000)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "9", True, 0.5])
def test_a_bad_peak_gpus_is_named(bad: object) -> None:
    with pytest.raises(ValidationError, match="peak_gpus: must be a number at least"):
        hybrid_sweep([1.0, 2.0], gpu="H100", catalog=CAT, peak_gpus=bad)  # type: ignore[arg-type]


def test_a_sane_peak_gpus_still_sweeps_to_it() -> None:
    s = hybrid_sweep([1.0, 2.0], gpu="H100", catalog=CAT, peak_gpus=16)
    assert s.peak_gpus == 16 and s.own_peak.owned_gpus == 16


def test_api_hybrid_with_a_huge_peak_is_refused_at_once(aistack_home: Path) -> None:
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    app.dependency_overrides[get_ctx] = lambda: SimpleNamespace(
        settings=SimpleNamespace(home=aistack_home)
    )
    body = {"intervals": [list(iv) for iv in HUGE_PEAK], "step_minutes": 60, "gpu": "H100"}
    t0 = time.monotonic()
    # the app's error handlers (not mounted here) make the ValidationError a 400
    with pytest.raises(ValidationError, match="peak demand is 20,000,001 GPUs"):
        TestClient(app).post("/api/v1/plan/hybrid", json=body)
    assert time.monotonic() - t0 < 5.0


def test_a_count_no_published_model_matches_has_all_heads_as_kv_heads() -> None:
    # GPT-3 175B: 96 layers x 12,288 hidden, 96 heads, all of them KV heads
    p = plan_serving(params=175e9, gpu="H100", catalog=CAT)
    assert p.shape_source == "estimated"
    assert p.kv_heads == p.heads == p.hidden // 128
    assert p.kv_heads > 8
    # K and V, every layer, all heads of 128, bf16
    assert p.kv_per_token_mb == pytest.approx(2 * p.layers * p.kv_heads * 128 * 2 / 1e6)
    note = next(n for n in p.notes if n.startswith("kv_heads not given"))
    assert f"assumed full multi-head attention ({p.kv_heads} KV heads" in note
    assert "give `kv_heads` for a grouped-query-attention model" in note
    # --kv-heads gives GQA
    q = plan_serving(params=175e9, gpu="H100", kv_heads=8, catalog=CAT)
    assert q.kv_heads == 8
    assert q.kv_per_token_mb == pytest.approx(p.kv_per_token_mb * 8 / p.kv_heads)
    assert not any(n.startswith("kv_heads not given") for n in q.notes)


def test_a_published_match_keeps_its_gqa_and_says_so() -> None:
    p = plan_serving(params=70e9, gpu="H100", catalog=CAT)
    assert (p.heads, p.kv_heads) == (64, 8)
    assert not any(n.startswith("kv_heads not given") for n in p.notes)
    note = next(n for n in p.notes if n.startswith("model shape not given"))
    assert "Llama 3.1 70B" in note
    assert "64 heads, 8 KV heads (its grouped-query attention); give `kv_heads`" in note
    assert "64 for full multi-head attention" in note


def test_cli_says_the_options() -> None:
    res = CliRunner().invoke(plan_app, ["serve", "--params", "175B", "--gpu", "H100"])
    assert res.exit_code == 0, res.output
    assert "give --kv-heads for a grouped-query-attention model" in " ".join(res.output.split())
    res = CliRunner().invoke(plan_app, ["serve", "--params", "70B", "--gpu", "H100"])
    assert res.exit_code == 0, res.output
    assert "8 KV heads (its grouped-query attention); give --kv-heads" in " ".join(
        res.output.split()
    )
