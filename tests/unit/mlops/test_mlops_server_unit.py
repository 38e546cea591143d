"""The background MLflow loader answers 503 with the reason when MLflow cannot start."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from aistack.mlops import server  # noqa: E402
from aistack.settings import Settings  # noqa: E402


def test_failed_start_is_a_503_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    # model_construct: Settings itself refuses a home under a file; here it must get as far
    # as MLflow's start, which fails on it
    loader = server._BackgroundMlflow(Settings.model_construct(home=blocker / "home"), wait_s=30)
    loader.thread.join(timeout=30)
    assert loader.ready.is_set() and loader.error is not None
    app = FastAPI()
    app.mount("/mlflow", loader)
    with TestClient(app) as tc:
        r = tc.get("/mlflow/health")
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "backend_error"
    assert body["message"].startswith("MLflow failed to start:")
    assert "file" in body["message"]


def test_status_off_when_not_mounted(monkeypatch):
    monkeypatch.setattr(server, "_STATE", {})
    monkeypatch.setattr(server, "_MOUNTED", {})
    assert server.mlflow_status() == {"state": "off", "error": None, "init_s": None}


def test_disabled_setting_mounts_nothing(tmp_path):
    app = FastAPI()
    server.mount_mlflow(app, Settings(home=tmp_path, mlflow_enabled=False))
    assert [r for r in app.routes if getattr(r, "path", "") == "/mlflow"] == []


def test_package_exports_sorted_and_mlflow_not_imported():
    import subprocess
    import sys

    import aistack.mlops as m

    assert m.__all__ == sorted(m.__all__)
    assert all(hasattr(m, name) for name in m.__all__)
    out = subprocess.run(
        [sys.executable, "-c", "import sys, aistack.mlops; print('mlflow' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_strip_server_env():
    env = {
        "PATH": "/bin",
        "_MLFLOW_SERVER_FILE_STORE": "sqlite:///x",
        "_MLFLOW_STATIC_PREFIX": "/mlflow",
        "_MLFLOW_SGI_NAME": "uvicorn",
        "MLFLOW_TRACKING_URI": "http://h/mlflow",
    }
    assert server.strip_server_env(env) == {
        "PATH": "/bin",
        "MLFLOW_TRACKING_URI": "http://h/mlflow",
    }
