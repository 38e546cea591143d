"""Cluster backends misconfigured or down: a clear error that names what to fix, not a
traceback (found walking through AISTACK_STORAGE_URL=s3://… and AISTACK_DATABASE_URL=postgresql://…)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import sqlalchemy as sa

from aistack.errors import ConnectionFailed, NotFoundError, ValidationError
from aistack.storage.backends import Backend
from aistack.storage.catalog import Catalog, create_db_engine
from aistack.storage.objects import ObjectStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pg_down_url() -> str:
    pytest.importorskip("psycopg")
    return f"postgresql://alice:s3cret@127.0.0.1:{_closed_port()}/aistack"


def _assert_db_down(err: ConnectionFailed, port_url: str) -> None:
    port = port_url.rsplit(":", 1)[1].split("/")[0]
    assert err.message.startswith(
        f"the metadata database postgresql+psycopg://alice:***@127.0.0.1:{port}/aistack "
        "cannot be reached: connection failed"
    )
    assert "s3cret" not in str(err)
    assert "AISTACK_DATABASE_URL" in (err.hint or "")


def test_catalog_on_a_database_that_is_down(pg_down_url: str) -> None:
    """`aistack data ls` said "could not create the storage tables: …" after 10 retries."""
    with pytest.raises(ConnectionFailed) as ei:
        Catalog(create_db_engine(pg_down_url))
    _assert_db_down(ei.value, pg_down_url)


def test_server_migrate_on_a_database_that_is_down(pg_down_url: str) -> None:
    """`aistack up` ended in a 60-line sqlalchemy traceback."""
    from aistack.server.db.session import make_engine, migrate

    with pytest.raises(ConnectionFailed) as ei:
        migrate(make_engine(pg_down_url))
    _assert_db_down(ei.value, pg_down_url)


def test_request_session_on_a_database_that_is_down(pg_down_url: str) -> None:
    """Every API call answered 500 "internal server error (this is a bug in aistack)"."""
    from aistack.server.db.session import make_engine, session_factory, session_scope

    with pytest.raises(ConnectionFailed) as ei:  # noqa: PT012
        with session_scope(session_factory(make_engine(pg_down_url))) as s:
            s.execute(sa.text("SELECT 1"))
    assert ei.value.status == 503
    _assert_db_down(ei.value, pg_down_url)


def test_other_database_errors_are_not_called_unreachable(tmp_path: Any) -> None:
    from aistack.server.db.session import make_engine, session_factory, session_scope

    engine = make_engine(f"sqlite:///{tmp_path / 'db'}")
    with pytest.raises(sa.exc.OperationalError):  # noqa: PT012
        with session_scope(session_factory(engine)) as s:
            s.execute(sa.text("SELECT * FROM no_such_table"))


class _NoSuchBucket(Exception):
    response = {"Error": {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"}}


class _FakeS3:
    """The calls ObjectStore makes on opening a store; cat_file fails as told."""

    endpoint_url = "http://127.0.0.1:9"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.written: list[str] = []

    def cat_file(self, path: str) -> bytes:
        raise self.exc

    def pipe_file(self, path: str, data: bytes) -> None:
        self.written.append(path)


def _open(exc: BaseException) -> tuple[_FakeS3, pytest.ExceptionInfo[Exception]]:
    fs = _FakeS3(exc)
    backend = Backend(url="s3://typo-bucket/team", scheme="s3", fs=fs, root="typo-bucket/team")
    with pytest.raises(Exception) as ei:  # noqa: PT011 - the type is asserted by the callers
        ObjectStore(backend)
    return fs, ei


def test_missing_bucket_is_named_and_not_created() -> None:
    """SeaweedFS created a bucket of a typo'd name on the first write (AWS refused it with a
    bare error); the version then lived in a bucket nobody meant."""
    err = FileNotFoundError("The specified bucket does not exist")
    err.__cause__ = _NoSuchBucket()
    fs, ei = _open(err)
    assert isinstance(ei.value, NotFoundError)
    assert ei.value.message == (
        "storage s3://typo-bucket/team: bucket 'typo-bucket' does not exist at http://127.0.0.1:9"
    )
    assert "aws s3 mb s3://typo-bucket --endpoint-url http://127.0.0.1:9" in (ei.value.hint or "")
    assert fs.written == []


def test_wrong_credentials_are_named() -> None:
    fs, ei = _open(PermissionError("Forbidden"))
    assert isinstance(ei.value, ValidationError)
    assert ei.value.message == (
        "storage s3://typo-bucket/team: the S3 server at http://127.0.0.1:9 denied access "
        "(PermissionError: Forbidden)"
    )
    assert "AWS_SECRET_ACCESS_KEY" in (ei.value.hint or "")
    assert fs.written == []


def test_unreachable_endpoint_is_named() -> None:
    class EndpointConnectionError(Exception):  # botocore's is no OSError
        pass

    _fs, ei = _open(EndpointConnectionError("Could not connect to the endpoint URL"))
    assert isinstance(ei.value, ConnectionFailed)
    assert ei.value.message == (
        "storage s3://typo-bucket/team: the S3 server at http://127.0.0.1:9 could not be used "
        "(EndpointConnectionError: Could not connect to the endpoint URL)"
    )
    assert "AISTACK_S3_ENDPOINT_URL" in (ei.value.hint or "")


def test_a_new_prefix_in_an_existing_bucket_is_still_initialised() -> None:
    fs = _FakeS3(FileNotFoundError("typo-bucket/team/cas/config.json"))
    backend = Backend(url="s3://typo-bucket/team", scheme="s3", fs=fs, root="typo-bucket/team")
    store = ObjectStore(backend)
    assert fs.written == ["typo-bucket/team/cas/config.json"]
    assert store.algo in ("blake3", "sha256")
