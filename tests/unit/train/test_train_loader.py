from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.train.loader import ShardLoader
from aistack.train.shards import open_shard, write_token_shard


def _make_shards(root: Path, sizes=(1000, 777, 1500), vocab=50_000) -> list[Path]:
    paths = []
    base = 0
    for i, n in enumerate(sizes):
        toks = (np.arange(base, base + n) % vocab).astype(np.int64)  # globally unique positions
        docs = np.array_split(toks, 5)
        paths.append(write_token_shard(root / f"s{i:02d}.tok", docs, vocab))
        base += n
    return paths


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    _make_shards(tmp_path / "data")
    return tmp_path / "data"


def test_shard_roundtrip_uint16_and_uint32(tmp_path: Path) -> None:
    docs = [[1, 2, 3], [], [4, 5]]
    sh = open_shard(write_token_shard(tmp_path / "a.tok", docs, 100))
    assert sh.tokens.dtype == np.uint16 and sh.vocab_size == 100
    assert sh.tokens.tolist() == [1, 2, 3, 4, 5]
    assert sh.doc_offsets.tolist() == [0, 3, 3, 5]
    big = open_shard(write_token_shard(tmp_path / "b.tok", [[70_000, 1]], 100_000))
    assert big.tokens.dtype == np.uint32 and big.tokens.tolist() == [70_000, 1]


def test_shard_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="docs"):
        write_token_shard(tmp_path / "x.tok", [[5, 200]], 100)
    (tmp_path / "junk.bin").write_bytes(b"not a shard at all, sorry")
    with pytest.raises(ValidationError, match="data"):
        open_shard(tmp_path / "junk.bin")
    with pytest.raises(ValidationError, match="does not exist"):
        open_shard(tmp_path / "missing.tok")
    good = write_token_shard(tmp_path / "t.tok", [list(range(50))], 100)
    good.write_bytes(good.read_bytes()[:80])
    with pytest.raises(ValidationError, match="truncated"):
        open_shard(good)


def test_windows_are_contiguous_token_runs_and_targets_shifted(shards: Path) -> None:
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=1, as_torch=False)
    x, y = ld.next_batch()
    assert x.shape == (4, 16) and y.shape == (4, 16) and x.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    # tokens are consecutive integers inside a shard: every window is a run
    assert np.all(np.diff(np.concatenate([x, y[:, -1:]], axis=1), axis=1) == 1)
    # windows start at multiples of seq_len within their shard
    firsts = [1000 * 0, 1000, 1777]
    for row in x:
        shard_base = max(b for b in firsts if b <= row[0])
        assert (row[0] - shard_base) % 16 == 0


def test_ranks_get_disjoint_slices_covering_the_epoch(shards: Path) -> None:
    world = 3
    loaders = [
        ShardLoader(
            str(shards), seq_len=16, batch_size=2, seed=7, rank=r, world_size=world, as_torch=False
        )
        for r in range(world)
    ]
    n = loaders[0].batches_per_epoch
    assert all(ld.batches_per_epoch == n for ld in loaders)
    seen: list[int] = []
    for ld in loaders:
        for _ in range(n):
            seen.extend(ld.next_batch()[0][:, 0].tolist())
    assert len(seen) == len(set(seen))  # no window twice in an epoch
    assert len(seen) == n * 2 * world
    assert len(seen) > 0.9 * loaders[0].n_windows


def test_same_seed_same_order_other_seed_other_order(shards: Path) -> None:
    a = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=3, as_torch=False)
    b = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=3, as_torch=False)
    c = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=4, as_torch=False)
    xa, xb, xc = a.next_batch()[0], b.next_batch()[0], c.next_batch()[0]
    assert np.array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_epochs_roll_over_with_a_new_order(shards: Path) -> None:
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=0, as_torch=False)
    first = [ld.next_batch()[0][:, 0].tolist() for _ in range(ld.batches_per_epoch)]
    second = [ld.next_batch()[0][:, 0].tolist() for _ in range(ld.batches_per_epoch)]
    assert ld.epoch == 1
    a, b = sum(first, []), sum(second, [])
    assert len(a) == len(set(a)) == len(b) == len(set(b))  # each epoch: no window twice
    dropped = ld.n_windows - len(a)  # the remainder that does not fill a batch
    assert len(set(a) & set(b)) >= len(a) - dropped
    assert first != second


