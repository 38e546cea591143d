"""The trainer with MLFLOW_TRACKING_URI set: params, per-step metrics and a pyfunc model that
serving can load (``mlflow.pyfunc.load_model("runs:/<id>/model")``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aistack.train.shards import write_token_shard

pytest.importorskip("torch")
mlflow = pytest.importorskip("mlflow")
pytestmark = [pytest.mark.torch, pytest.mark.mlflow]


def test_trainer_logs_run_and_pyfunc_model(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # mlflow's default ./mlruns artifact root lands here
    rng = np.random.default_rng(0)
    write_token_shard(tmp_path / "d.tok", [rng.integers(0, 50, 5000)], 50)

    from aistack.train.config import load_config
    from aistack.train.run import train

    cfg = load_config(
        data=[str(tmp_path / "d.tok")], run_name="mlf", seq_len=8, n_layer=1, n_head=1,
        n_embd=8, micro_batch_size=2, max_steps=6, checkpoint_every=100, register_as="gpt-tiny",
    )  # fmt: skip
    res = train(cfg)
    assert res.mlflow_run_id

    client = mlflow.tracking.MlflowClient(uri)
    run = client.get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["n_layer"] == "1" and run.data.params["max_steps"] == "6"
    hist = client.get_metric_history(res.mlflow_run_id, "loss")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4, 5, 6]
    assert {m.step: m.value for m in hist}[6] == pytest.approx(res.last_loss)
    assert "tokens_per_s" in run.data.metrics

    versions = client.search_model_versions("name = 'gpt-tiny'")
    assert [v.run_id for v in versions] == [res.mlflow_run_id]

    model = mlflow.pyfunc.load_model(f"models:/gpt-tiny/{versions[0].version}")
    out = model.predict({"tokens": [[1, 2, 3]], "max_new_tokens": 4})
    assert len(out) == 1 and len(out[0]) == 7 and out[0][:3] == [1, 2, 3]
    assert all(0 <= t < 50 for t in out[0])
