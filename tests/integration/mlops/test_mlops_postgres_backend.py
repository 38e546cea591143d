"""Cluster mode: the embedded MLflow on a real PostgreSQL (AISTACK_MLFLOW_BACKEND_URI)."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

from aistack.mlops import registry, tracking  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402
from aistack.mlops.testing import TrackingServer  # noqa: E402
from aistack.testing.postgres import postgres_unavailable_reason, shared_server  # noqa: E402

pytestmark = [pytest.mark.mlflow, pytest.mark.postgres]


def test_tracking_and_registry_on_postgres(tmp_path, monkeypatch):
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    url = shared_server().create_database()
    assert url.startswith("postgresql")
    with TrackingServer(
        tmp_path / "home", token="pg", env={"AISTACK_MLFLOW_BACKEND_URI": url}
    ) as srv:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.tracking_uri)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "pg")
        rid = tracking.create_job_run(
            srv.tracking_uri,
            job_id="pg-job",
            name="pg",
            project="pgproj",
            user="carol",
            inputs=["corpus@9"],
            token="pg",
        )
        with BufferedMetricsLogger(run_id=rid) as ml:
            for i in range(2000):
                ml.log("val_loss", 5.0 - i / 1000, step=i)
        import mlflow

        c = mlflow.MlflowClient()
        assert len(c.get_metric_history(rid, "val_loss")) == 2000
        d = tmp_path / "m"
        d.mkdir()
        (d / "w.bin").write_bytes(b"1")
        c.log_artifacts(rid, str(d), "model")
        tracking.end_job_run(srv.tracking_uri, rid, "FINISHED", token="pg")
        mv = registry.register_from_run(rid, "pg-model")
        res = registry.promote("pg-model", mv["version"], "production", ["val_loss<3.2"])
        assert res.checks[0].actual == pytest.approx(3.001)
        lin = registry.lineage("pg-model", mv["version"])
        assert lin["job"]["id"] == "pg-job"
        assert lin["datasets"][0]["name"] == "corpus"
    # the data lives in PostgreSQL, not in the home's SQLite file
    assert not (tmp_path / "home" / "mlflow.db").exists()
