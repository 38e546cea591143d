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


def test_platform_on_postgres_puts_mlflow_in_its_own_schema_there(tmp_path, monkeypatch):
    """With AISTACK_DATABASE_URL on PostgreSQL and no AISTACK_MLFLOW_BACKEND_URI, MLflow's runs
    go to that database (schema ``mlflow``), so a server on another host (another home) sees
    them; aistack's own tables and Alembic history stay as they are."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import sqlalchemy as sa

    from aistack.server.db.session import make_engine, migrate

    url = shared_server().create_database()
    platform = make_engine(url)
    migrate(platform)  # aistack's own tables and Alembic history, as `aistack up` makes them
    with platform.connect() as c:
        ours = sorted(r[0] for r in c.execute(sa.text("SELECT version_num FROM alembic_version")))
    platform.dispose()
    monkeypatch.delenv("AISTACK_MLFLOW_BACKEND_URI", raising=False)
    env = {"AISTACK_DATABASE_URL": url}
    with TrackingServer(tmp_path / "host-a", token="pg", env=env) as srv:
        rid = tracking.create_job_run(
            srv.tracking_uri, job_id="j-a", name="a", project="p", user="u", inputs=[], token="pg"
        )
        tracking.end_job_run(srv.tracking_uri, rid, "FINISHED", token="pg")
    assert not (tmp_path / "host-a" / "mlflow.db").exists()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            runs = c.execute(sa.text("SELECT run_uuid, status FROM mlflow.runs")).all()
            assert runs == [(rid, "FINISHED")]
            public = sorted(
                r[0] for r in c.execute(sa.text("SELECT version_num FROM alembic_version"))
            )
            assert public == ours  # aistack's history is untouched by MLflow's migrations
            mlflows = c.execute(sa.text("SELECT version_num FROM mlflow.alembic_version")).scalar()
            assert mlflows and mlflows not in ours
    finally:
        engine.dispose()
    import mlflow

    with TrackingServer(tmp_path / "host-b", token="pg", env=env) as srv:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.tracking_uri)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "pg")
        assert mlflow.MlflowClient().get_run(rid).info.status == "FINISHED"
