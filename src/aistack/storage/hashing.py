"""Hashes and content-defined chunking.

Measured on the project's 2-core machine (256 MiB random buffer, one thread):
BLAKE3 (``blake3`` package, Rust) ~4.0 GB/s, SHA-256 (hashlib/OpenSSL) ~1.7 GB/s, FastCDC
(``pyfastcdc``, Cython, releases the GIL) ~3 GB/s at 1 MiB average chunks. BLAKE3 is the default
for new stores; SHA-256 is the fallback when ``blake3`` is not installed. A store records its
algorithm once (``cas/config.json``) so every client hashes the same way.

Chunking: files smaller than ``min_size`` are one object (its id is the hash of the bytes). Larger
files are cut by FastCDC 2020 (gear hash, normalized chunking) into chunks of ``min_size`` to
``max_size`` bytes around ``avg_size``; a change in one place moves only the chunks around it, so a
re-add uploads about the changed bytes plus one or two chunks. Without ``pyfastcdc`` the chunker
falls back to fixed-size chunks (correct, but an insertion then shifts every later chunk).

Large files (``ChunkPolicy.large_from`` bytes and up, 256 MiB for new stores) are cut into bigger
chunks (3.5-16 MiB, ~5 MiB on average): a 2 GiB file is ~400 objects instead of ~1,700. Each
object is a file create (or an S3 PUT), and on the project machine's ext4 a create costs 0.1-1 ms,
which was the largest single cost of adding a big file. The gear hash only looks for a cut after
the minimum, so a minimum close to the average leaves it less to scan: the bench's chunker row
(``bench/bench_storage_throughput.py``, 256 MiB) went from 4,893 MiB/s with 2/4/16 MiB chunks to
10,366 MiB/s with 3.5/4/16. An ad-hoc A/B script (not a bench run) put a 2 GiB add at 1.005 s
against 1.157 s and 1.068 s against 1.157 s (medians of 6 alternating runs), and found the price
in dedup: 4 edits of 1.3 MiB in 512 MiB re-wrote 42.5 MiB instead of 27.8 MiB. Stores keep the sizes
recorded in their configuration (stores made with 2/4/16 keep it; stores created before the tier
existed have no ``large_chunks`` entry and keep one chunk size for every
file, so their re-adds still deduplicate.

Big buffers are chunked in parallel (:func:`cut_offsets_parallel`): segments are cut by threads as
if a chunker started at each, and stitched where the real chain of boundaries meets a segment's
own, so the boundaries are exactly the serial ones (a re-add still deduplicates against versions
chunked serially). On the 2-core project machine it gains nothing measurable: the bench's
chunker rows (256 MiB buffer, large tier, 2 threads) gave 4,795 MiB/s parallel against 4,893 MiB/s
serial, and a whole add is CPU-bound there anyway (chunking, BLAKE3 and the kernel copies into
~400 new files share the two cores). It is kept because it is exact and removes the one-chunker
ceiling where cores are spare; that gain is not measured here.

The hash of a chunked file is the hash of ``"aistack-chunks-v1\\n"`` followed by its chunk ids, one
per line (a Merkle list): strong, and it costs no second pass over the bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import sys
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aistack.errors import ConflictError, MissingDependency, ValidationError

log = logging.getLogger(__name__)

ALGORITHMS = ("blake3", "sha256")


def have_blake3() -> bool:
    try:
        import blake3  # noqa: F401
    except ImportError:
        return False
    return True


def default_algorithm() -> str:
    return "blake3" if have_blake3() else "sha256"


def hasher_factory(algo: str) -> Callable[[], Any]:
    """A zero-argument constructor of a hashlib-like object for ``algo``."""
    if algo == "sha256":
        return hashlib.sha256
    if algo == "blake3":
        try:
            import blake3
        except ImportError as exc:
            raise MissingDependency("blake3") from exc
        return blake3.blake3
    raise ValidationError(
        f"unknown hash algorithm {algo!r}", hint=f"use one of {', '.join(ALGORITHMS)}"
    )


def digest(algo: str, data: bytes | bytearray | memoryview) -> str:
    h = hasher_factory(algo)()
    h.update(data)
    return str(h.hexdigest())


def chunk_list_hash(algo: str, chunk_ids: list[str]) -> str:
    """The id of a chunked file: the hash of its chunk-id list."""
    payload = ("aistack-chunks-v1\n" + "\n".join(chunk_ids) + "\n").encode()
    return digest(algo, payload)


@dataclass(frozen=True, kw_only=True)
class ChunkParams:
    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024

    def to_dict(self) -> dict[str, int]:
        return {"min_size": self.min_size, "avg_size": self.avg_size, "max_size": self.max_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkParams:
        """Sizes as a store's configuration records them; refused (ValidationError) where
        the chunker could not cut with them, so a hand-edited configuration fails when the
        store opens, naming the size, not in the middle of an add."""
        p = cls(
            min_size=int(d["min_size"]), avg_size=int(d["avg_size"]), max_size=int(d["max_size"])
        )
        p.check()
        return p

    def check(self) -> None:
        """``min ≤ avg ≤ max`` and, past the bytes skipped after each cut (``min_size`` above
        1 MiB), the ranges FastCDC (pyfastcdc) accepts."""
        if not 0 < self.min_size <= self.avg_size <= self.max_size:
            raise ValidationError(
                f"chunk sizes: need 0 < min_size ≤ avg_size ≤ max_size, got {self.to_dict()}",
                hint="restore the store's cas/config.json, or use e.g. 2/4/16 MiB",
            )
        skip = _skip_for(self)
        for name, value, low, high in (
            ("min_size", self.min_size - skip, 64, 1 << 20),
            ("avg_size", self.avg_size - skip, 256, 4 << 20),
            ("max_size", self.max_size - skip, 1024, 16 << 20),
        ):
            if not low <= value <= high:
                raise ValidationError(
                    f"chunk sizes {self.to_dict()}: {name} − {skip} skipped bytes = {value} B is "
                    f"outside FastCDC's range {low}..{high} B",
                    hint="avg_size may exceed min_size by at most 3 MiB and max_size by at most "
                    "15 MiB (e.g. 2/4/16 MiB)",
                )


@dataclass(frozen=True, kw_only=True)
class ChunkPolicy:
    """Chunk sizes by file size: ``large`` applies to files of ``large_from`` bytes and up,
    ``huge`` to files of ``huge_from`` bytes and up (checked first).

    Bigger chunks for bigger files: a 1 % change still re-uploads about 1 % of a multi-GiB
    file, while the number of objects (a file created, hashed, copied and renamed each) stays
    in the hundreds. A store records its policy when it is created; a store whose
    configuration predates a tier keeps chunking as before, so new versions still
    deduplicate against the stored ones.
    """

    small: ChunkParams = field(default_factory=ChunkParams)
    large: ChunkParams | None = None
    large_from: int = 0
    huge: ChunkParams | None = None
    huge_from: int = 0

    def for_size(self, size: int) -> ChunkParams:
        if self.huge is not None and size >= self.huge_from:
            return self.huge
        if self.large is not None and size >= self.large_from:
            return self.large
        return self.small

    @classmethod
    def default(cls) -> ChunkPolicy:
        """The policy of a new store: 256 KiB–4 MiB chunks, 3.5–16 MiB from 256 MiB, 14–28 MiB
        from 1 GiB (a 2 GiB file is ~120 objects instead of ~420; bench_storage_throughput.py
        adds it to a store with 4 MiB chunks beside the default in the same run)."""
        return cls(
            small=ChunkParams(),
            large=ChunkParams(min_size=7 << 19, avg_size=4 << 20, max_size=16 << 20),
            large_from=256 * 1024 * 1024,
            huge=ChunkParams(min_size=14 << 20, avg_size=16 << 20, max_size=28 << 20),
            huge_from=1024 * 1024 * 1024,
        )

    def to_config(self) -> dict[str, Any]:
        """``chunks`` (read by every client) and, when set, ``large_chunks`` and
        ``huge_chunks`` (each with its ``from_size``)."""
        out: dict[str, Any] = {"chunks": self.small.to_dict()}
        if self.large is not None:
            out["large_chunks"] = {**self.large.to_dict(), "from_size": self.large_from}
        if self.huge is not None:
            out["huge_chunks"] = {**self.huge.to_dict(), "from_size": self.huge_from}
        return out

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ChunkPolicy:
        small = ChunkParams.from_dict(cfg["chunks"])
        tiers: dict[str, Any] = {}
        for name in ("large", "huge"):
            tier = cfg.get(f"{name}_chunks")
            if tier is None:
                continue
            try:
                start = int(tier["from_size"])
            except (KeyError, TypeError, ValueError):
                start = -1
            if start < 1:
                raise ValidationError(
                    f"{name}_chunks: from_size must be a positive number of bytes, got "
                    f"{tier.get('from_size') if isinstance(tier, dict) else tier!r}",
                    hint="restore the store's cas/config.json",
                )
            tiers[name] = ChunkParams.from_dict(tier)
            tiers[f"{name}_from"] = start
        return cls(small=small, **tiers)


def _have_pyfastcdc() -> bool:
    try:
        import pyfastcdc  # noqa: F401
    except ImportError:
        return False
    return True


def cut(buf: bytes | bytearray | memoryview, params: ChunkParams) -> Iterator[memoryview]:
    """Cut ``buf`` into content-defined chunks (views into ``buf``, no copies)."""
    mv = memoryview(buf)
    n = len(mv)
    if n <= params.min_size:
        yield mv
        return
    for off, length in cut_offsets(mv, params):
        yield mv[off : off + length]


def cut_offsets(
    buf: bytes | bytearray | memoryview, params: ChunkParams
) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of the chunks :func:`cut` yields (the same boundaries).

    The cutting runs without the GIL, so a caller can hash and write earlier chunks in other
    threads meanwhile. No view of ``buf`` is kept once a pair is yielded.
    """
    n = len(buf)
    if n <= params.min_size:
        yield 0, n
        return
    if not _have_pyfastcdc():
        log.warning("pyfastcdc is not installed: fixed-size chunks (pip install pyfastcdc)")
        for off in range(0, n, params.avg_size):
            yield off, min(params.avg_size, n - off)
        return
    mv = memoryview(buf)
    try:
        skip = _skip_for(params)
        if skip:
            yield from _cut_skipping(mv, params, skip)
            return
        it = _fastcdc(params).cut_buf(mv)
        try:
            for c in it:
                off, length = c.offset, c.length
                del c  # the chunk holds a view of buf
                yield off, length
        finally:
            del it
    finally:
        with contextlib.suppress(BufferError):
            mv.release()  # so that the caller can close a mapping of buf


