"""BPE tokenizer training (HF ``tokenizers``, offline) and encoding into token shards."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from aistack.errors import ValidationError, require

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]


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
    if vocab_size < 300:
        raise ValidationError(
            f"tokenize.vocab_size must be ≥ 300 (256 byte tokens + specials), got {vocab_size}"
        )
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
    tok.train_from_iterator(texts, trainer=trainer)
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
    out: list[list[int]] = []
    for i in range(0, len(texts), batch):
        encs = tokenizer.encode_batch(list(texts[i : i + batch]), add_special_tokens=False)  # type: ignore[attr-defined]
        out.extend(e.ids for e in encs)
    return out
