"""Loader throughput: aistack ShardLoader vs a raw sequential read of the same shard files vs
a naive torch Dataset/DataLoader over the same tokens.

tokens/s = input tokens delivered per second as an int64 torch tensor batch [B, T] (inputs
and targets are views of one [B, T+1] int64 array). The raw baseline reads the same files
sequentially with read() into [B, T+1] blocks and converts each to int64 inputs and targets
the same way the loader does (no shuffling; the files' headers are read before the clock
starts). An informational row gives the bare byte-copy speed (no tensor; the reused
buffer stays in CPU cache, so it is a memcpy ceiling, not a loader); another the loader's
random-window gather alone (its uint16 chunks, before the int64 conversion): the part of
its time that a sequential read does not have; another the loader with its touch-ahead off
(``ShardLoader.touch_ahead``: one token read at each window's first and last position, for
all windows of a chunk at once, before the copies), to compare in the same run. Page cache warm for
all. Another (info) row reads sequentially in blocks of a loader chunk and widens them with
torch in one call, as the loader does: the sequential read with every trick of the loader's
but the random windows. torch runs on one intra-op thread (``torch.set_num_threads(1)``) for
every row. Goal: ShardLoader ≥ 80% of the raw baseline (single thread, as the raw read). The
"(2 threads)" row is the loader with its prefetch thread gathering and converting ahead
while the caller takes batches: it uses a second core, so it is not the goal's comparison;
its point is the last column, the caller's own CPU time per batch (``time.thread_time``),
which is what a training step pays for its data.

    .venv/bin/python bench/bench_train_loader.py [--quick] [--seq-len 2048 --batch 8]

(``--seq-len``/``--batch`` write ``train_loader_b<batch>_t<seq_len>.json``: longer windows at
the same tokens per batch pay the random-access latency of each window once for more bytes.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def make_shards(root: Path, n_shards: int, tokens_per_shard: int, vocab: int) -> list[Path]:
    from aistack.train.shards import write_token_shard

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_shards):
        toks = rng.integers(0, vocab, tokens_per_shard, dtype=np.int64)
        docs = np.array_split(toks, max(1, tokens_per_shard // 2000))
        paths.append(write_token_shard(root / f"shard_{i:03d}.tok", docs, vocab))
    return paths


def raw_read(paths: list[Path]) -> tuple[int, float]:
    """Sequential read() of every file into one reused 8 MiB buffer (bytes/2 = uint16 tokens)."""
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    n = 0
    t0 = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while True:
                got = fh.readinto(view)
                if not got:
                    break
                n += got // 2
    return n, time.perf_counter() - t0


def raw_batches(paths: list[Path], seq_len: int, batch: int) -> tuple[int, float]:
    """Sequential read() of the token bytes (after each file's 64-byte header) straight into
    [batch, seq_len + 1] uint16 blocks, each turned into int64 torch inputs and targets (two
    views of one int64 array, as ShardLoader delivers them): the same delivery as the
    loaders, without shuffling or windows that overlap by one token."""
    from torch import from_numpy

    from aistack.train.shards import open_shard

    per = batch * (seq_len + 1)
    buf = np.empty(per, dtype=np.uint16)
    mv = memoryview(buf).cast("B")
    sizes = [open_shard(p).n_tokens for p in paths]  # headers: not part of the read
    n = 0
    t0 = time.perf_counter()
    for p, ntok in zip(paths, sizes, strict=True):
        with open(p, "rb", buffering=0) as fh:
            fh.seek(64)
            for _ in range(ntok // per):
                fh.readinto(mv)
                w = buf.reshape(batch, seq_len + 1).astype(np.int64)
                x, _y = from_numpy(w[:, :-1]), from_numpy(w[:, 1:])
                n += x.numel()
    return n, time.perf_counter() - t0


def raw_blocks(paths: list[Path], seq_len: int, batch: int, k: int) -> tuple[int, float]:
    """(info) The raw read with the loader's own conversion: sequential read() of ``k`` whole
    [batch, seq_len + 1] blocks at a time (as many as one chunk of the single-thread loader),
    widened to int64 by torch in one call, each batch two views — the sequential read given
    every trick of the loader's but the random windows."""
    from torch import from_numpy, int64

    from aistack.train.shards import open_shard

    per = batch * (seq_len + 1)
    buf = np.empty(k * per, dtype=np.uint16)
    mv = memoryview(buf).cast("B")
    sizes = [open_shard(p).n_tokens for p in paths]
    n = 0
    t0 = time.perf_counter()
    for p, ntok in zip(paths, sizes, strict=True):
        with open(p, "rb", buffering=0) as fh:
            fh.seek(64)
            for _ in range(ntok // (k * per)):
                fh.readinto(mv)
                w = from_numpy(buf).to(int64).numpy().reshape(k * batch, seq_len + 1)
                for i in range(0, k * batch, batch):
                    x, _y = from_numpy(w[i : i + batch, :-1]), from_numpy(w[i : i + batch, 1:])
                    n += x.numel()
    return n, time.perf_counter() - t0


_LOADERS: dict[tuple, object] = {}
PASSES = 5


def aistack_loader(
    paths, seq_len, batch, max_tokens, prefetch: int = 0, touch: bool = True
) -> tuple[int, float]:
    """One epoch of one long-lived loader (as in training: created once, then stepped); the
    first call's pass includes mapping the files' pages (reported separately). ``prefetch``:
    the loader's background thread gathers ahead (the trainer's default on GPU is 2).
    ``touch=False``: the loader without its touch-ahead (``ShardLoader.touch_ahead``), to
    compare in the same run."""
    from aistack.train.loader import ShardLoader

    key = (tuple(map(str, paths)), seq_len, batch, prefetch) + (() if touch else ("no-touch",))
    if key not in _LOADERS:
        _LOADERS[key] = ShardLoader(
            [str(p) for p in paths], seq_len=seq_len, batch_size=batch, seed=0, prefetch=prefetch
        )
        _LOADERS[key].touch_ahead = touch
    ld = _LOADERS[key]
    steps = min(max_tokens // (seq_len * batch), ld.batches_per_epoch)
    n = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = ld.next_batch()
        n += x.numel()
    return n, time.perf_counter() - t0


def loader_gather_only(paths, seq_len, batch, max_tokens) -> tuple[int, float]:
    """(info) The loader's random-window gather alone: its chunks of uint16 windows, no int64
    conversion, no tensors — where its time goes, beside the raw row's sequential read."""
    key = (tuple(map(str, paths)), seq_len, batch, 0)
    ld = _LOADERS[key]  # the single-thread loader of the row above (same mapping)
    steps = min(max_tokens // (seq_len * batch), ld.batches_per_epoch)
    n = 0
    t0 = time.perf_counter()
    b = 0
    while b < steps:
        # the epoch the loader row just used: its plan is cached, nothing is recomputed for
        # either row
        _e, _b, end, rows = ld._chunk_at(ld.epoch, b)  # noqa: SLF001 - the hot path alone
        n += rows.shape[0] * seq_len
        b = end
    return n, time.perf_counter() - t0


def naive_torch(paths, seq_len, batch, max_tokens) -> tuple[int, float]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from aistack.train.shards import open_shard

    class Windows(Dataset):
        def __init__(self) -> None:
            self.shards = [open_shard(p).tokens for p in paths]
            self.index = [
                (s, k * seq_len)
                for s, t in enumerate(self.shards)
                for k in range((len(t) - 1) // seq_len)
            ]

        def __len__(self) -> int:
            return len(self.index)

        def __getitem__(self, i: int):
            s, start = self.index[i]
            w = torch.from_numpy(self.shards[s][start : start + seq_len + 1].astype(np.int64))
            return w[:-1], w[1:]

    dl = DataLoader(
        Windows(),
        batch_size=batch,
        shuffle=True,
        num_workers=0,
        drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )
    steps = max_tokens // (seq_len * batch)
    n = 0
    t0 = time.perf_counter()
    for i, (x, _y) in enumerate(dl):
        n += x.numel()
        if i + 1 >= steps:
            break
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    a = ap.parse_args()
    import torch

    # single-thread rows are single-threaded: torch's int64 conversion (the loader's, and the
    # chunk-block raw row's) would otherwise use its intra-op threads on large chunks
    torch.set_num_threads(1)
    n_shards, per_shard = (4, 5_000_000) if a.quick else (8, 25_000_000)
    seq_len, batch = a.seq_len, a.batch
    vocab = 50_304
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        paths = make_shards(Path(tmp) / "many", n_shards, per_shard, vocab)
        total = n_shards * per_shard
        one = make_shards(Path(tmp) / "one", 1, total, vocab)  # same tokens count, one file
        raw_read(paths)  # warm the page cache
        from aistack.train.loader import ShardLoader

        probe = ShardLoader([str(p) for p in paths], seq_len=seq_len, batch_size=batch)
        chunk_batches = probe.chunk_batches  # the single-thread loader's chunk, in batches
        del probe
        raw_read(one)
        methods = [
            (
                "raw sequential read → int64 tensors",
                lambda: raw_batches(paths, seq_len, batch),
            ),
            ("(info) byte copy, no tensor", lambda: raw_read(paths)),
            (
                "(info) raw read in loader-chunk blocks, torch int64",
                lambda: raw_blocks(paths, seq_len, batch, chunk_batches),
            ),
            (
                f"ShardLoader, random windows, {n_shards} shards",
                lambda: aistack_loader(paths, seq_len, batch, total),
            ),
            (
                f"(info) ShardLoader without touch-ahead, {n_shards} shards",
                lambda: aistack_loader(paths, seq_len, batch, total, touch=False),
            ),
            (
                f"(info) ShardLoader gather only, {n_shards} shards (uint16, no tensor)",
                lambda: loader_gather_only(paths, seq_len, batch, total),
            ),
            (
                "ShardLoader, random windows, 1 shard",
                lambda: aistack_loader(one, seq_len, batch, total),
            ),
            (
                f"(2 threads) ShardLoader prefetch=2, {n_shards} shards",
                lambda: aistack_loader(paths, seq_len, batch, total, prefetch=2),
            ),
            (
                "naive Dataset+DataLoader",
                lambda: naive_torch(paths, seq_len, batch, total // 4),
            ),
        ]
        # passes interleaved (pass 1 of every method, then pass 2, ...): a burst of load on
        # the machine then hits every method alike instead of one method's five passes
        speeds: dict[str, list[float]] = {name: [] for name, _ in methods}
        counts: dict[str, int] = {}
        # the calling thread's CPU time per batch (time.thread_time: not the prefetch thread's,
        # not time blocked waiting for it) — what a training loop pays on its own thread
        caller_us: dict[str, list[float]] = {name: [] for name, _ in methods}
        for _ in range(PASSES):
            for name, fn in methods:
                cpu0 = time.thread_time()
                n, dt = fn()
                cpu = time.thread_time() - cpu0
                for ld in _LOADERS.values():
                    ld.close()  # no prefetch thread left running into the next pass
                speeds[name].append(n / dt)
                caller_us[name].append(1e6 * cpu / max(1, n // (seq_len * batch)))
                counts[name] = n
        results = {name: max(v) for name, v in speeds.items()}
        rows = [
            [name, counts[name], speeds[name][0] / 1e6, results[name] / 1e6] for name, _ in methods
        ]
        raw = results["raw sequential read → int64 tensors"]
        raw_med = statistics.median(speeds["raw sequential read → int64 tensors"])
        for r in rows:
            r.append(100.0 * results[r[0]] / raw)
            r.append(100.0 * r[2] * 1e6 / raw)
            med = statistics.median(speeds[r[0]])
            r.extend([med / 1e6, 100.0 * med / raw_med, statistics.median(caller_us[r[0]])])
        report(
            f"train_loader_b{batch}_t{seq_len}{'_quick' if a.quick else ''}",
            f"Token loader throughput ({n_shards} shards × {per_shard:,} uint16 tokens, or 1 shard of the same; "
            f"seq_len {seq_len}, batch {batch}; {PASSES} interleaved passes)",
            [
                "method",
                "tokens/pass",
                "1st pass Mtok/s",
                "best Mtok/s",
                "best % raw",
                "1st % raw",
                "median Mtok/s",
                "median % raw median",
                "caller CPU µs/batch (median)",
            ],
            rows,
            {
                "goal": "ShardLoader >= 80% of raw",
                "note": "% columns relative to the raw baseline's best pass; passes interleaved",
                "samples_mtok_s": {k: [round(x / 1e6, 1) for x in v] for k, v in speeds.items()},
                "caller_cpu_us_per_batch": {
                    k: [round(x, 2) for x in v] for k, v in caller_us.items()
                },
                "quick": a.quick,
                "seq_len": seq_len,
                "batch": batch,
                "shards": n_shards,
                "tokens_per_shard": per_shard,
            },
        )


if __name__ == "__main__":
    main()
