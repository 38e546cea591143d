"""Alias names are case-sensitive in aistack, as they are in MLflow: ``Production`` and
``production`` are two aliases (MLflow's SQL store keeps both and looks an alias up by exact
name; only the reserved ``latest`` and ``vN`` are matched without case). Promotion gates, the
alias commands and serving's ``NAME@alias`` pass the name to MLflow unchanged, so the three agree
with MLflow and with each other. This pins that behaviour (nothing folds case on one side only)."""

from __future__ import annotations

from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")


def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``gpt`` v1 and v2 (from runs with ``val_loss`` 3.0 and 2.0) in a local SQLite registry."""
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # serving's resolve_model reads it
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    for i, loss in enumerate((3.0, 2.0)):
        rid = client.create_run(exp).info.run_id
        d = tmp_path / f"model{i}"
        d.mkdir()
        (d / "weights.bin").write_bytes(b"\0" * 8)
        client.log_artifacts(rid, str(d), "model")
        client.log_metric(rid, "val_loss", loss)
        client.set_terminated(rid, "FINISHED")
        assert registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)["version"] == i + 1
    return uri


def test_aliases_differing_in_case_are_two_aliases_as_in_mlflow(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.errors import NotFoundError
    from aistack.mlops import registry
    from aistack.serving.models import resolve_model

    uri = _registry(tmp_path, monkeypatch)
    registry.set_alias("gpt", "Production", 1, tracking_uri=uri)
    res = registry.promote("gpt", 2, "production", ["val_loss<2.5"], tracking_uri=uri)
    # "production" did not exist: "Production" (v1) is another alias, left where it was
    assert (res.alias, res.version, res.previous_version) == ("production", 2, None)
    assert registry.show_model("gpt", tracking_uri=uri)["aliases"] == {
        "Production": 1,
        "production": 2,
    }
    # MLflow itself says the same
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    assert int(client.get_model_version_by_alias("gpt", "Production").version) == 1
    assert int(client.get_model_version_by_alias("gpt", "production").version) == 2

    # serving resolves each name to its own version; a third spelling is no alias
    assert resolve_model("gpt@Production").uri == "models:/gpt/1"
    assert resolve_model("models:/gpt@production").uri == "models:/gpt/2"
    with pytest.raises(NotFoundError) as ei:
        resolve_model("gpt@PRODUCTION")
    assert ei.value.message == "model: 'gpt' has no alias 'PRODUCTION'"
    assert "Production, production" in (ei.value.hint or "")

    # deleting one spelling leaves the other
    with pytest.raises(NotFoundError, match="has no alias 'PRODUCTION'"):
        registry.delete_alias("gpt", "PRODUCTION", tracking_uri=uri)
    registry.delete_alias("gpt", "Production", tracking_uri=uri)
    assert registry.show_model("gpt", tracking_uri=uri)["aliases"] == {"production": 2}


def test_latest_is_matched_without_case_as_mlflow_does(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow reserves ``latest`` in any case (the newest version) and refuses it as a name."""
    from aistack.errors import AistackError
    from aistack.mlops import registry
    from aistack.serving.models import resolve_model

    uri = _registry(tmp_path, monkeypatch)
    assert resolve_model("gpt@latest").uri == "models:/gpt/2"
    assert resolve_model("gpt@LATEST").uri == "models:/gpt/2"
    with pytest.raises(AistackError, match=r"^to: the alias 'Latest' is reserved"):
        registry.promote("gpt", 1, "Latest", tracking_uri=uri)
    assert registry.show_model("gpt", tracking_uri=uri)["aliases"] == {}
