"""Errors and logs of aistack.mlops show a tracking or store URI without its password.

MLflow's own messages name the request URL with the tracking URI's credentials in it ("API
request to http://user:secret@host:5000/api/2.0/... failed"); aistack's errors (translate),
the REST listing's errors, the embedded server's store errors and the metrics logger's last
error passed them on as they were. They now show ``user:***@host``."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import pytest

from aistack.errors import BackendError, ConflictError, ConnectionFailed, NotFoundError
from aistack.mlops import _rest
from aistack.mlops._client import translate


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:secret@host:5000", "http://user:***@host:5000"),
        ("https://user:secret@host/mlflow", "https://user:***@host/mlflow"),
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://u:pw@h/db", "mysql+pymysql://u:***@h/db"),
        # SQLAlchemy reads the password up to the '@' before the host ('/', '?' included)
        ("mysql://mlflow:pa/ss@127.0.0.1/mlflow", "mysql://mlflow:***@127.0.0.1/mlflow"),
        ("postgresql://m:p?ss@[::1]:5432/mlflow", "postgresql://m:***@[::1]:5432/mlflow"),
        # urllib (requests) up to the last '@' before the host
        ("http://u:p@ss@host/x", "http://u:***@host/x"),
        ("postgresql://a@b:pw@h/db", "postgresql://a@b:***@h/db"),
        # in a message, each URI
        (
            "MLFLOW_TRACKING_URI='http://u:pw@h:5000': API request to http://u:pw@h:5000/api "
            "failed; see postgresql://v:pw2@db/x.",
            "MLFLOW_TRACKING_URI='http://u:***@h:5000': API request to http://u:***@h:5000/api "
            "failed; see postgresql://v:***@db/x.",
        ),
        # nothing to hide: left as it is
        ("http://127.0.0.1:8765/mlflow", "http://127.0.0.1:8765/mlflow"),
        ("http://user@host:5000/mlflow", "http://user@host:5000/mlflow"),
        ("databricks://my-scope:my-prefix", "databricks://my-scope:my-prefix"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("models:/iris@production", "models:/iris@production"),
        ("write to a@b:c", "write to a@b:c"),
    ],
)
def test_redact_uri(text: str, shown: str) -> None:
    from aistack.mlops._client import redact_uri

    assert redact_uri(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # libpq and SQLAlchemy take the password from the query too
        (
            "postgresql://h/db?user=u&password=secret",
            "postgresql://h/db?user=u&password=***",
        ),
        (
            "postgresql://u@h/db?sslpassword=secret&sslmode=verify-full",
            "postgresql://u@h/db?sslpassword=***&sslmode=verify-full",
        ),
        ("mysql+pymysql://u@h/db?passwd=secret", "mysql+pymysql://u@h/db?passwd=***"),
        ("mssql+pyodbc://h/db?UID=u&PWD=secret", "mssql+pyodbc://h/db?UID=u&PWD=***"),
        ("postgresql://h/db?Password=secret", "postgresql://h/db?Password=***"),
        # tokens and keys in an http(s) URL
        ("https://h/mlflow?token=secret", "https://h/mlflow?token=***"),
        ("https://h/x?a=1&access_token=secret&b=2", "https://h/x?a=1&access_token=***&b=2"),
        ("https://h/x?client_secret=secret", "https://h/x?client_secret=***"),
        ("https://h/x?SECRET=secret", "https://h/x?SECRET=***"),
        ("https://h/x?api_key=secret", "https://h/x?api_key=***"),
        ("https://h/x?apiKey=secret&q=1", "https://h/x?apiKey=***&q=1"),
        ("https://h/x?x-api-key=secret", "https://h/x?x-api-key=***"),
        ("https://h/x?db_pass=secret", "https://h/x?db_pass=***"),
        # pre-signed artifact URLs (S3, Azure SAS)
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Security-Token=tok"
            "&X-Amz-Signature=abc",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Security-Token=***"
            "&X-Amz-Signature=***",
        ),
        (
            "https://a.blob.core.windows.net/c?sv=2020&sig=abc%2B",
            "https://a.blob.core.windows.net/c?sv=2020&sig=***",
        ),
        # with the userinfo password too, and in a message
        (
            "postgresql://u:pw@h/db?password=pw2&application_name=x",
            "postgresql://u:***@h/db?password=***&application_name=x",
        ),
        (
            "MLFLOW_TRACKING_URI='postgresql://h/db?user=u&password=secret': cannot open; see "
            "https://h/x?token=t2.",
            "MLFLOW_TRACKING_URI='postgresql://h/db?user=u&password=***': cannot open; see "
            "https://h/x?token=***",
        ),
        # a closing parenthesis may be the password's: hidden with it
        ("(https://h/x?token=secret)", "(https://h/x?token=***"),
        # SQLAlchemy reads a query value up to the next '&': all of it is hidden
        ("postgresql://h/db?password=a'b;c#d@e", "postgresql://h/db?password=***"),
        # an empty value has nothing to hide
        ("postgresql://h/db?password=&user=u", "postgresql://h/db?password=&user=u"),
        # ordinary parameters are shown
        (
            "postgresql://u:***@h/db?sslmode=require&application_name=mlflow&sslkey=/k.pem",
            "postgresql://u:***@h/db?sslmode=require&application_name=mlflow&sslkey=/k.pem",
        ),
        (
            "http://h/api/2.0/mlflow/metrics/get-history?run_id=1&metric_key=loss"
            "&page_token=abc&max_tokens=5&bypass=1",
            "http://h/api/2.0/mlflow/metrics/get-history?run_id=1&metric_key=loss"
            "&page_token=abc&max_tokens=5&bypass=1",
        ),
        ("token=abc is not a URI", "token=abc is not a URI"),
    ],
)
def test_redact_uri_hides_secrets_in_the_query(text: str, shown: str) -> None:
    from aistack.mlops._client import redact_uri

    assert redact_uri(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # no host (a socket, or SQLite, which takes none): the password is still hidden
        ("mysql://u:pw@/db", "mysql://u:***@/db"),
        (
            "mysql://u:pw@/db?unix_socket=/run/mysqld.sock",
            "mysql://u:***@/db?unix_socket=/run/mysqld.sock",
        ),
        ("mysql://u:pw@", "mysql://u:***@"),
        (
            "postgresql://u:pw@/db?host=/var/run/postgresql",
            "postgresql://u:***@/db?host=/var/run/postgresql",
        ),
        ("postgresql://u:pw@:5432/db", "postgresql://u:***@:5432/db"),
        ("sqlite://user:pw@/path/mlflow.db", "sqlite://user:***@/path/mlflow.db"),
        ("mysql://:pw@/db", "mysql://:***@/db"),
        ("'mysql://u:pw@/db'", "'mysql://u:***@/db'"),
        # a scheme right after a word character ('_')
        ("store_mysql://u:pw@h/db", "store_mysql://u:***@h/db"),
    ],
)
def test_redact_uri_without_a_host(text: str, shown: str) -> None:
    from aistack.mlops._client import redact_uri

    assert redact_uri(text) == shown


URL = "http://user:secret@h:5000"
API = f"API request to {URL}/api/2.0/mlflow/runs/get failed with exception"
SHOWN_API = API.replace(URL, "http://user:***@h:5000")


def test_translate_hides_the_password_mlflow_names() -> None:
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    e = translate(Exception(f"{API} boom"), "get run")
    assert isinstance(e, BackendError) and e.message == f"get run: {SHOWN_API} boom"
    e = translate(MlflowException(f"{API} nope", error_code=RESOURCE_DOES_NOT_EXIST), "get run")
    assert isinstance(e, NotFoundError) and e.message == f"get run: {SHOWN_API} nope"
    # a connection error without an errno: its message is the reason shown
    e = translate(Exception(f"{API} Max retries exceeded"), "get run")
    assert isinstance(e, ConnectionFailed)
    assert e.message == (
        f"get run: cannot reach the tracking server ({SHOWN_API} Max retries exceeded)"
    )


def _mock(monkeypatch: pytest.MonkeyPatch, answer: httpx.Response | None) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if answer is None:  # a redirect to itself
            return httpx.Response(302, headers={"location": str(request.url)})
        return answer

    real = _rest._http_client

    def client(token: str | None) -> httpx.Client:
        c = real(token)
        c._transport = httpx.MockTransport(handle)
        return c

    monkeypatch.setattr(_rest, "_http_client", client)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


SEARCH = "http://user:***@127.0.0.1:9/mlflow/api/2.0/mlflow/registered-models/search"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            httpx.Response(500, text="oops"),
            f"list registered models: {SEARCH} failed with HTTP 500: 'oops'",
        ),
        (
            httpx.Response(200, text="<html>"),
            f"list registered models: {SEARCH} answered 200 with a body that is not a JSON "
            "object ('<html>'); is MLFLOW_TRACKING_URI an MLflow server?",
        ),
        (None, f"list registered models: {SEARCH}: TooManyRedirects: "),
    ],
)
def test_the_rest_listing_names_the_url_without_the_password(
    monkeypatch: pytest.MonkeyPatch, answer: httpx.Response | None, message: str
) -> None:
    _mock(monkeypatch, answer)
    with pytest.raises(BackendError) as ei:
        _rest.list_registered_models("http://user:secret@127.0.0.1:9/mlflow")
    assert ei.value.message.startswith(message), ei.value.message
    assert "secret" not in ei.value.message


def test_a_second_store_in_one_process_is_named_without_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    from aistack.mlops import server
    from aistack.settings import Settings

    monkeypatch.setattr(server, "_MOUNTED", {"key": "postgresql://a:secret1@h/one", "app": 1})
    monkeypatch.setenv("AISTACK_MLFLOW_BACKEND_URI", "postgresql://b:secret2@h/two")
    with pytest.raises(ConflictError) as ei:
        server.create_mlflow_asgi(Settings(home=tmp_path))
    assert ei.value.message == (
        "MLflow is already embedded in this process with store postgresql://a:***@h/one; "
        "cannot also serve postgresql://b:***@h/two"
    )


class _DownOnce:
    """A tracking client whose first log_batch fails as MLflow's does when the server is down."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def log_batch(self, run_id: str, metrics: list) -> None:
        with self.lock:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError(f"{API} Max retries exceeded (Connection refused)")


def test_the_metrics_loggers_last_error_hides_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("mlflow")
    from aistack.mlops.logger import BufferedMetricsLogger

    client = _DownOnce()
    with caplog.at_level(logging.WARNING, logger="aistack.mlops.logger"):
        with BufferedMetricsLogger(
            run_id="run1", client=client, flush_interval_s=0.01, max_backoff_s=0.01
        ) as ml:
            ml.log("loss", 1.0, step=0)
            ml.flush(timeout_s=30)
    assert client.calls == 2  # sent on the retry: the URI itself still connects
    assert ml.last_error == (
        f"ConnectionError: {SHOWN_API} Max retries exceeded (Connection refused)"
    )
    assert "secret" not in caplog.text and "user:***@h:5000" in caplog.text
