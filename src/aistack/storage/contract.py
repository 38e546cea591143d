"""The storage contract suite: the same behaviour on every backend (local, memory://, s3://).

A test module subclasses :class:`StorageContract` and provides a ``ds`` fixture that returns a
fresh :class:`~aistack.storage.Datasets` (empty catalog, empty store)::

    class TestLocalContract(StorageContract):
        @pytest.fixture
        def ds(self, tmp_path):
            return Datasets.connect(f"sqlite:///{tmp_path}/db", str(tmp_path / "store"))

Shipped with the product so a third-party backend can run it too. Needs pytest.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from aistack.storage.datasets import Datasets
from aistack.storage.vfs import ReadOnlyError


def make_tree(root: Path, *, seed: int = 0, big: int = 3 * 1024 * 1024) -> dict[str, bytes]:
    """A small dataset: nested text files, an empty file and one chunked binary file."""
    rnd = random.Random(seed)
    files = {
        "README.md": b"# demo dataset\n",
        "empty.txt": b"",
        "train/part-0000.jsonl": b"".join(b'{"text": "row %d"}\n' % i for i in range(500)),
        "train/part-0001.jsonl": b"".join(b'{"text": "row %d"}\n' % i for i in range(500, 900)),
        "deep/a/b/c/leaf.bin": rnd.randbytes(10_000),
        "big/blob.bin": rnd.randbytes(big),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def stale_reference(ds: Datasets, version_id: int, kind: str, ref_id: str) -> None:
    """Insert a reference row as a catalog from before the delete/reference lock could have
    left it (on a deleted version): what the cleanup paths must still handle."""
    from aistack.storage.catalog import references, utcnow

    with ds.catalog.engine.begin() as conn:
        conn.execute(
            references.insert().values(
                version_id=version_id, kind=kind, ref_id=ref_id, created_at=utcnow()
            )
        )


def corrupt_object(ds: Datasets, oid: str) -> None:
    """Flip one byte of a stored object in place (through the backend)."""
    key = ds.store.key(oid)
    fs = ds.backend.fs
    data = bytearray(fs.cat_file(key))
    data[len(data) // 2] ^= 0x01
    if ds.backend.is_local:
        os.chmod(key, 0o644)
    fs.pipe_file(key, bytes(data))


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from aistack.storage import Datasets
    db, store, src, marker = sys.argv[1:5]
    ds = Datasets.connect(db, store)
    def progress(done, total):
        if done > total // 4 and not os.path.exists(marker):
            with open(marker + ".tmp", "w") as f:
                f.write(str(done))
            os.replace(marker + ".tmp", marker)  # whole: the parent reads it once it exists
            time.sleep(120)  # parked mid-upload until the parent kills us
    ds.add("killed", src, progress=progress)
    """
)


