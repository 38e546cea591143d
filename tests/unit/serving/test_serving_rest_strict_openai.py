"""/v1/completions and /v1/chat/completions refuse a number sent as a string, as OpenAI's API
does (400 invalid_request_error naming the parameter): ``"temperature": "0.5"`` was read as 0.5,
so a client that worked here failed against OpenAI. Bools and NaN stay refused."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

CHAT = ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
TEXT = ("/v1/completions", {"prompt": "hi"})


@pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "temperature",
            "0.5",
            "temperature: must be a number from 0 to 2, got a string ('0.5'); send the number "
            "without quotes",
        ),
        (
            "temperature",
            " 1 ",
            "temperature: must be a number from 0 to 2, got a string (' 1 '); send the number "
            "without quotes",
        ),
        (
            "top_p",
            "1",
            "top_p: must be a number > 0 and <= 1, got a string ('1'); send the number without "
            "quotes",
        ),
        (
            "max_tokens",
            "3",
            "max_tokens: must be a whole number >= 1, got a string ('3'); send the "
            "number without quotes",
        ),
        (
            "seed",
            "7",
            "seed: must be a whole number, got a string ('7'); send the number without quotes",
        ),
        (
            "presence_penalty",
            "0",
            "presence_penalty: must be a number, got a string ('0'); send the number without "
            "quotes",
        ),
        ("temperature", True, "temperature: must be a number from 0 to 2, got true"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_number_in_a_string_is_a_400_naming_the_parameter(
    replica: TestClient,
    path: str,
    base: dict[str, object],
    field: str,
    value: object,
    message: str,
    stream: bool,
) -> None:
    r = replica.post(path, json={**base, field: value, "stream": stream})
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": {"message": message, "type": "invalid_request_error", "param": field, "code": None}
    }


@pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])
def test_nan_in_a_string_still_says_finite(
    replica: TestClient, path: str, base: dict[str, object]
) -> None:
    r = replica.post(path, json={**base, "temperature": "nan"})
    assert r.status_code == 400
    assert (
        r.json()["error"]["message"] == "temperature: must be a finite number from 0 to 2, got nan"
    )


@pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])
def test_numbers_are_still_taken(replica: TestClient, path: str, base: dict[str, object]) -> None:
    body = {**base, "temperature": 0.5, "top_p": 1, "max_tokens": 2, "seed": 7, "n": 1}
    r = replica.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
