"""A deployed service joins the lineage graph: a deploy (or a rollout that succeeded) of a
registry model records ``model:NAME@vN → service:NAME`` (and the version's ``run:ID →
model:NAME@vN``), so that ``aistack data lineage`` reaches the endpoint. Lineage is best
effort: a catalog that cannot be reached costs a warning, never the deploy."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from aistack.serving import manager

mlflow = pytest.importorskip("mlflow")


def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions: int = 1) -> list[str]:
    """A local SQLite registry (MLFLOW_TRACKING_URI) with ``gpt`` v1..vN, each registered from
    a run of its own, alias ``production`` → the last; returns the run ids."""
    from aistack.mlops import registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    d = tmp_path / "model"
    d.mkdir()
    (d / "MLmodel").write_text("flavors: {}\n")
    runs = []
    for _ in range(versions):
        rid = client.create_run(exp).info.run_id
        client.log_artifacts(rid, str(d), "model")
        client.set_terminated(rid, "FINISHED")
        registry.register_from_run(rid, "gpt", "model", tracking_uri=uri)
        runs.append(rid)
    registry.set_alias("gpt", "production", versions, tracking_uri=uri)
    return runs


def _edges() -> set[tuple[str, str]]:
    from aistack.storage import Datasets

    cat = Datasets.from_settings().catalog
    nodes = {"service:chat", "service:echo", "model:gpt@v1", "model:gpt@v2"}
    return set(cat.edges_touching(nodes))


@pytest.fixture
def no_controller(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``deploy`` writes the service and "starts" a controller that is not there."""
    spawned: list[str] = []
    monkeypatch.setattr(
        manager, "_spawn_controller", lambda d, name, env=None: spawned.append(name)
    )
    return spawned


def test_deploying_a_registry_model_records_model_to_service(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_controller: list[str]
) -> None:
    [rid] = _registry(tmp_path, monkeypatch)
    st = manager.deploy("models:/gpt/1", name="chat", launcher="process", wait_ready_s=None)
    assert no_controller == ["chat"] and st["model_uri"] == "models:/gpt/1"
    assert _edges() == {(f"run:{rid}", "model:gpt@v1"), ("model:gpt@v1", "service:chat")}

    # an alias is pinned to its version; deploying again adds nothing (an edge is stored once)
    manager.delete("chat")
    manager.deploy("models:/gpt@production", name="chat", launcher="process", wait_ready_s=None)
    assert _edges() == {(f"run:{rid}", "model:gpt@v1"), ("model:gpt@v1", "service:chat")}


