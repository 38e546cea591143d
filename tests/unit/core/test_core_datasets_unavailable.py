"""When the server cannot open its dataset catalog, a job with inputs and the datasets API are
told why: the storage layer's own error, or what failed. A job submitted with inputs while the
database was down was told to "install aistack with its default dependencies"."""

from __future__ import annotations

from typing import Any

from aistack.errors import ConnectionFailed


def _broken(api: Any, monkeypatch: Any, exc: Exception) -> None:
    """The catalog cannot be opened (the next call tries again, and fails the same way)."""
    import aistack.storage

    def fail(settings: Any) -> Any:
        raise exc

    api.ctx._datasets = None
    monkeypatch.setattr(aistack.storage.Datasets, "from_settings", staticmethod(fail))


def test_a_job_with_inputs_gets_the_storage_layers_own_error(api: Any, monkeypatch: Any) -> None:
    _broken(
        api,
        monkeypatch,
        ConnectionFailed(
            "cannot reach the metadata database postgresql://u:***@127.0.0.1:1/db",
            hint="start the database, or fix AISTACK_DATABASE_URL",
        ),
    )
    r = api.http.post("/api/v1/jobs", json={"command": "x", "inputs": ["corpus@v1"]})
    assert r.status_code == 503, r.text
    assert r.json()["message"].startswith("cannot reach the metadata database")
    assert "install aistack" not in r.text
    r = api.http.get("/api/v1/datasets")
    assert r.status_code == 503 and "AISTACK_DATABASE_URL" in r.json()["hint"]


def test_another_failure_is_named(api: Any, monkeypatch: Any) -> None:
    _broken(api, monkeypatch, OSError(13, "Permission denied", "/data/objects"))
    r = api.http.post("/api/v1/jobs", json={"command": "x", "inputs": ["corpus@v1"]})
    assert r.status_code >= 500
    body = r.json()
    assert body["message"].startswith("the dataset catalog cannot be opened: PermissionError")
    assert "AISTACK_STORAGE_URL" in body["hint"]
    # a job without inputs does not need the catalog
    assert api.http.post("/api/v1/jobs", json={"command": "x"}).status_code == 201
