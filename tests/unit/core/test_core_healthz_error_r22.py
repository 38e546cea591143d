"""/healthz is open: why MLflow failed (which names its store: DB user, host, port) is shown
only with the API token; the state is shown to all."""

from __future__ import annotations

import pytest

import aistack.mlops.server as mls


def test_the_mlflow_error_needs_the_token(api, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    why = "could not start MLflow on postgresql://ml:***@db.internal:5432/ml"
    monkeypatch.setattr(mls, "mlflow_status", lambda: {"state": "failed", "error": why})
    api.ctx.extras["mlflow"] = True
    authed = api.http.get("/healthz").json()
    assert authed["mlflow"] == {"state": "failed", "error": why}
    token = api.http.headers.pop("Authorization")
    try:
        open_ = api.http.get("/healthz").json()
    finally:
        api.http.headers["Authorization"] = token
    assert open_["mlflow"]["state"] == "failed"
    assert "db.internal" not in str(open_)
