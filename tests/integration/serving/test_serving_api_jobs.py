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


@pytest.mark.slow
@pytest.mark.mlflow
def test_replica_jobs_say_why_they_stopped_and_leave_no_mlflow_runs(
    server_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas stopped by the autoscaler, a rollout or a delete said "cancelled by user" in
    the jobs list, and each replica job left an MLflow run (KILLED once stopped)."""
    mlflow = pytest.importorskip("mlflow")
    srv = server_factory(AISTACK_MLFLOW_ENABLED="true")
    c = srv.client()

    def job_final(jid: str) -> dict | None:
        j = c.get_job(jid)
        return j if j["state"] in ("CANCELLED", "SUCCEEDED", "FAILED") else None

    batch = c.submit({"name": "b", "command": "true"})  # tracking is on: a batch job has a run
    batch = _wait(lambda: job_final(batch["id"]), 60, "the batch job")
    assert batch["state"] == "SUCCEEDED" and batch["mlflow_run_id"]

    c.request(
        "POST",
        "/services",
        json={
            "model": "builtin:echo",
            "name": "rs",
            "launcher": "jobs",
            "min_replicas": 2,
            "max_replicas": 2,
        },
    )

    def ready(n: int):
        def check():
            s = c.request("GET", "/services/rs")
            ok = [r for r in s["replicas"] if r["state"] == "ready"]
            return ok if len(ok) == n and s["ready_replicas"] == n else None

        return check

    first = {r["handle"] for r in _wait(ready(2), 120, "two ready replicas")}
    for h in first:
        job = c.get_job(h)
        assert job["kind"] == "service" and job["mlflow_run_id"] is None

    c.request("POST", "/services/rs/scale", json={"min_replicas": 1, "max_replicas": 1})
    gone = _wait(lambda: [j for h in first if (j := job_final(h))], 60, "a scaled-down job")
    assert [(j["state"], j["failure_reason"]) for j in gone] == [
        ("CANCELLED", "scaled down by `serve scale` of service rs (max 2 → 1)")
    ]
    (kept,) = first - {gone[0]["id"]}

    c.request("POST", "/services/rs/update", json={"to": "builtin:echo?delay_ms=1"})
    old = _wait(lambda: job_final(kept), 120, "the old replica replaced")
    assert (old["state"], old["failure_reason"]) == (
        "CANCELLED",
        "replaced by rollout of service rs to builtin:echo?delay_ms=1",
    )
    (new,) = {r["handle"] for r in _wait(ready(1), 60, "the new replica")}
    assert c.get_job(new)["mlflow_run_id"] is None

    c.request("DELETE", "/services/rs")
    last = _wait(lambda: job_final(new), 60, "the last replica to end")
    assert (last["state"], last["failure_reason"]) == ("CANCELLED", "service rs deleted")

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token)
    client = mlflow.MlflowClient(srv.url + "/mlflow")
    exp = client.get_experiment_by_name("default")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [batch["mlflow_run_id"]]  # none of the replicas
    assert [r.info.status for r in runs] == ["FINISHED"]
