"""POST /v1/chat/completions on the replica (in process, Starlette TestClient): the OpenAI
shape, the chat template (the model's own or the documented default), streaming chunks, and
validation as strict as /v1/completions (unknown model 404, bad fields 400 naming them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from aistack.serving.chat import render_prompt
from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer
from aistack.serving.router import is_idempotent

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
]
PROMPT = "System: Be brief.\nUser: hi\nAssistant:"  # the default template of MESSAGES


@pytest.fixture
def client() -> Iterator[TestClient]:
    server = ReplicaServer(
        load_model("builtin:echo"),
        name="t",
        max_batch_size=8,
        max_wait_ms=2,
        max_body_bytes=4096,
        served_names=["svc"],
    )
    with TestClient(server.app()) as c:
        yield c


def test_chat_completion_openai_shape_with_the_default_template(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", json={"model": "svc", "messages": MESSAGES, "max_tokens": 5}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and body["model"] == "svc"
    assert isinstance(body["created"], int)
    # the echo model answers the prompt reversed: the prompt is the documented transcript
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": PROMPT[::-1][:5], "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": len(PROMPT),
        "completion_tokens": 5,
        "total_tokens": len(PROMPT) + 5,
    }
    # max_completion_tokens (the current name) wins over max_tokens; the default is 16
    r = client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 5, "max_completion_tokens": 7},
    )
    assert r.json()["choices"][0]["message"]["content"] == PROMPT[::-1][:7]
    r = client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.json()["usage"]["completion_tokens"] == 16
    assert r.json()["model"] == "builtin:echo"  # no model given: the one served


def test_text_parts_are_the_same_as_a_string(client: TestClient) -> None:
    parts = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        },
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    a = client.post("/v1/chat/completions", json={"messages": parts, "max_tokens": 40}).json()
    b = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 40}).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["choices"][0]["message"]["content"] == PROMPT[::-1]


class _Chatty:
    """A base model that answers, then starts the user's next turn itself."""

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        return [" Hello there.\nUser: and then?"[:max_tokens] for _ in prompts]


class _Templated(_Chatty):
    """A model with its own chat format."""

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


def test_default_template_stops_at_the_next_user_turn_and_a_model_template_is_used() -> None:
    server = ReplicaServer(LoadedModel(uri="m", generator=_Chatty()), name="c")
    with TestClient(server.app()) as c:
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 100})
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == " Hello there."
    assert choice["finish_reason"] == "stop"

    gen = _Templated()
    assert render_prompt([{"role": "user", "content": "hi"}], gen) == (
        "<|user|>hi<|assistant|>",
        [],
    )
    server = ReplicaServer(LoadedModel(uri="m", generator=gen), name="t")
    with TestClient(server.app()) as c:
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 100})
        body = r.json()
        # no template stop: the model's own format decides where its answer ends
        assert body["choices"][0]["message"]["content"] == " Hello there.\nUser: and then?"
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["prompt_tokens"] == len("<|system|>Be brief.<|user|>hi<|assistant|>")
        # the request's own stop sequences still apply
        r = c.post(
            "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 100, "stop": "."}
        )
        assert r.json()["choices"][0]["message"]["content"] == " Hello there"


def _chunks(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.post("/v1/chat/completions", json={**body, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_streamed_chat_is_role_then_content_deltas_then_the_finish_reason(
    client: TestClient,
) -> None:
    chunks = _chunks(
        client,
        {"messages": MESSAGES, "max_tokens": 6, "stream_options": {"include_usage": True}},
    )
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    deltas = [c["choices"][0] for c in chunks[1:-1]]
    assert deltas[-1] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    pieces = [d["delta"]["content"] for d in deltas[:-1]]
    assert all(d["finish_reason"] is None for d in deltas[:-1])
    assert pieces == list(PROMPT[::-1][:6])  # a delta per decoded step (the echo model)
    usage = chunks[-1]
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": len(PROMPT),
        "completion_tokens": 6,
        "total_tokens": len(PROMPT) + 6,
    }
    # the same answer as without streaming
    whole = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 6})
    assert whole.json()["choices"][0]["message"]["content"] == "".join(pieces)


