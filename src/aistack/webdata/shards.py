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

import numbers
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from aistack.errors import ValidationError, short_repr

MAGIC = b"AISTOK\x00\x01"
VERSION = 1
HEADER = struct.Struct("<8sIIQQQQQQ")
HEADER_SIZE = 64
assert HEADER.size == HEADER_SIZE


# uint32 tokens hold ids below 2**32: a larger vocabulary's ids were cut to 32 bits unseen
MAX_VOCAB_SIZE = 1 << 32


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies up to 65,536 ids, uint32 above (up to 2**32)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise ValidationError(
            f"vocab_size must be a whole number, got {short_repr(vocab_size)}",
            hint="pass the tokenizer's vocabulary size, e.g. tokenizer.get_vocab_size()",
            field="vocab_size",
        )
    if not 0 < vocab_size <= MAX_VOCAB_SIZE:
        raise ValidationError(
            f"vocab_size must be between 1 and {MAX_VOCAB_SIZE:,} (uint32 token ids), got "
            f"{int(vocab_size):,}",
            hint="pass the tokenizer's vocabulary size, e.g. tokenizer.get_vocab_size()",
            field="vocab_size",
        )
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def _py(x: object) -> object:
    return x.item() if isinstance(x, np.generic) else x


def _doc_ids(ids: object, i: int, vocab_size: int) -> np.ndarray:
    """Document ``i``'s token ids as a 1-D integer array in [0, vocab_size)."""
    try:
        arr = np.asarray(ids)
    except (ValueError, TypeError) as exc:  # (ragged nested lists)
        raise ValidationError(
            f"document {i}: its token ids are not a flat list of integers ({exc})",
            hint="pass one list of token ids per document",
            field=f"docs_token_ids[{i}]",
        ) from None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        what = f"a {arr.ndim}-D array" if arr.ndim != 1 else f"{arr.dtype} values"
        raise ValidationError(
            f"document {i}: token ids must be a flat list of integers, got {what} "
            f"(e.g. {short_repr(_py(arr.flat[0]) if arr.size else ids, 40)})",
            hint="pass one list of int token ids per document (floats were cut, bools and "
            "nested lists read as ids)",
            field=f"docs_token_ids[{i}]",
        )
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= vocab_size):
        raise ValidationError(
            f"token id out of range [0, {vocab_size}) in document {i}",
            hint="pass the tokenizer's real vocab_size",
            field=f"docs_token_ids[{i}]",
        )
    return arr


def write_shard(
    path: str | Path, docs_token_ids: Iterable[Sequence[int] | np.ndarray], vocab_size: int
) -> dict[str, int]:
    """Write one shard; returns {"num_tokens", "num_docs", "bytes"}. Written to a temporary
    name, synced and renamed, so a reader never sees half a shard: a write that fails (a bad
    document, a full disk, Ctrl-C) removes its temporary file and leaves an older shard at
    ``path`` as it was."""
    dtype = token_dtype(vocab_size)
    path = Path(path)
    if path.is_dir():
        raise ValidationError(
            f"{path} is a folder, not a shard file name",
            hint="pass a file path such as out/shard-00000.bin",
            field="path",
        )
    if not path.parent.is_dir():
        raise ValidationError(
            f"{path}: the folder {path.parent} does not exist (or is a file)",
            hint="create the folder first",
            field="path",
        )
    tmp = path.with_name(path.name + ".tmp")
    offsets = [0]
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * HEADER_SIZE)
            total = 0
            for ids in docs_token_ids:
                arr = _doc_ids(ids, len(offsets) - 1, vocab_size)
                if arr.size:
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
            f.flush()
            os.fsync(f.fileno())  # (the data is on disk before the name says it is whole)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
