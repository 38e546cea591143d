"""``aistack models`` against a local SQLite registry (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")


def test_ls_shows_a_model_without_versions_as_dash(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).create_registered_model("empty")
    r = CliRunner().invoke(app, ["ls", "--tracking-uri", uri], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if "empty" in line)
    assert "vNone" not in row and "-" in row
