"""Fixtures of the mlops unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def model_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(tracking URI, run id) of a run in a local SQLite store that logged a model directory
    under ``model`` (the run stays RUNNING)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    rid = client.create_run(exp).info.run_id
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\0" * 8)
    client.log_artifacts(rid, str(d), "model")
    return uri, rid
