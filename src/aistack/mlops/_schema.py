"""A pre-migrated, empty MLflow SQLite schema, so the first start of the embedded server skips
MLflow's ~60 Alembic migrations (about 5 s of CPU on a 2-core machine).

The template (``mlflow_sqlite_schema.txt`` beside this file) is the SQL dump of a database that
MLflow itself created and migrated, minus the Default experiment (MLflow creates it at start-up
with the server's artifact root). It is used only when its MLflow version equals the installed
one; otherwise MLflow migrates as usual. Regenerate it after changing the MLflow pin with::

    python -m aistack.mlops._schema
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("mlflow_sqlite_schema.txt")
_HEADER = "-- aistack: empty MLflow SQLite schema; mlflow="


def _installed_mlflow() -> str | None:
    try:
        return version("mlflow")
    except PackageNotFoundError:  # pragma: no cover
        return None


def template_version(path: Path = TEMPLATE) -> str | None:
    try:
        first = path.read_text().split("\n", 1)[0]
    except OSError:
        return None
    return first[len(_HEADER) :].strip() if first.startswith(_HEADER) else None


def seed_sqlite(uri: str, *, template: Path = TEMPLATE) -> bool:
    """Create the SQLite file of ``uri`` from the template when it does not exist yet.

    Returns True when it seeded the file; False when the file exists, the URI is not SQLite or
    the template does not match the installed MLflow (MLflow then creates the schema itself).
    """
    if not uri.startswith("sqlite:///"):
        return False
    path = Path(uri[len("sqlite:///") :])
    if path.exists():
        return False
    tv, mv = template_version(template), _installed_mlflow()
    if tv is None or tv != mv:
        log.info("MLflow schema template is for mlflow %s, installed %s: migrating", tv, mv)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mlflow-seed-", suffix=".db", dir=path.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript(template.read_text())
            con.commit()
        finally:
            con.close()
        try:
            os.link(tmp, path)  # atomic, and never replaces a database created meanwhile
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    return True


def build_template(out: Path = TEMPLATE) -> Path:
    """Let MLflow create and migrate a fresh SQLite database, and dump it as the template."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "mlflow.db"
        store = SqlAlchemyStore(f"sqlite:///{db}", str(Path(d) / "artifacts"))
        store.engine.dispose()
        con = sqlite3.connect(db)
        try:
            lines = [
                line
                for line in con.iterdump()
                if not line.startswith('INSERT INTO "experiments"')
                and not line.startswith(("BEGIN TRANSACTION;", "COMMIT;"))
            ]
        finally:
            con.close()
    out.write_text(f"{_HEADER}{_installed_mlflow()}\n" + "\n".join(lines) + "\n")
    return out


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(build_template())
