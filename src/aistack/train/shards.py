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
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    if vocab_size < 1:
        raise ValidationError(f"vocab_size: must be ≥ 1, got {vocab_size}")
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
    return Shard(path=path, tokens=tokens, doc_offsets=offsets, vocab_size=int(vocab))


def open_shard(path: str | os.PathLike[str]) -> Shard:
    """Open a shard: ``AISTOK1`` files here, anything else through the web-data reader."""
    path = str(path)
    if not os.path.exists(path):
        raise ValidationError(f"data: shard {path} does not exist", hint="check the data paths")
    with open(path, "rb") as fh:
        magic = fh.read(len(MAGIC))
    if magic == MAGIC:
        return _read_aistok(path)
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
    vocab = None
    if hasattr(wd, "read_header"):
        vocab = int(wd.read_header(path)["vocab_size"])
    return Shard(path=path, tokens=tokens, doc_offsets=np.asarray(doc_offsets), vocab_size=vocab)
