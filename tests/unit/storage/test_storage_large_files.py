"""Large files: the chunk-size tier in the store config, kernel copies on add/get, and the guards
around them (a source that changes during add, a platform without copy_file_range)."""

from __future__ import annotations

import errno
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, IntegrityError
from aistack.storage import Datasets
from aistack.storage.contract import corrupt_object
from aistack.storage.datasets import _SourceFile
from aistack.storage.hashing import ChunkParams, ChunkPolicy, cut, cut_offsets, digest
from aistack.storage.objects import PREALLOCATE_FROM, PREFIX

MiB = 1024 * 1024
SMALL = ChunkParams()  # 256 KiB / 1 MiB / 4 MiB
LARGE = ChunkParams(min_size=64 * 1024, avg_size=256 * 1024, max_size=1024 * 1024)


def connect(tmp_path: Path, config: dict[str, Any] | None = None) -> Datasets:
    store = tmp_path / "objects"
    if config is not None:
        (store / PREFIX).mkdir(parents=True)
        (store / PREFIX / "config.json").write_text(json.dumps(config))
    return Datasets.connect(f"sqlite:///{tmp_path / 'db.sqlite'}", str(store))


def tiered(tmp_path: Path, from_size: int = 2 * MiB) -> Datasets:
    """A store whose large-file tier starts at ``from_size`` with small chunks (fast tests)."""
    policy = ChunkPolicy(small=SMALL, large=LARGE, large_from=from_size)
    return connect(tmp_path, {"hash": "blake3", **policy.to_config(), "version": 1})


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_policy_picks_chunk_sizes_by_file_size() -> None:
    p = ChunkPolicy(small=SMALL, large=LARGE, large_from=2 * MiB)
    assert p.for_size(2 * MiB - 1) == SMALL
    assert p.for_size(2 * MiB) == LARGE
    assert ChunkPolicy.from_config(p.to_config()) == p
    assert ChunkPolicy(small=SMALL).for_size(10**12) == SMALL


def test_new_store_records_the_large_tier(tmp_path: Path) -> None:
    ds = connect(tmp_path)
    ds.store  # noqa: B018 - opens lazily and writes the config
    cfg = json.loads((tmp_path / "objects" / PREFIX / "config.json").read_text())
    assert cfg["chunks"] == SMALL.to_dict()  # what older clients read
    assert cfg["large_chunks"]["from_size"] == 256 * MiB
    assert ds.store.chunk_policy == ChunkPolicy.default()
    assert ds.store.chunk_policy.for_size(1024 * MiB - 1) == ChunkParams(
        min_size=7 * MiB // 2, avg_size=4 * MiB, max_size=16 * MiB
    )
    assert cfg["huge_chunks"]["from_size"] == 1024 * MiB
    assert ds.store.chunk_policy.for_size(2048 * MiB) == ChunkParams(
        min_size=14 * MiB, avg_size=16 * MiB, max_size=28 * MiB
    )


def test_store_without_a_tier_keeps_one_chunk_size(tmp_path: Path) -> None:
    """A store created before the tier existed chunks every file as before (dedup kept)."""
    ds = connect(tmp_path, {"hash": "blake3", "chunks": SMALL.to_dict(), "version": 1})
    assert ds.store.chunk_policy.large is None
    assert ds.store.chunk_policy.for_size(100 * 2**30) == SMALL
    assert ds.store.chunk_params == SMALL


def test_store_from_before_the_huge_tier_keeps_its_large_chunks(tmp_path: Path) -> None:
    """A store whose config has the large tier only chunks a multi-GiB file as before, so a
    new version of it still deduplicates against the stored ones."""
    old = ChunkPolicy.default()
    cfg = {"hash": "blake3", "chunks": SMALL.to_dict(), "version": 1}
    cfg["large_chunks"] = {**old.large.to_dict(), "from_size": old.large_from}  # type: ignore[union-attr]
    ds = connect(tmp_path, cfg)
    assert ds.store.chunk_policy.huge is None
    assert ds.store.chunk_policy.for_size(4096 * MiB) == old.large
    saved = json.loads((tmp_path / "objects" / PREFIX / "config.json").read_text())
    assert "huge_chunks" not in saved  # nothing rewritten


