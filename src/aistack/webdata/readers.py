"""Readers for web archives: WARC 1.0/1.1, ARC (v1), Common Crawl WET; uncompressed, gzip
(one member per record or one stream), zstd and lz4 (through FastWARC's stream readers).

A reader never crashes and never hangs on a damaged file: it yields every record it can
read and reports each one it cannot as a :class:`ReadIssue` (file, offset, reason, kind). The
kind says what was lost: ``record`` (one malformed record, reading went on), ``truncated`` (a
record cut short by the end of the file, with the bytes present and, where the header said,
the bytes expected) or ``file`` (the file itself is damaged or unreadable: it cannot be opened,
is empty or not an archive, or its decompression failed; the records before the damage, and
for a damaged gzip member the ones after it, are still yielded). Offsets
are byte offsets in the *decompressed* stream, except for a damaged gzip member, which is
reported at its compressed offset: each issue's ``offset_in`` says which (``file``: in the
file as stored, also for an uncompressed file; ``decompressed``: in the decompressed stream
of a compressed file). After a damaged
record the reader resynchronises on the next ``WARC/`` line; a corrupt gzip member is skipped
whole and reading goes on at the next member (a file compressed as one long stream ends at the
damage: a decompressor cannot resume mid-stream). A zstd or lz4 file cut short (or damaged) gives
every byte decoded before the cut: the records before it are yielded, the one cut is reported.

A record a crawler cut short on purpose (WARC 1.1 ``WARC-Truncated``: over its size bound,
out of time) is no damage: it is read as any other record, its HTTP body decoded up to the cut
(a chunked or compressed body included), and :func:`iter_html` yields it for extraction, as
Common Crawl keeps such records; :attr:`Record.truncated` says it was cut and why.

Parsing is written here (not delegated to FastWARC's iterator) because the run report needs
each unreadable record with its offset and reason, ARC has to be read too, and HTTP bodies
need chunked / gzip / deflate transfer decoding with a fallback when they lie.

Every input file is opened through :func:`open_input`: a plain file as itself, and a *dataset
file reference* (a small file starting with :data:`DATASET_FILE_MAGIC`, which
:func:`aistack.webdata.lineage.materialize_inputs` writes in place of a file a local store
cut into chunks) as that file of the dataset version, read from the store's chunks
(``Datasets.open``; each chunk verified as it is read), so it is never copied to disk.
"""

from __future__ import annotations

import io
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_RECORD_BYTES = 256 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_MEMBER = b"\x1f\x8b\x08"  # magic + deflate: where a member can start
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


@dataclass(kw_only=True, slots=True)
class Record:
    """One archive record. ``body`` is the HTTP payload (decoded) for responses, the raw
    block otherwise; ``http_status``/``http_headers`` only for HTTP responses."""

    path: str
    offset: int
    record_type: str  # response, request, resource, conversion (WET), warcinfo, ... , arc
    url: str | None
    date: str | None
    headers: dict[str, str]
    body: bytes
    http_status: int | None = None
    http_headers: dict[str, str] = field(default_factory=dict)

    @property
    def truncated(self) -> str | None:
        """Why the record's block was cut short by the crawler that wrote it (its
        ``WARC-Truncated`` header: ``length``, ``time``, ``disconnect``, ``unspecified``), or
        None for a whole record. A truncated record is read and yielded like any other (its
        body decoded up to the cut), and extracted: Common Crawl keeps such records, and the
        start of a page holds most of its text."""
        value = self.headers.get("warc-truncated")
        return None if value is None else (value.strip().lower() or "unspecified")

    @property
    def content_type(self) -> str:
        """The payload's media type, lower case, without parameters; '' when unknown (then a
        reader sniffs the body). An HTTP response without a Content-Type header has none:
        the record's own (``application/http``) is the type of the HTTP message, not of the
        page in it."""
        ct = self.http_headers.get("content-type") or self.headers.get("content-type", "")
        ct = ct.split(";")[0].strip().lower()
        if self.http_status is not None and ct == "application/http":
            return ""
        return ct


# ReadIssue.kind
RECORD = "record"  # one record unreadable; reading went on
# a record cut short by the end of the file, or of its readable part where a decompression
# error ended the stream (then a FILE issue says why); the record is dropped
TRUNCATED = "truncated"
FILE = "file"  # the file is damaged or unreadable as a whole (see the module docstring)
# ReadIssue.offset_in
IN_FILE = "file"  # a byte offset in the file as stored (an uncompressed file; a gzip member)
IN_DECOMPRESSED = "decompressed"  # a byte offset in a compressed file's decompressed stream


