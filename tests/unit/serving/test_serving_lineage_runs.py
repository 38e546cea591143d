"""A service deployed straight from a run (``runs:/RUN_ID/PATH``) joins the lineage graph too:
the deploy (or a rollout that succeeded) records ``run:RUN_ID → service:NAME``, so that
``aistack data lineage`` walks dataset version → job → run → service to the endpoint. (It
recorded nothing: a runs:/ deploy left the service out of every lineage.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from aistack.serving import manager

RID = "0123456789abcdef0123456789abcdef"  # an MLflow run id's shape


def _edges(*nodes: str) -> set[tuple[str, str]]:
    from aistack.storage import Datasets

    return set(Datasets.from_settings().catalog.edges_touching(set(nodes)))


@pytest.fixture
def no_controller(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``deploy`` writes the service and "starts" a controller that is not there."""
    spawned: list[str] = []
    monkeypatch.setattr(
        manager, "_spawn_controller", lambda d, name, env=None: spawned.append(name)
    )
    return spawned


def test_rollout_edges_of_a_runs_model() -> None:
    from aistack.serving.lineage import rollout_edges, run_of

    assert rollout_edges("chat", f"runs:/{RID}/model") == [(f"run:{RID}", "service:chat")]
    assert rollout_edges("chat", f"runs:/{RID}/sub/dir/model") == [(f"run:{RID}", "service:chat")]
    assert rollout_edges("chat", f"runs:/{RID}") == [(f"run:{RID}", "service:chat")]
    # a registry version's source run is not taken for the run of a runs:/ model
    assert rollout_edges("chat", f"runs:/{RID}/model", "other") == [(f"run:{RID}", "service:chat")]
    assert run_of(f"runs:/{RID}/model") == RID
    for uri in ("runs:/", "runs://model", "models:/gpt/3", "builtin:echo", "/tmp/m"):
        assert run_of(uri) is None


def _a_run(uri: str) -> str:
    """The id of a new run in the tracking store at ``uri`` (a deploy checks that the run
    exists)."""
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    return str(client.create_run(client.create_experiment("e")).info.run_id)


def test_deploying_a_runs_model_records_run_to_service(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_controller: list[str]
) -> None:
    # a deploy checks that the tracking store the run's model loads from is there
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rid = _a_run(uri)
    st = manager.deploy(f"runs:/{rid}/model", name="chat", launcher="process", wait_ready_s=None)
    assert no_controller == ["chat"] and st["model_uri"] == f"runs:/{rid}/model"
    assert _edges("service:chat", f"run:{rid}") == {(f"run:{rid}", "service:chat")}


def test_data_lineage_reaches_a_service_deployed_from_a_run(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_controller: list[str],
) -> None:
    """corpus@v1 → job:7 → run (as the server records them) → service (the deploy): `aistack
    data lineage corpus@v1` lists the endpoint; the run registered no model version."""
    mlflow = pytest.importorskip("mlflow")
    from typer.testing import CliRunner

    from aistack.cli.data import app
    from aistack.storage import Datasets

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # (the registry's tables made now: MLflow logs their creation, not in the CLI's output)
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).search_registered_models()
    rid = _a_run(uri)
    src = tmp_path / "corpus.txt"
    src.write_text("tokens")
    ds = Datasets.from_settings()
    ds.add("corpus", src)
    ds.record_edges([("dataset:corpus@v1", "job:7"), ("job:7", f"run:{rid}")])
    manager.deploy(f"runs:/{rid}/model", name="chat", launcher="process", wait_ready_s=None)

    r = CliRunner().invoke(app, ["lineage", "corpus@v1", "--json"], catch_exceptions=False)
    g = json.loads(r.output)
    assert sorted((e["src"], e["dst"]) for e in g["edges"]) == [
        ("dataset:corpus@v1", "job:7"),
        ("job:7", f"run:{rid}"),
        (f"run:{rid}", "service:chat"),
    ]
    assert {n["id"]: n["kind"] for n in g["nodes"]}["service:chat"] == "service"


class _Launcher:
    name = "fake"

    def launch(self, **_kw: Any) -> str:
        return "h"

    def status(self, handle: str) -> Any:
        from aistack.serving.launcher import LaunchStatus

        return LaunchStatus(state="running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        pass


def test_a_rollout_to_a_runs_model_records_run_to_service(
    aistack_home: Path, tmp_path: Path
) -> None:
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
    uri = f"runs:/{RID}/model"

    async def go() -> dict[str, Any]:
        ctl.start_rollout(uri, uri)
        for _ in range(300):
            for r in ctl.replicas.values():
                if r.state == "starting" and r.for_rollout:
                    r.state = "ready"
            if ctl.rollout is not None and ctl.rollout["state"] != "running":
                break
            await asyncio.sleep(0.01)
        assert ctl._rollout_task is not None
        await ctl._rollout_task  # (the edge is recorded after the rollout succeeded)
        return dict(ctl.rollout or {})

    assert asyncio.run(go())["state"] == "succeeded"
    assert ctl.spec.model_uri == uri
    assert _edges("service:chat", f"run:{RID}") == {(f"run:{RID}", "service:chat")}
