"""Training sizing: formulas against hand-computed values, calibration against published runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.training import (
    ModelShape,
    activation_bytes,
    model_state_bytes,
    plan_training,
    ring_allreduce_seconds,
    training_flops,
)

REFERENCE = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "data"
    / "planning"
    / "reference_runs.csv"
)


def test_flops_dense_and_attention_term() -> None:
    assert training_flops(7e9, 1e12) == (4.2e22, 0.0)
    shape = ModelShape(layers=32, hidden=4096, heads=32, inferred=False)
    total, attn = training_flops(7e9, 1e12, seq_len=2048, shape=shape)
    assert attn == pytest.approx(12 * 32 * 4096 * 2048 * 1e12)
    assert total == pytest.approx(4.2e22 + 3.2212254720e21)


def test_model_states_per_zero_stage() -> None:
    # 1e9 params, DP 8: 16 / (4 + 12/8) / (2 + 14/8) / 16/8 bytes per param
    assert model_state_bytes(1e9, zero_stage=0, dp=8) == 16e9
    assert model_state_bytes(1e9, zero_stage=1, dp=8) == 5.5e9
    assert model_state_bytes(1e9, zero_stage=2, dp=8) == 3.75e9
    assert model_state_bytes(1e9, zero_stage=3, dp=8) == 2e9
    assert model_state_bytes(1e9, zero_stage=3, dp=8, mp=2) == 1e9
    with pytest.raises(ValidationError, match="zero_stage"):
        model_state_bytes(1e9, zero_stage=4, dp=1)


def test_activation_memory_hand_values() -> None:
    shape = ModelShape(layers=32, hidden=4096, heads=32, inferred=False)
    sbh = 2048 * 4096
    # Korthikanti et al.: s*b*h*(34 + 5*a*s/h) per layer without FlashAttention
    assert (
        activation_bytes(shape, seq_len=2048, recompute=False, flash_attention=False)
        == 32 * sbh * 114
    )
    assert activation_bytes(shape, seq_len=2048, recompute=False) == 32 * sbh * 34
    # full recomputation: layer inputs (2*s*b*h per layer) + one layer's working set
    assert activation_bytes(shape, seq_len=2048, recompute=True) == 32 * 2 * sbh + 34 * sbh
    assert (
        activation_bytes(shape, seq_len=2048, recompute=True, tp=4) == (32 * 2 * sbh + 34 * sbh) / 4
    )


def test_ring_allreduce() -> None:
    assert ring_allreduce_seconds(1e9, 4, 100) == pytest.approx(0.015)
    assert ring_allreduce_seconds(1e9, 1, 100) == 0.0


def test_plan_gpus_days_and_checkpoint() -> None:
    p = plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=64)
    eff = 989 * 0.40 * 0.88
    assert p.gpu_hours == pytest.approx(4.2e22 / (eff * 1e12) / 3600)
    assert p.days == pytest.approx(p.gpu_hours / 64 / 24)
    assert p.checkpoint_gb == pytest.approx(
        14 * 7
    )  # 14 bytes/param: bf16 weights + fp32 master + Adam
    assert p.checkpoint_write_gbs == pytest.approx(98 / 60)
    d = plan_training(params=7e9, tokens=1e12, gpu="H100", days=p.days)
    assert d.gpus == 64 and d.days <= p.days + 1e-9
    assert {"flops", "gpu_hours", "gpus", "days", "memory_per_gpu_gb"} <= set(d.to_dict())


def test_min_gpus_to_fit_matches_states_formula() -> None:
    p = plan_training(
        params=70e9, tokens=1e12, gpu="H100", layers=80, hidden=8192, seq_len=4096, zero_stage=3
    )
    cap = 80e9 * 0.95 - 1e9
    act = activation_bytes(p.shape, seq_len=4096, recompute=True)
    assert p.min_gpus_to_fit == math.ceil(16 * 70e9 / (cap - act))
    assert p.gpus_from == "memory" and p.gpus >= p.min_gpus_to_fit
    assert p.memory_per_gpu_gb <= 80
    stage0 = [o for o in p.memory_options if o.zero_stage == 0]
    assert all(o.min_gpus is None for o in stage0)  # 1.12 TB of states never fit in 80 GB


def test_moe_uses_active_params_for_flops_total_for_memory() -> None:
    dense = plan_training(params=671e9, tokens=1e12, gpu="H100", gpus=2048)
    moe = plan_training(params=671e9, active_params=37e9, tokens=1e12, gpu="H100", gpus=2048)
    assert moe.flops == pytest.approx(6 * 37e9 * 1e12)
    assert moe.gpu_hours == pytest.approx(dense.gpu_hours * 37 / 671)
    assert moe.checkpoint_gb == dense.checkpoint_gb


def test_impossible_deadline_says_why() -> None:
    with pytest.raises(ValidationError) as e:
        plan_training(params=405e9, tokens=15.6e12, gpu="H100", days=0.5)
    msg = str(e.value)
    assert "no number of" in msg and "fastest possible" in msg and "global batch" in msg


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"params": 0, "tokens": 1e12, "gpu": "H100"}, "params"),
        ({"params": -7e9, "tokens": 1e12, "gpu": "H100"}, "params"),
        ({"params": 7e9, "tokens": 0, "gpu": "H100"}, "tokens"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 0}, "gpus"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "H100", "days": -1}, "days"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "H100", "days": float("nan")}, "days"),
        ({"params": 7e9, "active_params": 8e9, "tokens": 1e12, "gpu": "H100"}, "active_params"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 8, "days": 3}, "either"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "A100", "precision": "fp8"}, "FP8"),
        ({"params": 7e9, "tokens": 1e12, "gpu": "H100", "mfu": 1.5}, "mfu"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        plan_training(**kwargs)


def test_unknown_gpu_suggests() -> None:
    with pytest.raises(NotFoundError, match="did you mean"):
        plan_training(params=7e9, tokens=1e12, gpu="H100X", gpus=8)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e8, 1e12), st.floats(1e9, 3e13), st.integers(1, 4096))
def test_gpu_hours_independent_of_gpu_count_and_finite(
    params: float, tokens: float, gpus: int
) -> None:
    a = plan_training(params=params, tokens=tokens, gpu="H100", gpus=gpus)
    b = plan_training(params=params, tokens=tokens, gpu="H100", gpus=gpus * 2)
    assert a.gpu_hours == pytest.approx(b.gpu_hours)
    assert b.days == pytest.approx(a.days / 2)
    assert all(
        math.isfinite(v)
        for v in (a.flops, a.gpu_hours, a.days, a.memory_per_gpu_gb, a.step_seconds)
    )


def _reference_rows() -> list[dict[str, str]]:
    if not REFERENCE.is_file():
        pytest.skip(f"reference runs not found at {REFERENCE} (the shared data folder is absent)")
    with REFERENCE.open() as f:
        return list(csv.DictReader(f))


def test_calibration_within_10_percent_of_published_runs() -> None:
    rows = _reference_rows()
    assert rows
    for r in rows:
        p = plan_training(
            params=float(r["params_total"]),
            active_params=float(r["params_active"]),
            tokens=float(r["tokens"]),
            gpu=r["gpu"],
            gpus=int(r["gpus_used"]) if r["gpus_used"] else None,
        )
        err = p.gpu_hours / float(r["reported_gpu_hours"]) - 1
        assert abs(err) <= 0.10, (
            f"{r['name']}: predicted {p.gpu_hours:,.0f} GPU-h, reported {r['reported_gpu_hours']} ({err:+.1%})"
        )


def test_short_runs_print_hours_or_minutes_not_zero_days() -> None:
    """A 7B run on 100,000 GPUs printed 'wall clock 0.0 days'; the fastest possible time in the
    impossible-deadline error read '0.0 days' too."""
    from aistack.planning.report import render_train

    p = plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=100_000)
    text = render_train(p)
    assert "0.0 days" not in text
    assert f"{p.days * 1440:,.2g} minutes" in text
    day = plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=2048)
    assert f"{day.days * 24:,.1f} hours" in render_train(day)
    with pytest.raises(ValidationError) as e:
        plan_training(params=7e9, tokens=1e12, gpu="H100", days=1e-9)
    assert "fastest possible is 0.0 days" not in str(e.value) and "minutes" in str(e.value)


def test_gpus_past_the_useful_maximum_do_not_shorten_the_run() -> None:
    """The planner notes that GPUs past the most that can share a step would idle, so they must
    not count in the wall-clock time."""
    # (1,000,000 GPUs: the most a plan takes; a 4M-token batch of 4k sequences: 262,144 useful)
    p = plan_training(
        params=7e9, tokens=1e12, gpu="H100", gpus=1_000_000, max_batch_tokens=4 * 1024 * 1024
    )
    assert p.max_useful_gpus == 262_144
    assert p.days == pytest.approx(p.gpu_hours / p.max_useful_gpus / 24)
    assert any("1,000,000 GPUs exceed" in n for n in p.notes)


def test_more_replicas_than_sequences_in_a_batch_is_noted() -> None:
    """1,080 data-parallel replicas cannot share a 4M-token batch of 512 8k sequences."""
    p = plan_training(params=70e9, tokens=2e12, gpu="H100", days=30, seq_len=8192)
    assert any(
        "data-parallel replicas" in n and "raise `batch_tokens` to at least" in n for n in p.notes
    )
    ok = plan_training(params=70e9, tokens=2e12, gpu="H100", gpus=512, seq_len=8192)
    assert not any("data-parallel replicas" in n for n in ok.notes)


def test_comm_bound_run_shows_its_wall_clock_and_gpu_hours() -> None:
    """70B on 1,024 H100: the all-reduce (5.59 s) is longer than a step's compute (4.35 s at the
    40 % MFU), yet the wall clock (27.3 days) and GPU-hours used compute only, with no
    communication-bound time."""
    from aistack.planning.report import render_train
    from aistack.planning.training import duration_text

    p = plan_training(params=70e9, tokens=2e12, gpu="H100", gpus=1024)
    assert p.allreduce_seconds_per_step > p.step_seconds
    # compute-bound figures unchanged (the calibrated ones the accuracy benchmark compares)
    assert p.gpu_hours == pytest.approx(
        6 * 70e9 * 2e12 / (p.effective_tflops_per_gpu * 1e12) / 3600
    )
    assert p.days == pytest.approx(p.gpu_hours / 1024 / 24)
    # communication-bound: every step takes max(compute, all-reduce), and the goodput (restarts,
    # stalls) costs as much wall clock as in the compute-bound time
    assert p.days_comm_bound == pytest.approx(
        p.steps * p.allreduce_seconds_per_step / p.goodput / 86400
    )
    assert p.gpu_hours_comm_bound == pytest.approx(p.days_comm_bound * 24 * 1024)
    assert p.days_comm_bound > p.days * 1.1
    text = render_train(p)
    wall = next(ln for ln in text.splitlines() if ln.startswith("wall clock"))
    assert duration_text(p.days) in wall and duration_text(p.days_comm_bound) in wall
    assert "35.1 days" in wall and "27.3 days" in wall
    hours = next(ln for ln in text.splitlines() if ln.startswith("GPU-hours"))
    assert f"{p.gpu_hours_comm_bound:,.0f} GPU-h" in hours
    assert "max(compute, all-reduce)" in text  # the assumption is stated
    d = p.to_dict()
    assert d["days_comm_bound"] == p.days_comm_bound
    assert d["gpu_hours_comm_bound"] == p.gpu_hours_comm_bound


def test_comm_bound_deadline_miss_is_noted_and_hidden_allreduce_changes_nothing() -> None:
    p = plan_training(
        params=70e9, tokens=2e12, gpu="H100", days=30, seq_len=8192, layers=80, hidden=8192
    )
    assert p.days <= 30 < p.days_comm_bound
    assert any("misses the 30-day deadline" in n for n in p.notes)
    # a step's compute longer than the all-reduce: the all-reduce hides under it
    q = plan_training(params=70e9, tokens=2e12, gpu="H100", gpus=64)
    assert q.allreduce_seconds_per_step < q.step_seconds
    assert (q.days_comm_bound, q.gpu_hours_comm_bound) == (q.days, q.gpu_hours)
    from aistack.planning.report import render_train

    assert "communication-bound" not in render_train(q)
