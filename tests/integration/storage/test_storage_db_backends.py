"""The catalog on SQLite and a real PostgreSQL: Alembic migration 0002_storage (before and after
the CLI created the tables), concurrent adds from several processes, and the contract suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from aistack.storage import Datasets
from aistack.storage.catalog import engine_for
from aistack.storage.contract import StorageContract, concurrent_process_adds
from aistack.testing.postgres import database_url_for

DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
TABLES = {
    "storage_datasets",
    "storage_versions",
    "storage_tags",
    "storage_references",
    "storage_lineage",
}


@pytest.fixture(params=DB_PARAMS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path)


def _migrate(url: str) -> None:
    from aistack.server.db.session import make_engine, migrate

    eng = make_engine(url)
    try:
        migrate(eng)
    finally:
        eng.dispose()


def test_migration_creates_the_tables(database_url: str) -> None:
    _migrate(database_url)
    eng = engine_for(database_url)
    names = set(sa.inspect(eng).get_table_names())
    assert TABLES <= names
    with eng.connect() as c:
        heads = {r[0] for r in c.execute(sa.text("select version_num from alembic_version"))}
    assert "0002_storage" in heads


def test_migration_after_cli_created_tables_keeps_data(database_url: str, tmp_path: Path) -> None:
    ds = Datasets.connect(database_url, str(tmp_path / "objects"))  # creates the tables itself
    f = tmp_path / "f.txt"
    f.write_text("x")
    ds.add("before", f)
    _migrate(database_url)  # must not fail on existing tables, must not drop rows
    assert ds.resolve("before").version == 1
    assert ds.add("before", f, if_changed=False).version == 2  # unchanged: forced


def test_concurrent_adds_from_processes(database_url: str, tmp_path: Path) -> None:
    results = concurrent_process_adds(database_url, str(tmp_path / "objects"), tmp_path, n=6)
    assert [r for r in results if r[0] != "ok"] == []
    assert sorted(r[1] for r in results) == [1, 2, 3, 4, 5, 6]


@pytest.mark.postgres
class TestPostgresContract(StorageContract):
    @pytest.fixture
    def ds(self, request: pytest.FixtureRequest, tmp_path: Path) -> Datasets:
        request.param = "postgresql"  # type: ignore[attr-defined]
        url = database_url_for(request, tmp_path)
        return Datasets.connect(url, str(tmp_path / "objects"))
