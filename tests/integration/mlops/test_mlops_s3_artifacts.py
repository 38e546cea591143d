"""Cluster mode: MLflow artifacts proxied by the server into a real S3-compatible store."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("boto3")

from aistack.mlops.testing import TrackingServer  # noqa: E402
from aistack.testing.seaweed import seaweed_unavailable_reason, shared_seaweed  # noqa: E402

pytestmark = [pytest.mark.mlflow, pytest.mark.s3]


def test_artifacts_land_in_s3(tmp_path, monkeypatch):
    reason = seaweed_unavailable_reason()
    if reason:
        pytest.skip(reason)
    s3 = shared_seaweed()
    s3.create_bucket("mlops")
    env = {**s3.env(), "AISTACK_STORAGE_URL": "s3://mlops/aistack"}
    with TrackingServer(tmp_path / "home", token="s3t", env=env) as srv:
        import mlflow

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3t")
        c = mlflow.MlflowClient(srv.tracking_uri)
        rid = c.create_run(c.create_experiment("s3exp")).info.run_id
        f = tmp_path / "weights.bin"
        f.write_bytes(b"w" * 1000)
        # the client needs no S3 credentials: it uploads through the server
        for k in s3.env():
            monkeypatch.delenv(k, raising=False)
        c.log_artifact(rid, str(f), "model")
        assert [x.path for x in c.list_artifacts(rid, "model")] == ["model/weights.bin"]
        back = c.download_artifacts(rid, "model/weights.bin", str(tmp_path / "dl"))
        assert open(back, "rb").read() == b"w" * 1000
    keys = [k for k in s3.filesystem().find("mlops/aistack/mlflow-artifacts") if rid in k]
    assert len(keys) == 1 and keys[0].endswith(f"{rid}/artifacts/model/weights.bin")
    assert not (tmp_path / "home" / "objects").exists()
