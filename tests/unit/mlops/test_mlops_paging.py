"""MLflow listings read every page: registered models, model versions and logged models, against a
real SQLite-backed tracking store with page sizes of a few items (so a handful of models crosses
pages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import BackendError, NotFoundError, ValidationError  # noqa: E402
from aistack.mlops import _client, registry  # noqa: E402
from aistack.mlops.lineage import model_versions_of_runs  # noqa: E402


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> tuple[str, object]:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, mlflow.tracking.MlflowClient(uri, registry_uri=uri)


def _run_with_model_dir(client, tmp_path: Path) -> str:
    exp = client.get_experiment_by_name("e") or None
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    )
    rid = client.create_run(exp_id).info.run_id
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    (d / "weights.bin").write_bytes(b"\0" * 8)
    client.log_artifacts(rid, str(d), "model")
    return rid


def _count_calls(monkeypatch, method: str) -> list[dict]:
    """Record the keyword arguments of every MlflowClient.<method> call."""
    calls: list[dict] = []
    orig = getattr(mlflow.tracking.MlflowClient, method)

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.tracking.MlflowClient, method, spy)
    return calls


NAMES = ["m-a", "m-b", "m-c", "m-d", "m-e"]


def test_list_models_reads_every_page(store, monkeypatch):
    uri, client = store
    for n in reversed(NAMES):
        client.create_registered_model(n)
    calls = _count_calls(monkeypatch, "search_registered_models")
    models = registry.list_models(tracking_uri=uri, page_size=2)
    assert [m["name"] for m in models] == NAMES
    # 5 models, 2 a page: three requests, the 2nd and 3rd with the token the previous one gave
    assert [c["max_results"] for c in calls] == [2, 2, 2]
    assert calls[0]["page_token"] is None and all(c["page_token"] for c in calls[1:])
    assert [m["name"] for m in registry.list_models(tracking_uri=uri, page_size=1000)] == NAMES


def test_list_models_rejects_a_page_size_mlflow_refuses(store):
    uri, _ = store
    with pytest.raises(ValidationError, match="page_size: must be between 1 and 1000, got 1001"):
        registry.list_models(tracking_uri=uri, page_size=1001)


def test_models_ls_lists_models_beyond_the_first_page(store, monkeypatch):
    from typer.testing import CliRunner

    from aistack.cli.models import app

    uri, client = store
    for n in NAMES:
        client.create_registered_model(n)
    monkeypatch.setattr(registry, "REGISTERED_MODELS_PAGE", 2)
    r = CliRunner().invoke(app, ["ls", "--json", "--tracking-uri", uri])
    assert r.exit_code == 0, r.output
    assert [m["name"] for m in json.loads(r.stdout)] == NAMES
    # the courtesy listing of an unknown name pages too
    with pytest.raises(NotFoundError) as ei:
        registry.show_model("nope", tracking_uri=uri)
    assert ei.value.message == (
        "there is no model named 'nope' (registered models: m-a, m-b, m-c, m-d, m-e)"
    )


def test_show_model_and_missing_version_read_every_page_of_versions(store, tmp_path, monkeypatch):
    uri, client = store
    rid = _run_with_model_dir(client, tmp_path)
    for _ in range(5):
        registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)
    monkeypatch.setattr(registry, "MODEL_VERSIONS_PAGE", 2)
    calls = _count_calls(monkeypatch, "search_model_versions")
    shown = registry.show_model("gpt", tracking_uri=uri)
    assert [v["version"] for v in shown["versions"]] == [5, 4, 3, 2, 1]
    assert len(calls) == 3 and all(c["max_results"] == 2 for c in calls)
    with pytest.raises(NotFoundError) as ei:
        registry.promote("gpt", 9, "staging", tracking_uri=uri)
    assert ei.value.message == "model 'gpt' has no version 9 (versions: 1, 2, 3, 4, 5)"


def test_model_versions_of_runs_reads_every_page(store, tmp_path, monkeypatch):
    uri, client = store
    rid = _run_with_model_dir(client, tmp_path)
    other = _run_with_model_dir(client, tmp_path)
    for name in ("gpt", "gpt", "gpt", "bert", "bert"):
        registry.register_from_run(rid, name, "model", tracking_uri=uri)
    registry.register_from_run(other, "gpt", "model", tracking_uri=uri)
    monkeypatch.setattr(registry, "MODEL_VERSIONS_PAGE", 2)
    assert model_versions_of_runs([rid, other], tracking_uri=uri) == {
        rid: [("bert", 1), ("bert", 2), ("gpt", 1), ("gpt", 2), ("gpt", 3)],
        other: [("gpt", 4)],
    }


def test_register_finds_a_logged_model_beyond_the_first_page(store, tmp_path, monkeypatch):
    uri, client = store
    # MLflow's SQL registry looks a logged model up through the global tracking URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rid = _run_with_model_dir(client, tmp_path)
    exp_id = client.get_run(rid).info.experiment_id
    ids = {
        n: client.create_logged_model(exp_id, name=n, source_run_id=rid).model_id
        for n in ("lm0", "lm1", "lm2")
    }
    monkeypatch.setattr(registry, "LOGGED_MODELS_PAGE", 1)
    calls = _count_calls(monkeypatch, "search_logged_models")
    for n in ("lm0", "lm1", "lm2"):
        mv = registry.register_from_run(rid, f"reg-{n}", n, tracking_uri=uri)
        assert (mv["version"], mv["source"]) == (1, f"models:/{ids[n]}")
    assert len(calls) == 3 * 3  # each registration read all three one-model pages
    with pytest.raises(NotFoundError) as ei:
        registry.register_from_run(rid, "x", "nope", tracking_uri=uri)
    assert "(it has: lm0, lm1, lm2, model)" in ei.value.message


def test_paged_stops_on_a_repeated_token():
    class Stuck:
        def search_things(self, max_results, page_token):
            from mlflow.store.entities import PagedList

            return PagedList([page_token or "first"], token="same")

    got = []
    with pytest.raises(BackendError, match="returned the page token 'same' twice"):
        for item in _client.paged(Stuck().search_things, page_size=1):
            got.append(item)
    assert got == ["first", "same"]
