"""The trainer's MLflow run status and metrics (a local SQLite tracking store, no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aistack.train.shards import write_token_shard

pytest.importorskip("torch")
mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def tracking(aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    write_token_shard(tmp_path / "d.tok", [rng.integers(0, 50, 5000)], 50)
    return uri


def _cfg(tmp_path: Path, name: str, **kw):
    from aistack.train.config import load_config

    base = dict(
        data=[str(tmp_path / "d.tok")], run_name=name, seq_len=8, n_layer=1, n_head=1,
        n_embd=8, micro_batch_size=2, max_steps=6, checkpoint_every=2, save_model=False,
    )  # fmt: skip
    return load_config(**(base | kw))


def _latest_run(uri: str):
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs(["0"], max_results=1, order_by=["attributes.start_time DESC"])
    return client, run


def test_a_trainer_that_crashes_marks_its_run_failed(
    tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.train import run as run_mod

    real = run_mod.lr_at

    def boom(step, cfg):
        if step == 3:
            raise IndexError("index out of range in self")
        return real(step, cfg)

    monkeypatch.setattr(run_mod, "lr_at", boom)
    with pytest.raises(IndexError):
        run_mod.train(_cfg(tmp_path, "crash"))
    _client, run = _latest_run(tracking)
    assert run.info.status == "FAILED"


def test_resume_from_an_older_checkpoint_logs_each_step_once(
    tracking: str, aistack_home: Path, tmp_path: Path
) -> None:
    from aistack.train.run import train

    first = train(_cfg(tmp_path, "dup", max_steps=5))
    assert first.mlflow_run_id
    # a crash after step 5 was logged but before its checkpoint
    (aistack_home / "objects" / "checkpoints" / "dup" / "step_00000005.pt").unlink()
    second = train(_cfg(tmp_path, "dup", max_steps=6))
    assert second.resumed_from == 4 and second.mlflow_run_id == first.mlflow_run_id
    train(_cfg(tmp_path, "dup", max_steps=6))  # a re-run of the finished run
    client = mlflow.tracking.MlflowClient(tracking)
    hist = client.get_metric_history(first.mlflow_run_id, "loss")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4, 5, 6]
    assert client.get_run(first.mlflow_run_id).info.status == "FINISHED"


def test_a_re_run_of_a_finished_run_logs_and_registers_no_second_model(
    tracking: str, tmp_path: Path
) -> None:
    from aistack.train.run import train

    first = train(_cfg(tmp_path, "once", max_steps=2, save_model=True, register_as="once"))
    again = train(_cfg(tmp_path, "once", max_steps=2, save_model=True, register_as="once"))
    assert again.resumed_from == 2 and again.mlflow_run_id == first.mlflow_run_id
    client = mlflow.tracking.MlflowClient(tracking)
    run = client.get_run(first.mlflow_run_id)
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{first.mlflow_run_id}'",
    )
    assert len(models) == 1
    assert [v.version for v in client.search_model_versions("name = 'once'")] == [1]
    assert run.info.status == "FINISHED"


def test_an_unreachable_tracking_server_is_a_clear_error(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.errors import ConnectionFailed
    from aistack.train.run import train

    rng = np.random.default_rng(0)
    write_token_shard(tmp_path / "d.tok", [rng.integers(0, 50, 5000)], 50)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/mlflow")  # discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    with pytest.raises(ConnectionFailed, match="start the MLflow run: cannot reach the tracking"):
        train(_cfg(tmp_path, "down"))


def test_params_log_the_values_resolved_at_run_time(tracking: str, tmp_path: Path) -> None:
    """vocab_size (from the shard headers), prefetch and checkpoint_url are unset (None) in the
    config: the run's parameters say what the trainer used, not 'None'."""
    from aistack.train.run import train

    res = train(_cfg(tmp_path, "params", max_steps=2, device="cpu"))
    params = mlflow.tracking.MlflowClient(tracking).get_run(res.mlflow_run_id).data.params
    assert params["vocab_size"] == "50"  # the shard header's vocabulary
    assert params["prefetch"] == "0"  # the CPU default
    assert params["checkpoint_url"].endswith("/checkpoints/params")
    assert params["run_name"] == "params"
    assert params["eos_id"] == "None"  # unset means no end-of-text id: nothing resolved
    assert params["seq_len"] == "8" and params["data"] == str(tmp_path / "d.tok")


def test_params_keep_explicit_settings(tmp_path: Path) -> None:
    from aistack.train.run import run_params

    cfg = _cfg(tmp_path, "explicit", vocab_size=64, eos_id=0, prefetch=3)
    p = run_params(cfg, {"vocab_size": 50, "eos_id": 0, "prefetch": 0, "peak_tflops": None})
    assert (p["vocab_size"], p["eos_id"], p["prefetch"], p["peak_tflops"]) == (
        "64",
        "0",
        "3",
        "None",
    )


def test_a_register_as_name_the_registry_refuses_fails_before_training(
    tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--register-as 'm@x'` trained to the end and only then was refused: the check runs
    first now, and nothing is trained or logged."""
    from aistack.errors import ValidationError
    from aistack.train import run as run_mod

    def no_training(*_a: object, **_kw: object) -> None:
        raise AssertionError("trained before checking register_as")

    monkeypatch.setattr(run_mod, "lr_at", no_training)
    with pytest.raises(ValidationError, match="'m@x' is not a valid registered model name"):
        run_mod.train(_cfg(tmp_path, "bad-name", save_model=True, register_as="m@x"))
    assert mlflow.tracking.MlflowClient(tracking).search_runs(["0"]) == []