@dataclass(kw_only=True, slots=True)
class ReadIssue:
    """A record (or a part of a file) that could not be read. ``kind``: :data:`RECORD`,
    :data:`TRUNCATED` (``bytes_present``: the bytes of the record the file holds, all dropped;
    ``bytes_expected``: its full size where the header said) or :data:`FILE`. ``offset_in``:
    :data:`IN_FILE` (a byte offset in the file as stored) or :data:`IN_DECOMPRESSED` (in the
    decompressed stream of a compressed file)."""

    path: str
    offset: int
    reason: str
    kind: str = RECORD
    bytes_present: int | None = None
    bytes_expected: int | None = None
    offset_in: str = "file"

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "file": self.path,
            "offset": self.offset,
            "reason": self.reason,
            "kind": self.kind,
            "offset_in": self.offset_in,
        }
        if self.kind == TRUNCATED:
            d["bytes_present"] = self.bytes_present
            d["bytes_expected"] = self.bytes_expected
        return d


class ArchiveError(Exception):
    """Raised inside the parser for a damaged record; turned into a ReadIssue."""


class TruncatedRecord(ArchiveError):
    """The file ends inside a record: ``present`` bytes of it were read (of the part being
    read when the end came: the header block, or the block), ``expected`` of that part."""

    def __init__(self, message: str, *, present: int, expected: int | None = None) -> None:
        super().__init__(message)
        self.present = present
        self.expected = expected


# --------------------------------------------------------------------------- opening

# The first line of a dataset file reference; a JSON object follows:
# {"ref": "NAME@vN", "path": "PATH IN THE VERSION", "size": BYTES, "hash": "ITS HASH"}
DATASET_FILE_MAGIC = b"aistack-dataset-file/1\n"
_REFERENCE_MAX = 64 * 1024  # bytes of a reference file read (a real one is far smaller)


def dataset_file_reference(ref: str, path: str, size: int, hash: str) -> bytes:  # noqa: A002
    """The bytes of a reference to the file ``path`` of the version ``ref`` (its manifest's
    ``size`` and ``hash``, checked when it is opened): :func:`open_input` reads that file."""
    body = {"ref": ref, "path": path, "size": size, "hash": hash}
    return DATASET_FILE_MAGIC + json.dumps(body, sort_keys=True).encode() + b"\n"


def read_dataset_file_reference(path: str | Path) -> dict[str, object] | None:
    """The fields of the dataset file reference ``path`` is, or None for any other file.
    OSError when it cannot be read, or starts as a reference but is not a valid one."""
    with open(path, "rb") as f:
        if f.read(len(DATASET_FILE_MAGIC)) != DATASET_FILE_MAGIC:
            return None
        body = f.read(_REFERENCE_MAX)
    try:
        d = json.loads(body)
        if not (
            isinstance(d, dict)
            and all(isinstance(d.get(k), str) for k in ("ref", "path", "hash"))
            and isinstance(d.get("size"), int)
        ):
            raise ValueError("needs ref, path and hash (strings) and size (an integer)")
    except ValueError as exc:
        raise OSError(
            f"{path} is a damaged dataset file reference ({exc}); run the pipeline with "
            "--fresh to put its input dataset files there again"
        ) from None
    return d


def open_input(path: str | Path) -> io.IOBase:
    """Open an input file for reading bytes: a plain file as itself; a dataset file reference
    (see :data:`DATASET_FILE_MAGIC`) as the version's file it names, a seekable read-only
    file over the store's chunks (nothing is copied; each chunk is verified as it is read).
    OSError when the file, or the version's file a reference names, cannot be opened."""
    d = read_dataset_file_reference(path)
    if d is None:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    ref, inner = str(d["ref"]), str(d["path"])
    try:
        from aistack.storage import Datasets  # type: ignore[attr-defined]
    except ImportError as exc:
        raise OSError(
            f"{path} refers to {ref}:{inner}, and aistack.storage cannot be imported: {exc}"
        ) from None
    from aistack.errors import AistackError

    try:
        fs = Datasets.from_settings().open(ref)
        info = fs.info(inner)
        if (info["size"], info["hash"]) != (d["size"], d["hash"]):
            raise OSError(
                f"{path} refers to {ref}:{inner} of {d['size']:,} bytes with hash "
                f"{d['hash']}, and the store has {info['size']:,} bytes with hash "
                f"{info['hash']}; run the pipeline with --fresh to put the files there again"
            )
        f: io.IOBase = fs.open(inner, "rb")
    except (AistackError, FileNotFoundError) as exc:
        raise OSError(f"{path} refers to {ref}:{inner}, which cannot be opened: {exc}") from None
    return f


# --------------------------------------------------------------------------- streams


