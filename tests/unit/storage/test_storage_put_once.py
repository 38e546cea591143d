"""Threads of one store that put the same new object at once write it once (before, two workers
of one add could both find it missing and both write it: one redundant write); the others wait
for that write and reuse the object."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aistack.storage import ObjectStore, open_backend
from aistack.storage.objects import ObjectStore as _Store


def _count_writes(monkeypatch: pytest.MonkeyPatch, pause_s: float = 0.05) -> Counter[str]:
    """Counts the object writes per key; each write takes ``pause_s`` longer, so that threads
    putting one object overlap."""
    writes: Counter[str] = Counter()
    lock = threading.Lock()
    real = _Store._write_local

    def slow_write(self: Any, key: str, data: Any, **kw: Any) -> None:
        with lock:
            writes[key] += 1
        time.sleep(pause_s)
        real(self, key, data, **kw)

    monkeypatch.setattr(_Store, "_write_local", slow_write)
    return writes


@pytest.mark.parametrize("how", ["put", "put_range"])
def test_concurrent_puts_of_one_new_object_write_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    store = ObjectStore(open_backend(str(tmp_path / "store")))
    writes = _count_writes(monkeypatch)
    data = b"the same chunk " * 1000
    src = tmp_path / "src"
    src.write_bytes(data)
    n = 8
    start = threading.Barrier(n)
    got: list[tuple[str, int]] = []

    def put() -> None:
        start.wait()
        if how == "put":
            got.append(store.put(data))
            return
        with open(src, "rb") as f:
            got.append(store.put_range(f.fileno(), 0, memoryview(data)))

    threads = [threading.Thread(target=put) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oid = store.hash_bytes(data)
    assert writes == Counter({store.key(oid): 1})
    assert sorted(got) == [(oid, 0)] * (n - 1) + [(oid, len(data))]
    assert store.get(oid) == data


def test_a_failed_write_lets_a_waiting_thread_write_the_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.errors import BackendError

    store = ObjectStore(open_backend(str(tmp_path / "store")))
    real = _Store._write_local
    calls: list[str] = []
    first_in = threading.Event()

    def write_once_fails(self: Any, key: str, data: Any, **kw: Any) -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            first_in.set()
            time.sleep(0.1)  # the other thread is waiting for this write now
            raise BackendError("disk full")
        real(self, key, data, **kw)

    monkeypatch.setattr(_Store, "_write_local", write_once_fails)
    data = b"x" * 4096
    results: dict[str, Any] = {}

    def put(name: str) -> None:
        try:
            results[name] = store.put(data)
        except BackendError as exc:
            results[name] = exc

    a = threading.Thread(target=put, args=("a",), name="a")
    a.start()
    first_in.wait(5)
    b = threading.Thread(target=put, args=("b",), name="b")
    b.start()
    a.join()
    b.join()
    assert isinstance(results["a"], BackendError)
    assert results["b"] == (store.hash_bytes(data), len(data))
    assert calls == ["a", "b"] and store.get(store.hash_bytes(data)) == data


def test_an_add_of_identical_files_writes_their_object_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.settings import get_settings
    from aistack.storage import Datasets

    src = home / "src"
    src.mkdir()
    body = b"identical content\n" * 100  # one object each (small files)
    for i in range(8):
        (src / f"copy-{i}.txt").write_bytes(body)
    (src / "other.txt").write_bytes(b"something else")
    s = get_settings()
    ds = Datasets.connect(s.db_url, s.objects_url, workers=8)
    writes = _count_writes(monkeypatch)
    v = ds.add("d", str(src))
    key = ds.store.key(ds.store.hash_bytes(body))
    objects = {k: n for k, n in writes.items() if "/cas/" in k and not k.endswith("config.json")}
    assert writes[key] == 1 and sorted(objects.values()) == [1, 1]  # + other.txt
    assert v.bytes_written == len(body) + len(b"something else")
    assert [e.hash for e in ds.files(v)].count(ds.store.hash_bytes(body)) == 8


def test_an_interrupt_while_registering_a_write_leaves_no_entry(tmp_path: Path) -> None:
    """An interrupt (KeyboardInterrupt on the main thread) right after a put registered its
    object as being written, before its write began, left the entry behind: every later put of
    the same bytes in this process then waited for ever."""
    store = ObjectStore(open_backend(str(tmp_path / "store")))
    real = store._writing_lock

    class InterruptOnce:
        fired = False

        def __enter__(self) -> None:
            real.acquire()

        def __exit__(self, *exc: object) -> None:
            real.release()
            if not InterruptOnce.fired and store._writing:
                InterruptOnce.fired = True
                raise KeyboardInterrupt

    store._writing_lock = InterruptOnce()  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        store.put(b"same bytes")
    store._writing_lock = real
    done: list[tuple[str, int]] = []
    t = threading.Thread(target=lambda: done.append(store.put(b"same bytes")), daemon=True)
    t.start()
    t.join(5)
    assert done and done[0][1] == len(b"same bytes"), "the second put hung on a stale entry"
