"""``Datasets.get`` never writes into the object store's own areas (``cas/``, ``manifests/``
under a local store's root): a version with a file named ``config.json`` gotten into
``<store>/cas`` with ``force`` replaced the store's configuration, and every later open of the
store failed (IntegrityError 'the store configuration ... is unreadable')."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.storage import Datasets


@pytest.fixture
def ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "store"))


def _add(ds: Datasets, tmp_path: Path, name: str, files: dict[str, str]) -> str:
    src = tmp_path / f"src-{name}"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return ds.add(name, src).ref


def _store_intact(ds: Datasets, tmp_path: Path, ref: str) -> None:
    again = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "store"))
    assert again.verify(ref) == ds.resolve(ref).bytes


@pytest.mark.parametrize("force", [False, True])
def test_get_into_the_stores_cas_directory_is_refused(
    ds: Datasets, tmp_path: Path, force: bool
) -> None:
    keep = _add(ds, tmp_path, "keep", {"data.txt": "precious"})
    evil = _add(ds, tmp_path, "evil", {"config.json": "{}"})
    cas = tmp_path / "store" / "cas"
    config = (cas / "config.json").read_bytes()
    with pytest.raises(ValidationError, match="inside the object store's cas/") as exc:
        ds.get(evil, cas, force=force)
    assert exc.value.details["field"] == "dest"
    assert str(tmp_path / "store") in (exc.value.hint or "")
    assert (cas / "config.json").read_bytes() == config
    _store_intact(ds, tmp_path, keep)


def test_get_into_a_directory_under_the_manifests_is_refused(ds: Datasets, tmp_path: Path) -> None:
    ref = _add(ds, tmp_path, "corpus", {"a.txt": "a"})
    under = tmp_path / "store" / "manifests" / "x"
    with pytest.raises(ValidationError, match="inside the object store's manifests/"):
        ds.get(ref, under)
    assert not under.exists()


def test_get_into_a_directory_holding_the_store_refuses_files_that_land_in_it(
    ds: Datasets, tmp_path: Path
) -> None:
    """dest is the store's parent and the version has store/cas/config.json."""
    keep = _add(ds, tmp_path, "keep", {"data.txt": "precious"})
    evil = _add(ds, tmp_path, "evil", {"store/cas/config.json": "{}", "ok.txt": "x"})
    with pytest.raises(ValidationError, match="holds the object store: 'store/cas/config.json'"):
        ds.get(evil, tmp_path, force=True)
    assert not (tmp_path / "ok.txt").exists()  # nothing was written
    _store_intact(ds, tmp_path, keep)


def test_get_beside_the_stores_areas_still_works(ds: Datasets, tmp_path: Path) -> None:
    """Only cas/ and manifests/ are guarded: the store root itself, and a parent of it for a
    version with no files there, are ordinary destinations."""
    ref = _add(ds, tmp_path, "corpus", {"a.txt": "a", "store/notes.txt": "n"})
    assert ds.get(ref, tmp_path / "store").files == 2
    assert ds.get(ref, tmp_path).files == 2
    assert (tmp_path / "store" / "notes.txt").read_text() == "n"
    assert os.path.isfile(tmp_path / "store" / "store" / "notes.txt")
