"""The dashboard's service page showed p50 and p99 as "-" after one request: the status
answers them for a single request (not null), over its last 10 s; once that request leaves the
window they are null (an idle service must not read as an instant one) while requests_total
still counts it. The status now says the window (``metrics.window_s``), so a page can say
"last 10 s" as ``serve status`` does instead of a bare "-"."""

from __future__ import annotations

from pathlib import Path

from serving_fakes import RunningLauncher

from aistack.serving.controller import ServiceController
from aistack.serving.spec import ServiceSpec


def test_one_request_has_p50_and_p99_within_the_window_it_names(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=RunningLauncher())  # type: ignore[arg-type]
    now = [1000.0]
    metrics = ctl.router.metrics
    metrics.clock = lambda: now[0]
    metrics.started = now[0] - 100
    metrics.observe(200, 0.0125)
    now[0] += 3  # the page asks a few seconds later
    m = ctl.status()["metrics"]
    assert (m["p50_ms"], m["p99_ms"], m["requests_total"]) == (12.5, 12.5, 1)
    assert m["window_s"] == 10.0
    now[0] += 10  # the request has left the window
    m = ctl.status()["metrics"]
    assert (m["p50_ms"], m["p99_ms"], m["requests_total"], m["window_s"]) == (None, None, 1, 10.0)