@settings(max_examples=25, deadline=None)
@given(k=st.integers(0, 120), world=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_resume_is_exact(tmp_path_factory, k: int, world: int, seed: int) -> None:
    root = tmp_path_factory.getbasetemp() / "resume-data"
    if not root.exists():
        _make_shards(root)
    rank = world - 1
    kw = dict(seq_len=8, batch_size=3, seed=seed, rank=rank, world_size=world, as_torch=False)
    ref = ShardLoader(str(root), **kw)
    expected = [ref.next_batch()[0] for _ in range(k + 5)]
    run = ShardLoader(str(root), **kw)
    for _ in range(k):
        run.next_batch()
    state = run.state_dict()
    resumed = ShardLoader(str(root), **kw)
    resumed.load_state_dict(state)
    got = [resumed.next_batch()[0] for _ in range(5)]
    for e, g in zip(expected[k:], got, strict=True):
        assert np.array_equal(e, g)


def test_resume_refuses_other_data_or_layout(shards: Path, tmp_path: Path) -> None:
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4, as_torch=False)
    ld.next_batch()
    state = ld.state_dict()
    other = ShardLoader(str(shards), seq_len=16, batch_size=2, as_torch=False)
    with pytest.raises(ValidationError, match="batch_size"):
        other.load_state_dict(state)
    _make_shards(tmp_path / "other", sizes=(900, 900))
    with pytest.raises(ValidationError, match=r"the shards differ from the checkpoint's \("):
        ShardLoader(str(tmp_path / "other"), seq_len=16, batch_size=4).load_state_dict(state)


def test_torch_batches(shards: Path) -> None:
    torch = pytest.importorskip("torch")
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4)
    x, y = next(iter(ld))
    assert isinstance(x, torch.Tensor) and x.dtype == torch.int64 and x.shape == (4, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_path_forms_and_errors(shards: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in shards.iterdir())
    a = ShardLoader(files, seq_len=16, batch_size=4, as_torch=False)
    b = ShardLoader(str(shards / "*.tok"), seq_len=16, batch_size=4, as_torch=False)
    assert a.fingerprint == b.fingerprint and a.n_tokens == 1000 + 777 + 1500
    with pytest.raises(ValidationError, match="no shard files"):
        ShardLoader(str(tmp_path / "nothing*.tok"), seq_len=16, batch_size=4)
    with pytest.raises(ValidationError, match="cannot fill one batch"):
        ShardLoader(files[:1], seq_len=500, batch_size=4)
    with pytest.raises(ValidationError, match="rank"):
        ShardLoader(files, seq_len=16, batch_size=4, rank=2, world_size=2)


def test_remote_shards_are_cached_locally(aistack_home: Path, shards: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for p in sorted(shards.iterdir()):
        fs.pipe(f"/bucket/shards/{p.name}", p.read_bytes())
    local = ShardLoader(str(shards), seq_len=16, batch_size=4, as_torch=False)
    remote = ShardLoader("memory://bucket/shards", seq_len=16, batch_size=4, as_torch=False)
    assert remote.fingerprint == local.fingerprint
    assert np.array_equal(remote.next_batch()[0], local.next_batch()[0])
    assert any((aistack_home / "cache" / "shards").iterdir())


def test_eos_between_documents_virtual_stream(tmp_path: Path) -> None:
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]]
    write_token_shard(tmp_path / "e.tok", docs, 100)
    ld = ShardLoader(str(tmp_path / "e.tok"), seq_len=3, batch_size=1, eos_id=0, as_torch=False)
    stream = [1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 0, 10, 0]
    assert ld.n_windows == (len(stream) - 1) // 3
    got = sorted(ld.gather(np.arange(ld.n_windows)).tolist())
    want = sorted(stream[k * 3 : k * 3 + 4] for k in range(ld.n_windows))
    assert got == want
    plain = ShardLoader(str(tmp_path / "e.tok"), seq_len=3, batch_size=1, as_torch=False)
    with pytest.raises(ValidationError, match="eos_id"):
        ld.load_state_dict(plain.state_dict() | {"fingerprint": ld.fingerprint})


