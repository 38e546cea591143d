"""Streaming loader over memory-mapped token shards: seeded random windows, one slice per
rank, exact resume.

Windows: shard ``i`` with ``n_i`` tokens holds ``(n_i - 1) // seq_len`` windows of
``seq_len + 1`` tokens starting at multiples of ``seq_len`` (inputs are the first
``seq_len`` tokens, targets the last ``seq_len``). Windows never cross shards; they do
cross document boundaries. Shards store documents back to back without a separator (the web
data format); with ``eos_id`` the loader serves every document followed by that id (e.g.
the tokenizer's ``<|endoftext|>``) — a virtual stream, gathered vectorized, nothing rewritten.

Order: epoch ``e`` visits all windows in ``numpy.random.default_rng([seed, e])``
permutation order; rank ``r`` of ``w`` takes every ``w``-th window starting at ``r``, so
ranks never share a window within an epoch and all ranks have the same number of
batches (the remainder of an epoch is dropped). Batch ``b`` of rank ``r`` is determined
by ``(seed, epoch, b, r)`` alone, so the position is two integers and resume is exact:
:meth:`ShardLoader.state_dict` / :meth:`ShardLoader.load_state_dict`. The state also holds a
content hash per shard (:func:`aistack.train.shards.content_hash`: header fields, document
offsets and sampled token blocks; computed once per loader, at the first save or load of a
state, never per batch), so a resume over shards whose contents changed under the same names
and token counts is refused instead of training on other data.

Hot path: batches are prepared a chunk at a time (about ``CHUNK_BYTES`` of tokens, whole
batches) by ONE vectorized gather: the shards' token bytes are memory-mapped side by side in
one reserved address range (Linux: ``mmap`` with ``MAP_FIXED`` into a ``PROT_NONE``
reservation; one shard needs nothing), and a view of that range whose item ``k`` is the
``seq_len + 1`` tokens starting at token ``k`` turns every window of every shard into one
item, so numpy copies the chunk's windows in their final order with one memcpy per window
(no sort, no scatter, no Python per shard). Before that copy, two vectorized reads of one
token each at every window's first and last position (``ShardLoader.touch_ahead``) take the
cache and TLB misses of all the chunk's windows at once, overlapped, instead of one window after
the other inside the copies. The chunk is then converted to int64 in one call (torch's, when
the loader delivers tensors), and each batch is a view of its rows. No Python per sample. Where the side-by-side mapping is not available (another
OS, shards of mixed token widths, ``eos_id``), a per-shard gather gives the same batches.

Remote shards (``s3://…`` or any fsspec URL) are copied once into
``$AISTACK_HOME/cache/shards/`` and memory-mapped from there.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import glob
import hashlib
import logging
import numbers
import os
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aistack.errors import AistackError, ValidationError, short_repr
from aistack.train.shards import SHARD_MAGIC_PREFIX, Shard, content_hash, open_shard

log = logging.getLogger(__name__)

# 2: adds "shard_hashes" (a state of version 1 loads, with a warning); the optional "shards"
# ([name, n_tokens] per shard, read only to explain a refused resume) needs no new version
STATE_VERSION = 2
# staged tokens gathered per pass (a chunk of whole batches) by the prefetch thread (or without
# torch); the calling thread, widening with torch, takes half as much. Both sizes were chosen
# with ad-hoc scripts on a 1 MiB-L2 core (not bench runs); bench/bench_train_loader.py measures
# the loader they give (README "Training loader")
CHUNK_BYTES = 1 << 20
# token dtypes that ShardLoader widens to int64 with torch (when it delivers tensors)
_TORCH_WIDENS = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.int32))


def _is_remote(p: str) -> bool:
    return "://" in p and not p.startswith("file://")


@contextlib.contextmanager
def _remote_errors(url: str) -> Iterator[None]:
    """A remote shard or folder that is missing or cannot be read (no credentials, no such
    bucket, a refused connection) is a ValidationError naming the URL, not a traceback from
    the store's client library (botocore's NoCredentialsError is not an OSError)."""
    try:
        yield
    except AistackError:
        raise
    except FileNotFoundError:
        raise ValidationError(
            f"data: shard {url} does not exist", hint="check the data paths", field="data"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any store's own error types
        from aistack.storage.objects import S3_CREDENTIALS

        raise ValidationError(
            f"data: cannot read {url}: {type(exc).__name__}: {exc}",
            hint=f"check the URL; for s3:// set {S3_CREDENTIALS}, as for aistack storage",
            field="data",
        ) from None


def _cache_remote(url: str) -> str:
    from aistack.settings import get_settings
    from aistack.train.checkpoint import url_to_fs

    cache = get_settings().home / "cache" / "shards"
    cache.mkdir(parents=True, exist_ok=True)
    fs, fpath = url_to_fs(url)
    with _remote_errors(url):
        info = fs.info(fpath)
    key = hashlib.sha256(f"{url}|{info.get('size')}|{info.get('ETag', '')}".encode()).hexdigest()
    local = cache / f"{key[:24]}-{Path(fpath).name}"
    if not local.exists():
        tmp = local.with_name(local.name + f".{os.getpid()}.tmp")
        try:
            with _remote_errors(url):
                fs.get_file(fpath, str(tmp))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.replace(tmp, local)
    return str(local)


def _head(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def _fs_head(fs: Any) -> Callable[[str], bytes]:
    return lambda f: bytes(fs.cat_file(f, start=0, end=8))


# the names aistack gives token shards: the web-data pipeline's ``shard-NNNNN.bin`` and the
# ``.tok`` files of :func:`aistack.train.shards.write_token_shard`'s users (tests, benchmarks)
SHARD_SUFFIXES = (".bin", ".tok")
# files the web-data pipeline writes beside its shards in ``dataset/``: skipped quietly
PIPELINE_FILES = frozenset({"tokenizer.json", "report.json"})


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _shown(names: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _shard_files(files: list[str], head: Callable[[str], bytes], where: str = "") -> list[str]:
    """The token shards among a directory's files (told by their first bytes): a pipeline's
    ``dataset/`` folder also holds ``tokenizer.json`` and ``report.json``, which are skipped,
    and any other file that is not a shard is skipped with a warning. A file named like a
    shard (``*.bin``, ``*.tok``) that is not one is refused: it is almost surely a damaged
    or half-copied shard, and training on the rest would quietly drop its data. A directory
    with files but no shard among them is refused too."""
    keep: list[str] = []
    skipped: list[str] = []
    for f in files:
        raw = head(f)
        if raw.startswith(SHARD_MAGIC_PREFIX):
            keep.append(f)
            continue
        name = f.rstrip("/").rsplit("/", 1)[-1]
        if name.lower().endswith(SHARD_SUFFIXES):
            what = "is empty" if not raw else "has no token shard header (AISTOK)"
            raise ValidationError(
                f"data: {f} is named like a token shard but {what}: it looks damaged or "
                "incompletely copied",
                hint="write the shard again (aistack webdata run --fresh, or "
                "aistack.train.shards.write_token_shard), or move it out of the folder, or "
                f"name the shards to use with a glob (e.g. '{where or '<dir>'}/shard-*.bin') or "
                "a list of files",
            )
        skipped.append(f)
    quiet = [f for f in skipped if f.rstrip("/").rsplit("/", 1)[-1] in PIPELINE_FILES]
    loud = [f for f in skipped if f not in quiet]
    if not keep and files:
        raise ValidationError(
            f"data: no shard files in {where or 'the folder'}: none of its {_files(len(files))} "
            f"is a token shard ({_shown(files)})",
            hint="point --data at the folder of the shards (e.g. a pipeline's out/dataset), "
            "or give shard files or a glob such as 'shards/*.bin'",
        )
    if quiet:
        log.info("data: skipped the web-data pipeline's metadata: %s", _shown(quiet))
    if loud:
        log.warning(
            "data: skipped %s: %s",
            "1 file that is not a token shard"
            if len(loud) == 1
            else f"{len(loud)} files that are not token shards",
            _shown(loud),
        )
    return keep


def _local_dir_shards(s: str) -> list[str]:
    files = sorted(
        str(p) for p in Path(s).rglob("*") if p.is_file() and not p.name.endswith(".tmp")
    )
    return _shard_files(files, _head, s.rstrip("/"))


def expand_paths(data: str | Sequence[str]) -> list[str]:
    """Files, directories (every token shard inside, sorted; other files such as a
    pipeline's ``tokenizer.json`` are skipped, a damaged ``*.bin`` / ``*.tok`` is refused),
    globs (a folder they match is read as a folder) and fsspec URLs → file list."""
    if isinstance(data, str | os.PathLike):
        items: list[Any] = [data]
    elif isinstance(data, Sequence) and not isinstance(data, bytes | bytearray):
        items = list(data)
    else:
        items = [data]
    bad = [x for x in items if not isinstance(x, str | os.PathLike)]
    if bad or not items:
        got = f"{short_repr(bad[0])} ({type(bad[0]).__name__})" if bad else "an empty list"
        raise ValidationError(
            f"data: expected a shard path, folder or glob (or a list of them), got {got}",
            hint="give shard files, a directory of shards or a glob such as 'shards/*.bin'",
            field="data",
        )
    out: list[str] = []
    for item in items:
        s = str(item)
        if _is_remote(s):
            from aistack.train.checkpoint import url_to_fs

            fs, fpath = url_to_fs(s)
            proto = s.split("://", 1)[0]
            with _remote_errors(s):
                if any(c in fpath for c in "*?["):
                    found = sorted(fs.glob(fpath))
                elif fs.isdir(fpath):
                    files = [f for f in sorted(fs.find(fpath)) if not f.endswith(".tmp")]
                    found = _shard_files(files, _fs_head(fs), s)
                else:
                    found = [fpath]
            out.extend(f"{proto}://{f}" for f in found)
            continue
        s = s.removeprefix("file://")
        if any(c in s for c in "*?["):
            for match in sorted(glob.glob(s)):
                out.extend(_local_dir_shards(match) if os.path.isdir(match) else [match])
        elif os.path.isdir(s):
            out.extend(_local_dir_shards(s))
        else:
            out.append(s)
    if not out:
        raise ValidationError(
            f"data: no shard files found for {data!r}",
            hint="give shard files, a directory of shards or a glob such as 'shards/*.bin'",
        )
    _warn_repeated(out)
    return out


def _warn_repeated(files: list[str]) -> None:
    """Warn about a shard listed more than once (a folder and a glob or file inside it, say):
    each copy is read every epoch, so its windows come that many times as often as the
    others'. Kept, not dropped: repeating a shard on purpose up-samples it."""
    counts = collections.Counter(f if _is_remote(f) else os.path.realpath(f) for f in files)
    repeated = [f"{name} ({n}×)" for name, n in counts.items() if n > 1]
    if repeated:
        log.warning(
            "data: %s listed more than once: %s; each copy is read every epoch, so its "
            "windows are seen that many times as often as the others' (list each shard once, "
            "unless that up-sampling is meant)",
            "1 shard is" if len(repeated) == 1 else f"{len(repeated)} shards are",
            _shown(repeated),
        )


def _whole(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int after checking that it is a whole number ≥ ``minimum`` (numpy
    integers count; bools, floats, text and None do not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(
            f"{name}: expected a whole number ≥ {minimum}, got {short_repr(value)} "
            f"({type(value).__name__})",
            hint=f"pass {name} as an int",
            field=name,
        )
    if value < minimum:
        raise ValidationError(
            f"{name}: must be ≥ {minimum}, got {value}",
            hint=f"pass {name} as an int ≥ {minimum}",
            field=name,
        )
    return int(value)


_PROT_NONE, _PROT_READ = 0, 1
_MAP_SHARED, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20  # Linux values
_MAP_FAILED = ctypes.c_void_p(-1).value
_HUGE_PAGE = 2 << 20  # x86-64 / arm64 (4 KiB pages) PMD size


def map_side_by_side(files: Sequence[tuple[str, int]]) -> tuple[np.ndarray, list[int]] | None:
    """Memory-map whole files one after another in one reserved address range (read-only).

    ``files``: ``(path, byte offset of interest)`` pairs. Returns a ``uint8`` array over the
    whole range and, per file, the position of its byte of interest in that array; ``None``
    where this is not available (not Linux, or the kernel refuses), and the caller then
    gathers file by file. The range is unmapped when the array and every view of it are
    gone. Nothing is copied: the pages are the page cache's, as with ``np.memmap``.
    """
    if not sys.platform.startswith("linux") or not files:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mmap, munmap = libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return None
    mmap.restype = ctypes.c_void_p
    mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64
    ]  # fmt: skip
    munmap.restype = ctypes.c_int
    munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    # each file starts on a huge-page boundary, as the kernel places a file mapping of its
    # own: the page cache's large folios are then mapped with one TLB entry per 2 MiB
    # instead of 512 (seen in /proc/self/smaps: FilePmdMapped is 0 without the alignment)
    align = _HUGE_PAGE
    sizes = [os.path.getsize(path) for path, _ in files]
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += max(align, -(-size // align) * align)
    reserved = total + align
    got_base = mmap(None, reserved, _PROT_NONE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if got_base is None or got_base == _MAP_FAILED:
        return None
    base = -(-got_base // align) * align
    try:
        for (path, _), start, size in zip(files, starts, sizes, strict=True):
            if not size:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                got = mmap(base + start, size, _PROT_READ, _MAP_SHARED | _MAP_FIXED, fd, 0)
            finally:
                os.close(fd)
            if got != base + start:
                raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
    except OSError as exc:
        munmap(got_base, reserved)
        log.debug("shards cannot be mapped side by side (%s): gathering per shard", exc)
        return None
    buf = (ctypes.c_ubyte * total).from_address(base)
    unmap = weakref.finalize(buf, munmap, got_base, reserved)  # numpy views keep ``buf`` alive
    # not at interpreter exit: a daemon prefetch thread may still be copying from the range
    # (numpy releases the GIL), and the process's exit unmaps everything anyway
    unmap.atexit = False
    region = np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)
    return region, [a + off for a, (_, off) in zip(starts, files, strict=True)]


class ShardLoader:
    """Batches ``(x, y)`` of shape ``[batch_size, seq_len]`` (int64) from token shards.

    Iterate it (endless: epochs roll over) or call :meth:`next_batch`. ``as_torch`` returns
    torch tensors (``pin_memory`` pins them for a fast ``.to("cuda", non_blocking=True)``);
    otherwise numpy arrays. ``prefetch=N`` gathers at least N batches ahead (whole chunks) in
    a background thread that also converts them to int64 (numpy's gathers and casts release
    the GIL, so this overlaps with the training step, and the caller's share of a batch is a
    slice and a tensor view); the saved position is always that of the batches handed out.
    Batches never share memory with each other: keeping or changing one affects no other. A
    batch is rows of its chunk's int64 array (converted in one call), so a batch kept alive
    keeps that array (~4 MiB) alive.
    """

    #: before a chunk's gather, read one token at each window's first and last position (all
    #: windows at once, vectorized); False only to measure the gather without it (bench)
    touch_ahead: bool = True

    def __init__(
        self,
        data: str | Sequence[str],
        *,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        as_torch: bool = True,
        pin_memory: bool = False,
        eos_id: int | None = None,
        prefetch: int = 0,
    ) -> None:
        seq_len = _whole("seq_len", seq_len, 1)
        batch_size = _whole("batch_size", batch_size, 1)
        seed = _whole("seed", seed, 0)
        world_size = _whole("world_size", world_size, 1)
        rank = _whole("rank", rank, 0)
        prefetch = _whole("prefetch", prefetch, 0)
        if eos_id is not None:
            eos_id = _whole("eos_id", eos_id, 0)
        if not rank < world_size:
            raise ValidationError(f"rank: {rank} is outside 0..{world_size - 1}", field="rank")
        self.sources = expand_paths(data)
        self.paths = [_cache_remote(p) if _is_remote(p) else p for p in self.sources]
        self.shards: list[Shard] = [open_shard(p) for p in self.paths]
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.as_torch = as_torch
        self._from_numpy: Any = None
        self._torch_int64: Any = None
        if as_torch:
            import torch

            self._from_numpy = torch.from_numpy
            self._torch_int64 = torch.int64
        self.pin_memory = pin_memory
        self.prefetch = prefetch
        self._worker: Any = None
        self._queue: Any = None
        self._stop: Any = None
        self.eos_id = None if eos_id is None else int(eos_id)
        # with eos_id: the stream each shard offers is every document followed by eos_id
        self._eos_pos: list[np.ndarray] = []
        if self.eos_id is not None:
            for s in self.shards:
                offs = np.asarray(s.doc_offsets, dtype=np.int64)
                self._eos_pos.append(offs[1:] + np.arange(len(offs) - 1, dtype=np.int64))
        lengths = [
            s.n_tokens + (len(s.doc_offsets) - 1 if self.eos_id is not None else 0)
            for s in self.shards
        ]
        # checked before anything seq_len or batch_size long is allocated (seq_len 10**9 spent
        # ~19 s and 8 GB on an index array before the data error)
        longest = max(lengths, default=0)
        if longest >= 2 and self.seq_len + 1 > longest:  # (no data at all: the data error)
            raise ValidationError(
                f"seq_len: {self.seq_len:,} needs windows of {self.seq_len + 1:,} tokens, and "
                f"the longest shard holds {longest:,} "
                f"({_files(len(lengths))}, {sum(lengths):,} tokens in all; windows never "
                "cross shards)",
                hint=f"lower seq_len to at most {max(longest - 1, 0):,}, or add longer shards",
                field="seq_len",
                seq_len=self.seq_len,
                longest_shard_tokens=longest,
            )
        counts = np.array([max(0, (n - 1) // self.seq_len) for n in lengths], np.int64)
        self._cum = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n_windows = int(self._cum[-1])
        self.batches_per_epoch = self.n_windows // self.world_size // self.batch_size
        if self.batches_per_epoch < 1:
            raise ValidationError(
                f"data: {self.n_windows} windows of {self.seq_len + 1} tokens cannot fill one batch "
                f"of {self.batch_size} per rank for {self.world_size} "
                f"rank{'s' if self.world_size != 1 else ''}",
                hint="add data, or lower seq_len / micro_batch_size",
                field="data",
            )
        self._arange: np.ndarray | None = None  # made at first use (seq_len + 1 long)
        # plain ndarray views of the memory maps (np.memmap's Python-level hooks cost per slice)
        self._tokens = [np.asarray(s.tokens) for s in self.shards]
        # a strided view per shard: row k = tokens[k*seq_len : k*seq_len + seq_len + 1]
        self._views = [
            np.lib.stride_tricks.as_strided(
                t,
                shape=(int(n), self.seq_len + 1),
                strides=(self.seq_len * t.itemsize, t.itemsize),
                writeable=False,
            )
            for t, n in zip(self._tokens, counts, strict=True)
            if self.eos_id is None  # with eos_id, windows come from the virtual stream
        ]
        # the same windows as 1-d views of opaque (seq_len + 1)-token items: numpy gathers
        # and scatters those with one memcpy per window instead of an element loop (2x faster)
        self._stage_dtype = (
            np.dtype(np.int64)
            if self.eos_id is not None
            else np.result_type(*(t.dtype for t in self._tokens))
        )
        # numpy's void items stop at 2**31 - 1 bytes: windows longer than that (seq_len ~10**9)
        # take the per-shard gather
        item_bytes = (self.seq_len + 1) * self._stage_dtype.itemsize
        fits_item = item_bytes <= np.iinfo(np.int32).max
        self._item = np.dtype((np.void, item_bytes if fits_item else 1))
        self._items: list[np.ndarray] | None = None
        if (
            fits_item
            and self.eos_id is None
            and all(t.dtype == self._stage_dtype and t.flags.c_contiguous for t in self._tokens)
        ):
            self._items = [
                np.ndarray(
                    shape=(int(n),),
                    dtype=self._item,
                    buffer=t,
                    strides=(self.seq_len * t.itemsize,),
                )
                if n
                else np.empty(0, dtype=self._item)
                for t, n in zip(self._tokens, counts, strict=True)
            ]
        # every window of every shard as one item of one view (see the module docstring):
        # ``_flat[_flat_first[s] + k * seq_len]`` is window k of shard s
        self._flat: np.ndarray | None = None
        self._flat_tokens: np.ndarray | None = None
        self._flat_first = np.zeros(len(self.shards), dtype=np.int64)
        if self._items is not None:
            self._flat_view()
        self.epoch = 0
        self.batch = 0
        self._perm: np.ndarray | None = None
        self._perm_epoch = -1
        self._plan_epoch = -1
        self._plan_ids = np.empty((0, self.batch_size), dtype=np.int64)
        # batches are gathered a chunk at a time (about CHUNK_BYTES of the shards' token
        # dtype, small enough to stay in the CPU cache): the Python work is paid once per
        # chunk (one gather, one int64 conversion), a batch is a view. The per-shard fallback
        # gathers into a reused staging buffer.
        batch_bytes = self.batch_size * (self.seq_len + 1) * self._stage_dtype.itemsize
        chunk = CHUNK_BYTES if self.prefetch or not as_torch else CHUNK_BYTES // 2
        self.chunk_batches = max(1, min(self.batches_per_epoch, chunk // batch_bytes))
        self._stage: np.ndarray | None = None
        self._chunk: tuple[int, int, int, np.ndarray] | None = None
        vocabs = {s.vocab_size for s in self.shards if s.vocab_size}
        self.vocab_size: int | None = max(vocabs) if vocabs else None
        self.fingerprint = hashlib.sha256(
            "|".join(
                f"{src.rstrip('/').rsplit('/', 1)[-1]}:{s.n_tokens}"
                for src, s in zip(self.sources, self.shards, strict=True)
            ).encode()
        ).hexdigest()[:16]

    def _flat_view(self) -> None:
        """Set ``_flat`` (item ``k``: the ``seq_len + 1`` tokens from token ``k`` of one address
        space) and ``_flat_first`` (each shard's token 0 in it): one shard's own mapping, or
        all shards mapped side by side; left ``None`` where neither applies."""
        size = self._stage_dtype.itemsize
        if len(self._tokens) == 1:
            flat, first = self._tokens[0].view(np.uint8), [0]
        else:
            spans, which = [], []
            for i, shard in enumerate(self.shards):
                t = shard.tokens
                if not t.shape[0]:
                    continue  # no windows: nothing to map
                name, offset = getattr(t, "filename", None), getattr(t, "offset", None)
                if name is None or offset is None or offset % size:
                    return  # not a plain file mapping: gather per shard
                spans.append((str(name), int(offset)))
                which.append(i)
            mapped = map_side_by_side(spans)
            if mapped is None:
                return
            flat, got = mapped
            first = [0] * len(self.shards)
            for i, pos in zip(which, got, strict=True):
                first[i] = pos
        n = (flat.shape[0] - self._item.itemsize) // size + 1
        if n < 1:
            return
        self._flat = np.ndarray(shape=(n,), dtype=self._item, buffer=flat, strides=(size,))
        self._flat_tokens = flat[: flat.shape[0] - flat.shape[0] % size].view(self._stage_dtype)
        self._flat_first = np.asarray(first, dtype=np.int64) // size

    # ------------------------------------------------------------------ order
    @property
    def n_tokens(self) -> int:
        return int(sum(s.n_tokens for s in self.shards))

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = rng.permutation(self.n_windows)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def _plan(self, epoch: int) -> np.ndarray:
        """This rank's whole epoch at once: ``[batches, batch_size]`` global window ids,
        each batch sorted (vectorized, once per epoch)."""
        if self._plan_epoch != epoch:
            perm = self._permutation(epoch)
            n = self.batches_per_epoch * self.batch_size
            ids = perm[self.rank : self.rank + n * self.world_size : self.world_size]
            self._plan_ids = np.sort(ids.reshape(self.batches_per_epoch, self.batch_size), axis=1)
            self._plan_epoch = epoch
        return self._plan_ids

    def window_ids(self, epoch: int, batch: int) -> np.ndarray:
        """Global window ids of one batch of this rank."""
        perm = self._permutation(epoch)
        j = (batch * self.batch_size + np.arange(self.batch_size, dtype=np.int64)) * self.world_size
        return perm[j + self.rank]

    def shard_of(self, ids: np.ndarray) -> np.ndarray:
        """Index (into ``sources``/``shards``) of the shard holding each global window id."""
        return np.searchsorted(self._cum, np.asarray(ids, dtype=np.int64), side="right") - 1

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Tokens of the given windows, ``[len(ids), seq_len + 1]`` int64 (vectorized).

        Rows come back in ascending window id (shard, then position) order: the order of
        samples inside a batch does not change the batch, and it turns the per-shard gather
        into forward passes over each file.
        """
        ids = np.sort(np.asarray(ids, dtype=np.int64).ravel())
        if ids.size and (ids[0] < 0 or ids[-1] >= self.n_windows):
            raise ValidationError(f"ids: window ids must lie in 0..{self.n_windows - 1}")
        return self._gather(ids).astype(np.int64, copy=False)

    def _gather(self, ids: np.ndarray, stage: np.ndarray | None = None) -> np.ndarray:
        """Tokens of windows ``ids`` in that order, ``[len(ids), seq_len + 1]`` of the staging
        dtype: one gather from the single view of all shards (a fresh array), else per shard
        into ``stage`` (or a fresh array)."""
        if self._flat is not None and ids.shape[0]:
            shard = np.searchsorted(self._cum, ids, side="right") - 1
            starts = self._flat_first[shard] + (ids - self._cum[shard]) * self.seq_len
            if self.touch_ahead:
                # one token at each window's first and last position, for all windows at once:
                # these loads are independent, so the CPU overlaps their cache and TLB misses
                # (a window spans at most two pages), which the copies below, one window after
                # the other, would each wait for in turn
                tok: np.ndarray = self._flat_tokens  # type: ignore[assignment]  # set with _flat
                tok[starts]
                tok[starts + self.seq_len]
            rows = self._flat[starts]  # one memcpy per window, in C
            return rows.view(self._stage_dtype).reshape(ids.shape[0], self.seq_len + 1)
        if stage is None:
            stage = np.empty((ids.shape[0], self.seq_len + 1), dtype=self._stage_dtype)
        self._gather_into(stage, ids)
        return stage

    def _gather_into(self, out: np.ndarray, ids: np.ndarray) -> None:
        """``out[i]`` = the tokens of window ``ids[i]``, for ids in any order; ``out`` is a
        C-contiguous ``[len(ids), seq_len + 1]`` array of the staging dtype.

        One vectorized pass per shard touched: the rows of a shard are found with one
        argsort of the ids (global ids are shard-major, so sorting groups them by shard and
        orders each group by file position), then gathered from the shard's window view and
        written straight into their rows of ``out``.
        """
        if ids.shape[0] == 0:
            return
        order = np.argsort(ids, kind="stable")
        sids = ids[order]
        first, last = (np.searchsorted(self._cum, sids[[0, -1]], side="right") - 1).tolist()
        dest = out.view(self._item).reshape(-1) if self._items is not None else out
        if first == last and not np.any(order[1:] < order[:-1]):  # one shard, in order
            dest[...] = self._rows(first, sids - self._cum[first])
            return
        bounds = np.searchsorted(sids, self._cum[first : last + 2], side="left").tolist()
        for k, s in enumerate(range(first, last + 1)):
            a, b = bounds[k], bounds[k + 1]
            if a < b:
                dest[order[a:b]] = self._rows(s, sids[a:b] - self._cum[s])

    def _rows(self, s: int, local: np.ndarray) -> np.ndarray:
        """Windows ``local`` of shard ``s``: ``[len(local)]`` window items, else
        ``[len(local), seq_len + 1]`` tokens (shard dtype, or int64 with ``eos_id``)."""
        if self._items is not None:
            return self._items[s][local]  # one memcpy per window, in C
        if self.eos_id is None:
            return self._views[s][local]
        # the virtual stream 'doc, EOS, doc, EOS, …': virtual position p holds EOS when p is
        # an EOS position, else token p - (EOS before p)
        eos = self._eos_pos[s]
        if self._arange is None:
            self._arange = np.arange(self.seq_len + 1, dtype=np.int64)
        pos = local[:, None] * self.seq_len + self._arange
        before = np.searchsorted(eos, pos, side="left")
        is_eos = np.zeros(pos.shape, dtype=bool)
        inside = before < eos.shape[0]
        is_eos[inside] = eos[before[inside]] == pos[inside]
        if not self.shards[s].n_tokens:  # only empty documents: the stream is all EOS
            return np.full(pos.shape, self.eos_id, dtype=np.int64)
        real = np.minimum(pos - before, self.shards[s].n_tokens - 1)
        return np.where(is_eos, self.eos_id, self._tokens[s][real])

    # ------------------------------------------------------------------ batches
    def _chunk_at(
        self, epoch: int, batch: int, *, fresh: bool = False
    ) -> tuple[int, int, int, np.ndarray]:
        """Batches ``batch`` .. ``batch + chunk_batches - 1`` of ``epoch`` (capped at the epoch
        end), gathered in one pass into a new array (the per-shard fallback reuses its staging
        buffer unless ``fresh``; the shards' token dtype; rows ``[k * batch_size, (k + 1) * batch_size)`` are batch
        ``batch + k``)."""
        end = min(batch + self.chunk_batches, self.batches_per_epoch)
        ids = self._plan(epoch)[batch:end].reshape(-1)
        stage = None
        if not fresh and self._flat is None:
            if self._stage is None:
                rows = self.chunk_batches * self.batch_size
                self._stage = np.empty((rows, self.seq_len + 1), dtype=self._stage_dtype)
            stage = self._stage[: ids.shape[0]]
        return epoch, batch, end, self._gather(ids, stage)

    def _chunk_for(self, epoch: int, batch: int) -> tuple[int, int, int, np.ndarray]:
        """The chunk holding batch ``batch`` of ``epoch`` (gathered now, or by the prefetch
        thread)."""
        if self.prefetch:
            c = self._next_chunk(epoch, batch)
            assert c[0] == epoch and c[1] == batch, "prefetch out of step"
        else:  # one int64 conversion for the whole chunk (a new array: the stage is reused)
            e, b, end, rows = self._chunk_at(epoch, batch)
            c = (e, b, end, self._widen(rows))
        self._chunk = c
        return c

    def _widen(self, rows: np.ndarray) -> np.ndarray:
        """A chunk's tokens as a new int64 array, on the calling thread. With torch loaded,
        torch's conversion does it (an int64 tensor seen as a numpy array, sharing its memory):
        faster than numpy's ``astype`` from uint16 on chunks of this size on one thread, in an
        ad-hoc script (the loader bench measures the whole loader). The prefetch thread keeps
        numpy's: there torch's conversion was slower and uneven in the same kind of script (it
        shares torch's intra-op threads with the training step)."""
        if self._torch_int64 is not None and rows.dtype in _TORCH_WIDENS:
            try:
                return self._from_numpy(rows).to(self._torch_int64).numpy()
            except TypeError:  # a torch without that dtype (uint16 came in torch 2.3)
                pass
        return rows.astype(np.int64)

    def next_batch(self) -> tuple[Any, Any]:
        """``(x, y)`` of the next batch for this rank: views of its ``[batch_size, seq_len + 1]``
        rows of the chunk's int64 array (or tensors over them). The per-batch path is kept to a
        few attribute reads and two views (it runs once per training step)."""
        batch = self.batch
        if batch >= self.batches_per_epoch:
            self.epoch += 1
            batch = 0
        self.batch = batch + 1
        c = self._chunk
        if c is None or c[0] != self.epoch or not c[1] <= batch < c[2]:
            c = self._chunk_for(self.epoch, batch)
        i = (batch - c[1]) * self.batch_size
        w = c[3][i : i + self.batch_size]  # rows of the chunk's own int64 array
        if not self.as_torch:
            return w[:, :-1], w[:, 1:]
        if self.pin_memory:
            t = self._from_numpy(w).pin_memory()
            return t[:, :-1], t[:, 1:]
        # two from_numpy of numpy views cost less than slicing one tensor twice
        return self._from_numpy(w[:, :-1]), self._from_numpy(w[:, 1:])

    # ------------------------------------------------------------------ prefetch
    def _next_chunk(self, epoch: int, batch: int) -> tuple[int, int, int, np.ndarray]:
        """The next chunk from the prefetch thread (started at ``epoch``, ``batch`` if it is
        not running)."""
        if self._worker is None:
            self._start_worker(epoch, batch)
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._stop_worker()
            raise item
        return item

    def _start_worker(self, epoch: int, batch: int) -> None:
        import queue
        import threading

        # whole chunks travel (one hand-over per chunk, not per batch); at least
        # ``prefetch`` batches are ready ahead, as a whole number of chunks
        self._queue = queue.Queue(maxsize=-(-self.prefetch // self.chunk_batches))
        self._stop = threading.Event()

        def work(q: queue.Queue[Any], stop: threading.Event, epoch: int, batch: int) -> None:
            try:
                while not stop.is_set():
                    if batch >= self.batches_per_epoch:
                        epoch, batch = epoch + 1, 0
                    e, b, end, rows = self._chunk_at(epoch, batch, fresh=True)
                    # the int64 conversion of the whole chunk happens here too (as in
                    # _chunk_for): the training thread only hands out views of it
                    item = (e, b, end, rows.astype(np.int64))  # numpy: see _widen
                    batch = end
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                q.put(exc)

        self._worker = threading.Thread(
            target=work, args=(self._queue, self._stop, epoch, batch), daemon=True,
            name="aistack-loader-prefetch",
        )  # fmt: skip
        self._worker.start()

    def _stop_worker(self) -> None:
        if self._worker is None:
            return
        self._stop.set()
        while self._worker.is_alive():
            with contextlib.suppress(Exception):
                while True:
                    self._queue.get_nowait()
            self._worker.join(timeout=0.05)
        self._worker = None
        self._chunk = None  # the thread restarts at the position of the batches handed out

    def close(self) -> None:
        """Stop the prefetch thread (if any)."""
        self._stop_worker()

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        while True:
            yield self.next_batch()

    # ------------------------------------------------------------------ resume
    _shard_hashes: list[str] | None = None  # content_hash per shard, computed once

    def shard_hashes(self) -> list[str]:
        """:func:`~aistack.train.shards.content_hash` of each shard, in order (computed at the
        first call: a few pages read per shard)."""
        if self._shard_hashes is None:
            self._shard_hashes = [content_hash(s) for s in self.shards]
        return self._shard_hashes

    def state_dict(self) -> dict[str, Any]:
        """Position and what it depends on (the same on every rank)."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "batch": self.batch,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "fingerprint": self.fingerprint,
            "eos_id": self.eos_id,
            "batches_yielded": self.epoch * self.batches_per_epoch + self.batch,
            "shard_hashes": list(self.shard_hashes()),
            # what the fingerprint is made of, so a refused resume can say which shards differ
            "shards": self._shard_list(),
        }

    def _shard_list(self) -> list[list[Any]]:
        """``[name, n_tokens]`` per shard, in order (the fingerprint's inputs)."""
        return [
            [src.rstrip("/").rsplit("/", 1)[-1], s.n_tokens]
            for src, s in zip(self.sources, self.shards, strict=True)
        ]

    def _fingerprint_error(self, state: dict[str, Any]) -> ValidationError:
        """The error for a checkpoint whose shard list (names, token counts) is not this
        run's: which shards differ when the state records them (states since the list was
        recorded), else the two fingerprints."""
        hint = (
            "resume with the shards the run was started on, or start a new run: another "
            "--run-name, or --no-resume (moves this run's checkpoints aside)"
        )
        want = state.get("shards")
        try:
            theirs = [(str(n), int(t)) for n, t in want] if want is not None else None
        except (TypeError, ValueError):
            theirs = None
        if not theirs:
            return ValidationError(
                f"fingerprint: the checkpoint's loader has {state.get('fingerprint')!r}, this "
                f"run has {self.fingerprint!r}: the shard names or token counts differ (this "
                f"checkpoint does not record its shard list; this run has {len(self.shards)} "
                f"shards: {_shown([n for n, _ in self._shard_list()])})",
                hint=hint,
            )
        ours = [(str(n), int(t)) for n, t in self._shard_list()]
        have, had = dict(ours), dict(theirs)
        parts = []
        gone = [n for n, _ in theirs if n not in have]
        new = [n for n, _ in ours if n not in had]
        if gone:
            parts.append(f"only in the checkpoint: {_shown(gone)}")
        if new:
            parts.append(f"only in this run: {_shown(new)}")
        resized = [
            f"{n} ({had[n]:,} tokens, now {t:,})" for n, t in ours if n in had and had[n] != t
        ]
        if resized:
            parts.append(f"other token count: {_shown(resized)}")
        if not parts:
            parts.append("the same shards in another order")
        lists = (
            f"checkpoint: {_shown([n for n, _ in theirs], 8)}; "
            f"this run: {_shown([n for n, _ in ours], 8)}"
        )
        return ValidationError(
            f"data: the shards differ from the checkpoint's ({'; '.join(parts)}) — {lists}",
            hint=hint,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where ``state`` left off; refuses a different data layout, and
        shards whose contents changed (same names and token counts, other content hash). A
        state without content hashes (written before they were recorded) loads with a
        warning."""
        state.setdefault("eos_id", None)
        for key in ("seed", "seq_len", "batch_size", "world_size", "fingerprint", "eos_id"):
            have, want = getattr(self, key), state.get(key)
            if have != want and key == "fingerprint":
                raise self._fingerprint_error(state)
            if have != want:
                raise ValidationError(
                    f"{key}: the checkpoint's loader has {want!r}, this run has {have!r}",
                    hint="resume with the same data, seq_len, micro_batch_size, seed and number "
                    "of processes, or start a new run: another --run-name, or --no-resume",
                )
        self._check_contents(state.get("shard_hashes"))
        self._stop_worker()  # batches read ahead belong to the old position
        # and the cached chunk too: its batches were handed out as views, which the caller
        # may have changed in place (a rewind into it would serve them changed)
        self._chunk = None
        self.epoch = int(state["epoch"])
        self.batch = int(state["batch"])

    def _check_contents(self, want: Any) -> None:
        if want is None:
            log.warning(
                "the checkpoint's loader state has no shard content hashes (written by an "
                "older aistack): resuming without checking that the %d shards still hold the "
                "same data (names and token counts match)",
                len(self.shards),
            )
            return
        have = self.shard_hashes()
        names = [src.rstrip("/").rsplit("/", 1)[-1] for src in self.sources]
        if not isinstance(want, list) or len(want) != len(have):
            raise ValidationError(
                f"data: the checkpoint's loader state has content hashes for "
                f"{len(want) if isinstance(want, list) else '?'} shards, this run has "
                f"{len(have)} shards",
                hint="resume with the data the run was started on, or start a new run name",
            )
        changed = [n for n, a, b in zip(names, have, want, strict=True) if a != b]
        if changed:
            shown = ", ".join(changed[:5]) + (
                f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            )
            raise ValidationError(
                f"data: {len(changed)} of {len(have)} shards changed since the checkpoint was "
                f"written (same file names and token counts, other contents): {shown}",
                hint="resume with the shards the run was started on (a re-tokenized dataset is "
                "other data), or start a new run name (--run-name) or --no-resume",
            )
