"""Bad arguments to the BPE tokenizer's Python API are errors naming them (before HF
tokenizers sees them: a huge vocab_size aborted the whole process)."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.spec import parse_spec

pytest.importorskip("tokenizers")

from aistack.webdata.tokenize import encode, train_bpe  # noqa: E402

TEXTS = ["hello world, the quick brown fox"] * 5


@pytest.fixture(scope="module")
def tok() -> Any:
    return train_bpe(TEXTS, vocab_size=300, min_frequency=1)


@pytest.mark.parametrize(
    ("vocab_size", "needle"),
    [
        (2**40, "between 300 and 16,777,216, got 1,099,511,627,776"),  # (aborted the process)
        (1 << 24 | 1, "between 300 and 16,777,216"),
        (True, "whole number, got True"),
        (8192.5, "whole number, got 8192.5"),
        ("8192", "whole number, got '8192'"),
        (255, "between 300"),
    ],
)
def test_train_bpe_vocab_size_out_of_range_names_it(vocab_size: object, needle: str) -> None:
    with pytest.raises(ValidationError, match="tokenize.vocab_size") as ei:
        train_bpe(TEXTS, vocab_size=vocab_size)  # type: ignore[arg-type]
    assert needle in ei.value.message
    assert ei.value.details["field"] == "tokenize.vocab_size"


@pytest.mark.parametrize("min_frequency", [-1, 0, 2**64, 1.5])
def test_train_bpe_min_frequency_names_it(min_frequency: object) -> None:
    with pytest.raises(ValidationError, match="tokenize.min_frequency"):
        train_bpe(TEXTS, vocab_size=300, min_frequency=min_frequency)  # type: ignore[arg-type]


def test_spec_bounds_min_frequency() -> None:
    data = {
        "input": {"paths": ["x"]},
        "output": "o",
        "steps": [{"tokenize": {"min_frequency": 2**64}}],
    }
    with pytest.raises(ValidationError, match=r"steps\[0\]\.tokenize\.min_frequency"):
        parse_spec(data)


def test_one_string_is_not_a_list_of_texts(tok: Any) -> None:
    # (it was trained on, or encoded, character by character)
    with pytest.raises(ValidationError, match="texts is one str, not a list"):
        train_bpe("hello world", vocab_size=300)
    with pytest.raises(ValidationError, match="texts is one str, not a list"):
        encode(tok, "hello world")


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("ok \ud800 text", r"texts\[1\] holds a lone surrogate '\\ud800' at character 3"),
        (None, r"texts\[1\] is NoneType None, not text"),
        (b"bytes", r"texts\[1\] is bytes b'bytes', not text"),
    ],
)
def test_texts_that_cannot_be_tokenized_are_named(tok: Any, bad: object, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        train_bpe(["fine", bad], vocab_size=300)  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=needle):
        encode(tok, ["fine", bad], batch=1)  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=needle):
        encode(tok, ["fine", bad])  # type: ignore[list-item]


@pytest.mark.parametrize("batch", [0, -1, 2.0, None])
def test_encode_batch_must_be_a_count(tok: Any, batch: object) -> None:
    with pytest.raises(ValidationError, match="batch must be"):
        encode(tok, ["a"], batch=batch)  # type: ignore[arg-type]


def test_encode_still_encodes_unicode_and_empty_text(tok: Any) -> None:
    ids = encode(tok, ["héllo wörld", "", "hello"])
    assert ids[1] == []
    assert tok.decode(ids[0]) == "héllo wörld"
    assert len(ids) == 3