def test_eos_batches_are_fresh_arrays(tmp_path: Path) -> None:
    """With eos_id the staging buffer is int64 and reused chunk after chunk: a batch handed
    out must still be a copy, not a view the next chunk overwrites."""
    docs = [list(range(1 + 50 * d, 40 + 50 * d)) for d in range(40)]
    write_token_shard(tmp_path / "e.tok", docs, 5000)
    ld = ShardLoader(str(tmp_path / "e.tok"), seq_len=8, batch_size=2, eos_id=0, as_torch=False)
    n = 2 * ld.batches_per_epoch  # several chunks, across an epoch boundary
    kept = [ld.next_batch()[0] for _ in range(n)]
    copies = [x.copy() for x in kept]
    ld.next_batch()
    assert all(np.array_equal(k, c) for k, c in zip(kept, copies, strict=True))
    assert not any(np.shares_memory(a, b) for a, b in zip(kept, kept[1:], strict=False))


def test_reads_webdata_pipeline_shards(tmp_path: Path) -> None:
    wd = pytest.importorskip("aistack.webdata.shards")
    docs = [list(range(i, i + 40)) for i in range(0, 400, 40)]
    wd.write_shard(tmp_path / "w.bin", docs, 1000)
    sh = open_shard(tmp_path / "w.bin")
    assert sh.vocab_size == 1000 and sh.n_tokens == 400
    assert sh.doc_offsets.tolist() == list(range(0, 401, 40))
    ld = ShardLoader(str(tmp_path / "w.bin"), seq_len=10, batch_size=2, as_torch=False)
    x, y = ld.next_batch()
    assert np.all(np.diff(x, axis=1) == 1) and np.array_equal(x[:, 1:], y[:, :-1])
    assert ld.vocab_size == 1000


def test_prefetch_gives_the_same_batches_and_positions(shards: Path) -> None:
    kw = dict(seq_len=16, batch_size=4, seed=5, as_torch=False)
    plain = ShardLoader(str(shards), **kw)
    ahead = ShardLoader(str(shards), prefetch=3, **kw)
    n = plain.batches_per_epoch + 7  # across an epoch boundary
    prev = None
    for _ in range(n):
        want_x, want_y = plain.next_batch()
        got_x, got_y = ahead.next_batch()
        assert got_x.dtype == np.int64 and np.array_equal(want_x, got_x)
        assert np.array_equal(want_y, got_y)
        if prev is not None:  # the worker converts whole chunks: batches still share nothing
            assert not np.shares_memory(prev, got_x)
        prev = got_x
        got_x[...] = -1  # the caller may write into its batch (masking): no other batch sees it
    assert ahead.state_dict() == plain.state_dict()  # position = batches handed out
    state = plain.state_dict()
    expected = [plain.next_batch()[0] for _ in range(4)]
    rewound = ahead  # its thread has read ahead; loading a state must discard that
    for _ in range(2):
        rewound.next_batch()
    rewound.load_state_dict(state)
    got = [rewound.next_batch()[0] for _ in range(4)]
    assert all(np.array_equal(e, g) for e, g in zip(expected, got, strict=True))
    rewound.close()
    assert rewound._worker is None


def _epochs(ld: ShardLoader, n: int) -> list[np.ndarray]:
    return [np.asarray(ld.next_batch()[0]).copy() for _ in range(n)]


@pytest.mark.parametrize("chunk_bytes", [1, 700, 10_000])
def test_chunked_gather_gives_the_same_batches_as_batch_at_a_time(
    shards: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    import aistack.train.loader as loader_mod

    kw = dict(seq_len=16, batch_size=3, seed=11, rank=1, world_size=2, as_torch=False)
    monkeypatch.setattr(loader_mod, "CHUNK_BYTES", 1)  # one batch per chunk: the reference
    ref = ShardLoader(str(shards), **kw)
    assert ref.chunk_batches == 1
    n = 2 * ref.batches_per_epoch + 3  # across epoch boundaries
    want = _epochs(ref, n)
    monkeypatch.setattr(loader_mod, "CHUNK_BYTES", chunk_bytes)
    ld = ShardLoader(str(shards), **kw)
    assert np.array_equal(np.stack(_epochs(ld, n)), np.stack(want))
    # resume in the middle of a chunk
    mid = ShardLoader(str(shards), **kw)
    _epochs(mid, 5)
    again = ShardLoader(str(shards), **kw)
    again.load_state_dict(mid.state_dict())
    assert np.array_equal(np.stack(_epochs(again, n - 5)), np.stack(want[5:]))


def test_batches_handed_out_do_not_share_the_reused_stage(shards: Path) -> None:
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=2, as_torch=False)
    n = ld.batches_per_epoch + 2
    held = [ld.next_batch() for _ in range(n)]  # kept while later chunks are gathered
    fresh = ShardLoader(str(shards), seq_len=16, batch_size=4, seed=2, as_torch=False)
    for x, y in held:
        fx, fy = fresh.next_batch()
        assert np.array_equal(x, fx) and np.array_equal(y, fy)
    held[0][0][:] = -1  # writing to a batch changes nothing else
    assert not np.array_equal(held[1][0], -np.ones_like(held[1][0]))