_FASTCDC_MAX_MIN = 1024 * 1024  # pyfastcdc refuses a larger min_size


def _cut_skipping(mv: memoryview, params: ChunkParams, skip: int) -> Iterator[tuple[int, int]]:
    """Chunks with ``min_size`` above pyfastcdc's 1 MiB bound: after each boundary the first
    ``skip`` bytes are not scanned, and FastCDC (``min_size - skip``, ``avg_size - skip``,
    ``max_size - skip``) cuts the rest. Still content-defined (a boundary depends only on the
    bytes after the previous one); the gear hash runs over fewer bytes, so cutting costs less."""
    cdc = _fastcdc(_sub_params(params, skip))
    n = len(mv)
    pos = 0
    while pos < n:
        length = _next_length(mv, pos, params, skip, cdc)
        yield pos, length
        pos += length


def _skip_for(params: ChunkParams) -> int:
    return max(0, params.min_size - _FASTCDC_MAX_MIN)


def _sub_params(params: ChunkParams, skip: int) -> ChunkParams:
    if not skip:
        return params
    return ChunkParams(
        min_size=params.min_size - skip,
        avg_size=params.avg_size - skip,
        max_size=params.max_size - skip,
    )


def _next_length(mv: memoryview, pos: int, params: ChunkParams, skip: int, cdc: Any) -> int:
    """Length of the chunk that starts at boundary ``pos``: a function of the bytes from ``pos``
    to the end of ``mv`` only (FastCDC keeps no state between chunks), the same whether the
    chunker started at 0 or anywhere else. Equal to what :func:`cut_offsets` yields there."""
    n = len(mv)
    if n - pos <= params.min_size:
        return n - pos
    window = mv[pos + skip :]
    try:
        it = cdc.cut_buf(window)
        c = next(it)
        length = skip + int(c.length)
        del c, it
    finally:
        window.release()
    return length