def test_a_builtin_model_records_no_edge(
    aistack_home: Path, no_controller: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        manager.deploy("builtin:echo", name="echo", launcher="process", wait_ready_s=None)
    assert _edges() == set()
    assert not [r for r in caplog.records if "lineage" in r.getMessage()]


def test_deploy_works_when_the_catalog_cannot_be_reached(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_controller: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aistack.settings import reset_settings_cache

    _registry(tmp_path, monkeypatch)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the catalog's directory is a file: it cannot be opened
    monkeypatch.setenv("AISTACK_DATABASE_URL", f"sqlite:///{blocker / 'aistack.db'}")
    reset_settings_cache()
    with caplog.at_level(logging.WARNING, logger="aistack.serving.lineage"):
        st = manager.deploy("models:/gpt/1", name="chat", launcher="process", wait_ready_s=None)
    assert st["name"] == "chat" and st["model_uri"] == "models:/gpt/1"
    assert no_controller == ["chat"]
    [warning] = [r.getMessage() for r in caplog.records if r.name == "aistack.serving.lineage"]
    assert warning.startswith("could not record lineage run:")
    assert "model:gpt@v1 → service:chat: the dataset catalog failed" in warning
    assert "the service is deployed" in warning


def test_a_catalog_that_hangs_is_given_up_on(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aistack.serving.lineage import record_rollout
    from aistack.storage import Datasets

    release = threading.Event()

    def hang(*_a: Any, **_k: Any) -> Any:
        release.wait(30)
        raise RuntimeError("late")

    monkeypatch.setattr(Datasets, "from_settings", hang)
    try:
        with caplog.at_level(logging.WARNING, logger="aistack.serving.lineage"):
            assert record_rollout("chat", "models:/gpt/3", timeout_s=0.2) is None
    finally:
        release.set()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "aistack.serving.lineage"]
    assert "model:gpt@v3 → service:chat: the dataset catalog did not answer within 0.2 s" in (
        warning
    )


def test_rollout_edges_spell_the_nodes_as_the_registry_lineage_does() -> None:
    from aistack.serving.lineage import pinned_version, rollout_edges

    assert rollout_edges("chat", "models:/gpt/3", "abc") == [
        ("run:abc", "model:gpt@v3"),
        ("model:gpt@v3", "service:chat"),
    ]
    assert rollout_edges("chat", "models:/My.Model_2/12") == [
        ("model:My.Model_2@v12", "service:chat")
    ]
    for uri in ("builtin:echo", "/tmp/m", "models:/gpt@production"):
        assert pinned_version(uri) is None and rollout_edges("chat", uri) == []


class _Launcher:
    name = "fake"

    def __init__(self) -> None:
        self.n = 0

    def launch(self, **_kw: Any) -> str:
        self.n += 1
        return f"h{self.n}"

    def status(self, handle: str) -> Any:
        from aistack.serving.launcher import LaunchStatus

        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def _controller(tmp_path: Path) -> Any:
    from aistack.serving.controller import Replica, ServiceController
    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(name="chat", model="gpt:1", model_uri="models:/gpt/1")
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    ctl.replicas["r1"] = Replica(
        id="r1",
        model_uri="models:/gpt/1",
        handle="old1",
        state="ready",
        ready_file=tmp_path / "r1.json",
        log_path=tmp_path / "r1.log",
    )
    ctl._seq = 1
    return ctl


def _roll(ctl: Any, *, ready: bool) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        ctl.start_rollout("models:/gpt/2", "gpt:2", run_id="run2")
        for _ in range(300):
            for r in ctl.replicas.values():
                if r.state == "starting" and r.for_rollout:
                    if ready:
                        r.state = "ready"
                    else:
                        ctl._stop_replica(r, "did not load", final="failed")
            if ctl.rollout["state"] != "running":
                break
            await asyncio.sleep(0.01)
        await ctl._rollout_task  # (the edge is recorded after the rollout succeeded)
        return dict(ctl.rollout)

    return asyncio.run(go())


def test_a_rollout_that_succeeds_records_the_new_version(
    aistack_home: Path, tmp_path: Path
) -> None:
    ctl = _controller(tmp_path)
    assert _roll(ctl, ready=True)["state"] == "succeeded"
    assert _edges() == {("run:run2", "model:gpt@v2"), ("model:gpt@v2", "service:chat")}


def test_a_failed_rollout_records_nothing(aistack_home: Path, tmp_path: Path) -> None:
    ctl = _controller(tmp_path)
    assert _roll(ctl, ready=False)["state"] == "failed"
    assert _edges() == set()


def test_update_hands_the_versions_run_to_the_controller(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve update` resolves the model; the controller, which alone knows whether the rollout
    succeeds, gets the version's run with it (the admin call's body)."""
    [r1, r2] = _registry(tmp_path, monkeypatch, versions=2)
    posted: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(manager, "status", lambda name: {"name": name})
    monkeypatch.setattr(manager, "_post", lambda name, path, body: posted.append((path, body)))
    manager.update("chat", "gpt@production", wait_s=None)
    assert posted == [
        ("/-/update", {"model_uri": "models:/gpt/2", "model": "gpt@production", "run_id": r2})
    ]
    assert r1 != r2


def test_the_controller_app_passes_the_run_on(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from aistack.serving.controller_app import TOKEN_HEADER, build_app

    ctl = _controller(tmp_path)
    calls: list[tuple[Any, ...]] = []

    def start_rollout(uri: str, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
        calls.append((uri, ref, run_id))
        return {"to": uri}

    ctl.start_rollout = start_rollout  # type: ignore[method-assign]
    app = build_app(ctl, "tok")
    http = TestClient(app)  # (not entered: no lifespan, no control loop)
    for body in (
        {"model_uri": "models:/gpt/2", "model": "gpt:2", "run_id": "abc"},
        {"model_uri": "models:/gpt/2", "run_id": 7},  # not a string: ignored
        {"model_uri": "models:/gpt/2"},  # from an older aistack
    ):
        r = http.post("/-/update", json=body, headers={TOKEN_HEADER: "tok"})
        assert r.status_code == 200, r.text
    assert calls == [
        ("models:/gpt/2", "gpt:2", "abc"),
        ("models:/gpt/2", "models:/gpt/2", None),
        ("models:/gpt/2", "models:/gpt/2", None),
    ]


def test_data_lineage_of_the_training_data_reaches_the_deployed_service(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_controller: list[str],
) -> None:
    """corpus@v1 → job → run (recorded by hand, as the server records them) → model version →
    service (recorded by the deploy): `aistack data lineage corpus@v1` shows the endpoint; the
    registry's own run → model edge (joined in by the CLI) is the same edge, not a second one."""
    from typer.testing import CliRunner

    from aistack.cli.data import app
    from aistack.storage import Datasets

    [rid] = _registry(tmp_path, monkeypatch)
    src = tmp_path / "corpus.txt"
    src.write_text("tokens")
    ds = Datasets.from_settings()
    ds.add("corpus", src)
    ds.record_edges([("dataset:corpus@v1", "job:7"), ("job:7", f"run:{rid}")])
    manager.deploy("models:/gpt@production", name="chat", launcher="process", wait_ready_s=None)

    r = CliRunner().invoke(app, ["lineage", "corpus@v1", "--json"], catch_exceptions=False)
    g = json.loads(r.output)
    assert sorted((e["src"], e["dst"]) for e in g["edges"]) == [
        ("dataset:corpus@v1", "job:7"),
        ("job:7", f"run:{rid}"),
        ("model:gpt@v1", "service:chat"),
        (f"run:{rid}", "model:gpt@v1"),
    ]
    assert {n["id"]: n["kind"] for n in g["nodes"]}["service:chat"] == "service"
    r = CliRunner().invoke(app, ["lineage", "corpus@v1"], env={"COLUMNS": "200"})
    assert " ".join(r.output.split()) == (
        f"dataset:corpus@v1 → used by └── job:7 └── run:{rid} └── model:gpt@v1 └── service:chat"
    )
