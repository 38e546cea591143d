from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aistack.serving.generators import ReferenceGPTGenerator, TextGenerator  # noqa: E402
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


class _Tok:
    """Character tokenizer with the two methods the adapter uses."""

    class _Enc:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

    def encode(self, text: str) -> _Enc:
        return self._Enc([ord(c) % 64 for c in text])

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(48 + i) for i in ids)


def test_reference_gpt_adapter_groups_by_length() -> None:
    model_mod = pytest.importorskip("aistack.train.model")
    torch.manual_seed(0)
    gpt = model_mod.GPT(
        model_mod.GPTConfig(vocab_size=64, seq_len=32, n_layer=1, n_head=2, n_embd=32)
    )
    gpt.eval()
    gen = ReferenceGPTGenerator(gpt, _Tok())
    prompts = ["abc", "hello", "xyz", "q"]
    batched = gen.generate(prompts, 4, 0.0)
    single = [gen.generate([p], 4, 0.0)[0] for p in prompts]
    assert batched == single
    assert all(len(t) == 4 for t in batched)