HUGE = ChunkParams(min_size=3 * MiB // 2, avg_size=2 * MiB, max_size=4 * MiB)


def test_huge_tier_cuts_the_biggest_files_in_bigger_chunks(tmp_path: Path) -> None:
    policy = ChunkPolicy(small=SMALL, large=LARGE, large_from=2 * MiB, huge=HUGE, huge_from=8 * MiB)
    assert policy.for_size(8 * MiB - 1) == LARGE
    assert policy.for_size(8 * MiB) == HUGE
    assert ChunkPolicy.from_config(policy.to_config()) == policy
    ds = connect(tmp_path, {"hash": "blake3", **policy.to_config(), "version": 1})
    rnd = random.Random(11)
    huge = bytearray(rnd.randbytes(12 * MiB))
    big = rnd.randbytes(3 * MiB)
    src = tmp_path / "src"
    write(src / "huge.bin", bytes(huge))
    write(src / "big.bin", big)
    v1 = ds.add("d", src)
    entries = {e.path: e for e in ds.files(v1)}
    assert min(entries["huge.bin"].chunk_sizes[:-1]) >= HUGE.min_size
    assert max(entries["huge.bin"].chunk_sizes) <= HUGE.max_size
    assert max(entries["big.bin"].chunk_sizes) <= LARGE.max_size < HUGE.min_size
    ds.get(v1.ref, tmp_path / "out")
    assert (tmp_path / "out" / "huge.bin").read_bytes() == bytes(huge)
    huge[5 * MiB : 5 * MiB + 1000] = rnd.randbytes(1000)  # rewrites one or two huge chunks
    write(src / "huge.bin", bytes(huge))
    v2 = ds.add("d", src)
    assert v2.bytes_written is not None and 0 < v2.bytes_written <= 2 * HUGE.max_size
    ds.get(v2.ref, tmp_path / "out2")
    assert (tmp_path / "out2" / "huge.bin").read_bytes() == bytes(huge)


@pytest.mark.parametrize("from_size", [0, -5, "x", None])
def test_store_config_with_a_bad_tier_start_fails_at_open(tmp_path: Path, from_size: Any) -> None:
    cfg = {
        "hash": "blake3",
        "chunks": SMALL.to_dict(),
        "huge_chunks": {**HUGE.to_dict(), "from_size": from_size},
        "version": 1,
    }
    ds = connect(tmp_path, cfg)
    with pytest.raises(IntegrityError, match="huge_chunks: from_size must be a positive"):
        ds.store  # noqa: B018 - opens lazily
    saved = json.loads((tmp_path / "objects" / PREFIX / "config.json").read_text())
    assert saved == cfg  # nothing rewritten


def test_large_tier_roundtrip_and_dedup(tmp_path: Path) -> None:
    ds = tiered(tmp_path)
    rnd = random.Random(7)
    big = bytearray(rnd.randbytes(3 * MiB))  # >= from_size: LARGE chunks
    mid = rnd.randbytes(3 * MiB // 2)  # below: SMALL chunks
    src = tmp_path / "src"
    write(src / "big.bin", bytes(big))
    write(src / "mid.bin", mid)
    v1 = ds.add("d", src)
    entries = {e.path: e for e in ds.files(v1)}
    assert max(entries["big.bin"].chunk_sizes) <= LARGE.max_size
    assert len(entries["big.bin"].chunks) >= 4
    assert min(entries["mid.bin"].chunk_sizes[:-1]) >= SMALL.min_size
    out = tmp_path / "out"
    res = ds.get(v1.ref, out)
    assert (out / "big.bin").read_bytes() == bytes(big)
    assert (out / "mid.bin").read_bytes() == mid
    assert res.copied == 2  # chunked files are reassembled
    assert not list((tmp_path / "objects" / PREFIX / "tmp").iterdir())

    big[MiB : MiB + 1000] = rnd.randbytes(1000)  # a small change rewrites one or two chunks
    write(src / "big.bin", bytes(big))
    v2 = ds.add("d", src)
    assert v2.bytes_written is not None and 0 < v2.bytes_written <= 2 * LARGE.max_size
    ds.get(v2.ref, tmp_path / "out2")
    assert (tmp_path / "out2" / "big.bin").read_bytes() == bytes(big)


def test_objects_are_read_only_whatever_the_umask(tmp_path: Path) -> None:
    ds = tiered(tmp_path)
    old = os.umask(0o077)
    try:
        v = ds.add("d", write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB)))
    finally:
        os.umask(old)
    for oid in ds.files(v)[0].chunks:
        assert os.stat(ds.store.key(oid)).st_mode & 0o777 == 0o444


