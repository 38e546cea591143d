"""MLflow and HTTP failures become aistack errors that say what failed and how to fix it."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException, RestException  # noqa: E402
from mlflow.protos.databricks_pb2 import (  # noqa: E402
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)

from aistack.errors import (  # noqa: E402
    AuthError,
    BackendError,
    ConnectionFailed,
    NotFoundError,
    ValidationError,
)
from aistack.mlops._client import auth_env, mlflow_errors, resolve_tracking_uri, translate  # noqa: E402


def test_translate_kinds():
    e = translate(MlflowException("no run", error_code=RESOURCE_DOES_NOT_EXIST), "get run")
    assert isinstance(e, NotFoundError) and str(e).startswith("get run: no run")
    e = translate(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE), "log")
    assert isinstance(e, ValidationError)
    e = translate(RestException({"code": "unauthorized", "message": "wrong token"}), "list")
    assert isinstance(e, AuthError) and e.message == "list: wrong token"
    e = translate(
        Exception(
            "API request to http://h:1/x failed with exception HTTPConnectionPool(host='h', "
            "port=1): Max retries exceeded (Caused by NewConnectionError('x: [Errno 111] "
            "Connection refused'))"
        ),
        "list models",
    )
    assert isinstance(e, ConnectionFailed)
    assert (
        e.message
        == "list models: cannot reach the tracking server at h:1 ([Errno 111] Connection refused)"
    )
    assert isinstance(translate(RuntimeError("boom"), "x"), BackendError)


def test_mlflow_errors_context_keeps_aistack_errors():
    with pytest.raises(NotFoundError, match="^mine$"), mlflow_errors("ctx"):
        raise NotFoundError("mine")
    with pytest.raises(BackendError, match="ctx: boom"), mlflow_errors("ctx"):
        raise RuntimeError("boom")


def test_auth_env_restores(monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "outer")
    with auth_env("inner"):
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == "inner"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "outer"
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    with auth_env("x"):
        assert os.environ["MLFLOW_TRACKING_TOKEN"] == "x"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_auth_env_keeps_the_token_while_another_thread_ends_its_block(monkeypatch):
    """The scheduler creates a job's run (thread A) while the lineage pool ends another job's
    run (thread B), both with the server token. A must not rely on the variable B set: B's
    block removes it when it ends, possibly in the middle of A's request."""
    import os
    import threading

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    b_inside, b_may_leave, a_inside, b_left = (threading.Event() for _ in range(4))
    seen: list[str | None] = []

    def thread_b() -> None:
        with auth_env("tok"):
            b_inside.set()
            b_may_leave.wait(10)
        b_left.set()

    def thread_a() -> None:
        with auth_env("tok"):
            a_inside.set()
            b_left.wait(0.5)  # A's request is in flight while B's block ends (if B could end)
            seen.append(os.environ.get("MLFLOW_TRACKING_TOKEN"))

    tb = threading.Thread(target=thread_b)
    tb.start()
    assert b_inside.wait(10)
    ta = threading.Thread(target=thread_a)
    ta.start()
    a_inside.wait(0.5)  # before the fix A entered at once, on the variable B had set
    b_may_leave.set()
    tb.join(10)
    ta.join(10)
    assert seen == ["tok"]
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_resolve_tracking_uri(monkeypatch, tmp_path):
    from aistack.settings import reset_settings_cache

    assert resolve_tracking_uri("http://a:1/mlflow/") == "http://a:1/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:2/mlflow")
    assert resolve_tracking_uri() == "http://env:2/mlflow"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("AISTACK_HOME", str(tmp_path))
    monkeypatch.delenv("AISTACK_URL", raising=False)
    monkeypatch.setenv("AISTACK_PORT", "9999")
    reset_settings_cache()
    try:
        assert resolve_tracking_uri() == "http://127.0.0.1:9999/mlflow"
        (tmp_path / "server.json").write_text('{"url": "http://10.0.0.5:8765"}')
        assert resolve_tracking_uri() == "http://10.0.0.5:8765/mlflow"
    finally:
        reset_settings_cache()