class _GzipRaw(io.RawIOBase):
    """Decompress a gzip file member by member, never crashing on damage.

    Each member's output is held back until the member ends (up to ``HOLD`` bytes; a WARC.gz
    has one member per record), so a corrupt member is dropped whole and reading goes on at the
    next member's header: the records after it are read, and the stream the parser sees stays
    aligned on record boundaries. A clipped last member gives out what it decompressed (the
    parser reports the truncated record). A member longer than ``HOLD`` (a file compressed as
    one stream) is streamed; damage there ends the stream. ``errors``: (compressed offset of the
    member, reason) for each."""

    HOLD = 32 << 20

    def __init__(self, f: io.BufferedIOBase) -> None:
        self._f = f
        self._d = zlib.decompressobj(31)
        self._in = b""  # compressed bytes read but not yet given to the decompressor
        self._raw = bytearray()  # compressed bytes of the current member (while held back)
        self._fed = 0  # compressed bytes of the current member consumed so far
        self._start = 0  # compressed offset of the current member
        self._out = bytearray()  # the current member's output, held back
        self._holding = True
        self._scan: bytearray | None = None  # bytes searched for the next member's header
        self._scan_pos = 0
        self._pending = bytearray()
        self._eof = False
        self.errors: list[tuple[int, str]] = []

    @property
    def error(self) -> str | None:
        return self.errors[0][1] if self.errors else None

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            self._fill()
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        del self._pending[:n]
        return n

    def _new_member(self, start: int) -> None:
        self._d = zlib.decompressobj(31)
        self._raw.clear()
        self._out.clear()
        self._fed = 0
        self._start = start
        self._holding = True

    def _find_member(self) -> None:
        """After a corrupt member: skip to the next gzip member header (or the end)."""
        assert self._scan is not None
        i = self._scan.find(_GZIP_MEMBER)
        if i >= 0:
            self._in = bytes(self._scan[i:])
            self._new_member(self._scan_pos + i)
            self._scan = None
            return
        more = self._f.read(256 * 1024)
        if not more:
            self._scan = None
            self._eof = True
            return
        keep = len(_GZIP_MEMBER) - 1  # a header split across two reads
        self._scan_pos += max(0, len(self._scan) - keep)
        self._scan = bytearray(self._scan[-keep:]) + more

    def _fill(self) -> None:
        if self._scan is not None:
            self._find_member()
            return
        if not self._in:
            self._in = self._f.read(256 * 1024)
            if not self._in:
                if self._fed:
                    self._pending += self._out
                    self._out.clear()
                    self.errors.append(
                        (self._start, "gzip stream ends inside a compressed member (file clipped)")
                    )
                self._eof = True
                return
        data = self._in
        try:
            out = self._d.decompress(data, 1 << 20)
        except zlib.error as exc:
            self.errors.append((self._start, f"gzip data corrupt: {exc}"))
            if not self._holding:  # its output already went out: no realigning the stream
                self._eof = True
                return
            # drop the member and look for the next one after its first byte
            self._scan = bytearray(self._raw[1:]) + (data if self._raw else data[1:])
            self._scan_pos = self._start + 1
            self._in = b""
            self._raw.clear()
            self._out.clear()
            return
        rest = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        used = len(data) - len(rest)
        self._fed += used
        self._in = rest
        if self._d.eof:  # the member is whole (most often within this one call)
            if self._out:
                self._pending += self._out
            self._pending += out
            self._new_member(self._start + self._fed)
        elif self._holding:
            self._raw += data if used == len(data) else data[:used]
            self._out += out
            if len(self._out) > self.HOLD:  # one long stream: hand it out as it comes
                self._pending += self._out
                self._out.clear()
                self._raw.clear()
                self._holding = False
        else:
            self._pending += out


_LZ4_HISTORY = 64 * 1024  # an lz4 match reaches back at most this far


@dataclass(slots=True)
class _Lz4Cut:
    """Where an lz4 file is incomplete (found by walking its frame layout, not decoding it).
    ``data``: the bytes present of the block cut short (None when the cut is elsewhere: in
    a header, a size field, the end mark or a checksum); ``stored``: that block is stored
    uncompressed; ``linked``: its matches may reach into the previous block's output;
    ``dict_id``: the frame needs an external dictionary (its data cannot be decoded here)."""

    reason: str
    data: bytes | None = None
    stored: bool = False
    linked: bool = False
    dict_id: bool = False


def _lz4_cut(path: str | Path) -> _Lz4Cut | None:
    """The first place where ``path`` (lz4 frames) ends early, or None when every frame is
    complete. FastWARC's reader takes a file that ends inside a block size field or inside a
    frame's end mark or checksum as ending there, without an error, and fails on a block cut
    short with "failed to fill whole buffer"; this says which it was."""
    with open_input(path) as f:
        n = f.seek(0, io.SEEK_END)

        def at(pos: int, k: int) -> bytes:  # (seeks past block data: never reads it all)
            f.seek(pos)
            return f.read(k)

        return _lz4_walk(n, at)


