"""The registry's words: `models show` titled a one-version model "gpt: 1 versions"; a refused
promote's hint repeated the list of metrics its message had just given ("(logged: loss, lr)"
then "(it logged: loss, lr)"), and told API and SDK callers to "change --require", a CLI option
they do not have. Now the hint names the field `require` (SDK, API) and the CLI's names its
option `--require` (as 877d225 did for the messages), without the repeated list."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

mlflow = pytest.importorskip("mlflow")

from aistack.cli.models import app  # noqa: E402
from aistack.errors import ConflictError  # noqa: E402
from aistack.mlops import registry  # noqa: E402


def _registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **metrics: float) -> str:
    """A run that logged ``metrics``, registered as ``gpt`` v1."""
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
    assert registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)["version"] == 1
    return uri


def test_show_counts_one_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _registered(tmp_path, monkeypatch, loss=3.0)
    r = CliRunner().invoke(app, ["show", "gpt", "--tracking-uri", uri], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "gpt: 1 version" in r.output and "1 versions" not in r.output


def test_refusal_hints_name_the_field_in_the_sdk_and_the_option_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _registered(tmp_path, monkeypatch, loss=3.0, lr=1e-4)
    with pytest.raises(ConflictError) as ei:
        registry.promote("gpt", 1, "production", ["loss<2", "f1>0.5"], tracking_uri=uri)
    assert ei.value.message == (
        "refused to promote gpt v1 to 'production': loss=3 does not satisfy loss<2; "
        "metric 'f1' was not logged by the run (logged: loss, lr)"
    )
    assert ei.value.hint == (
        'require a metric the run logged, e.g. "loss>0.5" in `require`; '
        "train a better model or change `require`"
    )
    assert ei.value.details["logged"] == ["loss", "lr"]

    args = ["promote", "gpt", "--version", "1", "--to", "production", "--tracking-uri", uri]
    r = CliRunner().invoke(app, [*args, "--require", "loss<2", "--require", "f1>0.5"])
    assert isinstance(r.exception, ConflictError), r.output
    assert r.exception.message == ei.value.message
    assert r.exception.hint == (
        'require a metric the run logged, e.g. --require "loss>0.5"; '
        "train a better model or change --require"
    )


def test_a_run_without_metrics_is_told_to_log_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _registered(tmp_path, monkeypatch)
    with pytest.raises(ConflictError) as ei:
        registry.promote("gpt", 1, "production", ["loss<2"], tracking_uri=uri)
    assert ei.value.hint == (
        "log the metrics (mlflow.log_metric) in the training code, or promote without `require`"
    )
    args = ["promote", "gpt", "--version", "1", "--to", "production", "--tracking-uri", uri]
    r = CliRunner().invoke(app, [*args, "--require", "loss<2"])
    assert isinstance(r.exception, ConflictError), r.output
    assert r.exception.hint == (
        "log the metrics (mlflow.log_metric) in the training code, or promote without --require"
    )


def test_an_empty_alias_hint_names_no_cli_option() -> None:
    with pytest.raises(Exception) as ei:
        registry.promote("gpt", 1, "", [], tracking_uri="http://127.0.0.1:1")
    assert "--to" not in str(ei.value.hint)  # type: ignore[attr-defined]
