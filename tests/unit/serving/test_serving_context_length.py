"""A prompt that does not fit the model's context is refused as OpenAI refuses it: HTTP 400,
type "invalid_request_error", code "context_length_exceeded", before anything is generated or
streamed. TinyGPT kept only the end of a prompt longer than ``block_size - max_tokens`` (the
model answered another question than the one asked), and ``max_tokens`` of ``block_size`` or
more raised a bare ValueError the replica answered 500 (a server error for bad input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from aistack.serving.generators import context_overflow, context_tokens
from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer

torch = pytest.importorskip("torch")

from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig  # noqa: E402

BLOCK = 32


def _error(message: str, param: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": "context_length_exceeded",
        }
    }


def _text_error(n: int, m: int, where: str = "the prompt") -> dict[str, Any]:
    return _error(
        f"This model's maximum context length is {BLOCK} tokens. However, you requested "
        f"{n + m} tokens ({n} in {where}, {m} in the completion). "
        "Please reduce the length of the prompt or completion.",
        "prompt",
    )


def _chat_error(n: int, m: int) -> dict[str, Any]:
    return _error(
        f"This model's maximum context length is {BLOCK} tokens. However, you requested "
        f"{n + m} tokens ({n} in the messages, {m} in the completion). "
        "Please reduce the length of the messages or completion.",
        "messages",
    )


@pytest.fixture(scope="module")
def gpt() -> TinyGPT:
    return TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2, block_size=BLOCK))


@pytest.fixture
def client(gpt: TinyGPT) -> Iterator[TestClient]:
    server = ReplicaServer(LoadedModel(uri="tiny", generator=gpt), name="t", max_wait_ms=1)
    with TestClient(server.app(), raise_server_exceptions=False) as c:
        yield c


# "User: " + content + "\n" + "Assistant:" (the default chat template): 17 bytes around it
CHAT_OVERHEAD = len("User: \nAssistant:")


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_too_long_for_the_context_is_a_400_in_openais_words(
    client: TestClient, stream: bool
) -> None:
    r = client.post(
        "/v1/completions",
        json={"prompt": "a" * 30, "max_tokens": 5, "temperature": 0, "stream": stream},
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"  # no event stream was begun
    assert r.json() == _text_error(30, 5)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_counts_the_rendered_prompt(client: TestClient, stream: bool) -> None:
    """10 characters of content and 8 new tokens would fit in 32; the prompt the model gets
    (the template around them) does not."""
    body = {
        "messages": [{"role": "user", "content": "x" * 10}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": stream,
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == _chat_error(10 + CHAT_OVERHEAD, 8)
    assert 10 + CHAT_OVERHEAD == 27


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/completions", {"prompt": "hi", "max_tokens": 40}, _text_error(2, 40)),
        ("/v1/completions", {"prompt": "", "max_tokens": 33}, _text_error(0, 33)),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": ""}], "max_tokens": 32},
            _chat_error(CHAT_OVERHEAD, 32),
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_past_the_context_is_a_400_not_a_500(
    client: TestClient, path: str, body: dict[str, Any], expected: dict[str, Any], stream: bool
) -> None:
    r = client.post(path, json={**body, "temperature": 0, "stream": stream})
    assert r.status_code == 400, r.text
    assert r.json() == expected


def test_the_prompt_of_a_list_that_does_not_fit_is_named(client: TestClient) -> None:
    r = client.post(
        "/v1/completions", json={"prompt": ["ok", "b" * 29], "max_tokens": 4, "temperature": 0}
    )
    assert r.status_code == 400, r.text
    assert r.json() == _text_error(29, 4, "the prompt at index 1")


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_that_fills_the_context_exactly_is_served_whole(
    client: TestClient, gpt: TinyGPT, stream: bool
) -> None:
    prompt = "the quick brown fox jumps over"[:27]  # 27 + 5 = 32 tokens: the whole context
    body = {"prompt": prompt, "max_tokens": 5, "temperature": 0, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    if stream:
        events = [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: {")]
        text = "".join(c["text"] for e in events for c in e["choices"])
        usage = events[-1]["usage"]
    else:
        text, usage = r.json()["choices"][0]["text"], r.json()["usage"]
    assert text == gpt.generate([prompt], 5, 0.0)[0]
    assert usage["prompt_tokens"] == 27 and usage["completion_tokens"] == 5


def test_an_empty_prompt_may_ask_for_the_whole_context(client: TestClient, gpt: TinyGPT) -> None:
    """0 + 32 tokens fit in 32 (it was a 500: "max_tokens must be below 32")."""
    r = client.post("/v1/completions", json={"prompt": "", "max_tokens": 32, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 32
    assert r.json()["choices"][0]["text"] == gpt.generate([""], 32, 0.0)[0]


def test_tinygpt_refuses_rather_than_truncates(gpt: TinyGPT) -> None:
    assert gpt.context_tokens == BLOCK and context_tokens(gpt) == BLOCK
    with pytest.raises(ValueError) as ei:
        gpt.generate(["ok", "a" * 30], 5, 0.0)
    assert str(ei.value) == (
        "prompt 1 is 30 tokens (bytes); with max_tokens 5 that is 35, over the model's context "
        "of 32 tokens (block_size): shorten the prompt or lower max_tokens"
    )
    with pytest.raises(ValueError, match="prompt 0 is 2 tokens .* max_tokens 31 that is 33"):
        gpt.generate(["hi"], 31, 0.0)
    assert len(gpt.generate(["a" * 27], 5, 0.0)[0].encode("utf-8", "surrogatepass")) > 0
    assert gpt.generate([""], BLOCK, 0.0)[0].tokens == BLOCK  # type: ignore[attr-defined]


def test_the_reference_gpt_says_its_seq_len_and_refuses_past_it(tiny_reference_gpt: Any) -> None:
    gen = tiny_reference_gpt  # seq_len 32, a character per token
    assert gen.context_tokens == 32 and context_overflow(gen, "a" * 30, 5) == (32, 30)
    assert context_overflow(gen, "a" * 27, 5) is None
    with pytest.raises(ValueError, match="prompt 0 is 30 tokens; .* context of 32 tokens"):
        gen.generate(["a" * 30], 5, 0.0)
    server = ReplicaServer(LoadedModel(uri="ref", generator=gen), name="r", max_wait_ms=1)
    with TestClient(server.app()) as c:
        body = {"prompt": "a" * 30, "max_tokens": 5, "temperature": 0}
        r = c.post("/v1/completions", json=body)
        assert r.status_code == 400 and r.json() == _text_error(30, 5), r.text
        r = c.post("/v1/completions", json={**body, "prompt": "a" * 27})
        assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) == 5, r.text


class _WordModel:
    """A user's model: words are tokens, a context of 8, and its own chat template."""

    context_tokens = 8

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        return [" w" * max_tokens for _ in prompts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return "<s> " + " ".join(m["content"] for m in messages) + " <reply>"


def test_a_users_model_is_measured_with_its_own_tokenizer_and_template() -> None:
    server = ReplicaServer(LoadedModel(uri="words", generator=_WordModel()), name="w")
    with TestClient(server.app()) as c:
        # 23 characters but 5 words: 5 + 3 fits in 8
        r = c.post("/v1/completions", json={"prompt": "one two three four five", "max_tokens": 3})
        assert r.status_code == 200, r.text
        r = c.post("/v1/completions", json={"prompt": "one two three four five", "max_tokens": 4})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == (
            "This model's maximum context length is 8 tokens. However, you requested 9 tokens "
            "(5 in the prompt, 4 in the completion). Please reduce the length of the prompt or "
            "completion."
        )
        # "<s> one two <reply>": 4 tokens, the template's 2 included
        msgs = [{"role": "user", "content": "one two"}]
        r = c.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 5})
        assert r.status_code == 400, r.text
        assert "(4 in the messages, 5 in the completion)" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 4})
        assert r.status_code == 200, r.text


