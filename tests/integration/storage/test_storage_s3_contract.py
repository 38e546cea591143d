"""The storage contract suite against a real S3-compatible server (SeaweedFS ``weed mini`` on
127.0.0.1, started once for this module), plus S3-specific checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aistack.storage import Datasets
from aistack.storage.contract import StorageContract, make_tree
from aistack.testing.seaweed import SeaweedServer, seaweed_unavailable_reason

pytestmark = pytest.mark.s3

BUCKET = "aistack-tests"


@pytest.fixture(scope="module")
def seaweed():  # type: ignore[no-untyped-def]
    reason = seaweed_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from aistack.testing.seaweed import start_seaweed

    server = start_seaweed(buckets=[BUCKET])
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    return seaweed


class TestS3Contract(StorageContract):
    @pytest.fixture
    def ds(self, tmp_path: Path, s3_env: SeaweedServer) -> Datasets:
        prefix = f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"
        return Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", prefix)


def test_wrong_secret_is_refused(seaweed: SeaweedServer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", f"s3://{BUCKET}/wrong")
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    with pytest.raises(Exception) as err:  # noqa: PT011 - s3fs raises PermissionError/OSError
        ds.add("x", src)
    assert isinstance(err.value, OSError | PermissionError) or "denied" in str(err.value).lower()


def test_objects_survive_and_layout_is_content_addressed(
    s3_env: SeaweedServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src)
    url = f"s3://{BUCKET}/layout-{uuid.uuid4().hex[:8]}"
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", url)
    v = ds.add("l", src)
    fs = s3_env.filesystem()
    root = url[len("s3://") :]
    keys = fs.find(root)
    assert any(
        k.startswith(f"{root}/cas/blake3/") or k.startswith(f"{root}/cas/sha256/") for k in keys
    )
    assert any(k.startswith(f"{root}/manifests/") and k.endswith(".parquet") for k in keys)
    assert fs.exists(f"{root}/cas/config.json")
    # a second client (new process state) sees the same version through the same catalog
    ds2 = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", url)
    assert ds2.open(v.ref).cat("README.md") == b"# demo dataset\n"


def test_kill_9_mid_upload_to_s3(seaweed: SeaweedServer, tmp_path: Path) -> None:
    from aistack.errors import NotFoundError
    from aistack.storage.contract import big_source, kill_mid_upload

    env = seaweed.env()
    db = f"sqlite:///{tmp_path / 'db'}"
    url = f"s3://{BUCKET}/killed-{uuid.uuid4().hex[:8]}"
    src = big_source(tmp_path)
    assert kill_mid_upload(db, url, src, tmp_path, env=env) > 0
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ds = Datasets.connect(db, url)
        with pytest.raises(NotFoundError):
            ds.resolve("killed")
        v = ds.add("killed", src)
        assert v.version == 1 and v.bytes_written is not None and v.bytes_written < v.bytes
        ds.verify(v.ref)
    finally:
        for k, val in old.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = val
