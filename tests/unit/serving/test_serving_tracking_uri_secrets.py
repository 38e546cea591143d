"""The errors of resolving and loading a model show the tracking URI without its password.

``check_tracking_uri`` and the rest of aistack.serving.models put MLFLOW_TRACKING_URI (and
MLflow's own messages, which name the request URL) into their errors as they were:
``http://user:secret@host:5000`` or ``postgresql://u:pw@h/db`` reached the CLI's output, the
API's 4xx/5xx bodies and the replica's log with the password. They now show ``user:***@host``;
what connects is still the URI itself."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed, NotFoundError, ValidationError
from aistack.serving import models

DB_URIS = [
    ("postgresql://u:secret@db.example:5432/mlflow", "postgresql://u:***@db.example:5432/mlflow"),
    ("mysql+pymysql://u:secret@db.example/mlflow", "mysql+pymysql://u:***@db.example/mlflow"),
    # SQLAlchemy reads a password up to the '@' before the host, '/' and '?' included
    ("mysql://u:sec/ret?x@db.example/mlflow", "mysql://u:***@db.example/mlflow"),
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once closed


def _no_secret(err: BaseException) -> None:
    text = f"{err} {getattr(err, 'hint', '')} {getattr(err, 'details', '')}"
    for part in ("secret", "sec/ret", "se/cret"):
        assert part not in text, text


def test_a_scheme_mlflow_cannot_open_is_named_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "notascheme://user:secret@host/x")
    with pytest.raises(ValidationError) as ei:
        models.check_tracking_uri()
    assert ei.value.message == (
        "MLFLOW_TRACKING_URI='notascheme://user:***@host/x': 'notascheme' is not a scheme "
        "MLflow opens as a model registry"
    )
    assert ei.value.details == {"field": "MLFLOW_TRACKING_URI"}
    _no_secret(ei.value)


def test_a_server_that_does_not_answer_is_named_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    port = _closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:secret@127.0.0.1:{port}/mlflow")
    with pytest.raises(ConnectionFailed) as ei:
        models.check_tracking_uri()
    assert ei.value.message == (
        f"the model registry at http://user:***@127.0.0.1:{port}/mlflow does not answer "
        f"(connection refused at 127.0.0.1:{port}; from MLFLOW_TRACKING_URI)"
    )
    _no_secret(ei.value)


def test_a_url_password_with_a_slash_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """urllib ends a URL's host part at the '/': it read 'se' as the port, and the error was
    "Port could not be cast to integer value as 'se'" after the whole URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:se/cret@host:5000/mlflow")
    with pytest.raises(ValidationError) as ei:
        models.check_tracking_uri()
    assert ei.value.message == (
        "MLFLOW_TRACKING_URI='http://user:***@host:5000/mlflow': cannot read it as a URL: the "
        "password in it has a '/', '?' or '#', which ends a URL's host part"
    )
    assert ei.value.hint == (
        "percent-encode those characters in the password ('/' as %2F, '?' as %3F, '#' as %23)"
    )
    assert "'se'" not in ei.value.message
    _no_secret(ei.value)


