"""Every bad request body of /v1/completions and /v1/chat/completions is a 400
invalid_request_error whose message names the parameter, says what was sent and what is
expected, as OpenAI's API answers. A non-numeric string, an array or an object for a number,
a wrong type for messages/prompt/stop/n/stream/max_tokens, or a missing required field got
pydantic's wording ("Input should be a valid number, unable to parse string as a number",
"Field required", "Input should be a valid list"), which said neither what was sent nor, for
a range, what is expected; "stream": "true" was read as true (and the router, which streams
only a JSON true, relayed the stream as one answer). A body that is not JSON gets OpenAI's
"We could not parse the JSON body of your request" message."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = ("/v1/chat/completions", {"messages": MESSAGES})
TEXT = ("/v1/completions", {"prompt": "hi"})
BOTH = pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])


def _error(message: str, param: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


@BOTH
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", "many", "must be a number from 0 to 2, got a string ('many')"),
        ("temperature", [0.5], "must be a number from 0 to 2, got an array ([0.5])"),
        ("temperature", {"v": 1}, 'must be a number from 0 to 2, got an object ({"v": 1})'),
        ("temperature", 9, "must be a number from 0 to 2, got 9"),
        ("top_p", "x", "must be a number > 0 and <= 1, got a string ('x')"),
        ("max_tokens", "many", "must be a whole number >= 1, got a string ('many')"),
        ("max_tokens", 3.5, "must be a whole number >= 1, got 3.5"),
        ("max_tokens", 0, "must be a whole number >= 1, got 0"),
        ("max_tokens", [3], "must be a whole number >= 1, got an array ([3])"),
        ("n", "two", "must be a whole number >= 1, got a string ('two')"),
        ("n", 0, "must be a whole number >= 1, got 0"),
        ("seed", "x", "must be a whole number, got a string ('x')"),
        ("stop", 5, "must be a string or an array of strings, got a number (5)"),
        ("stop", {"a": 1}, 'must be a string or an array of strings, got an object ({"a": 1})'),
        ("stream", "true", "must be a boolean (true or false), got a string ('true')"),
        ("stream", 1, "must be a boolean (true or false), got a number (1)"),
        ("stream", "yes", "must be a boolean (true or false), got a string ('yes')"),
        ("stream_options", "x", "must be an object, got a string ('x')"),
        ("model", 5, "must be a string, got a number (5)"),
        ("user", ["u"], 'must be a string, got an array (["u"])'),
    ],
)
def test_a_wrong_type_names_the_parameter_what_was_sent_and_what_is_expected(
    replica: TestClient, path: str, base: dict[str, Any], field: str, value: Any, message: str
) -> None:
    r = replica.post(path, json={**base, field: value})
    assert r.status_code == 400, r.text
    assert r.json() == _error(f"{field}: {message}", field)


@BOTH
def test_an_item_of_the_wrong_type_is_named(
    replica: TestClient, path: str, base: dict[str, Any]
) -> None:
    r = replica.post(path, json={**base, "stop": ["a", 5]})
    assert r.status_code == 400
    assert r.json() == _error("stop.1: must be a string, got a number (5)", "stop.1")


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {},
            "messages",
            "messages: missing required parameter; expected an array of messages (objects like "
            "{'role': 'user', 'content': 'Hi'})",
        ),
        (
            {"messages": "hi"},
            "messages",
            "messages: must be an array of messages (objects like {'role': 'user', 'content': "
            "'Hi'}), got a string ('hi')",
        ),
        (
            {"messages": {"role": "user", "content": "hi"}},
            "messages",
            "messages: must be an array of messages (objects like {'role': 'user', 'content': "
            '\'Hi\'}), got an object ({"role": "user", "content": "hi"})',
        ),
        (
            {"messages": MESSAGES, "logprobs": "no"},
            "logprobs",
            "logprobs: must be a boolean (true or false), got a string ('no')",
        ),
        (
            {"messages": MESSAGES, "metadata": {"a": 1}},
            "metadata.a",
            "metadata.a: must be a string, got a number (1)",
        ),
        (
            {"messages": MESSAGES, "max_completion_tokens": "x"},
            "max_completion_tokens",
            "max_completion_tokens: must be a whole number >= 1, got a string ('x')",
        ),
    ],
)
def test_chat_bad_bodies(
    replica: TestClient, body: dict[str, Any], param: str, message: str
) -> None:
    r = replica.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json() == _error(message, param)


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {},
            "prompt",
            "prompt: missing required parameter; expected a string or an array of strings",
        ),
        (
            {"prompt": 5},
            "prompt",
            "prompt: must be a string or an array of strings, got a number (5)",
        ),
        ({"prompt": ["a", None]}, "prompt.1", "prompt.1: must be a string, got null"),
        (
            {"prompt": "x", "echo": "no"},
            "echo",
            "echo: must be a boolean (true or false), got a string ('no')",
        ),
        (
            {"prompt": "x", "logprobs": "x"},
            "logprobs",
            "logprobs: must be a whole number, got a string ('x')",
        ),
    ],
)
def test_completions_bad_bodies(
    replica: TestClient, body: dict[str, Any], param: str, message: str
) -> None:
    r = replica.post("/v1/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json() == _error(message, param)


@BOTH
def test_several_bad_parameters_are_each_named_once(
    replica: TestClient, path: str, base: dict[str, Any]
) -> None:
    r = replica.post(path, json={**base, "temperature": "hot", "stop": 5, "n": []})
    assert r.status_code == 400
    assert r.json() == _error(
        "temperature: must be a number from 0 to 2, got a string ('hot'); "
        "n: must be a whole number >= 1, got an array ([]); "
        "stop: must be a string or an array of strings, got a number (5)",
        "temperature",
    )


NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. This endpoint expects a JSON payload, but what was "
    "sent was not valid JSON: {why}. Send a JSON object with content-type application/json.)"
)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b"{not json",
            NOT_JSON.format(
                why="Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
            ),
        ),
        (b"", NOT_JSON.format(why="the body is empty")),
        (b'{"prompt": "\xff\xfe"}', NOT_JSON.format(why="it is not UTF-8 (invalid start byte)")),
        (b"[1, 2]", "request body: must be a JSON object of parameters, got an array ([1, 2])"),
        (b'"hi"', "request body: must be a JSON object of parameters, got a string ('hi')"),
    ],
)
def test_a_body_that_is_not_a_json_object_says_so_as_openai_does(
    replica: TestClient, path: str, raw: bytes, message: str
) -> None:
    r = replica.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json() == _error(message, None)


@BOTH
@pytest.mark.parametrize("stream", [True, False])
def test_valid_bodies_are_still_served(
    replica: TestClient, path: str, base: dict[str, Any], stream: bool
) -> None:
    body = {**base, "temperature": 0, "max_tokens": 2, "stop": ["zz"], "n": 1, "stream": stream}
    body |= {"seed": None, "user": "u", "stream_options": None}
    r = replica.post(path, json=body)
    assert r.status_code == 200, r.text
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.json()["choices"][0]["finish_reason"] == "length"
