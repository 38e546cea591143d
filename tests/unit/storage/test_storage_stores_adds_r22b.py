"""One metadata DB with two object stores; the SDK's add of unchanged data; gc with a short
grace period while an add runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aistack.errors import ConflictError
from aistack.storage import Datasets
from aistack.storage.catalog import engine_for


def _two(tmp_path: Path) -> tuple[Datasets, Datasets, Path]:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha " * 100)
    (src / "b.bin").write_bytes(bytes(range(256)) * 40)
    return (
        Datasets.connect(db, str(tmp_path / "store-s")),
        Datasets.connect(db, str(tmp_path / "store-t")),
        src,
    )


def test_a_version_records_its_store_and_another_store_says_so(tmp_path: Path) -> None:
    """get/verify through another AISTACK_STORAGE_URL said 'object missing' (the store lost
    data); they now name the store the version lives in and this process's."""
    s, t, src = _two(tmp_path)
    v = s.add("corpus", src)
    assert v.store == f"file://{tmp_path / 'store-s'}"
    assert t.resolve("corpus@v1").store == v.store
    for read in (
        lambda: t.get("corpus@v1", tmp_path / "out"),
        lambda: t.verify("corpus@v1"),
        lambda: t.files("corpus@v1"),
    ):
        with pytest.raises(ConflictError) as exc:
            read()
        assert exc.value.message.startswith(
            f"corpus@v1 lives in store file://{tmp_path / 'store-s'}; this process uses store "
            f"file://{tmp_path / 'store-t'}"
        )
        assert "nothing was lost" in (exc.value.hint or "")
    assert s.verify("corpus@v1") == v.bytes  # through its own store it reads


def test_gc_on_another_store_reports_no_lost_data_and_deletes_nothing_of_it(
    tmp_path: Path,
) -> None:
    """gc through store T raised 'the store lost data' for store S's versions; it now leaves
    them out, says where they live, and still collects T's own garbage."""
    s, t, src = _two(tmp_path)
    s.add("corpus", src)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("only in T")
    t.add("other", junk)
    t.delete("other@v1")
    r = t.gc(dry_run=False, grace_s=0)
    assert r.other_stores == {f"file://{tmp_path / 'store-s'}": 1}
    assert (r.objects_deleted, r.manifests_deleted) == (1, 1)
    # S untouched: gc through S keeps all of corpus's objects
    before = sum(1 for _ in s.store.iter_objects())
    rs = s.gc(dry_run=False, grace_s=0)
    assert (rs.objects_deleted, rs.other_stores) == (0, {})
    assert sum(1 for _ in s.store.iter_objects()) == before
    assert s.verify("corpus@v1") > 0


def test_gc_keeps_what_another_store_version_has_here(tmp_path: Path) -> None:
    """A version recorded in store S whose manifest is also in T (the same data added
    through both, or S an alias of T) keeps its objects in T."""
    s, t, src = _two(tmp_path)
    t.add("corpus", src)  # corpus@v1 in T
    s.add("corpus", src)  # v2 in S (another store: not the unchanged v1)
    assert [v.store for v in s.log("corpus")] == [s.store_id, t.store_id]
    t.delete("corpus@v1")
    r = t.gc(dry_run=False, grace_s=0)
    assert (r.objects_deleted, r.manifests_deleted, r.other_stores) == (0, 0, {})
    assert t.verify("corpus@v2") > 0  # (its data is here too)


