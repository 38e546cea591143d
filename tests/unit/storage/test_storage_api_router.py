"""/api/v1/datasets (read-only router) in process, over a real Datasets on a temp store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from aistack.errors import AistackError
from aistack.storage import Datasets


class _Ctx:
    def __init__(self, ds: Datasets | None) -> None:
        self._ds = ds
        # what the routers read of the server's settings: no MLflow beside the catalog here
        self.settings = SimpleNamespace(mlflow_enabled=False)

    def datasets(self) -> Any:
        return self._ds

    def datasets_unavailable(self) -> Any:
        from aistack.server.context import ServerContext

        # the server's answer when nothing says why (no error recorded)
        return ServerContext.datasets_unavailable(SimpleNamespace(_datasets_error=None))  # type: ignore[arg-type]


def _app(ds: Datasets | None) -> FastAPI:
    from aistack.server.routers.datasets import router

    app = FastAPI()
    app.state.ctx = _Ctx(ds)

    @app.exception_handler(AistackError)
    async def _err(_req: Request, exc: AistackError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router, prefix="/api/v1")
    return app


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.txt").write_text("beta")
    ds.add("corpus", src, message="first", tags=("raw",))
    (src / "a.txt").write_text("alpha, changed")
    (src / "c.txt").write_text("c")
    ds.add("corpus", src)
    ds.record_lineage(["corpus@v1"], "job-7", ["corpus@v2"])
    ds.add_reference("corpus@v1", "job", "job-7")
    return TestClient(_app(ds))


def test_list_and_detail(client: TestClient) -> None:
    r = client.get("/api/v1/datasets")
    assert r.status_code == 200
    [d] = r.json()
    assert (d["name"], d["versions"], d["latest"]) == ("corpus", 2, "corpus@v2")
    r = client.get("/api/v1/datasets/corpus")
    body = r.json()
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert body["tags"] == {"raw": 1}


def test_version_detail_with_files_and_references(client: TestClient) -> None:
    r = client.get("/api/v1/datasets/corpus/versions/raw")
    body = r.json()
    assert body["ref"] == "corpus@v1"
    assert [f["path"] for f in body["file_list"]] == ["a.txt", "sub/b.txt"]
    assert body["file_list"][0]["size"] == 5
    assert body["references"][0]["kind"] == "job" and body["references"][0]["id"] == "job-7"
    r = client.get("/api/v1/datasets/corpus/versions/v2", params={"limit": 1})
    assert r.json()["file_list_truncated"] is True and len(r.json()["file_list"]) == 1


def test_diff_and_lineage(client: TestClient) -> None:
    d = client.get("/api/v1/datasets/corpus/diff", params={"a": "v1", "b": "v2"}).json()
    assert [c["path"] for c in d["added"]] == ["c.txt"]
    assert [c["path"] for c in d["changed"]] == ["a.txt"]
    assert d["bytes_changed"] == len("alpha, changed")
    g = client.get("/api/v1/datasets/corpus/versions/1/lineage").json()
    assert {(e["src"], e["dst"]) for e in g["edges"]} == {
        ("dataset:corpus@v1", "job:job-7"),
        ("job:job-7", "dataset:corpus@v2"),
    }


def test_unknown_names_are_404_with_hint(client: TestClient) -> None:
    r = client.get("/api/v1/datasets/nope")
    assert r.status_code == 404
    assert "aistack data ls" in r.json()["hint"]
    r = client.get("/api/v1/datasets/corpus/versions/v9")
    assert r.status_code == 404 and "v1, v2" in r.json()["hint"]
    r = client.get("/api/v1/datasets/corpus/versions/bad%20tag!")
    assert r.status_code == 422


def test_catalog_unavailable_is_a_clear_error() -> None:
    r = TestClient(_app(None)).get("/api/v1/datasets")
    assert r.status_code == 502
    assert "not available" in r.json()["message"]


def _datasets(client: TestClient) -> Datasets:
    return client.app.state.ctx._ds  # type: ignore[attr-defined,no-any-return]


def test_lineage_of_a_deleted_version(client: TestClient) -> None:
    _datasets(client).delete("corpus@v2")
    r = client.get("/api/v1/datasets/corpus/versions/v2/lineage")
    assert r.status_code == 200, r.text
    g = r.json()
    assert g["root"] == "dataset:corpus@v2"
    assert {(e["src"], e["dst"]) for e in g["edges"]} == {
        ("dataset:corpus@v1", "job:job-7"),
        ("job:job-7", "dataset:corpus@v2"),
    }
    marks = {n["id"]: n["deleted_at"] for n in g["nodes"]}
    assert marks["dataset:corpus@v1"] is None and marks["job:job-7"] is None
    assert marks["dataset:corpus@v2"] is not None  # ISO time of the deletion
    assert marks["dataset:corpus@v2"][:4].isdigit() and "T" in marks["dataset:corpus@v2"]
    # its data is not served
    r = client.get("/api/v1/datasets/corpus/versions/v2")
    assert r.status_code == 404 and "was deleted" in r.json()["message"]


def test_deleted_tag_leaves_the_detail(client: TestClient) -> None:
    assert _datasets(client).untag("corpus", "raw").ref == "corpus@v1"
    body = client.get("/api/v1/datasets/corpus").json()
    assert body["tags"] == {} and [v["version"] for v in body["versions"]] == [2, 1]
    r = client.get("/api/v1/datasets/corpus/versions/raw")
    assert r.status_code == 404 and "no tag 'raw'" in r.json()["message"]


def test_diff_takes_a_full_reference_of_the_same_dataset(client: TestClient) -> None:
    """The dashboard's diff form sent "corpus@v2" as it is shown: it became corpus@corpus@v2."""
    d = client.get("/api/v1/datasets/corpus/diff", params={"a": "corpus@v1", "b": "corpus@v2"})
    assert d.status_code == 200, d.text
    assert [c["path"] for c in d.json()["added"]] == ["c.txt"]
    r = client.get("/api/v1/datasets/corpus/diff", params={"a": "other@v1"})
    assert r.status_code == 422
    assert r.json()["message"] == "a: 'other@v1' names dataset 'other', not 'corpus'"
