"""An idle service, or one whose every answer in the window was an error (a 503 while it
woke from zero replicas), showed "p50 0.0 ms, p99 0.0 ms" in `serve status` and "0.0 ms"
in `serve ls`: a latency no request had. With no request answered in the window the summary
has no latency (None) and the CLI prints "-", as the dashboard already did for null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.server.schemas.services import ServiceSummary
from aistack.serving import manager
from aistack.serving.metrics import RequestMetrics

runner = CliRunner()


def test_no_answered_request_has_no_latency() -> None:
    now = [100.0]
    m = RequestMetrics(labels={"service": "s"}, window_s=10, clock=lambda: now[0], started=0.0)
    s = m.summary()
    assert s["p50_ms"] is None and s["p99_ms"] is None and s["qps"] == 0.0
    m.observe(503, 10.0)  # only an error in the window
    s = m.summary()
    assert s["p50_ms"] is None and s["p99_ms"] is None
    assert s["errors_window"] == 1
    m.observe(200, 0.025)
    s = m.summary()
    assert s["p50_ms"] == pytest.approx(25.0) and s["p99_ms"] == pytest.approx(25.0)
    now[0] = 200.0  # the window passed: no latency again, totals kept
    s = m.summary()
    assert s["p50_ms"] is None and s["requests_total"] == 2


def test_status_and_ls_print_a_dash_not_zero_ms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    st: dict[str, Any] = {
        "name": "svc",
        "status": "running",
        "model_uri": "builtin:echo",
        "url": "http://127.0.0.1:1",
        "replicas": [],
        "metrics": {"qps": 0.1, "p50_ms": None, "p99_ms": None, "errors_window": 1},
    }
    monkeypatch.setattr(manager, "status", lambda name: st)
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "last 10 s: 0.1 req/s, p50 -, p99 -, 1 server errors (5xx)" in text
    assert "0.0 ms" not in text

    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "spec.json").write_text("{}")
    monkeypatch.setattr(manager, "services_dir", lambda: tmp_path)
    rows = manager.list_services()
    assert rows[0]["p99_ms"] is None
    assert ServiceSummary.model_validate(rows[0]).p99_ms is None  # the API's row takes it
    res = runner.invoke(serve_cli.app, ["ls"])
    assert res.exit_code == 0, res.output
    assert "0.0 ms" not in res.output and "0.1 req/s" in res.output

    st["metrics"] = {"qps": 2.0, "p50_ms": 12.34, "p99_ms": 56.78}
    res = runner.invoke(serve_cli.app, ["status", "svc"])
    assert "p50 12.3 ms, p99 56.8 ms" in " ".join(res.output.split())
