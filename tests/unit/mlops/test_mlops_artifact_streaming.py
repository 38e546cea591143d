"""Artifact uploads and downloads under /mlflow go through MLflow's native, streaming ASGI
endpoints (aistack.mlops.server.serve_artifacts_natively), not the WSGI bridge that holds a whole
body in memory: a real embedded server (TrackingServer, and the full aistack server for the
body limit), the real MLflow client.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("mlflow")

from aistack.mlops.testing import TrackingServer  # noqa: E402

pytestmark = [pytest.mark.mlflow]

API = "/api/2.0/mlflow-artifacts/artifacts"
AJAX = "/ajax-api/2.0/mlflow-artifacts/artifacts"
BIG = 128 * 2**20


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with TrackingServer(tmp_path_factory.mktemp("mlflow-stream"), token="tok") as s:
        yield s


@pytest.fixture()
def client(srv, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token)
    import mlflow

    return mlflow.MlflowClient(srv.tracking_uri)


def _artifact_root(srv) -> Path:
    return srv.home / "objects" / "mlflow-artifacts"


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".artifact.uploading.")]


def test_log_artifact_round_trips_byte_equal_and_lists(srv, client, tmp_path):
    import mlflow

    data = os.urandom(3 * 2**20 + 17)
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    run = client.create_run("0")
    rid = run.info.run_id
    client.log_artifact(rid, str(src), "ckpt")

    # MLflow's own layout: <destination>/<experiment>/<run>/artifacts/<path>
    stored = _artifact_root(srv) / "0" / rid / "artifacts" / "ckpt" / "weights.bin"
    assert stored.read_bytes() == data
    assert _leftovers(_artifact_root(srv)) == []

    got = mlflow.artifacts.download_artifacts(
        run_id=rid,
        artifact_path="ckpt/weights.bin",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=srv.tracking_uri,
    )
    assert Path(got).read_bytes() == data

    top = client.list_artifacts(rid)
    assert [(f.path, f.is_dir) for f in top] == [("ckpt", True)]
    inner = client.list_artifacts(rid, "ckpt")
    assert [(f.path, f.is_dir, f.file_size) for f in inner] == [
        ("ckpt/weights.bin", False, len(data))
    ]

    # DELETE of the same path is still Flask's (the native routes are GET/PUT only)
    url = f"{srv.tracking_uri}{API}/0/{rid}/artifacts/ckpt/weights.bin"
    r = httpx.delete(url, headers=srv.headers())
    assert r.status_code == 200, r.text
    assert not stored.exists()
    assert client.list_artifacts(rid, "ckpt") == []


@pytest.mark.parametrize("route", [API, AJAX])
def test_path_escaping_the_artifact_root_is_refused(srv, route):
    root = _artifact_root(srv)
    root.mkdir(parents=True, exist_ok=True)
    # uvicorn decodes %2E%2E to '..' in the path the route sees (clients normalize a literal one)
    up = f"{srv.tracking_uri}{route}/0/%2E%2E/%2E%2E/escaped.txt"
    r = httpx.put(up, content=b"nope", headers=srv.headers())
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["error_code"], body["message"]) == ("INVALID_PARAMETER_VALUE", "Invalid path")
    assert not (srv.home / "escaped.txt").exists()
    assert not (srv.home / "objects" / "escaped.txt").exists()
    # ... and a download cannot read the tracking database next to the artifact root
    r = httpx.get(f"{srv.tracking_uri}{route}/%2E%2E/%2E%2E/mlflow.db", headers=srv.headers())
    assert r.status_code == 400, r.text
    assert b"SQLite" not in r.content


def test_upload_without_the_token_is_refused(srv):
    url = f"{srv.tracking_uri}{API}/0/noauth/artifacts/secret.bin"
    r = httpx.put(url, content=b"x" * 1000)
    assert r.status_code == 401
    assert not list(_artifact_root(srv).rglob("secret.bin"))
    assert httpx.get(url).status_code == 401


def _vm_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS; return that RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _vm_kib(pid, "VmRSS")


def _peak_growth_mb(pid: int, base_kib: int) -> float:
    return (_vm_kib(pid, "VmHWM") - base_kib) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_large_upload_and_download_do_not_hold_the_file_in_memory(srv, client, tmp_path):
    """A memory bound, not a timing: the buffered bridge grew the server's peak RSS by about
    twice the file size (200 MB file: +400 MB); streamed, it stays near zero."""
    import mlflow

    big = tmp_path / "big.ckpt"
    with big.open("wb") as f:  # sparse: the bytes do not matter here, only the size
        f.truncate(BIG)
    rid = client.create_run("0").info.run_id
    pid = srv.proc.pid
    bound_mb = BIG / 2**20 / 4

    # the MLflow client's PUT (Content-Length), on the route it uses
    base = _reset_peak(pid)
    client.log_artifact(rid, str(big), "model")
    grown = _peak_growth_mb(pid, base)
    stored = _artifact_root(srv) / "0" / rid / "artifacts" / "model" / "big.ckpt"
    assert stored.stat().st_size == BIG
    assert grown < bound_mb, f"server peak RSS grew {grown:.0f} MB for a {BIG >> 20} MB upload"

    # the UI's route, with a chunked body (no Content-Length)
    def chunks():
        block = b"\0" * 2**20
        for _ in range(BIG // len(block)):
            yield block

    base = _reset_peak(pid)
    url = f"{srv.tracking_uri}{AJAX}/0/{rid}/artifacts/ui/big.ckpt"
    r = httpx.put(url, content=chunks(), headers=srv.headers(), timeout=120)
    assert r.status_code == 200, r.text
    grown = _peak_growth_mb(pid, base)
    assert (stored.parent.parent / "ui" / "big.ckpt").stat().st_size == BIG
    assert grown < bound_mb, f"server peak RSS grew {grown:.0f} MB for a chunked upload"

    # download with the MLflow client
    base = _reset_peak(pid)
    got = mlflow.artifacts.download_artifacts(
        run_id=rid,
        artifact_path="model/big.ckpt",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=srv.tracking_uri,
    )
    grown = _peak_growth_mb(pid, base)
    assert Path(got).stat().st_size == BIG
    assert grown < bound_mb, f"server peak RSS grew {grown:.0f} MB for a download"
    assert _leftovers(_artifact_root(srv)) == []


def _wait_mlflow(srv, timeout: float = 180.0) -> None:
    headers = {"Authorization": f"Bearer {srv.token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{srv.url}/mlflow/health", headers=headers, timeout=60)
        if r.status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"MLflow did not start: {r.status_code} {r.text}")


def test_full_server_body_limit_and_auth_apply_to_streamed_uploads(server_factory):
    limit = 2**20
    srv = server_factory(AISTACK_MLFLOW_ENABLED="true", AISTACK_MAX_MLFLOW_REQUEST_BYTES=str(limit))
    _wait_mlflow(srv)
    headers = {"Authorization": f"Bearer {srv.token}"}
    root = srv.home / "objects" / "mlflow-artifacts"
    base = f"{srv.url}/mlflow{API}/0/limits/artifacts"

    r = httpx.put(f"{base}/small.bin", content=b"s" * 1000, headers=headers)
    assert r.status_code == 200, r.text
    assert (root / "0" / "limits" / "artifacts" / "small.bin").read_bytes() == b"s" * 1000

    r = httpx.put(f"{base}/nokey.bin", content=b"s" * 1000)
    assert r.status_code == 401
    assert not (root / "0" / "limits" / "artifacts" / "nokey.bin").exists()

    # declared too large: refused before the route runs
    r = httpx.put(f"{base}/declared.bin", content=b"d" * (limit + 1), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["details"]["setting"] == "AISTACK_MAX_MLFLOW_REQUEST_BYTES"

    # chunked: counted while the route streams it to disk; the partial file is removed
    def chunks():
        for _ in range(3):
            yield b"c" * (limit // 2 + 1)

    r = httpx.put(f"{base}/chunked.bin", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_large"
    assert not (root / "0" / "limits" / "artifacts" / "chunked.bin").exists()
    assert _leftovers(root) == []