def test_without_copy_file_range_the_bytes_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*_a: Any, **_k: Any) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    ds = tiered(tmp_path)
    data = os.urandom(3 * MiB)
    v = ds.add("d", write(tmp_path / "src" / "big.bin", data))
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_get_onto_a_full_disk_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a failed write left a slice of the object's mapping alive: closing the mapping raised
    # BufferError ("cannot close exported pointers exist"), a traceback hiding the ENOSPC
    from aistack.errors import BackendError

    ds = tiered(tmp_path)
    data = os.urandom(3 * MiB)
    v = ds.add("d", write(tmp_path / "src" / "big.bin", data))

    def cross_device(*_a: Any, **_k: Any) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    def full(*_a: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(BackendError, match="No space left on device") as ei:
        ds.get(v.ref, tmp_path / "out")
    assert "free space" in (ei.value.hint or "")
    assert not (tmp_path / "out" / "big.bin").exists()
    monkeypatch.undo()
    assert ds.verify(v.ref) == len(data)


def test_objects_are_preallocated_and_a_filesystem_without_it_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.posix_fallocate

    def spy(fd: int, off: int, n: int) -> None:
        calls.append(n)
        real(fd, off, n)

    monkeypatch.setattr(os, "posix_fallocate", spy)
    ds = tiered(tmp_path / "a", from_size=10**12)  # small tier: 1 MiB average chunks
    data = os.urandom(8 * MiB)
    v = ds.add("d", write(tmp_path / "src" / "big.bin", data))
    entry = next(iter(ds.files(v)))
    sizes = entry.chunk_sizes
    assert sorted(calls) == sorted(n for n in sizes if n >= PREALLOCATE_FROM)
    assert calls  # some chunks of 1 MiB and up were preallocated to exactly their size
    for oid, n in zip(entry.chunks, sizes, strict=True):
        assert os.path.getsize(ds.store.key(oid)) == n

    def unsupported(*_a: Any) -> None:
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    ds2 = tiered(tmp_path / "b", from_size=10**12)
    v2 = ds2.add("d", tmp_path / "src")
    ds2.get(v2.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_source_that_shrinks_during_the_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "copy_file_range", lambda *_a, **_k: 0)  # EOF: the file got shorter
    ds = tiered(tmp_path)
    with pytest.raises(ConflictError, match="big.bin: the source file got shorter") as ei:
        ds.add("d", write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB)))
    assert ei.value.details.get("path") == "big.bin"  # which of many files
    assert not ds.ls()
    assert not list((tmp_path / "objects" / PREFIX / "tmp").iterdir())


def test_source_that_changes_during_add_is_refused(tmp_path: Path) -> None:
    ds = tiered(tmp_path)
    path = write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB))
    touched = []

    def append_once(done: int, total: int) -> None:
        if not touched:
            touched.append(done)
            with open(path, "ab") as f:
                f.write(b"more")

    with pytest.raises(ConflictError, match="big.bin changed while it was being added") as ei:
        ds.add("d", path, progress=append_once)
    assert "add it again" in str(ei.value.hint)
    assert touched and not ds.ls()


def test_source_rewritten_in_place_with_its_mtime_put_back_is_refused(tmp_path: Path) -> None:
    """Same size, same mtime (restored with os.utime, as `touch -r` does): the ctime still
    changes, and the add is refused."""
    ds = tiered(tmp_path)
    path = write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB))
    st0 = os.stat(path)
    touched = []

    def rewrite_once(done: int, total: int) -> None:
        if not touched:
            touched.append(done)
            time.sleep(0.01)  # a ctime tick later
            with open(path, "r+b") as f:
                f.write(b"\0" * 4096)  # bytes that were hashed may now differ
            os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns))

    with pytest.raises(ConflictError, match="big.bin changed while it was being added"):
        ds.add("d", path, progress=rewrite_once)
    st1 = os.stat(path)
    assert (st1.st_size, st1.st_mtime_ns) == (st0.st_size, st0.st_mtime_ns)  # only ctime moved
    assert touched and not ds.ls()