@pytest.mark.parametrize(("uri", "shown"), DB_URIS)
def test_a_database_store_is_still_used_as_given(
    monkeypatch: pytest.MonkeyPatch, uri: str, shown: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert models.check_tracking_uri() == uri  # the password is only hidden in messages
    assert models.tracking_uri() == uri


class _Client:
    """An MlflowClient whose calls raise what MLflow raises for an unreachable store."""

    def __init__(self, exc: BaseException, *, on: str = "get_registered_model") -> None:
        self.exc, self.on = exc, on

    def get_registered_model(self, name: str) -> Any:
        if self.on == "get_registered_model":
            raise self.exc
        return object()

    def search_model_versions(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize("case", ["cannot open", "down", "socket error", "other"])
@pytest.mark.parametrize(("uri", "shown"), DB_URIS)
def test_resolving_a_model_names_the_registry_without_the_password(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, uri: str, shown: str, case: str
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    api = f"API request to {uri}/api/2.0/mlflow/registered-models/get failed with exception"
    shown_api = api.replace(uri, shown)
    expected: tuple[type[Exception], str]
    if case == "cannot open":  # MLflow cannot open the store
        exc = MlflowException(f"no {uri}")

        def client() -> Any:
            raise exc

        monkeypatch.setattr(models, "_registry_client", client)
        expected = (
            ValidationError,
            f"MLFLOW_TRACKING_URI={shown!r}: MLflow cannot open it as a model registry: no {shown}",
        )
    elif case == "down":  # nothing answers there
        down = MlflowException(f"{api} Max retries exceeded (Connection refused)")
        monkeypatch.setattr(models, "_registry_client", lambda: _Client(down))
        expected = (
            ConnectionFailed,
            f"model: cannot resolve 'models:/iris/1': the model registry at {shown} does not "
            "answer",
        )
    elif case == "socket error":
        monkeypatch.setattr(models, "_registry_client", lambda: _Client(OSError(f"{api} reset")))
        expected = (
            ConnectionFailed,
            f"model registry at {shown} cannot be reached: {shown_api} reset",
        )
    else:  # another MLflow error, naming the request URL
        other = MlflowException(f"{api} HTTP 500")
        monkeypatch.setattr(
            models, "_registry_client", lambda: _Client(other, on="search_model_versions")
        )
        expected = (NotFoundError, f"model: cannot resolve 'models:/iris/1': {shown_api} HTTP 500")
    with pytest.raises(expected[0]) as ei:
        models.resolve_model("models:/iris/1")
    assert ei.value.message == expected[1]  # type: ignore[attr-defined]
    _no_secret(ei.value)


def test_a_replica_names_the_registry_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a replica's load error (its log, and the service's status) says."""
    mlflow = pytest.importorskip("mlflow")
    url = "http://user:secret@127.0.0.1:5"
    monkeypatch.setattr(mlflow, "get_registry_uri", lambda: url)
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: url)
    msg = models._download_broke_off(
        "models:/m/1", ConnectionError(f"API request to {url}/get-artifact: Connection refused")
    )
    assert msg is not None
    assert msg.startswith(
        "cannot load models:/m/1: the download from the model registry at "
        "http://user:***@127.0.0.1:5 broke off (it stopped answering (connection refused)); "
    )
    assert "secret" not in msg

    def load(uri: str) -> Any:
        raise OSError(f"API request to {url}/api/2.0/mlflow/artifacts failed: HTTP 500")

    import mlflow.pyfunc  # the module itself, not mlflow's lazy loader that stands for it

    monkeypatch.setattr(models, "_check_reachable", lambda uri: None)
    monkeypatch.setattr(mlflow.pyfunc, "load_model", load)
    with pytest.raises(models.ModelLoadError) as ei:
        models._load_pyfunc("models:/m/1")
    assert str(ei.value) == (
        "cannot load models:/m/1: API request to http://user:***@127.0.0.1:5/api/2.0/mlflow/"
        "artifacts failed: HTTP 500"
    )


def test_a_replica_check_of_a_registry_that_does_not_answer_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mlflow")
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    port = _closed_port()
    url = f"http://user:secret@127.0.0.1:{port}"
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(models.ModelLoadError) as ei:
        models._check_reachable("models:/m/1")
    assert str(ei.value).startswith(
        f"cannot load models:/m/1: the model registry at http://user:***@127.0.0.1:{port} does "
        "not answer"
    ), str(ei.value)
    assert "secret" not in str(ei.value)


QUERY_URIS = [
    # libpq and SQLAlchemy take a password from the query as well
    (
        "postgresql://db.example/mlflow?user=u&password=secret",
        "postgresql://db.example/mlflow?user=u&password=***",
    ),
    (
        "postgresql://u@db.example/mlflow?sslmode=verify-full&sslpassword=secret",
        "postgresql://u@db.example/mlflow?sslmode=verify-full&sslpassword=***",
    ),
    (
        "mysql://u@/mlflow?passwd=secret&unix_socket=/s",
        "mysql://u@/mlflow?passwd=***&unix_socket=/s",
    ),
]


@pytest.mark.parametrize(("uri", "shown"), QUERY_URIS)
def test_a_password_in_the_query_is_not_shown(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, uri: str, shown: str
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert models.check_tracking_uri() == uri  # what connects is the URI as given
    exc = MlflowException(f"cannot connect to {uri}")

    def client() -> Any:
        raise exc

    monkeypatch.setattr(models, "_registry_client", client)
    with pytest.raises(ValidationError) as ei:
        models.resolve_model("models:/iris/1")
    assert ei.value.message == (
        f"MLFLOW_TRACKING_URI={shown!r}: MLflow cannot open it as a model registry: "
        f"cannot connect to {shown}"
    )
    _no_secret(ei.value)


def test_a_scheme_mlflow_cannot_open_is_named_without_a_query_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "notascheme://host/x?api_key=secret&region=eu")
    with pytest.raises(ValidationError) as ei:
        models.check_tracking_uri()
    assert ei.value.message == (
        "MLFLOW_TRACKING_URI='notascheme://host/x?api_key=***&region=eu': 'notascheme' is not a "
        "scheme MLflow opens as a model registry"
    )
    _no_secret(ei.value)