def test_a_model_that_does_not_say_its_context_is_not_checked() -> None:
    class Broken(_WordModel):
        def count_tokens(self, text: str) -> int:
            raise RuntimeError("no tokenizer")

    class Unsaid(_WordModel):
        context_tokens = True  # type: ignore[assignment]

    class NoCounter:
        context_tokens = 8

    for g in (Broken(), Unsaid(), NoCounter()):
        assert context_tokens(g) is None or context_overflow(g, "a b c d e f g h i", 4) is None
    assert context_tokens(NoCounter()) is None and context_tokens(Unsaid()) is None
    echo = load_model("builtin:echo")
    assert context_tokens(echo.generator) is None
    with TestClient(ReplicaServer(echo, name="e").app()) as c:
        r = c.post("/v1/completions", json={"prompt": "z" * 5000, "max_tokens": 200})
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == "z" * 200, r.text


def test_the_model_list_says_the_context_as_vllm_does(client: TestClient) -> None:
    """/v1/models had neither OpenAI's ``created`` nor the context a request must fit in
    (vLLM's ``max_model_len``)."""
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["tiny"]
    assert data[0]["max_model_len"] == BLOCK
    assert data[0]["object"] == "model" and data[0]["owned_by"] == "aistack"
    assert isinstance(data[0]["created"], int) and data[0]["created"] > 1_700_000_000


def test_a_model_that_does_not_say_its_context_lists_none() -> None:
    server = ReplicaServer(load_model("builtin:echo"), name="t", max_wait_ms=1)
    with TestClient(server.app()) as c:
        data = c.get("/v1/models").json()["data"]
    assert data and all("max_model_len" not in m for m in data)
    assert all(isinstance(m["created"], int) for m in data)
