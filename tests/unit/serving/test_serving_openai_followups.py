"""Follow-ups on /v1/completions and /v1/chat/completions.

1. ``null`` for an optional parameter means "not given", as OpenAI's API reads it:
   ``"max_tokens": null``, ``"temperature": null``, ``"stream": null`` ... were 400s ("got
   null") on the parameters with a non-null default; the answer is now the one without them.
2. A bad message says what was sent in JSON's words ("got a number (5)"), not Python's
   ("got int"); a role that is not a string (``["user"]``) was a 500 (unhashable list).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aistack.serving.models import load_model
from aistack.serving.replica import ReplicaServer

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
# parameters OpenAI documents as nullable that have a non-null default here
NULLABLE = {
    TEXT: [
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stream",
        "echo",
        "presence_penalty",
        "frequency_penalty",
    ],
    CHAT: [
        "temperature",
        "top_p",
        "n",
        "stream",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
    ],
}
# those that took null already (must stay so)
ALREADY = {
    TEXT: ["stop", "logprobs", "best_of", "logit_bias", "seed", "suffix", "stream_options"],
    CHAT: ["max_tokens", "max_completion_tokens", "stop", "top_logprobs", "seed", "stream_options"],
}


@pytest.fixture
def replica() -> Iterator[TestClient]:
    server = ReplicaServer(load_model("builtin:echo"), name="t", max_batch_size=8, max_wait_ms=2)
    with TestClient(server.app(), raise_server_exceptions=False) as c:
        yield c


def _base(path: str) -> dict[str, Any]:
    return {"messages": MESSAGES} if path == CHAT else {"prompt": "hello there"}


def _answer(r: Any) -> Any:
    """The body without what differs between two requests (id, created)."""
    assert r.status_code == 200, r.text
    body = r.json()
    body.pop("id"), body.pop("created")
    return body


@pytest.mark.parametrize(
    ("path", "field"),
    [(p, f) for p in (TEXT, CHAT) for f in NULLABLE[p] + ALREADY[p]],
)
def test_null_means_not_given(replica: TestClient, path: str, field: str) -> None:
    base = {**_base(path), "temperature": 0}
    if field == "temperature":
        base.pop("temperature")
    given = replica.post(path, json={**base, field: None})
    assert _answer(given) == _answer(replica.post(path, json=base))


@pytest.mark.parametrize("path", [TEXT, CHAT])
def test_all_nulls_at_once(replica: TestClient, path: str) -> None:
    body = _base(path) | dict.fromkeys(NULLABLE[path] + ALREADY[path])
    assert _answer(replica.post(path, json=body)) == _answer(replica.post(path, json=_base(path)))


def test_null_max_tokens_is_the_default_of_16(replica: TestClient) -> None:
    r = replica.post(TEXT, json={"prompt": "x" * 40, "max_tokens": None, "temperature": 0})
    assert _answer(r)["usage"]["completion_tokens"] == 16


@pytest.mark.parametrize("path", [TEXT, CHAT])
def test_null_stream_is_not_a_stream(replica: TestClient, path: str) -> None:
    r = replica.post(path, json={**_base(path), "stream": None})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("path", [TEXT, CHAT])
def test_valid_values_and_required_nulls_are_unchanged(replica: TestClient, path: str) -> None:
    r = replica.post(path, json={**_base(path), "temperature": "hot", "n": 2})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "temperature: must be a number from 0 to 2, got a string ('hot'); n: only 1 choice"
    )
    required = "messages" if path == CHAT else "prompt"
    r = replica.post(path, json={required: None})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == required
    assert r.json()["error"]["message"].endswith("got null")


@pytest.mark.parametrize(
    ("message", "param", "text"),
    [
        (
            5,
            "messages.0",
            "messages.0: expected an object with 'role' and 'content', got a number (5)",
        ),
        (
            [1, 2],
            "messages.0",
            "messages.0: expected an object with 'role' and 'content', got an array ([1, 2])",
        ),
        (
            {"role": "user", "content": 5},
            "messages.0.content",
            "messages.0.content: expected a string or an array of text parts, got a number (5)",
        ),
        (
            {"role": "user", "content": True},
            "messages.0.content",
            "messages.0.content: expected a string or an array of text parts, got a boolean (true)",
        ),
        (
            {"role": "user", "content": {"a": 1}},
            "messages.0.content",
            'messages.0.content: expected a string or an array of text parts, got an object ({"a": 1})',
        ),
        (
            {"role": ["user"], "content": "x"},
            "messages.0.role",
            'messages.0.role: expected one of system, developer, user, assistant, tool, function, got an array (["user"])',
        ),
        (
            {"role": 5, "content": "x"},
            "messages.0.role",
            "messages.0.role: expected one of system, developer, user, assistant, tool, function, got a number (5)",
        ),
        (
            {"role": "user", "content": [5]},
            "messages.0.content.0",
            "messages.0.content.0: expected a part like {'type': 'text', 'text': ...}, "
            "got a number (5)",
        ),
        (
            {"role": "user", "content": [{"type": "text", "text": 5}]},
            "messages.0.content.0.text",
            "messages.0.content.0.text: expected a string, got a number (5)",
        ),
        (
            {"role": "user", "content": [{"type": 7, "text": "x"}]},
            "messages.0.content.0.type",
            "messages.0.content.0.type: only 'text' parts are supported by this server, "
            "got a number (7)",
        ),
    ],
)
def test_a_bad_message_says_what_was_sent_in_json_words(
    replica: TestClient, message: Any, param: str, text: str
) -> None:
    r = replica.post(CHAT, json={"messages": [message]})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "message": text,
        "type": "invalid_request_error",
        "param": param,
        "code": None,
    }
