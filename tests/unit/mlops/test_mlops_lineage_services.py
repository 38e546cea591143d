"""`aistack models lineage NAME --version N` names the services deployed with the version (the
lineage edges ``model:NAME@vN → service:SVC`` a deploy records) and whether each still serves
it (its spec.json and controller under $AISTACK_HOME/services).

The services deployed straight from the version's source run with the version's own model
(``runs:/RUN_ID/PATH``, the lineage edge ``run:RUN_ID → service:SVC``) are listed too: the
path data → run → model version → endpoint had a hole there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")


def _registered(model_run: tuple[str, str]) -> str:
    """``gpt`` v1 (from a run) and v2 (without one) in a local SQLite registry."""
    from aistack.mlops import registry

    uri, rid = model_run
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    client.set_terminated(rid, "FINISHED")
    assert registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)["version"] == 1
    client.create_model_version("gpt", "file:///nowhere", await_creation_for=0)  # v2, no run
    return uri


def _service(name: str, model_uri: str, *, alive: bool) -> None:
    from aistack.serving import manager

    d = manager.service_dir(name)
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"name": name, "model_uri": model_uri}))
    if alive:  # a controller whose pid runs (this test's)
        (d / "controller.json").write_text(json.dumps({"pid": os.getpid(), "url": "http://x"}))


def _edges(*pairs: tuple[str, str]) -> None:
    from aistack.storage import Datasets

    Datasets.from_settings().record_edges(list(pairs))


def test_lineage_lists_the_services_deployed_with_the_version(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_run: tuple[str, str],
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import registry

    uri = _registered(model_run)
    _edges(
        ("model:gpt@v1", "service:chat"),
        ("model:gpt@v1", "service:moved"),
        ("model:gpt@v1", "service:stopped"),
        ("model:gpt@v1", "service:gone"),
        ("model:gpt@v2", "service:moved"),
        ("model:gpt@v10", "service:other"),  # another version: not gpt v1's
    )
    _service("chat", "models:/gpt/1", alive=True)
    _service("moved", "models:/gpt/2", alive=True)
    _service("stopped", "models:/gpt/1", alive=False)

    lin = registry.lineage("gpt", 1, tracking_uri=uri)
    assert lin["services_error"] is None
    assert lin["services"] == [
        {
            "name": "chat",
            "node": "service:chat",
            "serving": True,
            "state": "serving",
            "model_uri": "models:/gpt/1",
        },
        {
            "name": "gone",
            "node": "service:gone",
            "serving": False,
            "state": "deleted",
            "model_uri": None,
        },
        {
            "name": "moved",
            "node": "service:moved",
            "serving": False,
            "state": "now serves models:/gpt/2",
            "model_uri": "models:/gpt/2",
        },
        {
            "name": "stopped",
            "node": "service:stopped",
            "serving": False,
            "state": "controller down",
            "model_uri": "models:/gpt/1",
        },
    ]
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 0, r.output
    assert (
        "served by chat (serving), gone (deleted), moved (now serves models:/gpt/2), "
        "stopped (controller down)"
    ) in " ".join(r.output.split())

    # a version registered without a run has its services too
    v2 = registry.lineage("gpt", 2, tracking_uri=uri)
    assert v2["run"] is None
    assert [(s["name"], s["state"]) for s in v2["services"]] == [("moved", "serving")]


def test_a_version_no_service_was_deployed_with(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_run: tuple[str, str],
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app

    uri = _registered(model_run)
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 0, r.output
    assert "served by: none (no service was deployed with this version)" in r.output
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri, "--json"]
    )
    assert json.loads(r.output)["services"] == []


def test_an_unreadable_catalog_leaves_the_rest_of_the_lineage(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_run: tuple[str, str],
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import registry
    from aistack.settings import reset_settings_cache

    uri = _registered(model_run)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("AISTACK_DATABASE_URL", f"sqlite:///{blocker / 'aistack.db'}")
    reset_settings_cache()
    lin = registry.lineage("gpt", 1, tracking_uri=uri)
    assert lin["model"]["version"] == 1 and lin["run"] is not None
    assert lin["services"] is None and "not-a-dir" in lin["services_error"]
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri], env={"COLUMNS": "300"}
    )
    assert r.exit_code == 0, r.output
    assert "served by: unknown (the dataset catalog could not be read: " in " ".join(
        r.output.split()
    )


def test_lineage_shows_the_versions_aliases(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_run: tuple[str, str],
) -> None:
    """The aliases show: "[production]" was taken for rich markup and never printed."""
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import registry

    uri = _registered(model_run)
    registry.set_alias("gpt", "production", 1, tracking_uri=uri)
    registry.set_alias("gpt", "staging", 1, tracking_uri=uri)
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("model gpt v1 [production, staging] (runs:/")


# ------------------------------------------------ services deployed from runs:/RUN_ID/PATH


def _client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object, str]:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # (MLflow 3 looks logged models up there)
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri, client, exp


def _run_with_artifacts(client, exp: str, tmp_path: Path, *paths: str) -> str:  # type: ignore[no-untyped-def]
    rid = client.create_run(exp).info.run_id
    for p in paths:
        d = tmp_path / "src" / rid / p
        d.mkdir(parents=True)
        (d / "weights.bin").write_bytes(b"\0" * 8)
        client.log_artifacts(rid, str(d), p)
    client.set_terminated(rid, "FINISHED")
    return rid


def test_run_model_spells_a_runs_uri_one_way() -> None:
    from aistack.serving.lineage import run_model, run_path

    assert run_model("runs:/abc/model") == ("abc", "model")
    assert run_model("runs:/abc//model/") == ("abc", "model")
    assert run_model("runs:/abc/sub/dir/model") == ("abc", "sub/dir/model")
    assert run_model("runs:/abc") == ("abc", "")
    assert run_model("models:/gpt/1") is None and run_model("builtin:echo") is None
    assert run_path("/a//b/") == "a/b" and run_path(None) == ""


def test_lineage_lists_services_deployed_from_the_versions_run_and_path(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import registry

    uri, client, exp = _client(tmp_path, monkeypatch)
    rid = _run_with_artifacts(client, exp, tmp_path, "model", "checkpoint")
    other = _run_with_artifacts(client, exp, tmp_path, "model")
    assert registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)["version"] == 1

    _edges(
        (f"run:{rid}", "service:fromrun"),
        (f"run:{rid}", "service:slashes"),
        (f"run:{rid}", "service:checkpoint"),  # another model of the same run
        (f"run:{rid}", "service:root"),  # the run's root: more than the model
        (f"run:{rid}", "service:gone"),  # deleted: the edge does not say which path
        (f"run:{other}", "service:otherrun"),
        ("model:gpt@v1", "service:pinned"),
        (f"run:{rid}", "service:pinned"),  # deployed both ways: listed once
        ("model:gpt@v1", "service:rolled"),  # from models:/gpt/1, rolled to the run's model
    )
    _service("fromrun", f"runs:/{rid}/model", alive=True)
    _service("slashes", f"runs:/{rid}//model/", alive=False)
    _service("checkpoint", f"runs:/{rid}/checkpoint", alive=True)
    _service("root", f"runs:/{rid}", alive=True)
    _service("otherrun", f"runs:/{other}/model", alive=True)
    _service("pinned", "models:/gpt/1", alive=True)
    _service("rolled", f"runs:/{rid}/model", alive=True)

    lin = registry.lineage("gpt", 1, tracking_uri=uri)
    assert lin["services_error"] is None
    assert lin["services"] == [
        {
            "name": "fromrun",
            "node": "service:fromrun",
            "serving": True,
            "state": "serving",
            "model_uri": f"runs:/{rid}/model",
        },
        {
            "name": "pinned",
            "node": "service:pinned",
            "serving": True,
            "state": "serving",
            "model_uri": "models:/gpt/1",
        },
        {
            "name": "rolled",
            "node": "service:rolled",
            "serving": True,
            "state": "serving",
            "model_uri": f"runs:/{rid}/model",
        },
        {
            "name": "slashes",
            "node": "service:slashes",
            "serving": False,
            "state": "controller down",
            "model_uri": f"runs:/{rid}//model/",
        },
    ]

    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 0, r.output
    assert (
        "served by fromrun (serving), pinned (serving), rolled (serving), slashes (controller down)"
    ) in " ".join(r.output.split())
    r = CliRunner().invoke(
        app, ["lineage", "gpt", "--version", "1", "--tracking-uri", uri, "--json"]
    )
    assert [s["name"] for s in json.loads(r.output)["services"]] == [
        "fromrun",
        "pinned",
        "rolled",
        "slashes",
    ]


def test_a_version_from_another_path_of_the_run_gets_its_own_services(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two versions from one run, two paths: each lists the runs:/ service of its own path."""
    from aistack.mlops import registry

    uri, client, exp = _client(tmp_path, monkeypatch)
    rid = _run_with_artifacts(client, exp, tmp_path, "model", "sub/checkpoint")
    registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)
    assert registry.register_from_run(rid, "ckpt", "sub/checkpoint", tracking_uri=uri)[
        "source"
    ] == (f"runs:/{rid}/sub/checkpoint")
    _edges((f"run:{rid}", "service:a"), (f"run:{rid}", "service:b"))
    _service("a", f"runs:/{rid}/model", alive=True)
    _service("b", f"runs:/{rid}/sub/checkpoint", alive=True)

    gpt = registry.lineage("gpt", 1, tracking_uri=uri)["services"]
    ckpt = registry.lineage("ckpt", 1, tracking_uri=uri)["services"]
    assert [(s["name"], s["state"]) for s in gpt] == [("a", "serving")]
    assert [(s["name"], s["state"]) for s in ckpt] == [("b", "serving")]


