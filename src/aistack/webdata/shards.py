"""Token shards: one file of token ids plus a document index, memory-mappable.

Format (version 1, all integers little-endian)::

    offset  size  field
    0       8     magic  b"AISTOK\\x00\\x01"
    8       4     version (uint32) = 1
    12      4     token width in bytes (uint32): 2 → uint16 tokens, 4 → uint32 tokens
    16      8     vocab_size (uint64)
    24      8     num_tokens (uint64)
    32      8     num_docs (uint64)
    40      8     tokens_offset (uint64) = 64
    48      8     index_offset (uint64) = 64 + num_tokens × width, rounded up to 8
    56      8     reserved (0)
    64      ...   tokens: num_tokens × (uint16 | uint32)
    index_offset  (num_docs + 1) × uint64 document offsets, in tokens: document i is
                  tokens[offsets[i]:offsets[i + 1]]; offsets[0] = 0, offsets[-1] = num_tokens

The width is uint16 when ``vocab_size ≤ 65536`` (every id < 2¹⁶), else uint32. No separator
token is inserted between documents: a loader adds its own EOS from the index.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from aistack.errors import ValidationError

MAGIC = b"AISTOK\x00\x01"
VERSION = 1
HEADER = struct.Struct("<8sIIQQQQQQ")
HEADER_SIZE = 64
assert HEADER.size == HEADER_SIZE


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies up to 65,536 ids, uint32 above."""
    if vocab_size <= 0:
        raise ValidationError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def write_shard(
    path: str | Path, docs_token_ids: Iterable[Sequence[int] | np.ndarray], vocab_size: int
) -> dict[str, int]:
    """Write one shard; returns {"num_tokens", "num_docs", "bytes"}. Written to a temporary
    name and renamed, so a reader never sees half a shard."""
    dtype = token_dtype(vocab_size)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    offsets = [0]
    with open(tmp, "wb") as f:
        f.write(b"\0" * HEADER_SIZE)
        total = 0
        for ids in docs_token_ids:
            arr = np.asarray(ids)
            if arr.size:
                if int(arr.min()) < 0 or int(arr.max()) >= vocab_size:
                    raise ValidationError(
                        f"token id out of range [0, {vocab_size}) in document {len(offsets) - 1}",
                        hint="pass the tokenizer's real vocab_size",
                    )
                f.write(arr.astype(dtype, copy=False).tobytes())
            total += int(arr.size)
            offsets.append(total)
        pad = (-f.tell()) % 8
        f.write(b"\0" * pad)
        index_offset = f.tell()
        f.write(np.asarray(offsets, dtype="<u8").tobytes())
        f.seek(0)
        f.write(
            HEADER.pack(
                MAGIC,
                VERSION,
                dtype.itemsize,
                vocab_size,
                total,
                len(offsets) - 1,
                HEADER_SIZE,
                index_offset,
                0,
            )
        )
        size = index_offset + 8 * len(offsets)
    tmp.replace(path)
    return {"num_tokens": total, "num_docs": len(offsets) - 1, "bytes": size}


def read_header(path: str | Path) -> dict[str, int]:
    """The header of a shard, checked against the file's size (a truncated shard is an error)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise ValidationError(
            f"{path}: no such file", hint="pass the path of a shard-NNNNN.bin file"
        ) from None
    except IsADirectoryError:
        raise ValidationError(
            f"{path} is a folder, not a token shard",
            hint="pass one shard file, e.g. out/dataset/shard-00000.bin",
        ) from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise ValidationError(
            f"{path} is not an aistack token shard (bad magic)",
            hint="write shards with aistack.webdata.shards.write_shard",
        )
    _m, version, width, vocab, ntok, ndocs, tok_off, idx_off, _r = HEADER.unpack(raw)
    if version != VERSION or width not in (2, 4):
        raise ValidationError(f"{path}: unsupported shard version {version} / width {width}")
    end = idx_off + 8 * (ndocs + 1)
    if tok_off + width * ntok > idx_off or end > size:
        raise ValidationError(
            f"{path} is truncated or damaged: the header says the index ends at {end:,} bytes "
            f"(tokens end at {tok_off + width * ntok:,}), the file has {size:,} bytes",
            hint="write the shard again (aistack webdata run --fresh)",
        )
    return {
        "version": version,
        "width": width,
        "vocab_size": vocab,
        "num_tokens": ntok,
        "num_docs": ndocs,
        "tokens_offset": tok_off,
        "index_offset": idx_off,
    }


def read_shard(path: str | Path) -> tuple[np.memmap, np.ndarray]:
    """(tokens as a read-only np.memmap, document offsets as uint64 array of num_docs + 1)."""
    h = read_header(path)
    dtype = np.dtype("<u2") if h["width"] == 2 else np.dtype("<u4")
    if h["num_tokens"]:
        tokens = np.memmap(
            path, dtype=dtype, mode="r", offset=h["tokens_offset"], shape=(h["num_tokens"],)
        )
    else:
        tokens = np.zeros(0, dtype=dtype)  # type: ignore[assignment]
    offsets = np.fromfile(path, dtype="<u8", count=h["num_docs"] + 1, offset=h["index_offset"])
    if len(offsets) != h["num_docs"] + 1:
        raise ValidationError(
            f"{path}: document index is damaged (file truncated?)", hint=_REWRITE_HINT
        )
    _check_index(path, offsets, h["num_tokens"])
    return tokens, offsets  # type: ignore[return-value]


_REWRITE_HINT = (
    "the shard is damaged or was not written by aistack: tokenize again "
    "(aistack webdata run --fresh)"
)


def _check_index(path: str | Path, offsets: np.ndarray, num_tokens: int) -> None:
    """Document offsets must run from 0 to ``num_tokens`` and never fall (one vectorized pass
    over the index, none over the tokens): a reader trusting them must not read past the
    tokens."""
    first, last = int(offsets[0]), int(offsets[-1])
    if first != 0:
        raise ValidationError(
            f"{path}: document index is damaged: it starts at {first:,}, not 0",
            hint=_REWRITE_HINT,
        )
    if last != num_tokens:
        raise ValidationError(
            f"{path}: document index is damaged: the last offset is {last:,}, the shard "
            f"holds {num_tokens:,} tokens",
            hint=_REWRITE_HINT,
        )
    falls = offsets[1:] < offsets[:-1]  # (uint64: from 0, never falling, ≤ num_tokens)
    if falls.any():
        i = int(np.argmax(falls)) + 1
        raise ValidationError(
            f"{path}: document index is damaged: offsets are not monotonic (offset {i} is "
            f"{int(offsets[i]):,}, below offset {i - 1}: {int(offsets[i - 1]):,})",
            hint=_REWRITE_HINT,
        )
