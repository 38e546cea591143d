"""A 401 under /mlflow is in MLflow's shape too (error_code, a message that says what to set):
MLflow's client showed "INTERNAL_ERROR: missing or wrong API token" and no way out."""

from __future__ import annotations

from typing import Any


def test_a_401_under_mlflow_tells_an_mlflow_client_what_to_set(api: Any) -> None:
    r = api.http.get(
        "/mlflow/api/2.0/mlflow/experiments/search", headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    body = r.json()
    assert body["error_code"] == "UNAUTHENTICATED"
    assert body["message"].startswith("missing or wrong API token: set MLFLOW_TRACKING_TOKEN")
    assert body["code"] == "unauthorized"  # aistack's own shape is kept
    # elsewhere the answer is as before
    r = api.http.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "error_code" not in r.json()
    assert r.json()["message"] == "missing or wrong API token"