def test_a_catalog_without_the_store_column_gets_it(tmp_path: Path) -> None:
    """A catalog made before stores were recorded: the column is added, old versions read
    with store None and still read; a re-add of their data is unchanged."""
    db = f"sqlite:///{tmp_path / 'old.db'}"
    ds = Datasets.connect(db, str(tmp_path / "objects"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    ds.add("old", src)
    eng = engine_for(db)
    with eng.begin() as c:
        c.execute(sa.text("ALTER TABLE storage_versions DROP COLUMN store"))
    from aistack.storage import catalog

    catalog._SCHEMA_READY.discard(id(eng))
    again = Datasets.connect(db, str(tmp_path / "objects"))
    assert again.resolve("old").store is None
    assert again.add("old", src).unchanged
    assert again.verify("old@v1") == 1


def test_sdk_add_of_unchanged_data_is_a_no_op_as_the_cli(tmp_path: Path) -> None:
    """Datasets.add made a new version of unchanged data (the CLI did not)."""
    _, t, src = _two(tmp_path)
    v1 = t.add("corpus", src, message="first")
    same = t.add("corpus", src, message="again")
    assert (same.version, same.unchanged, same.message) == (1, True, "first")
    assert [v.version for v in t.log("corpus")] == [v1.version]
    forced = t.add("corpus", src, if_changed=False)
    assert (forced.version, forced.unchanged) == (2, False)


def test_gc_with_no_grace_during_an_add_keeps_its_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`data gc --grace 0 --force` between an add's upload and its catalog row deleted the
    objects it had written: the version came without them."""
    _, t, src = _two(tmp_path)
    other = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "store-t"))
    reports = []
    put = t.manifests.put

    def gc_first(entries):  # type: ignore[no-untyped-def]
        reports.append(other.gc(dry_run=False, grace_s=0))
        return put(entries)

    monkeypatch.setattr(t.manifests, "put", gc_first)
    v = t.add("corpus", src)
    assert reports[0].objects_deleted == 0 and reports[0].objects_young == 2
    assert t.verify(v.ref) == v.bytes
    # once it is done, its lease no longer keeps anything
    t.delete(v.ref)
    assert other.gc(dry_run=False, grace_s=0).objects_deleted == 2


def test_adds_racing_gc_with_no_grace_lose_nothing(tmp_path: Path) -> None:
    """Adds in threads and gc with grace 0 in a loop: every version reads in full."""
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    adder, collector = Datasets.connect(db, store), Datasets.connect(db, store)
    stop = threading.Event()
    errors: list[BaseException] = []

    def collect() -> None:
        while not stop.is_set():
            try:
                collector.gc(dry_run=False, grace_s=0)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    th = threading.Thread(target=collect)
    th.start()
    refs = []
    try:
        for i in range(12):
            src = tmp_path / f"src{i}"
            src.mkdir()
            for j in range(5):
                (src / f"f{j}").write_bytes(f"{i}-{j}-".encode() * (200 + j))
            refs.append(adder.add(f"d{i}", src).ref)
            time.sleep(0.005)
    finally:
        stop.set()
        th.join()
    assert errors == []
    for ref in refs:
        assert adder.verify(ref) > 0, ref


def test_a_killed_adds_lease_keeps_nothing(tmp_path: Path) -> None:
    from aistack.storage.holds import add_lease_dir, gc_view_of_adds

    d = tmp_path / "leases"
    add_lease_dir(d).mkdir(parents=True)
    assert add_lease_dir(d) == tmp_path / "add-leases"
    dead = add_lease_dir(d) / "123-abc.lease"
    dead.write_text('{"start": 1.0}')  # nobody holds it
    now, oldest = gc_view_of_adds(d)
    assert oldest is None and not dead.exists() and now > 0


def test_cli_gc_names_the_other_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.cli.main import app
    from aistack.settings import get_settings

    s, _, src = _two(tmp_path)
    s.add("corpus", src)
    monkeypatch.setenv("AISTACK_DATABASE_URL", f"sqlite:///{tmp_path / 'aistack.db'}")
    monkeypatch.setenv("AISTACK_STORAGE_URL", str(tmp_path / "store-t"))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["data", "gc", "--dry-run"])
        got = CliRunner().invoke(app, ["data", "get", "corpus@v1", str(tmp_path / "out")])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    assert (
        f"note: 1 version live in store file://{tmp_path / 'store-s'}, not in this one "
        f"(file://{tmp_path / 'store-t'})" in " ".join(res.output.split())
    )
    assert isinstance(got.exception, ConflictError)  # (main() prints it, exit 1)
    assert got.exception.message.startswith(f"corpus@v1 lives in store file://{tmp_path}/store-s")
