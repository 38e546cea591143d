"""The shipped MLflow SQLite schema template equals what MLflow's own migrations create."""

from __future__ import annotations

import re
import sqlite3

import pytest

pytest.importorskip("mlflow")

from aistack.mlops import _schema  # noqa: E402


def _normalize(sql: str | None) -> tuple[str, ...] | None:
    # MLflow's migrations build some CHECK (x IN (...)) lists and constraint lists from Python
    # sets, so their order varies from run to run: compare as sorted items
    if sql is None:
        return None
    sql = re.sub(
        r"IN \(([^()]*)\)",
        lambda m: "IN (" + ", ".join(sorted(v.strip() for v in m[1].split(","))) + ")",
        sql,
    )
    return tuple(sorted(line.strip().rstrip(",") for line in sql.splitlines()))


def _schema_of(path) -> set[tuple]:
    con = sqlite3.connect(path)
    try:
        rows = {
            (t, n, tb, _normalize(sql))
            for t, n, tb, sql in con.execute("select type, name, tbl_name, sql from sqlite_master")
        }
        rows.add(("alembic", *con.execute("select version_num from alembic_version").fetchone()))
        return rows
    finally:
        con.close()


def test_template_is_for_the_installed_mlflow():
    assert _schema.template_version() == _schema._installed_mlflow(), (
        "regenerate with: python -m aistack.mlops._schema"
    )


def test_seeded_schema_equals_migrated_schema(tmp_path):
    seeded = tmp_path / "seeded.db"
    assert _schema.seed_sqlite(f"sqlite:///{seeded}") is True
    assert _schema.seed_sqlite(f"sqlite:///{seeded}") is False  # never overwrites
    fresh = _schema.build_template(tmp_path / "fresh.txt")
    migrated = tmp_path / "migrated.db"
    con = sqlite3.connect(migrated)
    con.executescript(fresh.read_text())
    con.close()
    a, b = _schema_of(seeded), _schema_of(migrated)
    assert a - b == set() and b - a == set()
    # and MLflow accepts it as up to date, creating only the Default experiment
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{seeded}", str(tmp_path / "art"))
    assert [e.name for e in store.search_experiments()] == ["Default"]
    store.engine.dispose()


def test_no_seed_when_not_applicable(tmp_path):
    assert _schema.seed_sqlite("postgresql+psycopg://u@h/db") is False
    other = tmp_path / "tpl.txt"
    other.write_text("-- aistack: empty MLflow SQLite schema; mlflow=0.0.1\nCREATE TABLE t (x);\n")
    assert _schema.seed_sqlite(f"sqlite:///{tmp_path / 'x.db'}", template=other) is False
    assert not (tmp_path / "x.db").exists()
