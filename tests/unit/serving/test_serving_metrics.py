from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from aistack.serving.metrics import RequestMetrics, batch_size_prometheus, quantile


def test_quantile_nearest_rank() -> None:
    vals = [float(i) for i in range(1, 101)]
    assert quantile(vals, 0.5) == 50.0
    assert quantile(vals, 0.99) == 99.0
    assert quantile([], 0.5) == 0.0


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200),
    st.floats(min_value=0, max_value=1),
)
def test_quantile_is_an_element_and_monotonic(vals: list[float], q: float) -> None:
    v = quantile(vals, q)
    assert v in vals
    assert quantile(vals, 0.0) <= v <= quantile(vals, 1.0)


def test_summary_window_and_prometheus_text_parses() -> None:
    now = [100.0]
    m = RequestMetrics(labels={"service": "s"}, window_s=10, clock=lambda: now[0])
    for _ in range(9):
        m.observe(200, 0.010)
    m.observe(503, 0.500)
    s = m.summary()
    assert s["requests_total"] == 10
    assert s["errors_total"] == 1
    assert abs(s["qps"] - 1.0) < 1e-9
    assert abs(s["p50_ms"] - 10.0) < 1e-6
    assert abs(s["p99_ms"] - 500.0) < 1e-6
    now[0] = 200.0  # window passed: latency gone, totals kept
    assert m.summary()["qps"] == 0.0
    assert m.summary()["requests_total"] == 10
    text = m.prometheus({"inflight_requests": 3.0}) + batch_size_prometheus(
        "aistack_serve", {"service": "s"}, {"1": 2, "8": 3}
    )
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {
        s.labels["code"]: s.value
        for s in fams["aistack_serve_requests"].samples
        if "code" in s.labels
    }
    assert codes == {"200": 9.0, "503": 1.0}
    assert fams["aistack_serve_inflight_requests"].samples[0].value == 3.0
    buckets = {
        s.labels.get("le"): s.value
        for s in fams["aistack_serve_batch_size"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["1"] == 2 and buckets["4"] == 2 and buckets["8"] == 5 and buckets["+Inf"] == 5
