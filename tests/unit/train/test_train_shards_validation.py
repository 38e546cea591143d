"""Shards with damaged document offsets are refused when opened (file and problem named, the
fix in the hint), and a loader checkpoint refuses shards whose contents changed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.loader import ShardLoader
from aistack.train.shards import HEADER, open_shard, write_token_shard

# --------------------------------------------------------------------------- offsets


def _aistok_with_offsets(path: Path, offsets: list[int]) -> Path:
    """An AISTOK1 shard of 10 tokens in 3 documents, its offsets replaced by ``offsets``."""
    write_token_shard(path, [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]], 100)
    data = bytearray(path.read_bytes())
    start = HEADER.size + 10 * 2 + ((-(10 * 2)) % 8)
    assert np.frombuffer(bytes(data[start:]), dtype="<i8").tolist() == [0, 3, 7, 10]
    data[start:] = np.asarray(offsets, dtype="<i8").tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("offsets", "problem"),
    [
        ([1, 3, 7, 10], "the document offsets start at 1, not 0"),
        ([0, 3, 7, 9], "the last document offset is 9, but the shard holds 10 tokens"),
        ([0, 3, 2, 10], "not monotonic: offset 2 is 2, below offset 1 (3)"),
        ([0, 99, 7, 10], "not monotonic: offset 2 is 7, below offset 1 (99)"),  # past the end
        ([0, -5, 7, 10], "not monotonic: offset 1 is -5, below offset 0 (0)"),
        ([0, 3, 2**40, 10], "not monotonic: offset 3 is 10, below offset 2 (1,099,511,627,776)"),
    ],
)
def test_aistok_shard_with_damaged_offsets_is_refused(
    tmp_path: Path, offsets: list[int], problem: str
) -> None:
    p = _aistok_with_offsets(tmp_path / "bad.tok", offsets)
    with pytest.raises(ValidationError) as ei:
        open_shard(p)
    assert ei.value.message.startswith(f"data: {p}: ") and problem in ei.value.message
    assert "tokenize the data again" in (ei.value.hint or "")
    # the loader opens its shards the same way: refused before any batch, with or without EOS
    for eos in (None, 0):
        with pytest.raises(ValidationError, match="document offset"):
            ShardLoader(str(p), seq_len=2, batch_size=1, eos_id=eos, as_torch=False)


def test_valid_offsets_with_empty_documents_still_open(tmp_path: Path) -> None:
    p = _aistok_with_offsets(tmp_path / "ok.tok", [0, 3, 3, 10])
    sh = open_shard(p)
    assert sh.doc_offsets.tolist() == [0, 3, 3, 10] and sh.doc_offsets.dtype == np.int64
    ld = ShardLoader(str(p), seq_len=2, batch_size=1, eos_id=0, as_torch=False)
    assert ld.n_windows == (10 + 3 - 1) // 2


def _webdata_with_offsets(path: Path, offsets: list[int]) -> Path:
    from aistack.webdata.shards import read_header, write_shard

    write_shard(path, [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]], 100)
    idx = read_header(path)["index_offset"]
    data = bytearray(path.read_bytes())
    data[idx:] = np.asarray(offsets, dtype="<u8").tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("offsets", "problem"),
    [
        ([5, 3, 7, 10], "it starts at 5, not 0"),
        ([0, 7, 3, 10], "offsets are not monotonic (offset 2 is 3, below offset 1: 7)"),
        ([0, 2**64 - 1, 7, 10], "offset 2 is 7, below offset 1: 18,446,744,073,709,551,615"),
    ],
)
def test_webdata_shard_with_damaged_offsets_is_refused(
    tmp_path: Path, offsets: list[int], problem: str
) -> None:
    from aistack.webdata.shards import read_shard

    p = _webdata_with_offsets(tmp_path / "shard-00000.bin", offsets)
    with pytest.raises(ValidationError) as ei:
        read_shard(p)
    assert ei.value.message.startswith(f"{p}: document index is damaged")
    assert problem in ei.value.message and "webdata run --fresh" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="document index is damaged"):
        open_shard(p)
    with pytest.raises(ValidationError, match="document index is damaged"):
        ShardLoader(str(p), seq_len=2, batch_size=1, eos_id=0, as_torch=False)


# --------------------------------------------------------------------------- checkpoint content


def _shards(root: Path, shift: int = 0, split: int = 5) -> Path:
    base = 0
    for i, n in enumerate((1000, 777, 1500)):
        toks = (np.arange(base, base + n) + (shift if i == 1 else 0)) % 50_000
        docs = np.array_split(toks, split if i == 1 else 5)
        write_token_shard(root / f"s{i:02d}.tok", docs, 50_000)
        base += n
    return root


KW = dict(seq_len=16, batch_size=4, seed=3, as_torch=False)


def test_resume_over_changed_shard_contents_is_refused(tmp_path: Path) -> None:
    data = _shards(tmp_path / "data")
    ld = ShardLoader(str(data), **KW)
    for _ in range(3):
        ld.next_batch()
    assert getattr(ld, "_shard_hashes", None) is None  # nothing is hashed for batches
    state = ld.state_dict()
    # s01 re-written with other token ids: same names, token counts (the old check passed)
    _shards(data, shift=1)
    changed = ShardLoader(str(data), **KW)
    assert changed.fingerprint == state["fingerprint"]
    with pytest.raises(ValidationError) as ei:
        changed.load_state_dict(dict(state))
    assert ei.value.message == (
        "data: 1 of 3 shards changed since the checkpoint was written (same file names and "
        "token counts, other contents): s01.tok"
    )
    assert "--no-resume" in (ei.value.hint or "")
    assert (changed.epoch, changed.batch) == (0, 0)  # nothing was loaded
    assert len(state["shard_hashes"]) == 3 and state["version"] == 2
    # the same bytes (another folder): accepted, and the position is kept
    same = ShardLoader(str(_shards(tmp_path / "copy")), **KW)
    same.load_state_dict(dict(state))
    assert (same.epoch, same.batch) == (0, 3)
    # the same tokens split into other documents: other data for an EOS-separated stream
    _shards(data, split=7)
    with pytest.raises(ValidationError, match=r"1 of 3 shards changed .*: s01\.tok \("):
        ShardLoader(str(data), **KW).load_state_dict(dict(state))


def test_old_checkpoint_without_hashes_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _shards(tmp_path / "data")
    ld = ShardLoader(str(data), **KW)
    for _ in range(5):
        ld.next_batch()
    state = ld.state_dict()
    old = {k: v for k, v in state.items() if k != "shard_hashes"} | {"version": 1}
    want = [ld.next_batch()[0] for _ in range(3)]
    resumed = ShardLoader(str(data), **KW)
    with caplog.at_level(logging.WARNING, logger="aistack.train.loader"):
        resumed.load_state_dict(old)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no shard content hashes" in caplog.records[0].getMessage()
    got = [resumed.next_batch()[0] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))


def test_content_hash_reads_samples_and_is_format_independent(tmp_path: Path) -> None:
    from aistack.train.shards import content_hash
    from aistack.webdata.shards import write_shard

    docs = [list(range(i, i + 300)) for i in range(0, 3000, 300)]
    a = open_shard(write_token_shard(tmp_path / "a.tok", docs, 5000))
    write_shard(tmp_path / "b.bin", docs, 5000)
    b = open_shard(tmp_path / "b.bin")
    assert content_hash(a) == content_hash(b) and len(content_hash(a)) == 16
    c = open_shard(write_token_shard(tmp_path / "c.tok", [d[::-1] for d in docs], 5000))
    assert content_hash(c) != content_hash(a)  # same counts and offsets, other tokens
