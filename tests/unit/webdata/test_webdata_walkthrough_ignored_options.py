"""Step options that would be accepted and then ignored are refused when the pipeline is read:
training options next to tokenizer_file, minhash.threshold with verify: false."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.spec import parse_spec


def _parse(step: dict[str, Any]) -> Any:
    return parse_spec({"input": {"paths": ["x.warc"]}, "output": "o", "steps": [step]})


def test_tokenizer_file_refuses_training_options() -> None:
    with pytest.raises(ValidationError) as err:
        _parse({"tokenize": {"tokenizer_file": "tok.json", "vocab_size": 4096, "train_docs": 5}})
    msg = err.value.message
    assert "steps[0].tokenize: vocab_size, train_docs are for training a tokenizer" in msg
    assert "remove vocab_size, train_docs, or remove tokenizer_file" in msg
    with pytest.raises(ValidationError, match=r"steps\[0\]\.tokenize: min_frequency is for"):
        _parse({"tokenize": {"tokenizer_file": "tok.json", "min_frequency": 3}})
    # either alone is fine
    assert _parse({"tokenize": {"tokenizer_file": "tok.json"}}).step("tokenize").tokenizer_file
    assert _parse({"tokenize": {"vocab_size": 4096}}).step("tokenize").vocab_size == 4096


def test_minhash_threshold_needs_verify() -> None:
    with pytest.raises(ValidationError) as err:
        _parse({"dedup": {"minhash": {"verify": False, "threshold": 0.5}}})
    msg = err.value.message
    assert "steps[0].dedup.minhash: threshold (0.5) is used only with verify: true" in msg
    off = _parse({"dedup": {"minhash": {"verify": False}}}).step("dedup").minhash
    assert (off.verify, off.threshold) == (False, 0.8)
    # (0.75: 14 × 8 detects from 0.72; a lower threshold is refused, test_webdata_minhash_threshold_r23c)
    on = _parse({"dedup": {"minhash": {"verify": True, "threshold": 0.75}}}).step("dedup").minhash
    assert (on.verify, on.threshold) == (True, 0.75)