def _lz4_walk(n: int, at: Callable[[int, int], bytes]) -> _Lz4Cut | None:
    import struct

    p, frame = 0, 0
    while p < n:
        frame += 1
        start = p
        if n - p < 4:
            return _Lz4Cut(f"file ends inside the magic number of lz4 frame {frame} (byte {p})")
        magic = struct.unpack_from("<I", at(p, 4))[0]
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: magic, size, data
            if n - p < 8:
                return _Lz4Cut(f"file ends inside skippable lz4 frame {frame} (byte {p})")
            p += 8 + struct.unpack_from("<I", at(p + 4, 4))[0]
            if p > n:
                return _Lz4Cut(f"file ends inside skippable lz4 frame {frame} (byte {start})")
            continue
        if magic != 0x184D2204:
            return None  # not a frame FastWARC reads (it says so itself): nothing to add
        if n - p < 7:
            return _Lz4Cut(f"file ends inside the header of lz4 frame {frame} (byte {p})")
        flg = at(p + 4, 1)[0]
        p += 7 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
        if p > n:
            return _Lz4Cut(f"file ends inside the header of lz4 frame {frame} (byte {start})")
        block = 0
        while True:
            if n - p < 4:
                return _Lz4Cut(
                    f"file ends at byte {n} inside lz4 frame {frame} after {block:,} complete "
                    f"block{'' if block == 1 else 's'}, before its next block header or end mark (lz4 frame cut short)"
                )
            size = struct.unpack_from("<I", at(p, 4))[0]
            p += 4
            if size == 0:  # the end mark
                break
            block += 1
            length = size & 0x7FFFFFFF
            if p + length > n:
                return _Lz4Cut(
                    f"file ends inside block {block:,} of lz4 frame {frame} (byte {p - 4}): "
                    f"{length:,} bytes of block data expected, only {n - p:,} present "
                    "(lz4 frame cut short)",
                    data=at(p, n - p),
                    stored=bool(size >> 31),
                    linked=not flg & 0x20,
                    dict_id=bool(flg & 0x01),
                )
            p += length + (4 if flg & 0x10 else 0)  # (+ the block checksum)
            if p > n:
                return _Lz4Cut(
                    f"file ends inside the checksum of block {block:,} of lz4 frame {frame} "
                    "(lz4 frame cut short)"
                )
        if flg & 0x04:  # the content checksum
            if n - p < 4:
                return _Lz4Cut(
                    f"file ends inside the content checksum of lz4 frame {frame} "
                    "(lz4 frame cut short; all its blocks are complete)"
                )
            p += 4
    return None


def _lz4_block_prefix(src: bytes, history: bytes) -> bytes:
    """Decode the start of an lz4 block whose end is missing: every byte its sequences give
    before the cut (literals up to the cut; a match only when its offset and whole length are
    present), so the output is exactly a prefix of what the whole block decodes to.
    ``history``: the output before this block (for matches that reach into it)."""
    out = bytearray(history)
    base = len(out)
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if i >= n:
                    return bytes(out[base:])
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        take = src[i : i + lit]
        out += take
        i += len(take)
        if len(take) < lit or i + 2 > n:
            break
        off = src[i] | (src[i + 1] << 8)
        i += 2
        ml = token & 15
        if ml == 15:
            while True:
                if i >= n:
                    return bytes(out[base:])
                b = src[i]
                i += 1
                ml += b
                if b != 255:
                    break
        ml += 4
        if off == 0 or off > len(out):
            break  # corrupt: stop at what is certain
        start = len(out) - off
        if off >= ml:
            out += out[start : start + ml]
        else:  # overlapping: the pattern repeats
            for k in range(ml):
                out.append(out[start + k])
    return bytes(out[base:])