def test_changed_source_check_removes_objects_with_wrong_bytes(tmp_path: Path) -> None:
    ds = tiered(tmp_path)
    path = write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB))
    v = ds.add("d", path)
    bad, good = ds.files(v)[0].chunks[:2]
    corrupt_object(ds, bad)
    st = os.stat(path)
    src = _SourceFile(rel="big.bin", path=str(path), size=st.st_size + 1)  # "it grew"
    with pytest.raises(ConflictError):
        ds._check_unchanged(src, st, st, [bad, good])
    assert not ds.store.exists(bad)
    assert ds.store.exists(good)


def test_corrupted_chunk_fails_get_and_leaves_no_temp_file(tmp_path: Path) -> None:
    ds = tiered(tmp_path)
    v = ds.add("d", write(tmp_path / "src" / "big.bin", os.urandom(3 * MiB)))
    oid = ds.files(v)[0].chunks[2]
    corrupt_object(ds, oid)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError) as ei:
        ds.get(v.ref, out)
    assert oid in str(ei.value) and "big.bin" in str(ei.value)
    assert not out.exists()  # no temp file, and not the folder the get made either


# min_size above pyfastcdc's 1 MiB bound: the first min_size - 1 MiB bytes of a chunk are skipped
SKIPPING = ChunkParams(min_size=1536 * 1024, avg_size=2 * MiB, max_size=4 * MiB)


def test_skipping_chunker_covers_the_input_within_bounds() -> None:
    data = random.Random(3).randbytes(40 * MiB + 12345)
    spans = list(cut_offsets(data, SKIPPING))
    assert spans[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False))
    assert sum(n for _, n in spans) == len(data)
    assert all(SKIPPING.min_size <= n <= SKIPPING.max_size for _, n in spans[:-1])
    assert b"".join(bytes(c) for c in cut(data, SKIPPING)) == data
    assert list(cut_offsets(data, SKIPPING)) == spans  # deterministic


def test_skipping_chunker_resynchronises_after_an_insert() -> None:
    data = random.Random(4).randbytes(40 * MiB)
    edited = data[: 20 * MiB] + b"INSERT" + data[20 * MiB :]
    a = {digest("blake3", c) for c in cut(data, SKIPPING)}
    b = {digest("blake3", c) for c in cut(edited, SKIPPING)}
    assert len(b - a) <= 3  # only the chunks around the insert are new
    assert len(a & b) >= len(a) - 4


@pytest.mark.parametrize(
    ("sizes", "needle"),
    [
        ((4 * MiB, 8 * MiB, 32 * MiB), "avg_size"),  # avg 5 MiB past the 3 MiB skip
        ((6 * MiB, 8 * MiB, 32 * MiB), "max_size"),  # max 27 MiB past the 5 MiB skip
        ((2 * MiB, 1 * MiB, 16 * MiB), "min_size ≤ avg_size"),
    ],
)
def test_store_config_with_chunk_sizes_fastcdc_refuses_fails_at_open(
    tmp_path: Path, sizes: tuple[int, int, int], needle: str
) -> None:
    lo, avg, hi = sizes
    cfg = {
        "hash": "blake3",
        "chunks": SMALL.to_dict(),
        "large_chunks": {"min_size": lo, "avg_size": avg, "max_size": hi, "from_size": 2 * MiB},
        "version": 1,
    }
    ds = connect(tmp_path, cfg)
    with pytest.raises(IntegrityError, match="config") as err:
        ds.store  # noqa: B018 - opens lazily
    assert needle in str(err.value)
    saved = json.loads((tmp_path / "objects" / PREFIX / "config.json").read_text())
    assert saved == cfg  # nothing rewritten


def test_bytes_written_counts_an_object_once_when_workers_store_it_at_once(
    tmp_path: Path,
) -> None:
    """A run of zeros is cut into identical max-size chunks, stored by several workers at
    once: the store ends with one object, and the add says it wrote it once."""
    ds = tiered(tmp_path)
    src = tmp_path / "src"
    write(src / "zeros.bin", bytes(24 * MiB))
    for k in range(12):  # identical small files, stored in parallel too
        write(src / f"same-{k}.txt", b"x" * 1000)
    v = ds.add("z", src)
    entries = {e.path: e for e in ds.files(v)}
    assert len(set(entries["zeros.bin"].chunks)) == 1 < len(entries["zeros.bin"].chunks)
    objects = tmp_path / "objects" / PREFIX / "blake3"
    stored = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    assert v.bytes_written == stored == LARGE.max_size + 1000
