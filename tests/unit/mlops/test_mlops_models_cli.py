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


def _registered(tmp_path: Path, monkeypatch, name: str = "gpt", **metrics: float) -> str:
    """A run that logged ``metrics`` and a model directory, registered as ``name`` v1."""
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    rid = client.create_run(exp).info.run_id
    for k, v in metrics.items():
        client.log_metric(rid, k, v)
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\0" * 8)
    client.log_artifacts(rid, str(d), "model")
    client.set_terminated(rid, "FINISHED")
    assert registry.register_from_run(rid, name, "model", tracking_uri=uri)["version"] == 1
    return uri


def test_promote_on_a_metric_the_run_did_not_log_says_which_it_did(
    tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import ConflictError

    uri = _registered(tmp_path, monkeypatch, loss=3.0, lr=1e-4)
    args = ["promote", "gpt", "--version", "1", "--to", "production", "--tracking-uri", uri]
    r = CliRunner().invoke(app, [*args, "--require", "val_loss<3.2"])
    err = r.exception
    assert isinstance(err, ConflictError), r.output
    assert "'val_loss' was not logged by the run (logged: loss, lr)" in err.message
    assert "'val_loss' is not logged by the run (it logged: loss, lr)" in err.hint
    assert '--require "loss<3.2"' in err.hint
    assert "train a better model" not in err.hint  # no model is to blame for a missing metric

    # a logged metric that fails: that one is the model's fault
    r = CliRunner().invoke(app, [*args, "--require", "loss<2"])
    assert isinstance(r.exception, ConflictError)
    assert r.exception.hint == "train a better model or change --require"

    # both: both hints
    r = CliRunner().invoke(app, [*args, "--require", "loss<2", "--require", "f1>0.5"])
    assert "'f1' is not logged" in r.exception.hint
    assert '--require "loss>0.5"' in r.exception.hint
    assert r.exception.hint.endswith("train a better model or change --require")

    r = CliRunner().invoke(app, [*args, "--require", "loss<3.2", "--json"])
    assert r.exit_code == 0, r.output


def test_promote_without_metrics_says_the_run_logged_none(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import ConflictError
    from aistack.mlops import registry

    uri = _registered(tmp_path, monkeypatch)
    with pytest.raises(ConflictError) as ei:
        registry.promote("gpt", 1, "production", ["val_loss<3.2"], tracking_uri=uri)
    assert "which logged no metrics" in ei.value.hint
    assert "train a better model" not in ei.value.hint


def test_require_help_uses_a_metric_the_trainer_logs() -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app

    r = CliRunner().invoke(app, ["promote", "--help"], env={"COLUMNS": "200"})
    assert "loss<3.2" in r.output and "val_loss" not in r.output


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "nope", "--version", "1", "--to", "staging"],
        ["promote", "nope", "--version", "1", "--to", "staging", "--require", "loss<3"],
        ["show", "nope"],
        ["lineage", "nope", "--version", "1"],
        ["alias", "nope", "staging", "--version", "1"],
        ["alias", "nope", "staging", "--delete"],
    ],
)
def test_an_unknown_model_name_lists_the_registered_models(
    tmp_path: Path, monkeypatch, argv: list[str]
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import NotFoundError

    uri = _registered(tmp_path, monkeypatch, name="gpt", loss=1.0)
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).create_registered_model("bert")
    r = CliRunner().invoke(app, [*argv, "--tracking-uri", uri])
    err = r.exception
    assert isinstance(err, NotFoundError), r.output
    assert err.message == "there is no model named 'nope' (registered models: bert, gpt)"
    assert "aistack models ls" in err.hint
    assert "no version" not in str(err)


def test_a_missing_version_of_a_known_model_lists_its_versions(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import NotFoundError
    from aistack.mlops import registry

    uri = _registered(tmp_path, monkeypatch, loss=1.0)
    with pytest.raises(NotFoundError) as ei:
        registry.promote("gpt", 7, "staging", tracking_uri=uri)
    assert ei.value.message == "model 'gpt' has no version 7 (versions: 1)"
    assert ei.value.hint == "list versions with `aistack models show gpt`"


def test_an_unknown_model_with_an_empty_registry(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import NotFoundError
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(NotFoundError, match=r"no model named 'nope' \(no models are registered"):
        registry.show_model("nope", tracking_uri=uri)
