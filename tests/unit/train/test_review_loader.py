"""A batch is a view of its chunk's int64 array; a loader rewound by ``load_state_dict`` into
the chunk it has cached served the batch again from that array, so a batch the training code
had changed in place (masking tokens, say) came back changed. Also: touch-ahead at the very
last window of the mapping, seq_len 1 and a batch of 1 give the same batches as without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aistack.train.loader import ShardLoader
from aistack.train.shards import write_token_shard


def _shards(root: Path, sizes: tuple[int, ...] = (1000, 777, 1500)) -> Path:
    base = 0
    for i, n in enumerate(sizes):
        toks = (np.arange(base, base + n) % 50_000).astype(np.int64)
        write_token_shard(root / f"s{i:02d}.tok", np.array_split(toks, 5), 50_000)
        base += n
    return root


@pytest.mark.parametrize("eos_id", [None, 49_999])
def test_a_batch_changed_in_place_is_not_served_changed_after_a_rewind(
    tmp_path: Path, eos_id: int | None
) -> None:
    data = _shards(tmp_path / "data")
    ld = ShardLoader(str(data), seq_len=16, batch_size=4, seed=1, as_torch=False, eos_id=eos_id)
    assert ld.chunk_batches > 2  # the rewind stays inside the cached chunk
    ld.next_batch()
    state = ld.state_dict()
    x, y = ld.next_batch()
    want_x, want_y = x.copy(), y.copy()
    x[...] = -100  # the training code masks the batch in place
    ld.load_state_dict(state)
    x2, y2 = ld.next_batch()
    assert np.array_equal(x2, want_x) and np.array_equal(y2, want_y)
    assert (x2 >= 0).all()
    # a fresh loader at that position agrees
    ref = ShardLoader(str(data), seq_len=16, batch_size=4, seed=1, as_torch=False, eos_id=eos_id)
    ref.load_state_dict(state)
    rx, ry = ref.next_batch()
    assert np.array_equal(rx, want_x) and np.array_equal(ry, want_y)


@pytest.mark.parametrize(("seq_len", "batch_size"), [(1, 1), (1, 7), (16, 1), (999, 1)])
def test_touch_ahead_reads_up_to_the_last_window_and_changes_nothing(
    tmp_path: Path, seq_len: int, batch_size: int
) -> None:
    data = _shards(tmp_path / "data")
    kw = {"seq_len": seq_len, "batch_size": batch_size, "seed": 2, "as_torch": False}
    a = ShardLoader(str(data), **kw)  # type: ignore[arg-type]
    b = ShardLoader(str(data), **kw)  # type: ignore[arg-type]
    b.touch_ahead = False
    if a._flat is not None:
        # every window, the last one of the mapping included
        ids = np.arange(a.n_windows, dtype=np.int64)
        assert np.array_equal(a._gather(ids), b._gather(ids))
    for _ in range(2 * a.batches_per_epoch + 1):
        (xa, ya), (xb, yb) = a.next_batch(), b.next_batch()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
