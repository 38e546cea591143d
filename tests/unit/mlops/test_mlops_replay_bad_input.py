"""replay_spool with a spool it cannot send to: a run that is gone or deleted, a folder, a file
whose name is no spool file's. Each is an error that says what to do, and the file is kept."""

from __future__ import annotations

import json
import math

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ConflictError, NotFoundError, ValidationError  # noqa: E402
from aistack.mlops.spool import replay_spool  # noqa: E402

ROWS = [(1.0, 0), (math.nan, 1), (math.inf, 2), (-2.5, 3)]  # NaN and inf are MLflow metrics


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    return uri, client, exp


def _spool(tmp_path, run_id: str, name: str | None = None):
    p = tmp_path / (name or f"{run_id}-4242-1700000000000-0.jsonl")
    p.write_text(
        "".join(
            json.dumps({"key": "loss", "value": v, "timestamp": 1000 + st, "step": st}) + "\n"
            for v, st in ROWS
        )
    )
    return p


def test_a_deleted_run_says_restore_it_and_the_replay_then_sends_everything(store, tmp_path):
    """It said 'call replay_spool again when the tracking server answers' (a retry never helps)."""
    uri, client, exp = store
    rid = client.create_run(exp).info.run_id
    client.delete_run(rid)
    p = _spool(tmp_path, rid)
    with pytest.raises(ConflictError, match=f"run {rid} was deleted") as ei:
        replay_spool(p, uri)
    assert "restore" in ei.value.hint and "the spool file is kept" in ei.value.message
    assert p.exists()
    client.restore_run(rid)
    assert replay_spool(p, uri) == 4
    hist = client.get_metric_history(rid, "loss")
    assert [m.step for m in hist] == [0, 1, 2, 3] and math.isnan(hist[1].value)
    assert not p.exists()


def test_a_run_the_server_does_not_have_is_not_found(store, tmp_path):
    uri, *_ = store
    p = _spool(tmp_path, "b" * 32)
    with pytest.raises(NotFoundError, match=f"run {'b' * 32} does not exist on this tracking"):
        replay_spool(p, uri)
    assert p.exists()


@pytest.mark.parametrize("name", ["notes.jsonl", "..-1-2-3.jsonl", "-1-2-3.jsonl"])
def test_a_file_whose_name_starts_with_no_run_id_is_refused(store, tmp_path, name):
    """The run id was read from any name: 'notes.jsonl' was MLflow's 'Invalid value' at send."""
    uri, *_ = store
    p = _spool(tmp_path, "", name)
    with pytest.raises(ValidationError, match=f"^path: {name!r} does not start with a run id"):
        replay_spool(p, uri)
    assert p.exists() and not p.with_name(p.name + ".progress").exists()


def test_a_folder_is_refused_naming_path(store, tmp_path):
    uri, *_ = store
    with pytest.raises(ValidationError, match="^path: .* is a folder") as ei:
        replay_spool(tmp_path, uri)  # was IsADirectoryError
    assert ei.value.details["field"] == "path"
