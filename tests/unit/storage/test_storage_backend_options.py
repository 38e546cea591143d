"""``open_backend(url, **storage_options)``: the options are s3fs arguments; a local or
memory:// store dropped them unread, so a caller who thought they applied never learned."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.storage.backends import open_backend


@pytest.mark.parametrize("kind", ["path", "file", "memory"])
def test_storage_options_for_a_non_s3_store_are_refused(tmp_path: Path, kind: str) -> None:
    url = {
        "path": str(tmp_path / "store"),
        "file": f"file://{tmp_path / 'store'}",
        "memory": "memory://opts-test",
    }[kind]
    with pytest.raises(ValidationError) as ei:
        open_backend(url, anon=True, endpoint_url="http://127.0.0.1:1")
    msg = ei.value.message
    assert msg.startswith("storage options (anon, endpoint_url) apply to s3:// URLs only")
    assert ("local store" if kind != "memory" else "memory store") in msg
    assert "s3://bucket/prefix" in (ei.value.hint or "")


def test_a_store_without_options_still_opens(tmp_path: Path) -> None:
    b = open_backend(str(tmp_path / "store"))
    assert b.scheme == "file" and b.root == str((tmp_path / "store").resolve())
    assert (tmp_path / "store").is_dir()
    m = open_backend("memory://opts-test-2")
    assert (m.scheme, m.root) == ("memory", "/opts-test-2")