def test_mixed_uint16_and_uint32_shards(tmp_path: Path) -> None:
    write_token_shard(tmp_path / "a.tok", [list(range(0, 100))], 1000)  # uint16
    write_token_shard(tmp_path / "b.tok", [list(range(70_000, 70_100))], 100_000)  # uint32
    ld = ShardLoader(str(tmp_path), seq_len=9, batch_size=4, seed=0, as_torch=False)
    rows = ld.gather(np.arange(ld.n_windows))
    assert rows.dtype == np.int64 and rows.shape == (ld.n_windows, 10)
    assert np.all(np.diff(rows, axis=1) == 1)  # contiguous runs, nothing wrapped at 2**16
    assert rows[:, 0].tolist() == [*range(0, 99, 9), *range(70_000, 70_099, 9)]  # 11 each
    x, y = ld.next_batch()
    assert np.array_equal(x[:, 1:], y[:, :-1])


def test_gather_refuses_ids_outside_the_windows(shards: Path) -> None:
    ld = ShardLoader(str(shards), seq_len=16, batch_size=4, as_torch=False)
    with pytest.raises(ValidationError, match="window ids"):
        ld.gather(np.array([ld.n_windows]))
    assert ld.gather(np.array([], dtype=np.int64)).shape == (0, 17)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 400), min_size=1, max_size=5),
    wide=st.booleans(),
    seq_len=st.integers(1, 24),
    batch=st.integers(1, 4),
    world=st.integers(1, 3),
    seed=st.integers(0, 3),
    chunk_bytes=st.sampled_from([1, 300, 1 << 20]),
)
def test_single_view_gather_equals_the_per_shard_gather(
    tmp_path_factory, sizes, wide, seq_len, batch, world, seed, chunk_bytes
) -> None:
    """The side-by-side mapping (one gather for all shards) gives exactly the batches of the
    per-shard fallback, whatever the shard sizes (empty ones too), widths and layout; its
    touch-ahead reads (first and last token of each window, up to the mapping's last token)
    change nothing."""
    import aistack.train.loader as loader_mod

    root = tmp_path_factory.mktemp("flat")
    vocab = 100_000 if wide else 50_000
    base = 0
    for i, n in enumerate(sizes):
        toks = (np.arange(base, base + n) % vocab).astype(np.int64)
        write_token_shard(root / f"s{i}.tok", [toks] if n else [], vocab)
        base += n
    total_windows = sum(max(0, (n - 1) // seq_len) for n in sizes)
    if total_windows // world // batch < 1:
        return  # cannot fill one batch: refused at construction (tested elsewhere)
    old = loader_mod.CHUNK_BYTES
    loader_mod.CHUNK_BYTES = chunk_bytes
    try:
        for rank in range(world):
            kw = dict(seq_len=seq_len, batch_size=batch, seed=seed, rank=rank, world_size=world)
            fast = ShardLoader(str(root), as_torch=False, **kw)
            assert fast._flat is not None  # Linux: the single view is in use
            slow = ShardLoader(str(root), as_torch=False, **kw)
            slow._flat = None  # the per-shard fallback
            untouched = ShardLoader(str(root), as_torch=False, **kw)
            untouched.touch_ahead = False  # the single view without the touch-ahead reads
            assert fast.touch_ahead
            n = 2 * fast.batches_per_epoch + 1
            got = np.stack(_epochs(fast, n))
            assert np.array_equal(got, np.stack(_epochs(slow, n)))
            assert np.array_equal(got, np.stack(_epochs(untouched, n)))
            ids = np.arange(fast.n_windows)
            assert np.array_equal(fast.gather(ids), slow.gather(ids))
    finally:
        loader_mod.CHUNK_BYTES = old


def test_side_by_side_mapping_is_released_with_the_loader(tmp_path: Path) -> None:
    import gc

    _make_shards(tmp_path / "data")

    def mapped() -> int:
        text = Path("/proc/self/maps").read_text()
        return sum(str(tmp_path / "data") in line for line in text.splitlines())

    ld = ShardLoader(str(tmp_path / "data"), seq_len=16, batch_size=4, as_torch=False)
    assert ld._flat is not None and mapped() >= 6  # np.memmap's own + the side-by-side ones
    x, _ = ld.next_batch()
    del ld
    gc.collect()
    assert mapped() == 0  # a batch handed out is a copy: it keeps no mapping alive
    assert x.shape == (4, 16)


def test_eos_over_a_shard_of_only_empty_documents(tmp_path: Path) -> None:
    """Empty documents still carry their EOS: a shard of nothing but empty documents is a
    stream of EOS ids (it used to index its empty token array)."""
    write_token_shard(tmp_path / "a.tok", [[]] * 10, 100)
    write_token_shard(tmp_path / "b.tok", [[5, 6, 7, 8, 9, 10]], 100)
    ld = ShardLoader(str(tmp_path), seq_len=4, batch_size=1, eos_id=99, as_torch=False)
    assert ld.n_windows == 2 + 1
    rows = ld.gather(np.arange(ld.n_windows)).tolist()
    assert rows == [[99] * 5, [99] * 5, [5, 6, 7, 8, 9]]


def test_a_pipeline_dataset_folder_is_read_without_its_tokenizer_and_report(
    tmp_path: Path,
) -> None:
    """The web-data pipeline's dataset/ folder holds tokenizer.json and report.json beside
    the shards: a directory reads the shards in it and skips the other files."""
    wd = pytest.importorskip("aistack.webdata.shards")
    ds = tmp_path / "out" / "dataset"
    ds.mkdir(parents=True)
    wd.write_shard(ds / "shard-00000.bin", [list(range(40))], 1000)
    write_token_shard(ds / "shard-00001.tok", [list(range(40, 80))], 1000)
    (ds / "tokenizer.json").write_text('{"model": {}}')
    (ds / "report.json").write_text("{}")
    ld = ShardLoader(str(ds), seq_len=9, batch_size=2, as_torch=False)
    assert [Path(p).name for p in ld.sources] == ["shard-00000.bin", "shard-00001.tok"]
    assert ld.n_tokens == 80
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "report.json").write_text("{}")
    with pytest.raises(ValidationError, match="no shard files"):
        ShardLoader(str(tmp_path / "meta"), seq_len=9, batch_size=2)
    with pytest.raises(ValidationError, match="not an aistack token shard"):
        ShardLoader([str(ds / "report.json")], seq_len=9, batch_size=2)  # named: an error


@pytest.mark.parametrize("vocab", [50_000, 100_000])  # uint16 (torch widens) and uint32 (numpy)
@pytest.mark.parametrize("prefetch", [0, 2])
def test_torch_tensors_hold_the_same_int64_tokens_as_numpy_batches(
    tmp_path: Path, vocab: int, prefetch: int
) -> None:
    torch = pytest.importorskip("torch")
    data = tmp_path / "d"
    _make_shards(data, vocab=vocab)
    kw = dict(seq_len=16, batch_size=3, seed=5, prefetch=prefetch)
    ref = ShardLoader(str(data), as_torch=False, **kw)
    ld = ShardLoader(str(data), **kw)
    try:
        for _ in range(ref.batches_per_epoch + 4):  # across an epoch boundary
            (x, y), (xt, yt) = ref.next_batch(), ld.next_batch()
            assert xt.dtype == yt.dtype == torch.int64
            assert np.array_equal(xt.numpy(), x) and np.array_equal(yt.numpy(), y)
    finally:
        ref.close()
        ld.close()
