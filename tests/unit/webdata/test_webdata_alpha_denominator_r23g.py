"""gopher_quality's ≥ 80 % alphabetic rule has a choice of denominator,
``alpha_denominator``: ``words`` (the default: the Gopher paper's rule, punctuation tokens
are no words) or ``tokens`` (datatrove's current GopherQualityFilter: every token,
punctuation included). bench/bench_webdata_datatrove.py compares aistack with datatrove on
"the same pipeline": after d12c26d made ``words`` the only rule, the two sides no longer ran
the same filter; the bench now sets ``tokens``. A bad value is refused naming the two."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.webdata.filters import Document, GopherQualityFilter, apply, split_words
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

# plain prose, heavy on punctuation: 30 % of its tokens are punctuation, every word has a letter
PUNCTUATED = " ".join(
    f"Yes, the team met in {town}, and, later, with the board: plans, budgets, dates, notes."
    for town in ("Leeds", "York", "Hull", "Bath", "Ely", "Wells", "Derby", "Ripon")
)


def _datatrove_alpha_ok(text: str, ratio: float = 0.8) -> bool:
    """datatrove's rule (GopherQualityFilter, 0.10): letters in ≥ ratio of all tokens."""
    tokens = split_words(text)
    return sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens) >= ratio


def test_tokens_is_datatrove_rule_and_words_the_papers() -> None:
    assert not _datatrove_alpha_ok(PUNCTUATED)
    doc = Document(id="p", text=PUNCTUATED)
    assert apply(GopherQualityFilter(alpha_denominator="tokens"), doc) == (
        False,
        "gopher_below_alpha_threshold",
    )
    assert apply(GopherQualityFilter(alpha_denominator="words"), doc) == (True, None)
    assert apply(GopherQualityFilter(), doc) == (True, None)  # the default: words


@pytest.mark.parametrize("bad", ["Tokens", "chars", "", 1])
def test_a_bad_denominator_is_refused_naming_both(bad: object) -> None:
    with pytest.raises(ValidationError) as ei:
        parse_spec(
            {
                "input": {"paths": ["x"]},
                "output": "o",
                "steps": [{"gopher_quality": {"alpha_denominator": bad}}],
            }
        )
    msg = ei.value.message
    assert msg.startswith(
        f"pipeline: steps[0].gopher_quality.alpha_denominator: must be one of words, tokens, got {bad!r}"
    )
    assert "datatrove" in msg and "punctuation" in msg


def test_tokens_gives_datatroves_decisions_on_the_samples(warc_data: Path, tmp_path: Path) -> None:
    """The example pipeline's steps up to gopher_quality on the shared samples: of the 36
    pages that reach it, ``tokens`` drops the 8 whose letters are in < 80 % of all tokens
    (what the filter did before d12c26d, when the datatrove bench agreed on 100 % of the
    kept set), ``words`` keeps all 36."""
    kept = {}
    for mode in ("tokens", "words"):
        spec = parse_spec(
            {
                "input": {"paths": [str(warc_data / "samples")]},
                "output": str(tmp_path / mode),
                "workers": 1,
                "steps": [
                    {"extract": {"mode": "quality"}},
                    {"language": {"languages": ["en"], "threshold": 0.65}},
                    {"gopher_repetition": {}},
                    {"gopher_quality": {"alpha_denominator": mode}},
                ],
            }
        )
        counts = run_pipeline(spec)["counts"]
        kept[mode] = counts["steps"]["gopher_quality"]
        drops = {k: v for k, v in counts["drops"].items() if k.startswith("gopher_quality/")}
        assert drops == (
            {"gopher_quality/gopher_below_alpha_threshold": 8} if mode == "tokens" else {}
        )
    assert kept == {"tokens": {"in": 36, "out": 28}, "words": {"in": 36, "out": 36}}
