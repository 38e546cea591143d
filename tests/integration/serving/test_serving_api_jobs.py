"""/api/v1/services on a real aistack server, with replicas run as scheduler jobs (JobLauncher)."""

from __future__ import annotations

import time

import httpx
import pytest


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@pytest.mark.slow
def test_deploy_through_api_with_replicas_as_jobs(server) -> None:
    c = server.client()
    bad = c._http.post("/api/v1/services", json={"model": "builtin:echo", "replicas": 2})
    assert bad.status_code == 422 and "replicas" in bad.text
    missing = c._http.get("/api/v1/services/nope")
    assert missing.status_code == 404 and "no service named" in missing.text

    st = c.request(
        "POST",
        "/services",
        json={"model": "builtin:echo", "name": "api", "launcher": "jobs", "min_replicas": 1},
    )
    assert st["name"] == "api" and st["launcher"] == "jobs"
    st = _wait(
        lambda: (lambda s: s if s["ready_replicas"] == 1 else None)(
            c.request("GET", "/services/api")
        ),
        90,
        "a ready replica",
    )
    rep = next(r for r in st["replicas"] if r["state"] == "ready")
    job = c.get_job(rep["handle"])
    assert job["state"] == "RUNNING"
    assert job["kind"] == "service" and job["priority"] == 100
    r = httpx.post(st["url"] + "/v1/completions", json={"prompt": "jobs", "max_tokens": 4})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "sboj"
    assert [s["name"] for s in c.request("GET", "/services")] == ["api"]
    logs = c.request("GET", "/services/api/logs", params={"tail": 20})
    assert "controller" in logs["logs"]

    out = c.request("DELETE", "/services/api")
    assert out["deleted"] is True
    final = _wait(
        lambda: (lambda j: j if j["state"] in ("CANCELLED", "SUCCEEDED", "FAILED") else None)(
            c.get_job(rep["handle"])
        ),
        60,
        "the replica job to end",
    )
    assert final["state"] in ("CANCELLED", "SUCCEEDED")
