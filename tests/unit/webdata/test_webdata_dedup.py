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
    ShingleSets,
    exact_duplicates,
    exact_hash,
    jaccard,
    lsh_clusters,
    minhash_dedup,
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


def test_threshold_removes_weak_candidates() -> None:
    rng = random.Random(4)
    a = make_doc(rng, 300)
    b = edit(rng, a, 0.007)
    sigs, sets = MinHasher().signatures_and_sets([a, b])
    # (bands 112 × rows 1 detect from 1/112: 0.01 is a threshold that LSH curve reaches)
    low = MinHashConfig(threshold=0.01, bands=112, rows=1)
    high = MinHashConfig(threshold=1.0)
    for shingles in (None, sets):  # estimated from signatures / exact on the shingle sets
        assert near_duplicates(sigs, low, shingles).tolist() == [False, True]
        assert near_duplicates(sigs, high, shingles).tolist() == [False, False]


def _chain(rng: random.Random) -> list[str]:
    """A, B, C with J(A,B) ≈ J(B,C) ≈ 0.85 but J(A,C) ≈ 0.7: B edits A's first half, C edits
    B's second half."""
    a = make_doc(rng, 400).split()
    b = list(a)
    for i in range(5, 200, 40):
        b[i] = rng.choice(VOCAB)
    c = list(b)
    for i in range(205, 400, 40):
        c[i] = rng.choice(VOCAB)
    return [" ".join(a), " ".join(b), " ".join(c)]


def test_verified_greedy_does_not_chain_unverified_does() -> None:
    docs = _chain(random.Random(5))
    assert jaccard(docs[0], docs[1]) > 0.8 and jaccard(docs[1], docs[2]) > 0.8
    assert jaccard(docs[0], docs[2]) < 0.8
    sigs, sets = MinHasher().signatures_and_sets(docs)
    res = minhash_dedup(sigs, MinHashConfig(), sets)
    # B duplicates A (dropped, matched to A); C is similar only to the dropped B: kept
    assert res.removed.tolist() == [False, True, False]
    assert res.match.tolist() == [-1, 0, -1]
    # B is checked against A; C only against A if they share a bucket (B is not kept)
    assert 1 <= res.checked <= 2
    fineweb = minhash_dedup(sigs, MinHashConfig(verify=False))
    assert fineweb.removed.tolist() == [False, True, True]  # transitive chain A–B–C
    assert fineweb.match.tolist() == [-1, 0, 0]
    assert lsh_clusters(sigs).tolist() == [0, 0, 0]


def test_exact_verification_uses_shingle_sets() -> None:
    rng = random.Random(6)
    docs = [make_doc(rng, rng.randint(0, 300)) for _ in range(30)] + ["", "x y"]
    sigs, sets = MinHasher().signatures_and_sets(docs)
    assert len(sets) == len(docs)
    for i, j in [(0, 1), (3, 3), (5, 9), (30, 31), (31, 31)]:
        if docs[i] and docs[j]:
            assert sets.jaccard(i, j) == pytest.approx(jaccard(docs[i], docs[j]))
    # take / concat keep each document's set
    idx = np.array([7, 2, 31, 30])
    sub = sets.take(idx)
    for k, i in enumerate(idx.tolist()):
        assert sub.get(k).tolist() == sets.get(i).tolist()
    both = ShingleSets.concat([sets.take(np.arange(10)), sets.take(np.arange(10, 32))])
    assert both.values.tolist() == sets.values.tolist()
    assert both.offsets.tolist() == sets.offsets.tolist()
    with pytest.raises(ValidationError, match="shingle sets"):
        minhash_dedup(sigs, MinHashConfig(), sub)


def test_exact_copies_drop_all_but_first_verified() -> None:
    rng = random.Random(8)
    a, b = make_doc(rng), make_doc(rng)
    docs = [a, b, a, "", a, b, ""]
    sigs, sets = MinHasher().signatures_and_sets(docs)
    res = minhash_dedup(sigs, MinHashConfig(), sets)
    assert res.removed.tolist() == [False, False, True, False, True, True, False]
    assert res.match.tolist() == [-1, -1, 0, -1, 0, 1, -1]


def test_config_must_multiply() -> None:
    with pytest.raises(ValidationError, match="bands × rows"):
        MinHashConfig(num_hashes=100, bands=14, rows=8)
    with pytest.raises(ValidationError, match="threshold"):
        MinHashConfig(threshold=0.0)


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


def test_dedup_decision_quality_counts() -> None:
    from aistack.webdata.evaluation import dedup_decision_quality

    # docs 0..5; groups: 0 and 3 identical (group 0); group 1 ~ group 2 (J ≥ 0.8); 4, 5 alone
    groups = [0, 1, 2, 0, 4, 5]
    similar = [(1, 2)]
    # ideal: drop 2 (dup of kept 1) and 3 (copy of kept 0)
    q = dedup_decision_quality(groups, similar, [False, False, True, True, False, False])
    assert (q["dropped"], q["dropped_justified"], q["kept_missed"]) == (2, 2, 0)
    assert q["precision"] == q["recall"] == 1.0
    # keeps the copy (missed), drops a distinct doc (unjustified) and a doc whose only
    # similar doc was dropped as well (unjustified)
    q = dedup_decision_quality(groups, similar, [False, True, True, False, True, False])
    assert (q["dropped"], q["dropped_justified"], q["kept_missed"]) == (3, 0, 1)
    assert q["precision"] == 0.0 and q["recall"] == 0.0
    q = dedup_decision_quality([], [], [])
    assert q["precision"] == q["recall"] == 1.0