class _FastwarcRaw(io.RawIOBase):
    """A zstd or lz4 file decoded by a FastWARC stream reader, keeping what precedes damage.

    FastWARC's ``read(n)`` raises ``OSError`` (for a cut zstd frame: "incomplete frame") when
    its input ends or breaks before it has ``n`` bytes, and the bytes it decoded in that call
    are lost with the exception. So reads are at most ``CHUNK`` bytes, and after a failure the
    file is opened again, the bytes already handed out are skipped, and the rest is read one
    byte at a time up to the failure (fewer than ``CHUNK`` bytes: that call's output): the
    parser gets every byte the decompressor can produce and reports the record cut there. What
    cannot be produced: a zstd block is decoded whole (up to 128 KiB of output), so the records
    in a block cut short are lost with it. ``errors``: (decompressed offset, reason).

    ``lz4_path``: the file is lz4, whose frames are checked when the decoder stops: FastWARC
    ends without an error where a file ends inside a block size field, an end mark or a
    checksum (see :func:`_lz4_cut`), and decodes only whole blocks (up to 4 MiB of output:
    a file written in one call is one block), so the start of a block cut short is decoded
    here (:func:`_lz4_block_prefix`) and its complete records are yielded too."""

    CHUNK = 64 * 1024

    def __init__(
        self, open_reader: Callable[[], object], *, lz4_path: str | Path | None = None
    ) -> None:
        self._open = open_reader
        self._lz4 = lz4_path
        self._r = open_reader()
        self._pos = 0  # decompressed bytes handed out
        self._tail = b""  # bytes recovered after a failure, still to hand out
        self.error: str | None = None
        self.errors: list[tuple[int, str]] = []

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.error is None:
            want = min(len(b), self.CHUNK)
            try:
                data = self._r.read(want)  # type: ignore[attr-defined]
            except OSError as exc:
                self.error = f"decompression failed: {exc}"
                self._tail = self._recover(want, exc)
                self.errors = [(self._pos + len(self._tail), self.error)]
            else:
                if not data and self._lz4 is not None and want:
                    cut = _lz4_cut(self._lz4)  # (the decoder ended: did the file?)
                    if cut is not None:
                        self.error = cut.reason
                        self.errors = [(self._pos, cut.reason)]
                    self._lz4 = None  # (checked once)
                self._pos += len(data)
                b[: len(data)] = data
                return len(data)
        data, self._tail = self._tail[: len(b)], self._tail[len(b) :]
        self._pos += len(data)
        b[: len(data)] = data
        return len(data)

    def _recover(self, limit: int, exc: OSError) -> bytes:
        """The bytes after ``self._pos`` that decode before the failure (at most ``limit``;
        for lz4, plus the start of a block cut short)."""
        out = bytearray()
        history = b""  # the last output before the failure (lz4: what a match may reach)
        r: object | None = None
        try:
            r = self._open()
            done = 0
            while done < self._pos:  # skip what was handed out (decoded again, not kept)
                piece = r.read(min(self.CHUNK, self._pos - done))  # type: ignore[attr-defined]
                if not piece:
                    return b""
                done += len(piece)
                history = (history + piece)[-_LZ4_HISTORY:]
            while len(out) < limit:
                one = r.read(1)  # type: ignore[attr-defined]
                if not one:
                    break
                out += one
        except OSError:
            pass
        finally:
            close = getattr(r, "close", None)
            if callable(close):
                close()
        if self._lz4 is not None:
            out += self._lz4_partial(exc, (history + bytes(out))[-_LZ4_HISTORY:])
        return bytes(out)

    def _lz4_partial(self, exc: OSError, history: bytes) -> bytes:
        """After FastWARC failed on an lz4 file: say where the file is cut (in
        ``self.error``), and decode the start of the block cut short when that is where the
        decoder stopped (its "failed to fill whole buffer": it read the block's data, short;
        other errors are damage inside a block, and then the decoder stopped before it)."""
        path, self._lz4 = self._lz4, None
        try:
            cut = _lz4_cut(path)  # type: ignore[arg-type]
        except OSError:
            return b""
        if cut is None:
            return b""
        self.error = f"{self.error} ({cut.reason})"
        if cut.data is None or cut.dict_id or "fill whole buffer" not in str(exc):
            return b""
        if cut.stored:
            return cut.data
        return _lz4_block_prefix(cut.data, history if cut.linked else b"")


def open_archive(path: str | Path) -> tuple[io.BufferedReader, object | None]:
    """Open ``path`` as a decompressed byte stream (by magic bytes, not by name)."""
    raw_f = open_input(path)  # closed by the caller through the returned stream
    magic = raw_f.read(4)
    raw_f.seek(0)
    inner: object | None = None
    if magic[:2] == _GZIP_MAGIC:
        inner = _GzipRaw(raw_f)  # type: ignore[arg-type]
    elif magic == _ZSTD_MAGIC or magic == _LZ4_MAGIC:
        from aistack.errors import require

        sio = require("fastwarc.stream_io", extra="webdata")
        cls = sio.ZstdReader if magic == _ZSTD_MAGIC else sio.Lz4Reader
        raw_f.close()
        # (a dataset file reference: FastWARC reads the store's file through a file object)
        byref = read_dataset_file_reference(path) is not None
        inner = _FastwarcRaw(
            lambda: cls(open_input(path) if byref else str(path), fsspec_args=False),
            lz4_path=path if magic == _LZ4_MAGIC else None,
        )
    if inner is None:
        return io.BufferedReader(raw_f, 1 << 20), None  # type: ignore[arg-type]
    return io.BufferedReader(inner, 1 << 20), inner  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsing


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            continue
        if line[0] in " \t" and last:
            headers[last] += " " + line.strip()
            continue
        if ":" not in line:
            raise ArchiveError(f"malformed header line {line[:60]!r}")
        k, v = line.split(":", 1)
        last = k.strip().lower()
        headers[last] = v.strip()
    return headers


