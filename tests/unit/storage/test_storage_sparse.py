"""Sparse files: ``get`` leaves the zero chunks as holes; ``add`` stores a zero chunk once."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aistack.errors import IntegrityError
from aistack.storage import Datasets
from aistack.storage.hashing import digest
from aistack.storage.manifest import FileEntry

MiB = 1024 * 1024


def connect(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _zeros(ds: Datasets, n: int) -> str:
    return digest(ds.store.algo, bytes(n))


def test_sparse_file_comes_back_sparse(tmp_path: Path) -> None:
    ds = connect(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    disk = src / "disk.img"
    rnd = random.Random(3)
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)  # a hole, with a few blocks written
        for off in (0, 5 * MiB, 33 * MiB + 4096, 60 * MiB):
            f.seek(off)
            f.write(rnd.randbytes(64 * 1024))
    data = disk.read_bytes()
    v = ds.add("vm", src)
    e = ds.files(v.ref)[0]
    # the zero chunks are one object: stored once
    zero = [oid == _zeros(ds, n) for oid, n in zip(e.chunks, e.chunk_sizes, strict=True)]
    assert sum(zero) >= 10
    assert len({oid for oid, z in zip(e.chunks, zero, strict=True) if z}) <= 2
    distinct = dict(zip(e.chunks, e.chunk_sizes, strict=True))
    stored = {o.oid: o.size for o in ds.store.iter_objects()}
    assert stored == distinct  # one object per distinct chunk; far less than the file
    assert sum(stored.values()) < 24 * MiB
    # (two workers may store the same new chunk at once; both count in bytes_written)
    assert v.bytes_written is not None and v.bytes_written < 40 * MiB
    out = tmp_path / "out"
    ds.get(v.ref, out, link="copy")
    got = out / "disk.img"
    assert got.stat().st_size == 64 * MiB
    assert got.read_bytes() == data
    # only the chunks with data took disk blocks: far below the size
    assert allocated(got) <= 64 * MiB - sum(
        n for n, z in zip(e.chunk_sizes, zero, strict=True) if z
    )
    assert allocated(got) < 24 * MiB


def test_zero_chunks_in_the_middle_of_data(tmp_path: Path) -> None:
    ds = connect(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(4)
    data = rnd.randbytes(8 * MiB) + bytes(20 * MiB) + rnd.randbytes(8 * MiB + 5)
    (src / "mixed.bin").write_bytes(data)
    v = ds.add("mixed", src)
    out = tmp_path / "out"
    ds.get(v.ref, out)
    got = out / "mixed.bin"
    assert got.read_bytes() == data
    assert allocated(got) <= len(data) - 8 * MiB  # a hole of at least two 4 MiB chunks
    assert allocated(got) >= 16 * MiB  # the data is there


def test_file_ending_in_a_hole_keeps_its_size(tmp_path: Path) -> None:
    ds = connect(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    head = random.Random(5).randbytes(3 * MiB)
    with open(src / "tail.img", "wb") as f:
        f.write(head)
        f.truncate(37 * MiB + 4321)  # the last chunk is zeros of its own length
    v = ds.add("tail", src)
    e = ds.files(v.ref)[0]
    assert e.chunks[-1] == _zeros(ds, e.chunk_sizes[-1])
    out = tmp_path / "out"
    ds.get(v.ref, out)
    got = out / "tail.img"
    assert got.stat().st_size == 37 * MiB + 4321
    assert got.read_bytes() == head + bytes(34 * MiB + 4321)
    assert allocated(got) < 12 * MiB


def test_zero_chunk_is_known_by_its_id_and_recorded_length() -> None:
    from aistack.storage.hashing import zero_chunks, zero_hash

    z = zero_hash("blake3", 4 * MiB)
    assert z == digest("blake3", bytes(4 * MiB))
    data = digest("blake3", b"x" * 100)
    likely = frozenset({4 * MiB})
    assert zero_chunks("blake3", (data, z, z, data), (100, 4 * MiB, 4 * MiB, 100), likely) == [
        False,
        True,
        True,
        False,
    ]
    # the zero id with another recorded length is not taken for zeros (it is then read and
    # its length checked, as any chunk)
    assert zero_chunks("blake3", (z, z), (4 * MiB - 1, 4 * MiB - 1), likely) == [False, False]
    # a last chunk of zeros of its own length, in a file with zero chunks
    tail = zero_hash("blake3", 12345)
    assert zero_chunks("blake3", (z, data, tail), (4 * MiB, 100, 12345), likely) == [
        True,
        False,
        True,
    ]


def test_zero_chunk_with_a_wrong_recorded_length_fails_the_get(tmp_path: Path) -> None:
    """A manifest whose zero chunk's recorded length is not the length its id was hashed
    from is refused, as before: the chunk is read and its size checked."""
    ds = connect(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(6)
    (src / "z.bin").write_bytes(rnd.randbytes(2 * MiB) + bytes(12 * MiB) + rnd.randbytes(MiB))
    v = ds.add("z", src)
    e = ds.files(v.ref)[0]
    zi = e.chunks.index(_zeros(ds, 4 * MiB))
    sizes = list(e.chunk_sizes)
    sizes[zi] -= 1
    sizes[-1] += 1  # the total still matches
    bad = FileEntry(
        path=e.path,
        size=e.size,
        hash=e.hash,
        chunks=e.chunks,
        chunk_sizes=tuple(sizes),
        executable=e.executable,
    )
    with ThreadPoolExecutor(2) as pool, pytest.raises(IntegrityError, match="the manifest says"):
        # the manifest is hashed: this feeds the bad entry to the chunked get directly
        ds._get_chunked(pool, v, bad, str(tmp_path / "out.bin"), lambda n: None)  # noqa: SLF001
    assert not (tmp_path / "out.bin").exists()