def _chain(
    mv: memoryview,
    params: ChunkParams,
    start: int,
    stop: int,
    populate: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Chunk starts of a chunker started at ``start``, up to and including the first one at or
    after ``stop`` (or ``len(mv)``). ``populate(start, stop)`` maps the pages first."""
    if populate is not None:
        populate(start, stop)
    skip = _skip_for(params)
    cdc = _fastcdc(_sub_params(params, skip))
    n = len(mv)
    out = [start]
    pos = start
    while pos < stop and pos < n:
        pos += _next_length(mv, pos, params, skip, cdc)
        out.append(pos)
    return out


_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14


def _populator(buf: Any) -> Callable[[int, int], None] | None:
    """For an ``mmap``: a function that maps a range of it in one call (``MADV_POPULATE_READ``)
    instead of a page fault every 16 pages while the chunker and the hashers read it (a profile,
    not a bench figure, put the saving at a few percent of hashing's CPU time). Best effort: older kernels refuse the advice, which is then
    skipped."""
    madvise = getattr(buf, "madvise", None)
    if madvise is None or not sys.platform.startswith("linux"):
        return None
    size = len(buf)

    def populate(start: int, stop: int) -> None:
        first = start - start % mmap.PAGESIZE
        with contextlib.suppress(OSError, ValueError):
            madvise(_MADV_POPULATE_READ, first, min(stop, size) - first)

    return populate


PARALLEL_FROM = 128 * 1024 * 1024
"""Buffers of this size and up are chunked by :func:`cut_offsets_parallel` in segments."""

SEGMENT_MIN = 64 * 1024 * 1024
"""Smallest segment of :func:`cut_offsets_parallel` (and at least 16 ``max_size`` chunks): each
segment costs the few chunks its own chain runs before the real chain meets it."""


def cut_offsets_parallel(
    buf: bytes | bytearray | memoryview,
    params: ChunkParams,
    *,
    threads: int | None = None,
    segment: int | None = None,
) -> Generator[tuple[int, int], None, None]:
    """The chunks of :func:`cut_offsets` (exactly the same boundaries), found by ``threads``
    chunkers working on segments of ``buf`` at once.

    Each segment is chunked as if a chunker started at its first byte. That start is (almost
    always) not a real boundary, but a chunk boundary depends only on the bytes after the
    previous one, so once the real chain of boundaries, carried over from the previous segment,
    lands on a boundary of the segment's own chain, the two chains are the same from there on.
    The stitching here continues the real chain chunk by chunk (in the calling thread) until
    that happens, usually within a few chunks, and then takes the segment's boundaries. Data
    that never resynchronises (e.g. long runs of zeros, where every chunk is ``max_size``) is
    chunked serially: slower, still exact. Boundaries must never depend on how a file was
    chunked, or re-adds would stop deduplicating against the versions already stored.
    """
    n = len(buf)
    threads = threads or os.cpu_count() or 1
    seg = segment or max(SEGMENT_MIN, 16 * params.max_size)
    if threads < 2 or n < max(PARALLEL_FROM if segment is None else 0, 2 * seg):
        yield from cut_offsets(buf, params)
        return
    if n <= params.min_size or not _have_pyfastcdc():
        yield from cut_offsets(buf, params)
        return
    mv = memoryview(buf)
    skip = _skip_for(params)
    cdc = _fastcdc(_sub_params(params, skip))
    starts = list(range(0, n, seg))
    try:
        with ThreadPoolExecutor(
            min(threads, len(starts)), thread_name_prefix="aistack-cdc"
        ) as pool:
            populate = _populator(buf)
            futs = [pool.submit(_chain, mv, params, s, min(s + seg, n), populate) for s in starts]
            try:
                pos = 0
                for s, fut in zip(starts, futs, strict=True):
                    end = min(s + seg, n)
                    if pos >= end:  # the real chain already passed this segment
                        fut.cancel()
                        continue
                    chain = fut.result()
                    index = {p: i for i, p in enumerate(chain)}
                    while pos not in index and pos < end:
                        length = _next_length(mv, pos, params, skip, cdc)
                        yield pos, length
                        pos += length
                    i = index.get(pos)
                    if i is not None:
                        for a, b in zip(chain[i:], chain[i + 1 :], strict=False):
                            yield a, b - a
                        pos = chain[-1]
                if pos != n:  # pragma: no cover - a bug, never a silently different chunking
                    raise AssertionError(f"parallel chunking ended at {pos} of {n}")
            finally:
                for f in futs:
                    f.cancel()
    finally:
        with contextlib.suppress(BufferError):
            mv.release()


@lru_cache(maxsize=8)
def _fastcdc(params: ChunkParams) -> Any:
    import pyfastcdc

    return pyfastcdc.FastCDC(
        params.avg_size, min_size=params.min_size, max_size=params.max_size, normalized_chunking=1
    )


def read_chunks(
    fd: int, size: int, params: ChunkParams, *, segment: int | None = None
) -> Iterator[tuple[int, memoryview]]:
    """The chunks of :func:`cut_offsets` over the first ``size`` bytes of file ``fd`` (exactly
    the same boundaries), read with ``preadv`` into buffers of about ``segment`` bytes instead of
    through a mapping: ``(offset, view of the chunk's bytes)``.

    For a file that another process may shrink meanwhile: a mapping raises SIGBUS there, a read
    just comes back short (then ConflictError). Each boundary is found by :func:`_next_length`
    on a buffer that holds more than ``max_size`` bytes past it (or the rest of the file), so it
    is the one a chunker over the whole file finds: a chunk's length depends only on its first
    ``max_size`` bytes and on whether the file ends sooner. The bytes after the last boundary
    of a buffer are copied into the next one (less than ``max_size`` + one chunk). A view stays
    valid after the next chunk is read (a buffer is never reused), and pins its buffer until it
    is released.
    """
    seg = max(segment or max(SEGMENT_MIN, 4 * params.max_size), params.max_size + 1)
    fixed = not _have_pyfastcdc()
    skip = _skip_for(params)
    cdc = None if fixed else _fastcdc(_sub_params(params, skip))
    buf = bytearray()
    base = 0  # file offset of buf[0]
    pos = 0  # file offset of the next chunk
    while pos < size:
        end = base + len(buf)
        if end < size and end - pos <= params.max_size:
            keep = len(buf) - (pos - base)
            nbuf = bytearray(keep + min(seg, size - end))
            nbuf[:keep] = memoryview(buf)[pos - base :]
            _pread_into(fd, memoryview(nbuf)[keep:], end)
            buf, base = nbuf, pos
            continue
        if size <= params.min_size:
            length = size
        elif fixed:
            length = min(params.avg_size, size - pos)
        else:
            with memoryview(buf) as mv:
                length = _next_length(mv, pos - base, params, skip, cdc)
        yield pos, memoryview(buf)[pos - base : pos - base + length]
        pos += length


def _pread_into(fd: int, view: memoryview, offset: int) -> None:
    """Fill ``view`` with the bytes of ``fd`` at ``offset``; ConflictError if the file ends
    first (it shrank since its size was read)."""
    done = 0
    with view:
        while done < len(view):
            with view[done:] as rest:
                k = os.preadv(fd, [rest], offset + done)
            if k == 0:
                raise ConflictError(
                    "the source file got shorter while it was being read",
                    hint="add it again once nothing is writing to it",
                )
            done += k


_ZERO_BLOCK = 1 << 20


@lru_cache(maxsize=32)
def zero_hash(algo: str, n: int) -> str:
    """The id of ``n`` zero bytes (hashed 1 MiB at a time; cached per length)."""
    h = hasher_factory(algo)()
    block = memoryview(bytes(min(n, _ZERO_BLOCK)))
    left = n
    while left:
        k = min(left, len(block))
        h.update(block[:k])
        left -= k
    return str(h.hexdigest())


def zero_chunks(
    algo: str, chunks: tuple[str, ...], sizes: tuple[int, ...], likely: frozenset[int]
) -> list[bool]:
    """Which chunks of a file are all zero bytes, told from their ids alone (a chunk's id is
    the hash of its bytes, so an id equal to the hash of as many zeros as the chunk's recorded
    length means exactly those bytes; nothing is read).

    Only lengths a zero chunk can plausibly have are hashed (each once per process): FastCDC
    cuts a run of zeros into chunks of one length (``max_size``, given in ``likely``, or
    another length that then repeats), and a file that ends in zeros has one zero chunk of
    its own length last. Data of other shapes costs a lookup per chunk."""
    seen: dict[int, int] = {}
    for n in sizes:
        seen[n] = seen.get(n, 0) + 1
    cand = {n for n, c in seen.items() if c > 1 or n in likely}
    out = [
        n in cand and n > 0 and oid == zero_hash(algo, n)
        for oid, n in zip(chunks, sizes, strict=True)
    ]
    if out and any(out) and not out[-1] and sizes[-1] > 0:
        out[-1] = chunks[-1] == zero_hash(algo, sizes[-1])
    return out
