"""Token shard files: the layout the loader memory-maps.

The web-data pipeline writes shards with ``aistack.webdata.shards.write_shard`` (magic
``AISTOK\x00\x01``, the same layout idea with explicit offsets in the header); the loader
reads those files through its ``read_shard(path) -> (tokens memmap, doc_offsets)`` and
``read_header`` (vocab size). This module defines aistack's own shard format (used by the trainer's tests
and benchmarks, and read here without any dependency on the web-data package), and
:func:`open_shard`, which recognizes this format by its magic bytes and hands any other
file to the web-data reader.

Format ``AISTOK1`` (little-endian)::

    offset 0   8 bytes   magic b"AISTOK1\\0"
           8   uint32    format version (1)
          12   uint32    bytes per token: 2 (uint16) or 4 (uint32)
          16   uint64    vocab_size
          24   uint64    n_tokens
          32   uint64    n_docs
          40   24 bytes  zero
          64   n_tokens tokens (uint16/uint32), documents back to back
          ...  zero padding to a multiple of 8
          ...  (n_docs + 1) int64 document offsets into the token array (first 0, last n_tokens)

:func:`open_shard` refuses a shard whose document offsets break that rule (not starting at 0,
not ending at the token count, or falling anywhere): a damaged or hand-made file must not
make a loader read past its tokens. The check is one vectorized pass over the offsets (never
over the tokens), so opening stays cheap for big shards.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aistack.errors import ValidationError

MAGIC = b"AISTOK1\0"
SHARD_MAGIC_PREFIX = b"AISTOK"  # this format and the web-data one (b"AISTOK\x00\x01")
VERSION = 1
HEADER = struct.Struct("<8sIIQQQ24x")
assert HEADER.size == 64


@dataclass(kw_only=True)
class Shard:
    """An opened shard: memory-mapped tokens and the document index."""

    path: str
    tokens: np.ndarray  # np.memmap of uint16 / uint32
    doc_offsets: np.ndarray
    vocab_size: int | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab ≤ 65,536), else uint32."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise ValidationError(
            f"vocab_size: expected a whole number, got {vocab_size!r:.100}", field="vocab_size"
        )
    if vocab_size < 1:
        raise ValidationError(f"vocab_size: must be ≥ 1, got {vocab_size}", field="vocab_size")
    if vocab_size > 2**32:
        raise ValidationError(
            f"vocab_size: {vocab_size:,} is more than 4-byte token ids can hold (2**32)",
            hint="use the tokenizer's vocabulary size",
            field="vocab_size",
        )
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def write_token_shard(
    path: str | os.PathLike[str], docs: Iterable[Sequence[int] | np.ndarray], vocab_size: int
) -> Path:
    """Write documents of token ids as one ``AISTOK1`` shard (atomically: tmp file + rename)."""
    dtype = token_dtype(vocab_size)
    arrays = [np.asarray(d, dtype=np.int64).ravel() for d in docs]
    for i, a in enumerate(arrays):
        if a.size and (a.min() < 0 or a.max() >= vocab_size):
            raise ValidationError(
                f"docs[{i}]: token id out of range 0..{vocab_size - 1}",
                hint="raise vocab_size or fix the tokenizer output",
            )
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    if arrays:
        offsets[1:] = np.cumsum([a.size for a in arrays])
    tokens = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(HEADER.pack(MAGIC, VERSION, dtype.itemsize, vocab_size, tokens.size, len(arrays)))
        fh.write(tokens.tobytes())
        pad = (-tokens.nbytes) % 8
        fh.write(b"\0" * pad)
        fh.write(offsets.tobytes())
    os.replace(tmp, path)
    return path


RETOKENIZE_HINT = (
    "the shard is damaged or was not written by aistack: tokenize the data again "
    "(aistack webdata run --fresh, or aistack.train.shards.write_token_shard)"
)


def check_doc_offsets(path: str, offsets: np.ndarray, n_tokens: int) -> np.ndarray:
    """``offsets`` as int64 after checking them: ``n_docs + 1`` values from 0 to ``n_tokens``
    that never fall (empty documents are allowed). Raises :class:`ValidationError` naming
    the file and the first offset that breaks the rule."""
    raw = np.asarray(offsets)
    if raw.ndim != 1 or raw.shape[0] < 1:
        raise ValidationError(
            f"data: {path}: the document index is empty (it needs at least one offset, 0)",
            hint=RETOKENIZE_HINT,
        )
    if raw.dtype == np.uint64 and raw.shape[0] and int(raw.max()) > np.iinfo(np.int64).max:
        i = int(np.argmax(raw > np.iinfo(np.int64).max))
        raise ValidationError(
            f"data: {path}: document offset {i} is {int(raw[i]):,}, past the "
            f"{n_tokens:,} tokens of the shard",
            hint=RETOKENIZE_HINT,
        )
    offs = raw.astype(np.int64, copy=False)
    first, last = int(offs[0]), int(offs[-1])
    if first != 0:
        raise ValidationError(
            f"data: {path}: the document offsets start at {first:,}, not 0",
            hint=RETOKENIZE_HINT,
        )
    if last != n_tokens:
        raise ValidationError(
            f"data: {path}: the last document offset is {last:,}, but the shard holds "
            f"{n_tokens:,} tokens (the offsets must end at the token count)",
            hint=RETOKENIZE_HINT,
        )
    falls = offs[1:] < offs[:-1]
    if falls.any():
        i = int(np.argmax(falls)) + 1
        raise ValidationError(
            f"data: {path}: the document offsets are not monotonic: offset {i} is "
            f"{int(offs[i]):,}, below offset {i - 1} ({int(offs[i - 1]):,})",
            hint=RETOKENIZE_HINT,
        )
    # from 0, never falling, ending at n_tokens: every offset lies in 0..n_tokens
    return offs


def _read_aistok(path: str) -> Shard:
    with open(path, "rb") as fh:
        head = fh.read(HEADER.size)
    if len(head) < HEADER.size:
        raise ValidationError(f"data: {path} is too short to be a token shard")
    magic, version, itemsize, vocab, n_tokens, n_docs = HEADER.unpack(head)
    if version != VERSION or itemsize not in (2, 4):
        raise ValidationError(
            f"data: {path} has shard version {version} / {itemsize}-byte tokens",
            hint="this aistack reads version 1 with 2- or 4-byte tokens; rewrite the shard",
        )
    if vocab > 2 ** (8 * itemsize):
        raise ValidationError(
            f"data: {path}: the header's vocab_size {vocab:,} does not fit its "
            f"{itemsize}-byte tokens (at most {2 ** (8 * itemsize):,} ids)",
            hint=RETOKENIZE_HINT,
        )
    dtype = np.uint16 if itemsize == 2 else np.uint32
    tok_bytes = n_tokens * itemsize
    size = os.path.getsize(path)
    off_start = HEADER.size + tok_bytes + ((-tok_bytes) % 8)
    if size < off_start + 8 * (n_docs + 1):
        raise ValidationError(f"data: {path} is truncated ({size} bytes)", hint="rewrite the shard")
    tokens = (
        np.memmap(path, dtype=dtype, mode="r", offset=HEADER.size, shape=(n_tokens,))
        if n_tokens
        else np.zeros(0, dtype=dtype)
    )
    offsets = np.array(
        np.memmap(path, dtype=np.int64, mode="r", offset=off_start, shape=(n_docs + 1,))
    )
    offsets = check_doc_offsets(path, offsets, int(n_tokens))
    return Shard(path=path, tokens=tokens, doc_offsets=offsets, vocab_size=int(vocab))


# the content check of a loader checkpoint: token blocks sampled per shard, and their size
CONTENT_BLOCKS = 16
CONTENT_BLOCK_TOKENS = 512


def content_hash(shard: Shard) -> str:
    """A cheap fingerprint of a shard's contents (16 hex digits): its token width, token and
    document counts, vocabulary, every document offset, and :data:`CONTENT_BLOCKS` blocks of
    :data:`CONTENT_BLOCK_TOKENS` tokens spread evenly over the token array (the first and the
    last included). It reads a few pages of the tokens, never all of them: a change that
    leaves every sampled block and the index alone goes unseen, one that re-tokenizes or
    reorders the data does not. The same tokens and documents give the same hash in either
    shard format."""
    h = hashlib.sha256(b"aistack-shard-content-1|")
    tokens = shard.tokens
    n = int(tokens.shape[0])
    offsets = np.ascontiguousarray(shard.doc_offsets, dtype="<i8")
    h.update(f"{tokens.dtype.str}|{n}|{offsets.shape[0] - 1}|{shard.vocab_size}|".encode())
    h.update(offsets.data.cast("B"))
    if n:
        block = CONTENT_BLOCK_TOKENS
        starts = np.linspace(0, max(n - block, 0), CONTENT_BLOCKS).astype(np.int64)
        for a in np.unique(starts).tolist():
            h.update(np.ascontiguousarray(tokens[a : a + block]).tobytes())
    return h.hexdigest()[:16]


def open_shard(path: str | os.PathLike[str]) -> Shard:
    """Open a shard: ``AISTOK1`` files here, anything else through the web-data reader. A
    header whose vocab_size is 0 is refused (no writer of either format allows it, and the
    loader could not check the shard's ids against the model's vocabulary)."""
    shard = _open_shard(path)
    if shard.vocab_size == 0:
        raise ValidationError(
            f"data: {shard.path}: the header's vocab_size is 0 (a shard's ids must lie below "
            "its vocab_size)",
            hint=RETOKENIZE_HINT,
        )
    return shard


def _open_shard(path: str | os.PathLike[str]) -> Shard:
    path = str(path)
    if not os.path.exists(path):
        raise ValidationError(f"data: shard {path} does not exist", hint="check the data paths")
    if os.path.isdir(path):
        raise ValidationError(
            f"data: {path} is a folder, not a token shard",
            hint="give the folder itself as data (its shards are read), or shard files",
        )
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(MAGIC))
    except OSError as exc:
        raise ValidationError(
            f"data: cannot read shard {path}: {exc.strerror or exc}",
            hint="check the file's permissions, or leave it out of the data paths",
        ) from None
    if magic == MAGIC:
        return _read_aistok(path)
    wd: Any
    try:
        from aistack.webdata import shards as wd  # written by the web-data pipeline
    except ImportError:
        wd = None
    if wd is None or not hasattr(wd, "read_shard"):
        raise ValidationError(
            f"data: {path} is not an aistack token shard (no AISTOK1 header)",
            hint="write shards with aistack.train.shards.write_token_shard or the webdata pipeline",
        )
    tokens, doc_offsets = wd.read_shard(path)
    # (the web-data reader checks its index too; checked here as well, whatever it returns)
    offsets = check_doc_offsets(path, np.asarray(doc_offsets), int(tokens.shape[0]))
    vocab = None
    if hasattr(wd, "read_header"):
        vocab = int(wd.read_header(path)["vocab_size"])
    return Shard(path=path, tokens=tokens, doc_offsets=offsets, vocab_size=vocab)
