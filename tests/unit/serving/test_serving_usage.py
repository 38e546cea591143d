"""``usage`` of ``/v1/completions`` is in the model's tokens, not characters: a completion of
``max_tokens`` tokens never counts more than ``max_tokens``, and ``prompt_tokens`` is the
tokenized prompt's length (streamed or not). A model where a character is a token (the echo
model) counts as before."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from aistack.serving.generators import GeneratedText, completion_tokens, count_tokens
from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer


class _WordModel:
    """A model whose tokens are words: each generated token is the 6 characters ``"token "``."""

    def generate(
        self, prompts: list[str], max_tokens: int, temperature: float, on_text: Any = None
    ) -> list[str]:
        outs = []
        for i, _ in enumerate(prompts):
            pieces = ["stop " if k == 2 else "token " for k in range(max_tokens)]
            if on_text is not None:
                for piece in pieces:
                    on_text(i, piece)
            outs.append(GeneratedText("".join(pieces), max_tokens))
        return outs

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def _post(server: ReplicaServer, body: dict[str, Any]) -> dict[str, Any]:
    with TestClient(server.app()) as c:
        r = c.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    if not body.get("stream"):
        return r.json()  # type: ignore[no-any-return]
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == []
    return last  # type: ignore[no-any-return]


@pytest.mark.parametrize("stream", [False, True])
def test_usage_counts_model_tokens_not_characters(stream: bool) -> None:
    server = ReplicaServer(LoadedModel(uri="m", generator=_WordModel()), name="w")
    body = {
        "prompt": ["one two three", "four"],
        "max_tokens": 4,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }
    usage = _post(server, body)["usage"]
    # 24 characters per completion were counted as 24 tokens
    assert usage == {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}


@pytest.mark.parametrize("stream", [False, True])
def test_usage_of_a_completion_cut_at_a_stop_sequence(stream: bool) -> None:
    server = ReplicaServer(LoadedModel(uri="m", generator=_WordModel()), name="w")
    body = {
        "prompt": "hi",
        "max_tokens": 4,
        "stop": "stop",
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }
    usage = _post(server, body)["usage"]
    assert usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_a_model_that_cannot_count_is_never_above_max_tokens() -> None:
    class Plain:  # a user's pyfunc: several characters per token, no counts at all
        def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
            return ["word " * max_tokens for _ in prompts]

    server = ReplicaServer(LoadedModel(uri="m", generator=Plain()), name="p")
    usage = _post(server, {"prompt": ["ab", "c"], "max_tokens": 4})["usage"]
    assert usage["completion_tokens"] == 8  # 4 per choice, not 20 characters each
    assert usage["prompt_tokens"] == 3


@pytest.mark.parametrize("stream", [False, True])
def test_tiny_gpt_usage_is_in_bytes_its_tokens(stream: bool) -> None:
    pytest.importorskip("torch")
    server = ReplicaServer(
        load_model("builtin:tiny-gpt?layers=1&dim=32&heads=2"), name="g", max_wait_ms=1
    )
    prompts = ["héllo €", "x"]
    body = {
        "prompt": prompts,
        "max_tokens": 4,
        "temperature": 1.0,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }
    usage = _post(server, body)["usage"]
    prompt_bytes = sum(len(p.encode()) for p in prompts)  # 10 + 1 bytes, 8 characters
    assert usage == {
        "prompt_tokens": prompt_bytes,
        "completion_tokens": 8,
        "total_tokens": prompt_bytes + 8,
    }


def test_tiny_gpt_returns_its_generated_token_counts() -> None:
    pytest.importorskip("torch")
    from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig

    g = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2))
    out = g.generate(["abc", "é"], 5, 1.0)
    assert [o.tokens for o in out] == [5, 5]  # type: ignore[attr-defined]
    # random bytes decode to U+FFFD, 3 bytes re-encoded: the generated count is what counts
    for o in out:
        assert completion_tokens(g, o, o, False, 5) == 5
    assert count_tokens(g, "é€") == 5


def test_reference_gpt_usage_counts_tokenizer_tokens() -> None:
    torch = pytest.importorskip("torch")
    model_mod = pytest.importorskip("aistack.train.model")
    from aistack.serving.generators import ReferenceGPTGenerator

    class Enc:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

    class Tok:  # three characters per token, as a BPE tokenizer's merged tokens
        def encode(self, text: str) -> Enc:
            return Enc([ord(c) % 64 for c in text[::3]])

        def decode(self, ids: list[int]) -> str:
            return "".join(chr(65 + i % 26) * 3 for i in ids)

    torch.manual_seed(0)
    gpt = model_mod.GPT(
        model_mod.GPTConfig(vocab_size=64, seq_len=32, n_layer=1, n_head=2, n_embd=32)
    )
    gpt.eval()
    server = ReplicaServer(
        LoadedModel(uri="m", generator=ReferenceGPTGenerator(gpt, Tok())), name="r"
    )
    body = {"prompt": "abcdefghi", "max_tokens": 4, "temperature": 0}
    out = _post(server, body)
    assert len(out["choices"][0]["text"]) == 12
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_generated_text_is_a_str_that_keeps_its_count() -> None:
    import copy
    import pickle

    t = GeneratedText("abc", 7)
    assert t == "abc" and isinstance(t, str) and json.dumps(t) == '"abc"'
    assert pickle.loads(pickle.dumps(t)).tokens == 7 and copy.copy(t).tokens == 7
    # a cut completion counts its text, never above what was generated or max_tokens
    assert completion_tokens(object(), t, "ab", True, 16) == 2
    assert completion_tokens(object(), t, t, False, 5) == 5
    assert completion_tokens(object(), "x" * 40, "x" * 40, False, 4) == 4
