"""Parallel content-defined chunking yields exactly the serial chunker's boundaries.

This is what keeps deduplication working: a file chunked in parallel must be cut where any
earlier version of it was cut serially, or a re-add would store every chunk again.
"""

from __future__ import annotations

import json
import mmap
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aistack.storage.hashing as hashing
from aistack.storage import Datasets
from aistack.storage.hashing import ChunkParams, ChunkPolicy, cut_offsets, cut_offsets_parallel

MiB = 1024 * 1024
SMALL = ChunkParams()  # 256 KiB / 1 MiB / 4 MiB: pyfastcdc over the whole buffer
SKIPPING = ChunkParams(min_size=1536 * 1024, avg_size=2 * MiB, max_size=4 * MiB)  # skip path
TINY = ChunkParams(min_size=1024, avg_size=4096, max_size=16384)


@pytest.mark.parametrize("params", [SMALL, SKIPPING, TINY], ids=["small", "skipping", "tiny"])
@pytest.mark.parametrize("segment", [3 * MiB, 5 * MiB + 4097, 17 * MiB])
@pytest.mark.parametrize("threads", [2, 3])
def test_parallel_boundaries_equal_serial_on_random_data(
    params: ChunkParams, segment: int, threads: int
) -> None:
    data = random.Random(segment + threads).randbytes(40 * MiB + 777)
    serial = list(cut_offsets(data, params))
    assert list(cut_offsets_parallel(data, params, threads=threads, segment=segment)) == serial


def test_data_that_never_resynchronises_is_chunked_serially_and_exactly() -> None:
    # zeros: every chunk is max_size from wherever a chunker starts, so a segment's own chain
    # (started mid-chunk) never meets the real one; the stitching must carry it to the end
    data = bytes(30 * MiB + 5) + random.Random(1).randbytes(9 * MiB) + bytes(3 * MiB)
    for params in (SMALL, SKIPPING):
        serial = list(cut_offsets(data, params))
        assert list(cut_offsets_parallel(data, params, threads=2, segment=3 * MiB + 1)) == serial


def test_segments_smaller_than_a_chunk() -> None:
    data = random.Random(2).randbytes(12 * MiB)
    serial = list(cut_offsets(data, SKIPPING))
    assert list(cut_offsets_parallel(data, SKIPPING, threads=4, segment=100_000)) == serial


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """Random bytes, runs of zeros and repeated blocks: data that resynchronises late or never."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    parts: list[bytes] = []
    for kind in draw(st.lists(st.sampled_from(["random", "zeros", "repeat"]), max_size=8)):
        n = draw(st.integers(0, 120_000))
        if kind == "random":
            parts.append(rnd.randbytes(n))
        elif kind == "zeros":
            parts.append(bytes(n))
        else:
            parts.append(rnd.randbytes(draw(st.integers(1, 5000))) * (n // 1000 + 1))
    return b"".join(parts)


@settings(max_examples=40, deadline=None)
@given(structured(), st.integers(1, 300_000), st.integers(2, 4))
def test_parallel_equals_serial_on_structured_data(data: bytes, segment: int, threads: int) -> None:
    serial = list(cut_offsets(data, TINY))
    assert list(cut_offsets_parallel(data, TINY, threads=threads, segment=segment)) == serial


def test_small_buffers_and_one_thread_take_the_serial_path() -> None:
    data = random.Random(5).randbytes(3 * MiB)
    serial = list(cut_offsets(data, SMALL))
    assert list(cut_offsets_parallel(data, SMALL)) == serial  # below PARALLEL_FROM
    assert list(cut_offsets_parallel(data, SMALL, threads=1, segment=MiB)) == serial
    assert list(cut_offsets_parallel(b"", SMALL, threads=2, segment=MiB)) == [(0, 0)]


def test_stopping_early_leaves_the_mapping_closable(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(random.Random(6).randbytes(24 * MiB))
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        it = cut_offsets_parallel(m, SMALL, threads=2, segment=4 * MiB)
        first = [next(it) for _ in range(3)]
        it.close()
        m.close()  # no view of the mapping is left behind (BufferError otherwise)
    assert first == list(cut_offsets(path.read_bytes(), SMALL))[:3]


def test_parallel_add_dedups_against_a_serially_chunked_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version stored by the serial chunker (an existing store) and the same file added again
    through the parallel chunker share every object: nothing new is written."""
    import aistack.storage.upload as upload  # where the add pipeline chunks

    policy = ChunkPolicy(
        small=SMALL,
        large=ChunkParams(min_size=1280 * 1024, avg_size=1536 * 1024, max_size=2 * MiB),
        large_from=8 * MiB,
    )
    store = tmp_path / "objects" / "cas"
    store.mkdir(parents=True)
    (store / "config.json").write_text(json.dumps({"hash": "blake3", **policy.to_config()}))
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "objects"))
    src = tmp_path / "src" / "blob.bin"
    src.parent.mkdir()
    data = bytearray(random.Random(7).randbytes(72 * MiB + 3))
    src.write_bytes(data)

    monkeypatch.setattr(upload, "cut_offsets_parallel", lambda buf, p: cut_offsets(buf, p))
    v1 = ds.add("d", src.parent)
    monkeypatch.undo()
    calls: list[int] = []
    real_chain = hashing._chain

    def counting_chain(*args: object) -> list[int]:
        calls.append(1)
        return real_chain(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "PARALLEL_FROM", 0)
    monkeypatch.setattr(hashing, "SEGMENT_MIN", 8 * MiB)  # 32 MiB: 16 max_size chunks
    monkeypatch.setattr(hashing, "_chain", counting_chain)
    v2 = ds.add("d", src.parent)
    assert calls, "the parallel chunker did not run"
    assert v2.bytes_written == 0
    assert ds.files(v2)[0].chunks == ds.files(v1)[0].chunks

    data[20 * MiB : 20 * MiB + 4096] = random.Random(8).randbytes(4096)  # a small edit
    src.write_bytes(data)
    v3 = ds.add("d", src.parent)
    assert 0 < v3.bytes_written <= 3 * 2 * MiB  # only the chunks around the edit
