"""Where MLflow's store goes by default: the home's SQLite file, or the platform's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from aistack.mlops.server import backend_store_uri, store_warning
from aistack.settings import Settings

PG = "postgresql+psycopg://u:p%40ss@db.example:5432/aistack"


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AISTACK_MLFLOW_BACKEND_URI", raising=False)


def test_sqlite_platform_keeps_mlflow_in_the_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert backend_store_uri(s) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert store_warning(s) is None


def test_postgres_platform_puts_mlflow_in_its_schema_of_the_same_database(tmp_path: Path) -> None:
    uri = backend_store_uri(Settings(home=tmp_path, database_url=PG))
    u = make_url(uri)
    assert (u.drivername, u.host, u.port, u.database) == (
        "postgresql+psycopg",
        "db.example",
        5432,
        "aistack",
    )
    assert u.password == "p@ss"  # the password survives (rendered, not masked)
    assert u.query["options"] == "-csearch_path=mlflow"


def test_existing_connection_options_are_kept(tmp_path: Path) -> None:
    url = PG + "?options=-cstatement_timeout%3D5000&sslmode=require"
    u = make_url(backend_store_uri(Settings(home=tmp_path, database_url=url)))
    assert u.query["options"] == "-cstatement_timeout=5000 -csearch_path=mlflow"
    assert u.query["sslmode"] == "require"


def test_a_home_with_runs_in_sqlite_keeps_them_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"")
    s = Settings(home=tmp_path, database_url=PG)
    assert backend_store_uri(s).startswith("sqlite:///")
    msg = store_warning(s)
    assert msg is not None and "AISTACK_MLFLOW_BACKEND_URI" in msg and "mlflow.db" in msg


def test_the_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISTACK_MLFLOW_BACKEND_URI", "sqlite:////srv/mlflow.db")
    s = Settings(home=tmp_path, database_url=PG)
    assert backend_store_uri(s) == "sqlite:////srv/mlflow.db"
    assert store_warning(s) is None