def test_streamed_chat_stopped_by_the_template_never_sends_the_next_turn() -> None:
    server = ReplicaServer(LoadedModel(uri="m", generator=_Chatty()), name="c")
    with TestClient(server.app()) as c:
        chunks = _chunks(c, {"messages": MESSAGES, "max_tokens": 100})
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text == " Hello there."
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({}, "messages", "messages: missing required parameter; expected an array of messages"),
        ({"messages": []}, "messages", "at least one message"),
        (
            {"messages": "hi"},
            "messages",
            "messages: must be an array of messages (objects like {'role': 'user', 'content': "
            "'Hi'}), got a string ('hi')",
        ),
        ({"messages": ["hi"]}, "messages.0", "expected an object"),
        ({"messages": [{"content": "hi"}]}, "messages.0.role", "field required"),
        # a tool result is taken (b874b4c), but it must name the call it answers
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages.0.tool_call_id", "tool call"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "unknown role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content", "field required"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "got a number (5)"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                        ],
                    }
                ]
            },
            "messages.0.content.1.type",
            "only 'text' parts",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "mood": "happy"}]},
            "messages.0.mood",
            "unknown field",
        ),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
            "messages.0.tool_calls.0.function",
            "missing",
        ),
        ({"messages": MESSAGES, "colour": "red"}, "colour", "colour: unknown field"),
        ({"messages": MESSAGES, "max_tokens": "many"}, "max_tokens", "max_tokens"),
        (
            {"messages": MESSAGES, "max_completion_tokens": 0},
            "max_completion_tokens",
            "max_completion_tokens: must be a whole number >= 1, got 0",
        ),
        ({"messages": MESSAGES, "max_tokens": 4097}, "max_tokens", "at most 4096"),
        ({"messages": MESSAGES, "temperature": 9}, "temperature", "temperature"),
        ({"messages": MESSAGES, "n": 2}, "n", "n: only 1 choice per request is supported"),
        (
            {"messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools",
            "tool calling is not supported",
        ),
        (
            {"messages": MESSAGES, "response_format": {"type": "json_object"}},
            "response_format",
            "only text answers",
        ),
        ({"messages": MESSAGES, "logprobs": True}, "logprobs", "log probabilities"),
        # accepted and silently ignored before
        ({"messages": MESSAGES, "top_p": 0.5}, "top_p", "nucleus sampling"),
        ({"messages": MESSAGES, "presence_penalty": 1}, "presence_penalty", "penalties"),
        ({"messages": MESSAGES, "frequency_penalty": 1}, "frequency_penalty", "penalties"),
        ({"messages": MESSAGES, "logit_bias": {"1": 5}}, "logit_bias", "token biases"),
    ],
)
def test_bad_chat_input_is_400_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str, needle: str
) -> None:
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == param, err
        assert needle in err["message"], err
        assert err["type"] == "invalid_request_error"
    # harmless values of those fields are accepted
    ok = {
        "messages": MESSAGES,
        "tool_choice": "none",
        "response_format": {"type": "text"},
        "logprobs": False,
        "top_p": 1,
        "logit_bias": {},
        "presence_penalty": 0,
        "user": "u1",
        "seed": 3,
    }
    assert client.post("/v1/chat/completions", json=ok).status_code == 200


def test_unknown_model_is_404_and_non_text_models_say_where_to_go(client: TestClient) -> None:
    for stream in (False, True):
        r = client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES, "stream": stream},
        )
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["param"] == "model" and "'gpt-4o' is not served here" in err["message"]
        assert "'svc'" in err["message"]
    server = ReplicaServer(LoadedModel(uri="fake", predict_batch=lambda chunks: chunks))
    with TestClient(server.app()) as c:
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES})
        assert r.status_code == 404 and "/invocations" in r.json()["error"]["message"]


def test_chat_requests_are_retried_by_the_router_as_other_inference() -> None:
    assert is_idempotent("POST", "/v1/chat/completions", {})


@pytest.mark.parametrize("n", [2, 5])
def test_n_above_one_says_only_one_choice_is_served(client: TestClient, n: int) -> None:
    """It was pydantic's bare 'n: Input should be less than or equal to 1'."""
    for stream in (False, True):
        r = client.post(
            "/v1/chat/completions", json={"messages": MESSAGES, "n": n, "stream": stream}
        )
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["message"] == (
            "n: only 1 choice per request is supported (n > 1 is not); send separate requests"
        )
        assert err["param"] == "n"
    r = client.post("/v1/chat/completions", json={"messages": MESSAGES, "n": 0})
    assert r.json()["error"]["message"] == "n: must be a whole number >= 1, got 0"
    assert (
        client.post("/v1/chat/completions", json={"messages": MESSAGES, "n": 1}).status_code == 200
    )


def test_every_bad_field_is_listed_not_only_the_first(client: TestClient) -> None:
    """'messages: Field required (and 1 more problems)' hid the second problem."""
    r = client.post("/v1/chat/completions", json={"temperature": 9})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["message"] == (
        "messages: missing required parameter; expected an array of messages (objects like "
        "{'role': 'user', 'content': 'Hi'}); temperature: must be a number from 0 to 2, got 9"
    )
    assert err["param"] == "messages"
    r = client.post("/v1/completions", json={"max_tokens": "many"})
    assert r.json()["error"]["message"] == (
        "prompt: missing required parameter; expected a string or an array of strings; "
        "max_tokens: must be a whole number >= 1, got a string ('many')"
    )
    # at most 5 are listed; the rest are counted, singular or plural
    body = {"prompt": "x", **{k: 1 for k in "abcdef"}}
    msg = client.post("/v1/completions", json=body).json()["error"]["message"]
    assert msg == (
        "a: unknown field (remove it); b: unknown field (remove it); c: unknown field "
        "(remove it); d: unknown field (remove it); e: unknown field (remove it) "
        "(and 1 more problem)"
    )
    body["g"] = 1
    msg = client.post("/v1/completions", json=body).json()["error"]["message"]
    assert msg.endswith("e: unknown field (remove it) (and 2 more problems)")