def test_a_version_of_a_logged_model_matches_runs_uri_by_the_models_name(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow 3: ``log_model(name="model")`` makes a logged model; the version's source is
    ``models:/m-…`` and ``runs:/RUN_ID/model`` loads that same model."""
    from aistack.mlops import registry

    uri, client, exp = _client(tmp_path, monkeypatch)
    rid = client.create_run(exp).info.run_id
    lm = client.create_logged_model(exp, name="model", source_run_id=rid)
    client.set_terminated(rid, "FINISHED")
    v = registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)
    assert v["source"] == f"models:/{lm.model_id}"
    _edges((f"run:{rid}", "service:chat"))
    _service("chat", f"runs:/{rid}/model", alive=True)

    services = registry.lineage("gpt", 1, tracking_uri=uri)["services"]
    assert [(s["name"], s["state"], s["model_uri"]) for s in services] == [
        ("chat", "serving", f"runs:/{rid}/model")
    ]


def test_lineage_without_version_shows_the_newest(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_run: tuple[str, str],
) -> None:
    """`aistack models lineage NAME` said "Missing option '--version'"; `data lineage NAME`
    takes the latest, so does this now."""
    from typer.testing import CliRunner

    from aistack.cli.models import app

    uri = _registered(model_run)
    r = CliRunner().invoke(app, ["lineage", "gpt", "--tracking-uri", uri], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert r.output.startswith("model gpt v2 (file:///nowhere)")  # _registered makes v1, v2
