"""A version registered without a run (``create_model_version`` with a remote source) cannot
be gated: the refusal's hint told every caller, API and SDK included, to run a CLI command
("register versions from runs (aistack models register --run ...)") and not that promoting
without conditions works. Now it names both ways and the field, for the API and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

mlflow = pytest.importorskip("mlflow")

from aistack.cli.models import app  # noqa: E402
from aistack.errors import ConflictError  # noqa: E402
from aistack.mlops import registry  # noqa: E402

HINT = (
    "promote it without conditions (no `require`; `--require` in the CLI), or register the "
    "model from a run and promote that version: `aistack models register --run RUN_ID --name "
    "norun` or MLflow's mlflow.register_model('runs:/RUN_ID/model', 'norun')"
)


def _without_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("norun")
    mv = client.create_model_version("norun", source="s3://bucket/norun/model")
    assert int(mv.version) == 1 and not mv.run_id
    return uri


def test_no_source_run_names_the_field_and_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _without_run(tmp_path, monkeypatch)
    with pytest.raises(ConflictError) as ei:
        registry.promote("norun", 1, "production", ["loss<3", "acc>0.5"], tracking_uri=uri)
    assert ei.value.message == (
        "norun v1 has no source run, so its metrics cannot be checked against the conditions "
        "(loss<3, acc>0.5)"
    )
    assert ei.value.hint == HINT
    assert ei.value.details["field"] == "require"

    args = ["promote", "norun", "--version", "1", "--to", "production", "--tracking-uri", uri]
    r = CliRunner().invoke(app, [*args, "--require", "loss<3"])
    assert isinstance(r.exception, ConflictError), r.output
    assert r.exception.hint == HINT

    # and the way out the hint gives works: no conditions, no run needed
    res = registry.promote("norun", 1, "production", [], tracking_uri=uri)
    assert (res.version, res.alias, res.run_id) == (1, "production", None)