def _read_header_block(stream: io.BufferedReader) -> list[bytes]:
    lines: list[bytes] = []
    total = 0
    while True:
        line = stream.readline(MAX_HEADER_BYTES)
        if not line:
            raise TruncatedRecord(
                "end of file inside a header block (record truncated)", present=total
            )
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise ArchiveError("header block longer than 64 KiB")
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


def _dechunk(data: bytes, *, partial: bool = False) -> bytes:
    """The chunks of a chunked body joined; ValueError where it is not one. With ``partial``
    (a record cut short, ``WARC-Truncated``), a body that ends inside a chunk, or before its
    last chunk's size line, gives the data up to its end."""
    out = bytearray()
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            if partial and pos > 0:
                return bytes(out)
            raise ValueError("missing chunk size")
        size_txt = data[pos:nl].split(b";")[0].strip()
        size = int(size_txt, 16)
        pos = nl + 1
        if size == 0:
            return bytes(out)
        if pos + size > len(data):
            if partial:
                return bytes(out + data[pos:])
            raise ValueError("chunk past end")
        out += data[pos : pos + size]
        pos += size
        if data[pos : pos + 2] == b"\r\n":
            pos += 2
        elif data[pos : pos + 1] == b"\n":
            pos += 1


def decode_body(
    body: bytes, headers: dict[str, str], limit: int, *, partial: bool = False
) -> tuple[bytes, bool]:
    """``body`` with its transfer and content encodings undone (chunks joined, gzip/deflate/br
    decompressed; an encoding that fails to decode, or a stream cut short, leaves the body as
    it was), decompressing at most ``limit + 1`` bytes: a few KB of gzip can inflate to
    gigabytes. Returns (body, over): ``over`` when it decodes to more than ``limit`` bytes
    (then the body holds the first ``limit + 1``). With ``partial`` (the body of a record cut
    short: ``WARC-Truncated``), a chunked body or a gzip/deflate/br stream cut short gives
    what it decodes to up to the cut."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            body = _dechunk(body, partial=partial)  # (never longer than its input)
        except ValueError:
            pass  # stored already de-chunked (a common crawler habit): keep as is
    enc = headers.get("content-encoding", "").lower()
    out: bytes | None = None
    if enc in ("gzip", "x-gzip", "deflate"):
        for wbits in (47 if "gzip" in enc else 15, -15):
            d = zlib.decompressobj(wbits)
            try:
                data = d.decompress(body, limit + 1)
            except zlib.error:
                continue
            # over the limit, a complete stream, or (a record cut short) the stream up to the cut
            if len(data) > limit or d.eof or (partial and data):
                out = data
                break
    elif enc == "br":
        try:
            import brotli  # type: ignore[import-not-found]

            br = brotli.Decompressor()
            data = br.process(body, output_buffer_limit=limit + 1)
            if len(data) > limit or br.is_finished() or (partial and data):
                out = data
        except Exception:  # noqa: BLE001 - optional (an old brotli has no output limit)
            out = None
    if out is None:
        return body, False
    return out, len(out) > limit


def parse_http_response(
    block: bytes, *, max_body_bytes: int = MAX_RECORD_BYTES, partial: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Split an HTTP response block into (status, lower-cased headers, decoded body).
    Transfer/content encodings that fail to decode leave the body as it was stored; a body
    that decodes to more than ``max_body_bytes`` (a compression bomb: a record of a few MB
    inflating to gigabytes) is an ArchiveError, for that record only. ``partial``: the block
    is cut short (``WARC-Truncated``), its encodings are decoded up to the cut
    (:func:`decode_body`)."""
    if not block.startswith(b"HTTP/"):
        raise ArchiveError("response block does not start with an HTTP status line")
    sep = block.find(b"\r\n\r\n")
    sep_len = 4
    alt = block.find(b"\n\n")
    if sep < 0 or (0 <= alt < sep):
        sep, sep_len = alt, 2
    if sep < 0:
        head, body = block, b""
    else:
        head, body = block[:sep], block[sep + sep_len :]
    head_lines = head.split(b"\n")
    parts = head_lines[0].split(None, 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError) as exc:
        raise ArchiveError(f"bad HTTP status line {head_lines[0][:60]!r}") from exc
    try:
        headers = _parse_headers(head_lines[1:])
    except ArchiveError:
        headers = {}
    body, over = decode_body(body, headers, max_body_bytes, partial=partial)
    if over:
        raise ArchiveError(
            f"the HTTP body decodes to more than {max_body_bytes:,} bytes (Content-Encoding: "
            f"{headers.get('content-encoding', '')}): a compression bomb? The record is skipped"
        )
    return status, headers, body


