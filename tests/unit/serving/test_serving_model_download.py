"""A registry that stops in the middle of a replica's model download: the load fails within
seconds with an error that names the registry, instead of MLflow's retries (minutes)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from aistack.serving import models
from aistack.serving.models import ModelLoadError, load_model

SOURCE = "mlflow-artifacts:/1/run1/artifacts/model"
# a model directory has several files, downloaded in parallel
FILES = ("MLmodel", "python_model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt")
FILES += ("artifacts/weights.bin",)
FILE_SIZE = 4096


class _Registry(ThreadingHTTPServer):
    """Enough of MLflow's REST API for ``load_model("models:/m/1")`` to reach the download of
    the model's files; each file sends its first 100 bytes, then (``mode``) the registry dies
    (the connection closes and nothing listens any more) or hangs."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.release = threading.Event()  # ends the hung downloads at teardown
        self.downloads: list[str] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Registry

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: dict[str, Any]) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        if path.endswith("/registered-models/search"):
            return self._json({"registered_models": []})
        if path.endswith("/registered-models/get"):
            return self._json({"registered_model": {"name": "m"}})
        if path.endswith("/model-versions/get"):
            mv = {"name": "m", "version": "1", "source": SOURCE, "status": "READY"}
            return self._json({"model_version": mv})
        if path.endswith("/model-versions/get-download-uri"):
            return self._json({"artifact_uri": SOURCE})
        if path.endswith("/mlflow-artifacts/artifacts"):  # the listing
            files = [{"path": f, "is_dir": False, "file_size": FILE_SIZE} for f in FILES]
            return self._json({"files": files})
        if "/mlflow-artifacts/artifacts/" in path:  # a file: its first bytes, then nothing
            with self.server.lock:
                first = not self.server.downloads
                self.server.downloads.append(path)
            if self.server.mode == "dies":
                if not first:  # asked for while the registry was going down: no answer
                    self.close_connection = True
                    return None
                # nothing listens from now on: the other files' requests are refused
                self.server.shutdown()
                self.server.server_close()
            self.send_response(200)
            self.send_header("Content-Length", str(FILE_SIZE))
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            if self.server.mode == "hang":
                self.server.release.wait(60)
            self.close_connection = True
            return None
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None


@pytest.fixture
def registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pytest.importorskip("mlflow")
    srv = _Registry(request.param)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    # MLflow's defaults: 7 retries with backoff factor 2, 120 s per request
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    try:
        yield url
    finally:
        srv.release.set()
        if srv.mode == "hang":
            srv.shutdown()
            srv.server_close()
        assert srv.downloads, "the load did not reach the download"


@pytest.mark.parametrize("registry", ["dies"], indirect=True)
def test_a_registry_that_dies_mid_download_fails_the_load_fast(
    aistack_home: Any, registry: str
) -> None:
    """It took about 4 minutes (MLflow's 7 retries of a refused connection, backoff factor
    2) before the replica failed, with a list of urllib3 errors per file."""
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as ei:
        load_model("models:/m/1")
    took = time.monotonic() - t0
    assert took < 10.0, f"took {took:.1f} s"
    msg = str(ei.value)
    head = f"cannot load models:/m/1: the download from the model registry at {registry} broke off"
    # the file whose connection closed, or one asked for after the registry had gone
    hows = ("it closed the connection before the end of a file", "it stopped answering")
    assert any(msg.startswith(f"{head} ({how}") for how in hows), msg
    assert "; check that the model registry runs (`aistack up --detach`" in msg
    assert "MLFLOW_TRACKING_URI" in msg and "#####" not in msg
    # MLflow's own settings are back for the rest of the process
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        assert key not in os.environ


@pytest.mark.parametrize("registry", ["hang"], indirect=True)
def test_a_registry_that_hangs_mid_download_fails_the_load_after_the_timeout(
    aistack_home: Any, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download that receives nothing waited MLflow's 120 s per request."""
    monkeypatch.setattr(models, "LOAD_HTTP_TIMEOUT_S", 1, raising=False)
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as ei:
        load_model("models:/m/1")
    took = time.monotonic() - t0
    assert took < 10.0, f"took {took:.1f} s"
    msg = str(ei.value)
    assert msg.startswith(
        f"cannot load models:/m/1: the download from the model registry at {registry} broke "
        "off (it sent nothing for 1 s)"
    ), msg
    assert msg.endswith(
        "may need a longer MLFLOW_HTTP_REQUEST_TIMEOUT (seconds without data, 1 now)"
    )
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_an_explicit_timeout_and_lower_retries_are_kept_for_the_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, str | None] = {}
    keys = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")  # a large model on a slow store
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "junk")
    with models._download_settings():
        seen = {k: os.environ.get(k) for k in (*keys, "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    assert seen == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "600",
    }
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "junk"
