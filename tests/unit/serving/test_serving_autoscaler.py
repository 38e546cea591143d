"""Autoscaler decisions on hand-made load series (virtual clock, one sample per second)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.serving.autoscaler import Autoscaler, LoadSample
from aistack.serving.spec import AutoscaleConfig


def run(
    series: list[float], cfg: AutoscaleConfig, start: int = 1, delays: list[float] | None = None
):
    a = Autoscaler(cfg=cfg)
    current = start
    timeline = []
    for t, load in enumerate(series):
        a.observe(
            LoadSample(t=float(t), inflight=load, queue_delay_ms=(delays or [0.0] * len(series))[t])
        )
        d = a.decide(float(t), current)
        current = d.desired
        timeline.append(current)
    return timeline, a


CFG = AutoscaleConfig(
    min_replicas=1,
    max_replicas=4,
    target_inflight=4,
    upscale_delay_s=1,
    downscale_cooldown_s=10,
    metric_window_s=2,
)


def test_step_load_scales_up_within_seconds_then_down_after_cooldown() -> None:
    series = [1.0] * 10 + [16.0] * 20 + [1.0] * 40
    timeline, a = run(series, CFG)
    first_up = next(t for t, n in enumerate(timeline) if n > 1)
    assert first_up == 11  # one second after the step (upscale_delay_s=1)
    assert timeline[14] == 4  # at max within 4 s
    assert max(timeline) == 4
    last_high = 29
    first_down = next(t for t in range(last_high, len(timeline)) if timeline[t] < 4)
    assert first_down - last_high >= 10  # never before the cooldown
    assert timeline[-1] == 1
    # the stabilization window holds the high recommendations: down to what the low load needs
    # within cooldown (10 s) + metric window (2 s) + 1 s after the load fell
    assert timeline[last_high + 13] == 1
    ups = [d for d in a.history if d.action == "up"]
    downs = [d for d in a.history if d.action == "down"]
    assert ups and downs
    assert all("in flight" in d.reason for d in a.history)
    assert "low for 10 s" in downs[0].reason


def test_one_second_spike_does_not_scale_up_with_delay() -> None:
    cfg = CFG.model_copy(update={"upscale_delay_s": 3.0, "metric_window_s": 1.0})
    series = [0.0] * 10 + [40.0] + [0.0] * 10
    timeline, a = run(series, cfg)
    assert timeline == [1] * len(series)
    assert not a.history


def test_bounds_and_minimum_are_enforced() -> None:
    timeline, a = run([100.0] * 10, CFG, start=0)
    assert timeline[0] == 1  # below min → min at once
    assert max(timeline) == 4
    assert "below the minimum" in a.history[0].reason
    cfg = CFG.model_copy(update={"max_replicas": 2})
    timeline, _ = run([0.0] * 3, cfg, start=5)
    assert timeline[0] == 2


def test_scale_down_uses_max_recommendation_of_window() -> None:
    # load drops from 16 to 6 (needs 2 replicas): scale down to 2, not 1
    series = [16.0] * 10 + [6.0] * 30
    timeline, _ = run(series, CFG, start=4)
    assert timeline[-1] == 2


def test_queue_delay_metric() -> None:
    cfg = CFG.model_copy(update={"metric": "queue_delay", "target_queue_delay_ms": 50.0})
    n = 20
    timeline, a = run([5.0] * n, cfg, start=1, delays=[150.0] * n)
    assert timeline[-1] == 4  # 150 ms vs 50 ms target → ×3 each step, clipped to 4
    assert "queue delay" in a.history[0].reason


@settings(max_examples=60, deadline=None)
@given(
    loads=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=80),
    lo=st.integers(min_value=0, max_value=3),
    span=st.integers(min_value=0, max_value=5),
    cooldown=st.integers(min_value=0, max_value=15),
)
def test_property_bounds_and_cooldown(
    loads: list[float], lo: int, span: int, cooldown: int
) -> None:
    cfg = AutoscaleConfig(
        min_replicas=lo,
        max_replicas=max(1, lo + span),
        downscale_cooldown_s=cooldown,
        upscale_delay_s=0,
    )
    timeline, a = run(loads, cfg, start=cfg.min_replicas)
    assert all(cfg.min_replicas <= n <= cfg.max_replicas for n in timeline)
    last_up = None
    for d in a.history:
        if d.action == "up" and "minimum" not in d.reason:
            last_up = d.t
        elif d.action == "down" and last_up is not None and "maximum" not in d.reason:
            assert d.t - last_up >= cooldown  # never down within the cooldown after an up


def test_decision_reasons_count_replicas() -> None:
    """`serve status` printed 'scale up 0 → 1: below the minimum of 1' and '0 clipped to
    [1, 4]': bare numbers; they are replicas."""
    _, a = run([100.0] * 3, CFG, start=0)
    assert a.history[0].reason == "scale up 0 → 1 replicas: below the minimum of 1 replica"
    _, a = run([0.0] * 3, CFG.model_copy(update={"max_replicas": 2}), start=5)
    assert a.history[0].reason == "scale down 5 → 2 replicas: above the maximum of 2 replicas"
    _, why = Autoscaler(cfg=CFG).recommend(0.0, 1)
    assert why.endswith("; that is 0 replicas, raised to the minimum of 1")
