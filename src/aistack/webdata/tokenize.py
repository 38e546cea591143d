"""BPE tokenizer training (HF ``tokenizers``, offline) and encoding into token shards."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from aistack.errors import ValidationError, require, short_repr

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]
# 256 byte tokens + the specials, up to the pipeline spec's bound: HF tokenizers' trainer
# allocates for vocab_size up front, and a size such as 2**40 aborted the whole process
MIN_VOCAB_SIZE = 300
MAX_VOCAB_SIZE = 1 << 24


def _whole(name: str, value: object, lo: int, hi: int, hint: str) -> int:
    """``value`` as an int in [lo, hi], or a ValidationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(
            f"{name} must be a whole number, got {short_repr(value)}", hint=hint, field=name
        )
    if not lo <= int(value) <= hi:
        raise ValidationError(
            f"{name} must be between {lo:,} and {hi:,}, got {int(value):,}", hint=hint, field=name
        )
    return int(value)


def _not_text(texts: object, name: str) -> None:
    if isinstance(texts, str | bytes):
        raise ValidationError(
            f"{name} is one {type(texts).__name__}, not a list of texts (it would be read "
            "character by character)",
            hint=f"pass a list: [{name}]",
            field=name,
        )


def _check_text(text: object, i: int, name: str) -> None:
    """Raise naming ``name[i]`` when it is not a str HF tokenizers can take (a lone surrogate
    cannot be UTF-8)."""
    if not isinstance(text, str):
        raise ValidationError(
            f"{name}[{i}] is {type(text).__name__} {short_repr(text, 60)}, not text",
            hint="pass str documents (decode bytes first, e.g. b.decode('utf-8', 'replace'))",
            field=f"{name}[{i}]",
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"{name}[{i}] holds a lone surrogate {text[exc.start]!r} at character "
                f"{exc.start:,}: it is not valid Unicode and cannot be tokenized",
                hint="clean the text first, e.g. text.encode('utf-8', 'replace').decode('utf-8')",
                field=f"{name}[{i}]",
            ) from None


def _checked(texts: Iterable[str]) -> Iterator[str]:
    for i, text in enumerate(texts):
        _check_text(text, i, "texts")
        yield text


def train_bpe(
    texts: Iterable[str],
    *,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    out: str | Path | None = None,
) -> object:
    """Train a byte-level BPE tokenizer on ``texts`` (deterministic for the same input
    order). Saved as a ``tokenizer.json`` when ``out`` is given."""
    tk = require("tokenizers", extra="webdata")
    vocab_size = _whole(
        "tokenize.vocab_size",
        vocab_size,
        MIN_VOCAB_SIZE,
        MAX_VOCAB_SIZE,
        "at least 300 (256 byte tokens + specials); GPT-2 uses 50257, e.g. 8192 for a small corpus",
    )
    min_frequency = _whole(
        "tokenize.min_frequency",
        min_frequency,
        1,
        2**32 - 1,
        "how often a pair must occur to be merged, e.g. 2",
    )
    _not_text(texts, "texts")
    tok = tk.Tokenizer(tk.models.BPE(unk_token=None))
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_checked(texts), trainer=trainer)
    if out is not None:
        tok.save(str(out))
    return tok


def load_tokenizer(path: str | Path) -> object:
    tk = require("tokenizers", extra="webdata")
    p = Path(path)
    if not p.is_file():
        raise ValidationError(
            f"tokenize.tokenizer_file: {p} does not exist",
            hint="give a tokenizer.json (HF tokenizers format) or let the pipeline train one",
        )
    return tk.Tokenizer.from_file(str(p))


def encode(tokenizer: object, texts: Sequence[str], *, batch: int = 256) -> list[list[int]]:
    """Token ids per text (HF tokenizers' batch encoder; parallel inside the call)."""
    _not_text(texts, "texts")
    batch = _whole("batch", batch, 1, 2**31 - 1, "texts per encode_batch call, e.g. 256")
    out: list[list[int]] = []
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        try:
            encs = tokenizer.encode_batch(chunk, add_special_tokens=False)  # type: ignore[attr-defined]
        except (TypeError, UnicodeEncodeError):
            for j, text in enumerate(chunk):  # (only on failure: name the text at fault)
                _check_text(text, i + j, "texts")
            raise
        out.extend(e.ids for e in encs)
    return out