def kill_mid_upload(
    db: str, store: str, src: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> int:
    """Start an add in a child, SIGKILL it once a quarter of the bytes are stored."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, db, store, str(src), str(marker)],
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "child never reached the middle of the upload"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return int(marker.read_text())


def _child_add(db: str, store: str, src: str, barrier: Any, q: Any) -> None:
    try:
        ds = Datasets.connect(db, store)
        barrier.wait(timeout=60)
        v = ds.add("shared-name", src)
        q.put(("ok", v.version, src))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(("error", repr(exc), src))


def concurrent_process_adds(db: str, store: str, tmp_path: Path, n: int = 4) -> list[Any]:
    # spawn, not fork: the caller (a test process) may run threads (Ray, gRPC, torch), and a
    # child forked while one of them held the allocator's lock can crash at its first malloc
    # ("double free or corruption" in CI, the parent then waited for a result never sent)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    q = ctx.Queue()
    srcs = []
    for i in range(n):
        s = tmp_path / f"src{i}"
        s.mkdir()
        (s / "part.txt").write_text(f"process {i}\n" * 100)
        srcs.append(str(s))
    procs = [ctx.Process(target=_child_add, args=(db, store, s, barrier, q)) for s in srcs]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


def big_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    for i in range(50):
        (src / f"small-{i:03d}.txt").write_text(f"file {i}\n" * 20)
    return src


class StorageContract:
    """Behaviour every backend must show. Subclasses provide the ``ds`` fixture."""

    @pytest.fixture
    def ds(self, tmp_path: Path) -> Datasets:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- add / get round trip -------------------------------------------------------------------
    def test_add_get_roundtrip(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        files = make_tree(src)
        v = ds.add("corpus", src, message="first", tags=("raw",), metadata={"source": "test"})
        assert (v.name, v.version, v.ref) == ("corpus", 1, "corpus@v1")
        assert v.files == len(files)
        assert v.bytes == sum(len(b) for b in files.values())
        assert v.bytes_written == v.bytes  # nothing was stored before
        got = ds.get("corpus@v1", tmp_path / "out")
        assert got.files == len(files)
        assert read_tree(tmp_path / "out") == files
        r = ds.resolve("corpus@raw")
        assert (r.version, r.message, r.metadata, r.tags) == (
            1,
            "first",
            {"source": "test"},
            ("raw",),
        )

    def test_single_file_path(self, ds: Datasets, tmp_path: Path) -> None:
        f = tmp_path / "one.csv"
        f.write_bytes(b"a,b\n1,2\n")
        v = ds.add("single", f)
        assert [e.path for e in ds.files(v.ref)] == ["one.csv"]
        ds.get(v.ref, tmp_path / "o")
        assert (tmp_path / "o" / "one.csv").read_bytes() == b"a,b\n1,2\n"

    def test_versions_tags_and_resolve(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        make_tree(src, big=1000)
        v1 = ds.add("d", src)
        (src / "new.txt").write_text("new")
        v2 = ds.add("d", src, message="second")
        assert (v1.version, v2.version) == (1, 2)
        assert ds.resolve("d").version == 2
        assert ds.resolve("d@latest").version == 2
        assert ds.resolve("d@1").version == 1
        ds.tag("d@v1", "gold")
        assert ds.resolve("d@gold").version == 1
        ds.tag("d@v2", "gold")  # tags move
        assert ds.resolve("d@gold").version == 2
        assert [x.version for x in ds.log("d")] == [2, 1]
        assert ds.log("d")[0].message == "second"
        [summary] = ds.ls()
        assert (summary.name, summary.versions, summary.latest) == ("d", 2, 2)

    def test_unknown_refs_have_hints(self, ds: Datasets, tmp_path: Path) -> None:
        with pytest.raises(NotFoundError, match="does not exist") as e1:
            ds.resolve("nope@v1")
        assert "aistack data ls" in str(e1.value)
        src = tmp_path / "s"
        src.mkdir()
        (src / "f").write_text("x")
        ds.add("d", src)
        with pytest.raises(NotFoundError, match="no version v7") as e2:
            ds.resolve("d@v7")
        assert "versions: v1" in str(e2.value)
        with pytest.raises(NotFoundError, match="tag 'missing'"):
            ds.resolve("d@missing")
        with pytest.raises(ValidationError, match="invalid dataset name"):
            ds.resolve("../etc@v1")
        with pytest.raises(ValidationError, match="tag"):
            ds.tag("d@v1", "v2")

    # -- dedup and chunking -------------------------------------------------------------------------
    def test_identical_content_stored_once(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        make_tree(src)
        (src / "copy-of-readme.md").write_bytes((src / "README.md").read_bytes())
        v1 = ds.add("a", src)
        n_objects = sum(1 for _ in ds.store.iter_objects())
        v2 = ds.add("b", src)
        assert v2.bytes_written == 0
        assert sum(1 for _ in ds.store.iter_objects()) == n_objects
        assert v1.manifest == v2.manifest

    def test_unchanged_re_add_makes_no_version_when_asked(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        src = tmp_path / "src"
        make_tree(src)
        v1 = ds.add("u", src, message="first")
        same = ds.add("u", src, message="again", tags=["gold"], if_changed=True)
        assert (same.version, same.unchanged, same.bytes_written) == (1, True, 0)
        assert same.message == "first" and ds.resolve("u@gold").version == 1
        assert [v.version for v in ds.log("u")] == [1]
        assert ds.add("u", src).unchanged  # the default, as `aistack data add`
        assert ds.add("u", src, if_changed=False).version == 2  # --always-new
        (src / "README.md").write_text("changed")
        v3 = ds.add("u", src, if_changed=True)
        assert (v3.version, v3.unchanged) == (3, False) and v3.manifest != v1.manifest
        ds.delete("u@v3")  # compared with the newest live version, not a deleted one
        assert ds.add("u", src, if_changed=True).version == 4

    def test_small_change_in_large_file_rewrites_little(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        src.mkdir()
        data = bytearray(random.Random(1).randbytes(8 * 1024 * 1024))
        (src / "big.bin").write_bytes(data)
        ds.add("big", src)
        data[4_000_000:4_000_100] = b"X" * 100  # change 100 bytes in the middle
        data[6_000_000:6_000_000] = b"inserted"  # and shift everything after 6 MB
        (src / "big.bin").write_bytes(data)
        v2 = ds.add("big", src)
        assert v2.bytes_written is not None
        assert 0 < v2.bytes_written < len(data) * 0.4
        ds.get("big@v2", tmp_path / "out")
        assert (tmp_path / "out" / "big.bin").read_bytes() == bytes(data)

    # -- integrity ------------------------------------------------------------------------------------
    def test_flipped_byte_is_detected_with_object_and_file(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        src = tmp_path / "src"
        make_tree(src)
        v = ds.add("c", src)
        entry = next(e for e in ds.files(v) if e.path == "deep/a/b/c/leaf.bin")
        corrupt_object(ds, entry.chunks[0])
        with pytest.raises(IntegrityError) as err:
            ds.get(v.ref, tmp_path / "out")
        msg = str(err.value)
        assert entry.chunks[0] in msg and "deep/a/b/c/leaf.bin" in msg
        fs = ds.open(v.ref)
        with pytest.raises(IntegrityError, match="leaf.bin"):
            fs.cat("deep/a/b/c/leaf.bin")
        assert fs.cat("README.md") == b"# demo dataset\n"  # other files still readable
        with pytest.raises(IntegrityError, match="corrupted"):
            ds.verify(v.ref)

    def test_flipped_byte_in_chunk_of_large_file(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        make_tree(src)
        v = ds.add("c", src)
        entry = next(e for e in ds.files(v) if e.path == "big/blob.bin")
        assert len(entry.chunks) > 1
        corrupt_object(ds, entry.chunks[-1])
        with pytest.raises(IntegrityError, match="big/blob.bin"):
            ds.get(v.ref, tmp_path / "out")
        assert not (tmp_path / "out" / "big" / "blob.bin").exists()  # no partial file left

    def test_missing_object_is_an_error(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        make_tree(src, big=1000)
        v = ds.add("m", src)
        entry = next(e for e in ds.files(v) if e.path == "README.md")
        ds.store.delete(entry.chunks[0])
        with pytest.raises(IntegrityError, match="README.md.*missing"):
            ds.open(v.ref).cat("README.md")

    # -- read-only filesystem view --------------------------------------------------------------------
    def test_open_is_a_readonly_filesystem(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        files = make_tree(src)
        v = ds.add("fsv", src)
        fs = ds.open(v.ref)
        assert fs.ls("", detail=False) == ["README.md", "big", "deep", "empty.txt", "train"]
        assert fs.ls("train", detail=False) == ["train/part-0000.jsonl", "train/part-0001.jsonl"]
        assert fs.info("big/blob.bin")["size"] == len(files["big/blob.bin"])
        assert fs.cat("empty.txt") == b""
        blob = files["big/blob.bin"]
        with fs.open("big/blob.bin", "rb") as f:
            f.seek(len(blob) - 100_000)
            assert f.read(50_000) == blob[-100_000:-50_000]
        assert sorted(fs.find("")) == sorted(files)
        with pytest.raises(ReadOnlyError):
            fs.open("README.md", "wb")
        with pytest.raises(ReadOnlyError):
            fs.rm("README.md")
        with pytest.raises(FileNotFoundError):
            fs.cat("nope.txt")

    # -- diff -------------------------------------------------------------------------------------------
    def test_diff(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        make_tree(src, big=1000)
        ds.add("df", src)
        (src / "README.md").write_bytes(b"# changed!\n")
        (src / "empty.txt").unlink()
        (src / "added.txt").write_bytes(b"12345")
        ds.add("df", src)
        d = ds.diff("df@v1", "df@v2")
        assert [c.path for c in d.added] == ["added.txt"]
        assert [c.path for c in d.removed] == ["empty.txt"]
        assert [c.path for c in d.changed] == ["README.md"]
        assert (d.bytes_added, d.bytes_removed, d.bytes_changed) == (5, 0, 11)
        assert d.unchanged == 4
        assert ds.diff("df@v2", "df@v2").changed == ()

    # -- references, delete, gc -----------------------------------------------------------------------
    def test_remove_reference_needs_an_explicit_version_as_remove_references(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        # the singular one took NAME, NAME@latest and NAME@TAG, which may name another version
        # than the one the reference is pinned to by the time it runs
        src = tmp_path / "src"
        make_tree(src, big=100)
        ds.add("r", src, tags=["gold"])
        ds.add_reference("r@v1", "job", "j")
        for loose in ("r", "r@latest", "r@gold"):
            with pytest.raises(ValidationError) as one:
                ds.remove_reference(loose, "job", "j")
            with pytest.raises(ValidationError) as many:
                ds.remove_references(loose, [("job", "j")])
            want = (f"dropping a reference needs an explicit version, not {loose!r}", "write r@vN")
            assert (one.value.message, one.value.hint) == want
            assert (many.value.message, many.value.hint) == want
        assert [(r["kind"], r["id"]) for r in ds.references("r@v1")] == [("job", "j")]
        with pytest.raises(ValidationError, match="invalid reference kind 'jobs'"):
            ds.remove_reference("r@v1", "jobs", "j")
        assert ds.remove_reference("r@v1", "job", "j") is True
        assert ds.remove_reference("r@v1", "job", "j") is False  # had none
        # a deleted version's references can be dropped, as with remove_references
        ds.delete("r@v1")
        row = ds.catalog.version_row("r", 1)
        assert row is not None
        # a reference now lands on a deleted version no more (below); one left by an older
        # catalog, recorded in a race with the delete, can still be dropped
        with pytest.raises(ConflictError, match="r@v1 was deleted while the reference"):
            ds.catalog.add_reference(int(row["id"]), "job", "late", label="r@v1")
        assert ds.catalog.references_of(int(row["id"])) == []
        stale_reference(ds, int(row["id"]), "job", "late")
        assert ds.remove_reference("r@v1", "job", "late") is True
        assert ds.catalog.references_of(int(row["id"])) == []

    def test_log_lists_deleted_versions_on_request(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "f.txt"
        for body in ("a", "bb", "ccc"):
            src.write_text(body)
            ds.add("l", src)
        ds.delete("l@v2")
        assert [(v.version, v.deleted, v.deleted_at) for v in ds.log("l")] == [
            (3, False, None),
            (1, False, None),
        ]
        got = ds.log("l", deleted=True)
        assert [(v.version, v.bytes, v.deleted) for v in got] == [
            (3, 3, False),
            (2, 2, True),
            (1, 1, False),
        ]
        row = ds.catalog.version_row("l", 2)
        assert row is not None and row["deleted_at"] is not None
        assert got[1].deleted_at == row["deleted_at"].replace(tzinfo=dt.UTC)
        assert got[0].deleted_at is None and got[2].deleted_at is None

    def test_referenced_version_cannot_be_deleted_and_gc_keeps_it(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        src = tmp_path / "src"
        make_tree(src, big=1000)
        v1 = ds.add("r", src)
        (src / "only-in-v2.bin").write_bytes(b"unique bytes of version two")
        v2 = ds.add("r", src)
        pinned = ds.add_reference("r@latest", "job", "job-42")
        assert pinned.ref == "r@v2"  # references pin the concrete version
        with pytest.raises(ConflictError, match="job job-42") as refused:
            ds.delete("r@v2")
        # the hint says why it is kept and how to delete it anyway, callable as written
        assert "aistack data lineage r@v2" in (refused.value.hint or "")
        assert "Datasets.remove_reference('r@v2', 'job', 'job-42')" in (refused.value.hint or "")
        report = ds.gc(dry_run=False, grace_s=0)
        assert report.objects_deleted == 0
        ds.get("r@v2", tmp_path / "o2")  # still complete
        assert ds.remove_reference("r@v2", "job", "job-42") is True
        ds.delete("r@v2")
        with pytest.raises(NotFoundError, match="deleted"):
            ds.resolve("r@v2")
        assert ds.resolve("r").version == 1
        dry = ds.gc(dry_run=True, grace_s=0)
        assert (dry.objects_deleted, dry.bytes_deleted) == (1, len(b"unique bytes of version two"))
        assert dry.manifests_deleted == 1
        assert sum(1 for _ in ds.store.iter_objects()) == dry.objects_total  # dry run kept all
        real = ds.gc(dry_run=False, grace_s=0)
        assert real.objects_deleted == 1
        assert ds.gc(dry_run=True, grace_s=0).objects_deleted == 0
        ds.get(v1.ref, tmp_path / "o1")  # v1 intact (shares objects with v2)
        v3 = ds.add("r", src)
        assert v3.version == 3  # numbers are never reused
        assert v2.version == 2

    def test_gc_spares_young_objects_and_foreign_prefixes(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        fs = ds.backend.fs
        foreign = ds.backend.path("checkpoints", "run1", "model.pt")
        if ds.backend.is_local:
            fs.makedirs(ds.backend.path("checkpoints", "run1"), exist_ok=True)
        fs.pipe_file(foreign, b"weights")
        orphan, _ = ds.store.put(b"orphan from a killed add")
        young = ds.gc(dry_run=False)  # default grace: an add may still be running
        assert young.objects_deleted == 0 and young.objects_young == 1
        assert ds.store.exists(orphan)
        ds.gc(dry_run=False, grace_s=0)
        assert not ds.store.exists(orphan)
        assert fs.cat_file(foreign) == b"weights"

    def test_gc_during_re_add_of_deleted_data_keeps_its_objects(
        self, ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # data of a deleted version, added again while a gc runs: the gc read the live set
        # before the new version existed; the objects the add reuses must look young to it
        from aistack.storage import objects

        monkeypatch.setattr(objects, "REFRESH_AFTER_S", 0.5, raising=False)
        src = tmp_path / "src"
        src.mkdir()
        (src / "f.bin").write_bytes(random.Random(7).randbytes(5000))
        ds.add("g", src)
        ds.delete("g@v1")
        time.sleep(2.2)  # older than the grace below (S3 times have 1 s resolution)
        live = ds.catalog.live_manifests
        added: list[Any] = []

        def live_then_add() -> set[str]:
            out = live()
            if not added:
                added.append(ds.add("g", src))  # runs between gc's live read and its sweep
            return out

        monkeypatch.setattr(ds.catalog, "live_manifests", live_then_add)
        ds.gc(dry_run=False, grace_s=1.5)
        assert added and added[0].bytes_written == 0  # reused, not uploaded again
        assert ds.verify("g@v2") == 5000

    def test_reference_kinds_are_checked(self, ds: Datasets, tmp_path: Path) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("k", f)
        with pytest.raises(ValidationError, match="kind"):
            ds.add_reference("k@v1", "cluster", "x")
        ds.add_reference("k@v1", "model", "gpt@v1")
        ds.add_reference("k@v1", "model", "gpt@v1")  # idempotent
        assert [(r["kind"], r["id"]) for r in ds.references("k@v1")] == [("model", "gpt@v1")]

    def test_a_reference_id_longer_than_the_catalog_column_is_refused(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("k", f)
        ds.add_reference("k@v1", "job", "j" * 256)  # the column's length: fits
        with pytest.raises(ValidationError, match="at most 256") as exc:
            ds.add_reference("k@v1", "job", "j" * 257)  # a lineage node allows 380
        assert exc.value.details["field"] == "id"
        assert [r["id"] for r in ds.references("k@v1")] == ["j" * 256]  # nothing else stored

    # -- lineage ------------------------------------------------------------------------------------------
    def test_lineage_graph(self, ds: Datasets, tmp_path: Path) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("raw", f)
        f.write_text("y")
        ds.add("tokens", f)
        ds.record_lineage(["raw@latest"], "job-1", ["tokens@v1"])
        ds.record_edge("job:job-2", "run:abc")
        ds.record_lineage(["tokens@v1"], "job-2", [])
        ds.record_edge("run:abc", "model:gpt@v1")
        g = ds.lineage("tokens@v1")
        edges = {(e["src"], e["dst"]) for e in g["edges"]}
        assert edges == {
            ("dataset:raw@v1", "job:job-1"),
            ("job:job-1", "dataset:tokens@v1"),
            ("dataset:tokens@v1", "job:job-2"),
            ("job:job-2", "run:abc"),
            ("run:abc", "model:gpt@v1"),
        }
        assert g["root"] == "dataset:tokens@v1"
        up = ds.lineage("raw@v1")
        assert {(e["src"], e["dst"]) for e in up["edges"]} >= {("dataset:raw@v1", "job:job-1")}
        assert ("dataset:raw@v1", "job:job-1") in {(e["src"], e["dst"]) for e in g["edges"]}
        assert {n["id"]: n["deleted_at"] for n in g["nodes"]}["dataset:raw@v1"] is None

    def test_lineage_of_a_deleted_version_is_kept_and_marked(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("raw", f)
        f.write_text("y")
        ds.add("tokens", f)
        ds.record_lineage(["raw@v1"], "job-1", ["tokens@v1"])
        ds.tag("raw@v1", "first")
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        ds.delete("raw@v1")
        for ref in ("raw@v1", "raw@first"):  # a tag still naming the deleted version
            g = ds.lineage(ref)
            assert g["root"] == "dataset:raw@v1"
            assert {(e["src"], e["dst"]) for e in g["edges"]} == {
                ("dataset:raw@v1", "job:job-1"),
                ("job:job-1", "dataset:tokens@v1"),
            }
            when = {n["id"]: n["deleted_at"] for n in g["nodes"]}
            assert dt.datetime.fromisoformat(when["dataset:raw@v1"]) >= before
            assert when["job:job-1"] is None and when["dataset:tokens@v1"] is None
        # seen from downstream, the deleted input is marked as well
        down = {n["id"]: n["deleted_at"] for n in ds.lineage("tokens@v1")["nodes"]}
        assert down["dataset:raw@v1"] == when["dataset:raw@v1"]
        # only lineage looks at deleted versions: the data is not served, latest names none
        with pytest.raises(NotFoundError, match="was deleted"):
            ds.resolve("raw@v1")
        with pytest.raises(NotFoundError, match="all were deleted"):
            ds.lineage("raw")
        with pytest.raises(NotFoundError, match="no version v9"):
            ds.lineage("raw@v9")
        with pytest.raises(NotFoundError, match="was deleted"):
            ds.record_lineage(["raw@v1"], "job-2", [])

    # -- tags and references: removal ---------------------------------------------------------------
    def test_tag_can_be_deleted_and_no_data_goes(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        files = make_tree(src, big=1000)
        ds.add("d", src, tags=("gold",))
        (src / "new.txt").write_text("new")
        ds.add("d", src, tags=("best", "rc"))
        was = ds.untag("d", "gold")
        assert (was.ref, was.tags, was.deleted) == ("d@v1", (), False)
        assert [(v.version, v.tags) for v in ds.log("d")] == [(2, ("best", "rc")), (1, ())]
        with pytest.raises(NotFoundError, match="no tag 'gold'") as gone:
            ds.resolve("d@gold")
        # deleting a missing tag names the tags there are, and changes nothing
        with pytest.raises(NotFoundError, match="dataset 'd' has no tag 'gold'") as again:
            ds.untag("d", "gold")
        assert again.value.hint == "its tags: best (v2), rc (v2)"
        assert "gold" not in (gone.value.hint or "")
        # with NAME@VERSION the tag must point there: a mistaken version deletes nothing
        with pytest.raises(ConflictError, match="points at d@v2, not d@v1") as wrong:
            ds.untag("d@v1", "best")
        assert "aistack data tag d best --delete" in (wrong.value.hint or "")
        assert ds.resolve("d@best").version == 2
        # NAME@latest names a version as NAME@vN does: here v2, while silver is on v1
        ds.tag("d@v1", "silver")
        with pytest.raises(ConflictError) as not_latest:
            ds.untag("d@latest", "silver")
        assert str(not_latest.value).startswith(
            "tag 'silver' of d points at d@v1, not d@v2; nothing was deleted"
        )
        assert ds.untag("d@v1", "silver").ref == "d@v1"
        assert ds.untag("d@v2", "best").tags == ("rc",)
        assert ds.untag("d@rc", "rc").ref == "d@v2"
        with pytest.raises(NotFoundError) as none_left:
            ds.untag("d", "rc")
        assert none_left.value.hint == "d has no tags"
        with pytest.raises(ValidationError, match="'latest' always names the newest"):
            ds.untag("d", "latest")
        with pytest.raises(ValidationError, match="it names a version") as ver:
            ds.untag("d", "v1")
        assert "aistack data rm d@vN" in (ver.value.hint or "")
        with pytest.raises(ValidationError, match="invalid tag"):
            ds.untag("d", "no/slash")
        with pytest.raises(NotFoundError, match="dataset 'nope' does not exist"):
            ds.untag("nope", "gold")
        # versions and bytes are all still there
        assert [v.version for v in ds.log("d")] == [2, 1]
        assert ds.gc(dry_run=True, grace_s=0).objects_deleted == 0
        ds.get("d@v1", tmp_path / "o1")
        assert read_tree(tmp_path / "o1") == files

    def test_tag_of_a_deleted_version_can_be_deleted(self, ds: Datasets, tmp_path: Path) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("d", f, tags=("old",))
        f.write_text("y")
        ds.add("d", f)
        ds.delete("d@v1")
        with pytest.raises(NotFoundError, match="was deleted"):
            ds.resolve("d@old")
        was = ds.untag("d", "old")
        assert (was.ref, was.deleted) == ("d@v1", True)
        with pytest.raises(NotFoundError, match="no tag 'old'"):
            ds.resolve("d@old")

    def test_references_are_dropped_all_or_none(self, ds: Datasets, tmp_path: Path) -> None:
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("r", f)
        ds.add_reference("r@v1", "job", "j1")
        ds.add_reference("r@v1", "model", "m@v1")
        with pytest.raises(ConflictError, match="job j1, model m@v1") as refused:
            ds.delete("r@v1")
        hint = refused.value.hint or ""
        assert "`aistack data unref r@v1 --by job:j1 --by model:m@v1`" in hint
        # one missing: nothing is dropped, and the error lists what there is
        with pytest.raises(NotFoundError, match="r@v1 has no reference job:nope") as missing:
            ds.remove_references("r@v1", [("job", "j1"), ("job", "nope")])
        assert "its references: job:j1, model:m@v1" in (missing.value.hint or "")
        assert [(r["kind"], r["id"]) for r in ds.references("r@v1")] == [
            ("job", "j1"),
            ("model", "m@v1"),
        ]
        with pytest.raises(ValidationError, match="no reference of r@v1") as empty:
            ds.remove_references("r@v1", [])
        assert "job:j1, model:m@v1" in (empty.value.hint or "")
        with pytest.raises(ValidationError, match="kind"):
            ds.remove_references("r@v1", [("cluster", "x")])
        # as delete: an explicit version, never NAME, NAME@latest or a tag (they may move)
        for loose in ("r", "r@latest"):
            with pytest.raises(ValidationError, match="needs an explicit version") as loose_ref:
                ds.remove_references(loose, [("job", "j1")])
            assert loose_ref.value.hint == "write r@vN"
        assert len(ds.references("r@v1")) == 2
        v, left = ds.remove_references("r@v1", [("job", "j1")])
        assert v.ref == "r@v1" and [(r["kind"], r["id"]) for r in left] == [("model", "m@v1")]
        with pytest.raises(ConflictError, match="referenced by model m@v1"):
            ds.delete("r@v1")
        v, left = ds.remove_references("r@v1", [("model", "m@v1")])
        assert left == [] and ds.references("r@v1") == []
        with pytest.raises(NotFoundError) as nothing:
            ds.remove_references("r@v1", [("model", "m@v1")])
        assert "it has no references" in (nothing.value.hint or "")
        assert ds.delete("r@v1").ref == "r@v1"
        assert ds.lineage("r@v1")["root"] == "dataset:r@v1"
        # on a deleted version the error says so, and does not offer to delete it again
        with pytest.raises(NotFoundError) as gone:
            ds.remove_references("r@v1", [("job", "j1")])
        assert str(gone.value) == (
            "r@v1 is already deleted and has no reference job:j1 "
            "(no references are left on it: nothing to drop)"
        )

    # -- faults --------------------------------------------------------------------------------------------
    def test_interrupted_add_leaves_no_version(self, ds: Datasets, tmp_path: Path) -> None:
        src = tmp_path / "src"
        files = make_tree(src, big=6 * 1024 * 1024)

        def boom(done: int, total: int) -> None:
            if done > total // 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ds.add("int", src, progress=boom)
        with pytest.raises(NotFoundError):
            ds.resolve("int")
        v = ds.add("int", src)
        assert v.version == 1
        assert v.bytes_written is not None and v.bytes_written < v.bytes  # resumed via dedup
        ds.get("int@v1", tmp_path / "o")
        assert read_tree(tmp_path / "o") == files

    def test_concurrent_adds_get_distinct_versions(self, ds: Datasets, tmp_path: Path) -> None:
        srcs = []
        for i in range(4):
            s = tmp_path / f"src{i}"
            s.mkdir()
            (s / "data.txt").write_text(f"content {i}")
            srcs.append(s)
        results: list[Any] = []
        errors: list[BaseException] = []

        def run(s: Path) -> None:
            try:
                results.append(ds.add("conc", s))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in srcs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(v.version for v in results) == [1, 2, 3, 4]
        contents = set()
        for v in results:
            contents.add(ds.open(v.ref).cat("data.txt"))
        assert contents == {f"content {i}".encode() for i in range(4)}

    # -- path safety ---------------------------------------------------------------------------------------
    def test_symlink_escaping_root_is_refused_on_add(self, ds: Datasets, tmp_path: Path) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("do not upload")
        src = tmp_path / "src"
        src.mkdir()
        (src / "ok.txt").write_text("ok")
        (src / "leak.txt").symlink_to(secret)
        with pytest.raises(ValidationError, match="leak.txt.*outside"):
            ds.add("esc", src)
        (src / "leak.txt").unlink()
        (src / "leakdir").symlink_to(tmp_path, target_is_directory=True)
        with pytest.raises(ValidationError, match="leakdir"):
            ds.add("esc", src)
        (src / "leakdir").unlink()
        (src / "inner.txt").symlink_to(src / "ok.txt")  # inside the root: stored as a file
        v = ds.add("esc", src)
        assert sorted(e.path for e in ds.files(v)) == ["inner.txt", "ok.txt"]

    def test_get_refuses_escaping_symlink_in_destination(
        self, ds: Datasets, tmp_path: Path
    ) -> None:
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f.txt").write_text("data")
        ds.add("g", src)
        outside = tmp_path / "outside"
        outside.mkdir()
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "sub").symlink_to(outside, target_is_directory=True)
        with pytest.raises(ValidationError, match="outside"):
            ds.get("g@v1", dest)
        assert list(outside.iterdir()) == []
