"""A pipeline's ``OUT/input-datasets/NAME@vN/`` folder: the dataset file reference written in
place of a file the store cut into chunks goes where ``Datasets.get`` would put that file,
never through a symlink under the folder that leads out of it (``get`` refused that; the
reference was written outside)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aistack.errors import ValidationError

# Past the default store's largest chunk (4 MiB), so the store always cuts it into two or more
# chunks; random 3 MiB came out as one chunk in a CI run.
BIG = 5 << 20


def test_a_chunked_files_reference_is_not_written_through_an_escaping_symlink(
    home: Path,
) -> None:
    from aistack.storage import Datasets
    from aistack.webdata.lineage import materialize_inputs, resolve_dataset_inputs

    src = home / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "big.warc").write_bytes(os.urandom(BIG))
    (src / "a.warc").write_bytes(b"small")
    ds = Datasets.from_settings()
    ref = str(ds.add("raw", str(src)).ref)
    big = next(e for e in ds.files(ref) if e.path == "sub/big.warc")
    assert len(big.chunks) > 1, "the test file must be one the store cuts into chunks"

    out = home / "out"
    inputs = resolve_dataset_inputs([ref], out)
    outside = home / "outside"
    outside.mkdir()
    folder = inputs[0].folder
    folder.mkdir(parents=True)
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    state = out / ".tasks"
    state.mkdir()
    with pytest.raises(ValidationError) as ei:
        materialize_inputs(inputs, set(inputs[0].files), state)
    assert "points outside" in ei.value.message
    assert ei.value.details.get("path") == "sub/big.warc"
    assert list(outside.iterdir()) == []


def test_nested_chunked_files_still_get_their_reference(home: Path) -> None:
    from aistack.storage import Datasets
    from aistack.webdata.lineage import materialize_inputs, resolve_dataset_inputs
    from aistack.webdata.readers import open_input

    src = home / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    data = os.urandom(BIG)
    (src / "sub" / "deeper" / "big.warc").write_bytes(data)
    ds = Datasets.from_settings()
    ref = str(ds.add("raw", str(src)).ref)
    out = home / "out"
    inputs = resolve_dataset_inputs([ref], out)
    (out / ".tasks").mkdir(parents=True)
    (got,) = materialize_inputs(inputs, set(inputs[0].files), out / ".tasks")
    assert got["in_store"] == 1
    target = inputs[0].folder / "sub" / "deeper" / "big.warc"
    assert target.stat().st_size < 4096
    with open_input(target) as f:
        assert f.read() == data
