"""A conversation with tool calls in its history (an assistant message's ``tool_calls`` and the
``tool`` messages that answer them, OpenAI's agent loop) was refused, 400 "'tool': tool calling
is not supported", though a text model can read them as lines of the prompt. Now they are
accepted and rendered; what cannot be honoured (a model that would call tools) or what OpenAI
itself refuses (a tool result with no call before it, a call never answered) is a 400 naming
the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from aistack.serving.chat import parse_messages, render_prompt
from aistack.serving.models import load_model
from aistack.serving.replica import ReplicaServer

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOL_TURN = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
]
PROMPT = (
    "User: Weather in Paris?\n"
    'Assistant: [calls get_weather({"city": "Paris"})]\n'
    "Tool (get_weather): 22 C\n"
    "Assistant:"
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    server = ReplicaServer(load_model("builtin:echo"), name="t", max_batch_size=8, max_wait_ms=2)
    with TestClient(server.app()) as c:
        yield c


def test_tool_results_become_lines_of_the_default_transcript(client: TestClient) -> None:
    assert render_prompt(parse_messages(TOOL_TURN), object()) == (PROMPT, ["\nUser:"])
    for stream in (False, True):
        r = client.post(
            "/v1/chat/completions",
            json={"messages": TOOL_TURN, "max_tokens": 8, "stream": stream},
        )
        assert r.status_code == 200, r.text
    r = client.post("/v1/chat/completions", json={"messages": TOOL_TURN, "max_tokens": 8})
    # the echo model answers the prompt reversed: the prompt is the transcript above
    assert r.json()["choices"][0]["message"]["content"] == PROMPT[::-1][:8]
    assert r.json()["usage"]["prompt_tokens"] == len(PROMPT)


def test_legacy_function_messages_and_text_beside_calls() -> None:
    msgs = [
        {"role": "user", "content": "Add 2 and 3"},
        {
            "role": "assistant",
            "content": "Let me add.",
            "function_call": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
        },
        {"role": "function", "name": "add", "content": "5"},
    ]
    assert render_prompt(parse_messages(msgs), object())[0] == (
        "User: Add 2 and 3\n"
        'Assistant: Let me add. [calls add({"a": 2, "b": 3})]\n'
        "Tool (add): 5\n"
        "Assistant:"
    )


def test_a_models_own_template_gets_them_in_openais_shape() -> None:
    seen: list[Any] = []

    class Gen:
        def apply_chat_template(self, messages: list[dict[str, Any]]) -> str:
            seen.extend(messages)
            return "P"

    assert render_prompt(parse_messages(TOOL_TURN), Gen()) == ("P", [])
    assert seen[1] == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    assert seen[2] == {
        "role": "tool",
        "content": "22 C",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }


def test_tools_with_tool_choice_none_are_accepted(client: TestClient) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    body = {"messages": TOOL_TURN, "tools": tools, "max_tokens": 2}
    r = client.post("/v1/chat/completions", json={**body, "tool_choice": "none"})
    assert r.status_code == 200, r.text
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "tools"
    assert err["message"] == (
        "tools: tool calling is not supported by this server (the model cannot call them): "
        'leave it out or set tool_choice to "none"; tool results in `messages` are accepted'
    )


@pytest.mark.parametrize(
    ("messages", "param", "message"),
    [
        (
            [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}],
            "messages.1.tool_call_id",
            "messages.1.tool_call_id: a 'tool' message needs the id of the tool call it "
            "answers (a string)",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "c9", "content": "4"},
            ],
            "messages.1.role",
            "messages.1.role: a 'tool' message answers a tool call of an earlier assistant "
            "message, and no call has id 'c9' (calls made: none); this server does no tool "
            "calling itself, it takes tool results as history",
        ),
        (
            TOOL_TURN[:2],
            "messages.1.tool_calls",
            "messages.1.tool_calls: tool call 'call_1' has no 'tool' message answering it "
            "(with tool_call_id 'call_1'); this server does no tool calling itself: send the "
            "tool's result, or leave the call out",
        ),
        (
            [*TOOL_TURN[:2], {"role": "user", "content": "and?"}],
            "messages.1.tool_calls",
            "messages.1.tool_calls: tool call 'call_1' has no 'tool' message answering it "
            "(with tool_call_id 'call_1') before messages.2",
        ),
        (
            [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}],
            "messages.0.tool_calls.0.function",
            "messages.0.tool_calls.0.function: missing; a call is like {'id': ..., 'type': "
            "'function', 'function': {'name': ..., 'arguments': ...}}",
        ),
        (
            [{"role": "user", "content": "x", "tool_call_id": "c1"}],
            "messages.0.tool_call_id",
            "messages.0.tool_call_id: not a field of a 'user' message; remove it",
        ),
        (
            [{"role": "function", "content": "5"}],
            "messages.0.name",
            "messages.0.name: a 'function' message needs the name of the function it answers "
            "(a string)",
        ),
    ],
)
def test_malformed_tool_history_is_a_400_naming_the_field(
    client: TestClient, messages: list[Any], param: str, message: str
) -> None:
    r = client.post("/v1/chat/completions", json={"messages": messages})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["param"], err["message"], err["type"]) == (param, message, "invalid_request_error")


def test_parallel_tool_calls_beside_tool_choice_none_is_accepted(client: TestClient) -> None:
    """Clients send parallel_tool_calls with their tools; with tool_choice "none" no call is
    made, so it was a 400 for a request the tool-history support means to accept."""
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    body = {"messages": TOOL_TURN, "tools": tools, "max_tokens": 2, "parallel_tool_calls": True}
    r = client.post("/v1/chat/completions", json={**body, "tool_choice": "none"})
    assert r.status_code == 200, r.text
    r = client.post("/v1/chat/completions", json={**body, "tool_choice": "auto"})
    assert r.status_code == 400
