"""Packs: the large-file tier's chunks appended to pack files on local stores (layout, reads,
dedup, corruption, gc, killed and failed adds, older stores without packs)."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from aistack.errors import ConflictError, IntegrityError, NotFoundError
from aistack.storage import Datasets
from aistack.storage.contract import corrupt_object, kill_mid_upload, packed_datasets
from aistack.storage.objects import PACKS, PREFIX

MiB = 1024 * 1024


def packs(ds: Datasets) -> list[str]:
    d = Path(ds.store.root) / PACKS
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def loose(ds: Datasets) -> int:
    return sum(1 for o in ds.store.iter_objects() if o.pack is None)


def source(tmp_path: Path, size: int = 10 * MiB, seed: int = 0) -> tuple[Path, bytes]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    data = random.Random(seed).randbytes(size)
    (src / "big.bin").write_bytes(data)
    (src / "small.txt").write_text("not packed\n")
    return src, data


def test_new_store_writes_packs_for_the_large_tier(tmp_path: Path) -> None:
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))
    assert ds.store.packs_from == 256 * MiB
    cfg = json.loads((tmp_path / "objects" / PREFIX / "config.json").read_text())
    assert cfg["packs"] == {"max_size": 256 * MiB}


def test_large_file_goes_to_packs_and_reads_back(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path)
    src, data = source(tmp_path)
    v = ds.add("d", src)
    assert v.bytes_written == len(data) + len("not packed\n")
    names = packs(ds)
    # 10 MiB in packs of 4 MiB: three packs (the last one partly filled), each with its index
    assert len([n for n in names if n.endswith(".pack")]) == 3
    assert sorted(n[:-5] for n in names if n.endswith(".pack")) == sorted(
        n[:-4] for n in names if n.endswith(".idx")
    )
    sizes = [os.path.getsize(Path(ds.store.root) / PACKS / n) for n in names if n.endswith("pack")]
    assert sum(sizes) == len(data)  # preallocated space beyond the data was given back
    assert loose(ds) == 1  # only the small file is a loose object
    entry = next(e for e in ds.files(v) if e.path == "big.bin")
    assert len(entry.chunks) > 10 and all(ds.store.exists(c) for c in entry.chunks)
    for link in ("auto", "copy"):
        out = tmp_path / f"out-{link}"
        ds.get(v.ref, out, link=link)
        assert (out / "big.bin").read_bytes() == data
    assert ds.verify(v.ref) == len(data) + len("not packed\n")
    with ds.open(v.ref).open("big.bin", "rb") as f:
        f.seek(5 * MiB)
        assert f.read(100) == data[5 * MiB : 5 * MiB + 100]
    # another client (a new store object) finds the packed objects through the indexes
    other = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    assert other.store.get(entry.chunks[3]) == ds.store.get(entry.chunks[3])


def test_re_add_writes_only_new_chunks_to_a_new_pack(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, data = source(tmp_path)
    ds.add("d", src)
    assert ds.add("d", src).bytes_written == 0  # unchanged: no pack, nothing written
    assert len(packs(ds)) == 2
    changed = bytearray(data)
    for at in (1 * MiB, 7 * MiB):
        changed[at : at + 50_000] = os.urandom(50_000)
    (src / "big.bin").write_bytes(changed)
    v2 = ds.add("d", src)
    assert v2.bytes_written is not None and 0 < v2.bytes_written < len(data) // 5
    assert len(packs(ds)) == 4
    assert v2.ref == "d@v3"  # the unchanged re-add made v2
    ds.get("d@v1", tmp_path / "o1")
    ds.get(v2.ref, tmp_path / "o2")
    assert (tmp_path / "o1" / "big.bin").read_bytes() == data
    assert (tmp_path / "o2" / "big.bin").read_bytes() == bytes(changed)


def test_repeated_chunks_of_one_file_are_packed_once(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    block = random.Random(1).randbytes(MiB)
    src = tmp_path / "src"
    src.mkdir()
    (src / "rep.bin").write_bytes(block * 8)
    v = ds.add("rep", src)
    pack = next(n for n in packs(ds) if n.endswith(".pack"))
    assert os.path.getsize(Path(ds.store.root) / PACKS / pack) < 3 * MiB
    assert v.bytes_written == os.path.getsize(Path(ds.store.root) / PACKS / pack)
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "rep.bin").read_bytes() == block * 8


def test_flipped_byte_in_a_pack_names_object_file_and_pack(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path)
    src, _ = source(tmp_path)
    v = ds.add("d", src)
    oid = next(e for e in ds.files(v) if e.path == "big.bin").chunks[2]
    corrupt_object(ds, oid)
    with pytest.raises(IntegrityError, match=oid) as ei:
        ds.get(v.ref, tmp_path / "out", link="copy")
    assert "d@v1:big.bin" in str(ei.value) and f"{PACKS}/" in str(ei.value)
    assert not (tmp_path / "out" / "big.bin").exists()
    with pytest.raises(IntegrityError, match="corrupted"):
        ds.verify(v.ref)


def test_truncated_pack_is_reported_not_read_short(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, data = source(tmp_path)
    v = ds.add("d", src)
    pack = Path(ds.store.root) / PACKS / next(n for n in packs(ds) if n.endswith(".pack"))
    os.chmod(pack, 0o644)
    os.truncate(pack, len(data) // 2)
    with pytest.raises(IntegrityError, match="truncated|corrupted"):
        ds.get(v.ref, tmp_path / "out")
    with pytest.raises(IntegrityError, match="corrupted"):
        ds.verify(v.ref)


def test_unreadable_pack_index_is_an_error_that_names_it(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path)
    src, _ = source(tmp_path)
    v = ds.add("d", src)
    idx = Path(ds.store.root) / PACKS / next(n for n in packs(ds) if n.endswith(".idx"))
    os.chmod(idx, 0o644)
    idx.write_text("{not json")
    other = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    with pytest.raises(IntegrityError, match=f"pack index .*{idx.name}.* unreadable"):
        other.get(v.ref, tmp_path / "out")


def test_gc_keeps_live_objects_of_a_partly_dead_pack(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, data = source(tmp_path)
    ds.add("d", src)
    changed = bytearray(data)
    changed[3 * MiB : 3 * MiB + 10_000] = os.urandom(10_000)
    (src / "big.bin").write_bytes(changed)
    ds.add("d", src)
    ds.delete("d@v1")
    dry = ds.gc(dry_run=True, grace_s=0)
    assert dry.objects_deleted >= 1 and len(packs(ds)) == 4  # a dry run changes nothing
    report = ds.gc(dry_run=False, grace_s=0)
    assert report.objects_deleted == dry.objects_deleted
    # v1's pack held v2's unchanged chunks: those were kept as loose objects, the pack went
    assert len(packs(ds)) == 2
    assert loose(ds) > 10
    ds.get("d@v2", tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == bytes(changed)
    ds.verify("d@v2")
    ds.delete("d@v2")
    ds.gc(dry_run=False, grace_s=0)
    assert packs(ds) == [] and sum(1 for _ in ds.store.iter_objects()) == 0


def test_gc_spares_a_young_pack(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path)
    src, _ = source(tmp_path)
    ds.add("d", src)
    ds.delete("d@v1")
    report = ds.gc(dry_run=False, grace_s=3600)
    assert report.objects_deleted == 0 and report.objects_young > 10
    assert len(packs(ds)) == 6


def test_source_that_changes_during_add_leaves_no_pack(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, data = source(tmp_path)
    big = src / "big.bin"
    calls = 0

    def touch(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            with open(big, "r+b") as f:
                f.write(b"changed!")
            st = os.stat(big)
            os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    with pytest.raises(ConflictError, match="big.bin changed while it was being added"):
        ds.add("d", src, progress=touch)
    assert packs(ds) == [] and list((Path(ds.store.root) / "tmp").iterdir()) == []
    with pytest.raises(NotFoundError):
        ds.resolve("d")
    v = ds.add("d", src)
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes()[:8] == b"changed!"
    assert (tmp_path / "out" / "big.bin").read_bytes()[8:] == data[8:]


def test_failed_add_leaves_nothing_visible_and_the_next_add_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, data = source(tmp_path)
    real = ds.store.hash_bytes
    n = 0

    def failing(b):  # type: ignore[no-untyped-def]
        nonlocal n
        n += 1
        if n == 12:
            raise OSError("disk went away")
        return real(b)

    monkeypatch.setattr(ds.store, "hash_bytes", failing)
    with pytest.raises(OSError, match="disk went away"):
        ds.add("d", src)
    assert packs(ds) == [] and list((Path(ds.store.root) / "tmp").iterdir()) == []
    monkeypatch.setattr(ds.store, "hash_bytes", real)
    v = ds.add("d", src)
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_kill_9_mid_add_keeps_published_packs_and_the_next_add_reuses_them(
    tmp_path: Path,
) -> None:
    ds = packed_datasets(tmp_path, pack_max=2 * MiB)
    src, data = source(tmp_path, size=24 * MiB)
    db, store = f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects")
    assert kill_mid_upload(db, store, src, tmp_path) > 0
    with pytest.raises(NotFoundError):
        ds.resolve("killed")
    published = [n for n in packs(ds) if n.endswith(".idx")]
    assert published  # packs of 2 MiB were published before the kill at a quarter
    v = ds.add("killed", src)
    assert v.bytes_written is not None and v.bytes_written < len(data)
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    # the killed writer's unpublished pack is collectable once old; live packs stay
    ds.gc(dry_run=False, grace_s=0)
    ds.verify(v.ref)
    assert list((Path(ds.store.root) / "tmp").iterdir()) == []


def test_pack_without_index_is_collected_as_a_leftover(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path)
    src, _ = source(tmp_path)
    v = ds.add("d", src)
    orphan = Path(ds.store.root) / PACKS / "0123abcd.pack"
    orphan.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    report = ds.gc(dry_run=False, grace_s=3600)
    assert report.temp_deleted == 1 and not orphan.exists()
    ds.verify(v.ref)


def test_delete_of_one_packed_object_keeps_the_others(tmp_path: Path) -> None:
    ds = packed_datasets(tmp_path, pack_max=64 * MiB)
    src, _ = source(tmp_path)
    v = ds.add("d", src)
    chunks = next(e for e in ds.files(v) if e.path == "big.bin").chunks
    ds.store.delete(chunks[0])
    assert not ds.store.exists(chunks[0])
    assert all(ds.store.exists(c) for c in chunks[1:])
    assert ds.store.get(chunks[5]) is not None
    with pytest.raises(IntegrityError, match="missing"):
        ds.verify(v.ref)


def test_store_without_packs_in_its_config_keeps_loose_objects(tmp_path: Path) -> None:
    packed_datasets(tmp_path)
    cfg_path = tmp_path / "objects" / PREFIX / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["packs"]
    cfg_path.write_text(json.dumps(cfg))
    old = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    src, data = source(tmp_path)
    v = old.add("d", src)
    assert packs(old) == [] and loose(old) == len(next(iter(old.files(v))).chunks) + 1
    old.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