def _read_exact(stream: io.BufferedReader, n: int) -> bytes:
    if n > MAX_RECORD_BYTES:
        raise ArchiveError(f"Content-Length {n} exceeds the {MAX_RECORD_BYTES} byte limit")
    data = stream.read(n)
    if len(data) < n:
        raise TruncatedRecord(
            f"record truncated: Content-Length {n}, only {len(data)} bytes present",
            present=len(data),
            expected=n,
        )
    return data


class ArchiveReader:
    """Iterate the records of one archive file.

    ``for rec in ArchiveReader(path).records(): ...``; afterwards ``reader.issues`` lists the
    unreadable parts. ``types`` limits the WARC types yielded (default: everything).
    """

    def __init__(self, path: str | Path, *, types: set[str] | None = None) -> None:
        self.path = str(path)
        self.types = types
        self.issues: list[ReadIssue] = []
        self.count = 0
        self._at = 0
        self._compressed = False  # (set by records(): offsets are then decompressed ones)

    def _issue(
        self,
        offset: int,
        reason: str,
        *,
        kind: str = RECORD,
        present: int | None = None,
        expected: int | None = None,
        offset_in: str | None = None,
    ) -> None:
        if offset_in is None:
            offset_in = IN_DECOMPRESSED if self._compressed else IN_FILE
        self.issues.append(
            ReadIssue(
                path=self.path,
                offset=offset,
                reason=reason,
                kind=kind,
                bytes_present=present,
                bytes_expected=expected,
                offset_in=offset_in,
            )
        )
        log.info("unreadable %s in %s at %d: %s", kind, self.path, offset, reason)

    @property
    def failed(self) -> bool:
        """True when the file itself is damaged or unreadable (an issue of kind ``file``) or
        ends inside a record (``truncated``: the file is incomplete)."""
        return any(i.kind in (FILE, TRUNCATED) for i in self.issues)

    def records(self) -> Iterator[Record]:
        from aistack.errors import AistackError

        self._at = 0  # offset of the record being read (for an error that stops reading)
        try:
            stream, inner = open_archive(self.path)
        except OSError as exc:
            self._issue(0, f"cannot open: {exc}", kind=FILE)
            return
        self._compressed = inner is not None
        with stream:
            try:
                first = stream.peek(16)[:16]
            except Exception as exc:  # noqa: BLE001 - a reader never crashes
                self._issue(0, f"cannot read: {exc}", kind=FILE)
                return
            err = getattr(inner, "error", None)
            try:
                if first.startswith(b"WARC/"):
                    yield from self._warc(stream)
                elif first.startswith(b"filedesc://"):
                    yield from self._arc(stream)
                elif not first and not err:
                    self._issue(
                        0, "empty file: no records (0 bytes after decompression)", kind=FILE
                    )
                elif first:  # (nothing decompressed: the decompressor's error below says why)
                    self._issue(
                        0,
                        f"not a WARC or ARC file (starts with {bytes(first[:12])!r})",
                        kind=FILE,
                    )
            except AistackError:
                raise  # a missing extra or the like: not this file's fault, and says the fix
            except Exception as exc:  # noqa: BLE001 - e.g. an I/O error: end this file only
                self._issue(self._at, f"reading stopped: {type(exc).__name__}: {exc}", kind=FILE)
            # a gzip member's damage is at its compressed offset; zstd/lz4: decompressed
            where = IN_FILE if isinstance(inner, _GzipRaw) else None
            for offset, why in getattr(inner, "errors", ()):
                self._issue(offset, why, kind=FILE, offset_in=where)

    # ---- WARC
    def _warc(self, stream: io.BufferedReader) -> Iterator[Record]:
        pos = 0
        while True:
            line = stream.readline(MAX_HEADER_BYTES)
            if not line:
                return
            if line.strip() == b"":
                pos += len(line)
                continue
            start = self._at = pos
            pos += len(line)
            if (
                not line.endswith(b"\n")
                and len(line) < MAX_HEADER_BYTES
                and b"WARC/".startswith(line[:5])
            ):
                # the file ends inside the version line of its last record
                self._issue(
                    start, "end of file inside a WARC/ version line (record truncated)",
                    kind=TRUNCATED, present=len(line),
                )  # fmt: skip
                return
            if not line.startswith(b"WARC/"):
                self._issue(start, f"expected a WARC/ version line, found {line[:40]!r}")
                pos = self._resync(stream, pos)
                if pos < 0:
                    return
                continue
            head = 0  # bytes of the header block read
            try:
                lines = _read_header_block(stream)
                head = sum(len(x) for x in lines) + 2
                pos += head
                headers = _parse_headers(lines)
                if "content-length" not in headers:
                    raise ArchiveError("missing Content-Length header")
                try:
                    n = int(headers["content-length"])
                except ValueError as exc:
                    raise ArchiveError(f"bad Content-Length {headers['content-length']!r}") from exc
                if n < 0:
                    raise ArchiveError(f"negative Content-Length {n}")
                block = _read_exact(stream, n)
                pos += n
            except TruncatedRecord as exc:  # the file ends inside this record: the last one
                before = len(line) + head
                self._issue(
                    start, str(exc), kind=TRUNCATED, present=before + exc.present,
                    expected=None if exc.expected is None else before + exc.expected,
                )  # fmt: skip
                return
            except ArchiveError as exc:
                self._issue(start, str(exc))
                pos = self._resync(stream, pos)
                if pos < 0:
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - never crash on bad input
                self._issue(start, f"unreadable: {exc}", kind=FILE)
                return
            rtype = headers.get("warc-type", "unknown").lower()
            if self.types is not None and rtype not in self.types:
                continue
            url = headers.get("warc-target-uri")
            if url:
                url = url.strip().strip("<>").replace(" ", "%20")
            rec = Record(
                path=self.path,
                offset=start,
                record_type=rtype,
                url=url,
                date=headers.get("warc-date"),
                headers=headers,
                body=block,
            )
            if rtype in ("response", "revisit") and "application/http" in headers.get(
                "content-type", ""
            ):
                if rtype == "revisit" and not block.strip():
                    continue
                try:
                    rec.http_status, rec.http_headers, rec.body = parse_http_response(
                        block, partial=rec.truncated is not None
                    )
                except ArchiveError as exc:
                    self._issue(start, str(exc))
                    continue
            self.count += 1
            yield rec

    def _resync(self, stream: io.BufferedReader, pos: int) -> int:
        """Skip to the next line that starts a WARC record; return its offset or -1 at EOF.
        The next readline() call returns that line (it is left in the buffer via peek)."""
        while True:
            try:
                head = stream.peek(5)[:5]
            except Exception:  # noqa: BLE001
                return -1
            if not head:
                return -1
            if head.startswith(b"WARC/"):
                return pos
            line = stream.readline(MAX_HEADER_BYTES)
            if not line:
                return -1
            pos += len(line)

    # ---- ARC (v1): "URL IP DATE MIME LENGTH\n" then LENGTH bytes
    def _arc(self, stream: io.BufferedReader) -> Iterator[Record]:
        pos = 0
        first = True
        while True:
            line = stream.readline(MAX_HEADER_BYTES)
            if not line:
                return
            start = self._at = pos
            pos += len(line)
            if not line.strip():
                continue
            fields = line.decode("utf-8", "replace").strip().split(" ")
            if len(fields) < 5:
                self._issue(start, f"ARC header needs 5 fields, found {len(fields)}")
                continue
            url = " ".join(fields[:-4]).replace(" ", "%20")
            _ip, date, mime, length_txt = fields[-4:]
            try:
                n = int(length_txt)
                if n < 0:
                    raise ValueError
            except ValueError:
                self._issue(start, f"bad ARC record length {length_txt!r}")
                continue
            try:
                block = _read_exact(stream, n)
            except TruncatedRecord as exc:
                self._issue(
                    start, str(exc), kind=TRUNCATED, present=len(line) + exc.present,
                    expected=None if exc.expected is None else len(line) + exc.expected,
                )  # fmt: skip
                return
            except ArchiveError as exc:
                self._issue(start, str(exc))
                return
            pos += n
            if first or url.startswith("filedesc://"):
                first = False
                continue
            rec = Record(
                path=self.path,
                offset=start,
                record_type="response",
                url=url,
                date=date,
                headers={"content-type": mime},
                body=block,
            )
            if block.startswith(b"HTTP/"):
                try:
                    rec.http_status, rec.http_headers, rec.body = parse_http_response(block)
                except ArchiveError as exc:
                    self._issue(start, str(exc))
                    continue
            if self.types is not None and "response" not in self.types:
                continue
            self.count += 1
            yield rec


HTML_TYPES = ("text/html", "application/xhtml+xml")


def iter_html(
    path: str | Path, *, on_issue: Callable[[ReadIssue], None] | None = None
) -> Iterator[Record]:
    """HTML pages of an archive: HTTP 200 responses (WARC/ARC) with an HTML content type,
    and WARC ``resource`` records of HTML type. A record a crawler cut short
    (``WARC-Truncated``, :attr:`Record.truncated`) is yielded too, its body up to the cut:
    as Common Crawl does, the page's text before the cut is kept."""
    reader = ArchiveReader(path, types={"response", "resource"})
    for rec in reader.records():
        if rec.http_status is not None and rec.http_status != 200:
            continue
        ct = rec.content_type
        if ct and ct not in HTML_TYPES:
            continue
        if not ct and not rec.body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
            continue
        yield rec
    if on_issue:
        for issue in reader.issues:
            on_issue(issue)


def iter_wet(path: str | Path) -> Iterator[Record]:
    """Text records of a Common Crawl WET file (WARC ``conversion`` records)."""
    yield from ArchiveReader(path, types={"conversion"}).records()
