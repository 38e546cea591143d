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
    # up for longer than the window (see the next test for a young one)
    m = RequestMetrics(labels={"service": "s"}, window_s=10, clock=lambda: now[0], started=0.0)
    for _ in range(9):
        m.observe(200, 0.010)
    m.observe(503, 0.500)
    s = m.summary()
    assert s["requests_total"] == 10
    assert s["errors_total"] == 1
    assert abs(s["qps"] - 1.0) < 1e-9
    assert abs(s["p50_ms"] - 10.0) < 1e-6
    assert abs(s["p99_ms"] - 10.0) < 1e-6  # the 503 is an error, not a latency
    assert s["errors_window"] == 1
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


def test_error_answers_stay_out_of_the_latency_percentiles_and_are_counted_apart() -> None:
    """A burst of fast 4xx answers (bad input, 429 when over capacity) made an overloaded
    service look fast: p50 fell to the 4xx answers' sub-millisecond time."""
    now = [0.0]
    m = RequestMetrics(labels={"service": "s"}, window_s=60, clock=lambda: now[0], started=-600.0)
    for _ in range(10):
        m.observe(200, 0.200)
    for _ in range(30):
        m.observe(429, 0.0005)
    for _ in range(5):
        m.observe(400, 0.001)
    m.observe(504, 60.0)
    s = m.summary()
    assert s["p50_ms"] == 200.0 and s["p99_ms"] == 200.0
    assert s["client_errors_window"] == 35 and s["errors_window"] == 1
    assert s["client_errors_total"] == 35 and s["errors_total"] == 1
    assert s["requests_total"] == 46
    assert abs(s["qps"] - 46 / 60) < 1e-9  # every answer is a request served
    fams = {f.name: f for f in text_string_to_metric_families(m.prometheus())}
    dur = {
        (x.name, x.labels.get("quantile")): x.value
        for x in fams["aistack_serve_request_duration_seconds"].samples
    }
    assert dur[("aistack_serve_request_duration_seconds", "0.5")] == 0.2
    assert dur[("aistack_serve_request_duration_seconds", "0.99")] == 0.2
    # the summary's count and sum are those of the answered requests (as its quantiles)
    assert dur[("aistack_serve_request_duration_seconds_count", None)] == 10
    assert abs(dur[("aistack_serve_request_duration_seconds_sum", None)] - 2.0) < 1e-6
    codes = {
        x.labels["code"]: x.value
        for x in fams["aistack_serve_requests"].samples
        if "code" in x.labels
    }
    assert codes == {"200": 10.0, "400": 5.0, "429": 30.0, "504": 1.0}


def test_qps_right_after_a_restart_divides_by_the_time_up_not_the_whole_window() -> None:
    """A router restarted 2 s ago that answered 20 requests since serves 10 req/s; dividing by
    the full 10 s window said 2 req/s (and the 60 s window 0.33 req/s)."""
    now = [500.0]
    m = RequestMetrics(window_s=60, clock=lambda: now[0])  # counting starts now
    now[0] = 502.0
    for _ in range(20):
        m.observe(200, 0.01)
    assert m.summary(window_s=10.0)["qps"] == 2.0 * 5  # 20 requests / 2 s up
    assert m.summary()["qps"] == 10.0  # the 60 s window, too
    now[0] = 520.0  # up 20 s: the 10 s window is whole again, the 60 s one not yet
    assert m.summary(window_s=10.0)["qps"] == 0.0
    assert m.summary()["qps"] == 1.0  # 20 / 20 s
    now[0] = 560.0  # up 60 s: divided by the window (was so all along once up that long)
    assert abs(m.summary()["qps"] - 20 / 60) < 1e-9
    young = RequestMetrics(window_s=10, clock=lambda: 700.0)
    young.observe(200, 0.01)  # a first request the instant it started: 1 s is the least
    assert young.summary()["qps"] == 1.0


def test_mean_latency_of_answered_requests_in_a_window() -> None:
    now = [10.0]
    m = RequestMetrics(clock=lambda: now[0])
    assert m.mean_latency_s(10.0) is None
    m.observe(200, 0.2)
    m.observe(200, 0.4)
    m.observe(429, 0.001)  # refusals are not latency
    assert abs((m.mean_latency_s(10.0) or 0) - 0.3) < 1e-9
    now[0] = 30.0
    assert m.mean_latency_s(10.0) is None
