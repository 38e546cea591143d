"""MinHash LSH finds planted near-duplicates and keeps distinct documents; exact dedup."""

from __future__ import annotations

import random
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.webdata.dedup import (
    MinHashConfig,
    MinHasher,
    exact_duplicates,
    exact_hash,
    jaccard,
    lsh_clusters,
    near_duplicates,
    normalize,
)

RNG = random.Random(7)
VOCAB = [
    "".join(RNG.choice(string.ascii_lowercase) for _ in range(RNG.randint(2, 9)))
    for _ in range(3000)
]


def make_doc(rng: random.Random, n: int = 200) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def edit(rng: random.Random, text: str, rate: float) -> str:
    """Replace round(rate × words) words at random positions (at least one)."""
    words = text.split()
    for i in rng.sample(range(len(words)), max(1, round(rate * len(words)))):
        words[i] = rng.choice(VOCAB)
    return " ".join(words)


def test_planted_near_duplicates_found_distinct_kept() -> None:
    rng = random.Random(1)
    base = [make_doc(rng) for _ in range(60)]
    # each of the first 30 gets an edited copy (2 words in 200 replaced) planted at the end
    copies = [edit(rng, base[i], 0.01) for i in range(30)]
    docs = base + copies
    sims = [jaccard(base[i], copies[i]) for i in range(30)]
    assert min(sims) > 0.85
    drop = near_duplicates(MinHasher().signatures(docs))
    assert not drop[:60].any()  # every original (first in order) is kept
    assert drop[60:].sum() >= 28  # ≥ 28 of 30 planted copies found (P(found) ≈ 0.99 at J ≥ 0.85)
    roots = lsh_clusters(MinHasher().signatures(docs))
    for i in range(30):
        if drop[60 + i]:
            assert roots[60 + i] == i  # clustered with its own original


def test_signature_estimates_jaccard() -> None:
    rng = random.Random(2)
    a = make_doc(rng, 400)
    b = edit(rng, a, 0.05)
    sig = MinHasher(MinHashConfig(num_hashes=256, bands=32, rows=8)).signatures([a, b])
    est = float(np.mean(sig[0] == sig[1]))
    assert abs(est - jaccard(a, b)) < 0.1


def test_signature_independent_of_batch() -> None:
    rng = random.Random(3)
    docs = [make_doc(rng, rng.randint(0, 50)) for _ in range(20)] + ["", "one", "two words"]
    mh = MinHasher(chunk=64)
    full = mh.signatures(docs)
    for i, d in enumerate(docs):
        assert (mh.signatures([d])[0] == full[i]).all()
    assert (full[20] == 0xFFFFFFFF).all()  # empty document


def test_short_docs_and_empty_never_cluster_with_each_other() -> None:
    sigs = MinHasher().signatures(["", "", "a b c", "a b c"])
    roots = lsh_clusters(sigs)
    assert roots.tolist() == [0, 1, 2, 2]


def test_verify_threshold_removes_weak_candidates() -> None:
    rng = random.Random(4)
    a = make_doc(rng, 300)
    b = edit(rng, a, 0.007)
    sigs = MinHasher().signatures([a, b])
    assert near_duplicates(sigs, MinHashConfig(verify_threshold=0.0)).tolist() == [False, True]
    assert near_duplicates(sigs, MinHashConfig(verify_threshold=1.0)).tolist() == [False, False]


def test_config_must_multiply() -> None:
    with pytest.raises(ValidationError, match="bands × rows"):
        MinHashConfig(num_hashes=100, bands=14, rows=8)


def test_exact_dedup_normalised() -> None:
    hs = [exact_hash(t) for t in ["Hello, World!", "hello world", "hello  world.", "other"]]
    assert exact_duplicates(hs).tolist() == [False, True, True, False]
    assert normalize("It's 2024 —   OK!") == "it s 0000 ok"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="abc de\n.,", max_size=60), min_size=1, max_size=8))
def test_identical_texts_identical_signatures(texts: list[str]) -> None:
    mh = MinHasher()
    sig = mh.signatures(texts + texts)
    n = len(texts)
    assert (sig[:n] == sig[n:]).all()


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcXYZ 09.,!?\n\t’“”é—\xa0")), max_size=80))
def test_shingle_words_follow_normalize(text: str) -> None:
    # the vectorised tokenisation must see the same words as normalize(), which the exact
    # Jaccard ground truth of the benchmark uses
    mh = MinHasher()
    assert (mh.signatures([text])[0] == mh.signatures([normalize(text)])[0]).all()
