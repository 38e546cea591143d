from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from aistack.serving.generators import TextGenerator  # noqa: E402
from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig  # noqa: E402


def test_batched_greedy_equals_one_by_one() -> None:
    g = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2))
    assert isinstance(g, TextGenerator)
    prompts = ["hello", "a", "the quick brown fox", "zz top"]
    batched = g.generate(prompts, 6, 0.0)
    single = [g.generate([p], 6, 0.0)[0] for p in prompts]
    assert batched == single
    assert all(len(t.encode("utf-8", errors="surrogatepass")) > 0 for t in batched)


def test_seed_changes_weights_and_sampling_is_seeded() -> None:
    a = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2, seed=0))
    b = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2, seed=1))
    assert a.generate(["xyz"], 8, 0.0) != b.generate(["xyz"], 8, 0.0)
    assert a.generate(["xyz"], 8, 1.0) == a.generate(["xyz"], 8, 1.0)
    with pytest.raises(ValueError, match="max_tokens"):
        a.generate(["x"], 1000, 0.0)


def test_reference_gpt_adapter_groups_by_length(tiny_reference_gpt: Any) -> None:
    gen = tiny_reference_gpt
    prompts = ["abc", "hello", "xyz", "q"]
    batched = gen.generate(prompts, 4, 0.0)
    single = [gen.generate([p], 4, 0.0)[0] for p in prompts]
    assert batched == single
    assert all(len(t) == 4 for t in batched)


def test_streamed_pieces_join_to_the_completion() -> None:
    g = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2))
    prompts = ["hello", "the quick brown fox"]
    pieces: list[list[str]] = [[], []]
    out = g.generate(prompts, 24, 1.0, on_text=lambda i, p: pieces[i].append(p))
    assert ["".join(p) for p in pieces] == out == g.generate(prompts, 24, 1.0)
    assert all(len(p) > 1 for p in pieces)  # many pieces, not one at the end


def test_incremental_utf8_decoding_equals_one_shot() -> None:
    """Random bytes (split characters, invalid sequences, a character cut at the end) decode
    the same one byte at a time as at once: what a stream sends is what a call returns."""
    import codecs
    import random

    rng = random.Random(0)
    alphabet = list(range(256)) + list("é€𝄞ab".encode())
    for _ in range(300):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        d = codecs.getincrementaldecoder("utf-8")("replace")
        streamed = "".join(d.decode(bytes([b])) for b in data) + d.decode(b"", final=True)
        assert streamed == data.decode("utf-8", errors="replace"), data


def test_reference_gpt_adapter_streams_a_piece_per_token(tiny_reference_gpt: Any) -> None:
    gen = tiny_reference_gpt
    prompts = ["abc", "hello", "xyz"]
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    out = gen.generate(prompts, 5, 0.0, on_text=lambda i, p: pieces[i].append(p))
    assert out == gen.generate(prompts, 5, 0.0)  # greedy: the same as one call
    assert [len(pieces[i]) for i in range(3)] == [5, 5, 5]
    assert ["".join(pieces[i]) for i in range(3)] == out
