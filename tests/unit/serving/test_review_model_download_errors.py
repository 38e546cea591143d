"""What a failed model download is reported as. urllib3 words every error its retries gave
up on "Max retries exceeded ...": a registry that did not answer within the timeout (it
fetches a large model whole before the first byte) was reported as "connection refused"
without the hint to raise MLFLOW_HTTP_REQUEST_TIMEOUT, and a registry answering 500 to every
retry as a download that "broke off (connection refused)"."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aistack.serving import models

URI = "models:/m/1"


def _get(url: str, timeout: float) -> BaseException:
    """The exception of one GET through a session that retries as MLflow's does."""
    requests = pytest.importorskip("requests")
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=1, connect=1, read=1, status=1, backoff_factor=0,
                  status_forcelist=[500], allowed_methods=None)  # fmt: skip
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    with pytest.raises(requests.RequestException) as ei:
        session.get(url, timeout=timeout)
    return ei.value


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    url = "http://127.0.0.1:5"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    yield url


def test_a_registry_that_sends_nothing_is_reported_as_a_timeout(registry: str) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does), never answers
    try:
        exc = _get(f"http://127.0.0.1:{silent.getsockname()[1]}/f", timeout=0.3)
    finally:
        silent.close()
    assert "Max retries exceeded" in str(exc) and "timed out" in str(exc), str(exc)
    msg = models._download_broke_off(URI, exc)
    assert msg is not None
    assert msg.startswith(
        f"cannot load {URI}: the download from the model registry at {registry} broke off "
        f"(it sent nothing for {models.LOAD_HTTP_TIMEOUT_S} s)"
    ), msg
    assert "connection refused" not in msg
    assert msg.endswith(
        f"may need a longer MLFLOW_HTTP_REQUEST_TIMEOUT (seconds without data, "
        f"{models.LOAD_HTTP_TIMEOUT_S} now)"
    ), msg


class _Fails(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_registry_that_answers_500_did_not_break_off(registry: str) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fails)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        exc = _get(f"http://127.0.0.1:{srv.server_address[1]}/f", timeout=5)
    finally:
        srv.shutdown()
        srv.server_close()
    assert "Max retries exceeded" in str(exc) and "500 error responses" in str(exc), str(exc)
    # not a download that broke off: the load reports MLflow's own error
    assert models._download_broke_off(URI, exc) is None


def test_a_refused_connection_is_still_reported_as_refused(registry: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    exc = _get(f"http://127.0.0.1:{port}/f", timeout=5)
    msg = models._download_broke_off(URI, exc)
    assert msg is not None and "broke off (it stopped answering (connection refused))" in msg
