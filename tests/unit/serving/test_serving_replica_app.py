"""The replica's HTTP surface, in process (Starlette TestClient), with the fake echo model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer


@pytest.fixture
def client() -> Iterator[TestClient]:
    server = ReplicaServer(
        load_model("builtin:echo"), name="t", max_batch_size=8, max_wait_ms=2, max_body_bytes=4096
    )
    with TestClient(server.app()) as c:
        yield c


def test_completion_openai_shape(client: TestClient) -> None:
    r = client.post(
        "/v1/completions",
        json={"model": "builtin:echo", "prompt": "hello", "max_tokens": 3, "temperature": 0},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "oll"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_completion_list_of_prompts_stop_and_echo(client: TestClient) -> None:
    r = client.post(
        "/v1/completions",
        json={"prompt": ["abc", "xyz"], "max_tokens": 5, "stop": "y", "echo": True},
    )
    choices = r.json()["choices"]
    assert [c["text"] for c in choices] == ["abccba", "xyzz"]
    assert [c["finish_reason"] for c in choices] == ["length", "stop"]


def _events(client: TestClient, body: dict) -> list[dict]:  # type: ignore[type-arg]
    r = client.post("/v1/completions", json={**body, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_streaming_is_server_sent_events_a_piece_per_step(client: TestClient) -> None:
    chunks = _events(client, {"prompt": "hey", "max_tokens": 8})
    texts = [c["choices"][0]["text"] for c in chunks]
    assert texts[:3] == ["y", "e", "h"] and "".join(texts) == "yeh"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    assert len({c["id"] for c in chunks}) == 1


def test_streaming_several_prompts_echo_stop_and_usage(client: TestClient) -> None:
    chunks = _events(
        client,
        {
            "prompt": ["abc", "xyz"],
            "max_tokens": 5,
            "stop": "y",
            "echo": True,
            "stream_options": {"include_usage": True},
        },
    )
    usage = chunks[-1]
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    text: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str] = {}
    for c in chunks[:-1]:
        [ch] = c["choices"]
        text[ch["index"]] += ch["text"]
        if ch["finish_reason"]:
            finish[ch["index"]] = ch["finish_reason"]
    # the same texts and reasons as without streaming
    assert text == {0: "abccba", 1: "xyzz"} and finish == {0: "length", 1: "stop"}


def test_a_model_that_cannot_stream_sends_its_completion_in_one_piece() -> None:
    from aistack.serving.generators import streams

    class Plain:  # a user's pyfunc generate without on_text
        def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
            return [p.upper()[:max_tokens] for p in prompts]

    assert not streams(Plain())
    server = ReplicaServer(LoadedModel(uri="m", generator=Plain()), name="p")
    with TestClient(server.app()) as c:
        chunks = _events(c, {"prompt": "hello", "max_tokens": 3})
    assert [ch["choices"][0]["text"] for ch in chunks] == ["HEL"]
    assert chunks[0]["choices"][0]["finish_reason"] == "length"


def test_model_error_mid_stream_is_an_error_event() -> None:
    class Broken:
        def generate(self, prompts, max_tokens, temperature, on_text=None):  # type: ignore[no-untyped-def]
            on_text(0, "par")
            raise RuntimeError("out of memory")

    server = ReplicaServer(LoadedModel(uri="m", generator=Broken()), name="b")
    with TestClient(server.app()) as c:
        r = c.post("/v1/completions", json={"prompt": "x", "stream": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert events[0]["choices"][0]["text"] == "par"
    assert "out of memory" in events[-1]["error"]["message"]
    assert "[DONE]" not in r.text


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"prompt": 5}', 400, "prompt"),
        (b'{"prompt": "x", "max_tokens": "many"}', 400, "max_tokens"),
        (b'{"prompt": "x", "max_tokens": -1}', 400, "max_tokens"),
        (b'{"prompt": "x", "temperature": 9}', 400, "temperature"),
        (b'{"prompt": "x", "n": 2}', 400, "n: only 1 choice per request is supported"),
        (b'{"prompt": "x", "colour": "red"}', 400, "colour: unknown field"),
        (b'{"prompt": []}', 400, "at least one prompt"),
        (('{"prompt": [' + ",".join(['"a"'] * 300) + "]}").encode(), 400, "the limit is 256"),
        (b'{"prompt": "\xff\xfe"}', 400, "not valid JSON"),
    ],
)
def test_bad_input_is_4xx_naming_the_field(
    client: TestClient, body: bytes, status: int, needle: str
) -> None:
    r = client.post("/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    err = r.json()["error"]
    assert needle in err["message"]
    assert err["type"] == "invalid_request_error"
    # the replica still serves afterwards
    assert client.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2}).status_code == 200


def test_completions_n_above_one_says_only_one_choice_is_served(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x", "n": 3})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "n: only 1 choice per request is supported (n > 1 is not); send separate requests"
    )


def test_oversized_body_is_413(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "x" * 10_000})
    assert r.status_code == 413
    assert "limit is 4096 bytes" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(10):
            yield b"x" * 1000

    r = client.post("/v1/completions", content=chunks())
    assert r.status_code == 413
    assert client.get("/health").status_code == 200


def test_invocations_mlflow_formats(client: TestClient) -> None:
    r = client.post(
        "/invocations", json={"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}
    )
    assert r.status_code == 200
    assert r.json()["predictions"] == [{"echo": {"a": 1, "b": 2}}, {"echo": {"a": 3, "b": 4}}]
    r = client.post("/invocations", json={"dataframe_records": [{"a": 1}]})
    assert r.json()["predictions"] == [{"echo": {"a": 1}}]
    r = client.post("/invocations", json={"instances": [1, 2, 3]})
    assert r.json()["predictions"] == [{"echo": 1}, {"echo": 2}, {"echo": 3}]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({}, "exactly one of"),
        ({"dataframe_split": [1, 2]}, "dataframe_split"),
        ({"dataframe_split": {"data": 5}}, "dataframe_split.data"),
        ({"dataframe_records": [1, 2]}, "dataframe_records"),
        ({"instances": [1], "inputs": [2]}, "exactly one of"),
        ({"rows": []}, "rows: unknown field"),
        ({"inputs": 5}, "inputs: expected a list"),
    ],
)
def test_invocations_bad_input(client: TestClient, payload: dict, needle: str) -> None:
    r = client.post("/invocations", json=payload)
    assert r.status_code == 400
    assert needle in r.json()["error"]["message"]


def test_invocations_wrong_content_type(client: TestClient) -> None:
    r = client.post("/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert r.status_code == 415


def test_one_bad_request_does_not_fail_its_batch_neighbours() -> None:
    import pandas as pd

    def predict_batch(chunks: list) -> list:
        out = []
        for c in chunks:
            if "boom" in c.columns:
                raise ValueError("column boom is not allowed")
            out.append(list(c["x"] * 2))
        return out

    server = ReplicaServer(
        LoadedModel(uri="fake", predict_batch=predict_batch), max_batch_size=8, max_wait_ms=50
    )
    import concurrent.futures

    with TestClient(server.app()) as c:
        payloads = [{"dataframe_records": [{"x": i}]} for i in range(4)] + [
            {"dataframe_records": [{"boom": 1}]}
        ]
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            results = list(pool.map(lambda p: c.post("/invocations", json=p), payloads))
    assert [r.status_code for r in results] == [200, 200, 200, 200, 400]
    assert [r.json()["predictions"] for r in results[:4]] == [[0], [2], [4], [6]]
    assert "column boom" in results[4].json()["error"]["message"]
    assert isinstance(pd.DataFrame, type)


def test_health_metrics_and_unhealthy_model(client: TestClient) -> None:
    client.post("/v1/completions", json={"prompt": "a"})
    client.post("/v1/completions", content=b"{")
    h = client.get("/health").json()
    assert h["status"] == "ok"
    assert h["batches"]["completions"]["items"] == 1
    text = client.get("/metrics").text
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {
        s.labels["code"]: s.value
        for s in fams["aistack_replica_requests"].samples
        if "code" in s.labels
    }
    assert codes == {"200": 1.0, "400": 1.0}
    assert "aistack_replica_batch_size" in fams
    sick = ReplicaServer(load_model("builtin:echo?fail=health"))
    with TestClient(sick.app()) as c:
        assert c.get("/health").status_code == 503


def test_text_endpoint_on_predict_only_model_is_404() -> None:
    server = ReplicaServer(LoadedModel(uri="fake", predict_batch=lambda chunks: chunks))
    with TestClient(server.app()) as c:
        r = c.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 404
        assert "/invocations" in r.json()["error"]["message"]


def test_unknown_path_and_method_are_json_errors_naming_the_endpoints(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"input": "hi"})
    assert r.status_code == 404  # was a text/plain "Not Found" an OpenAI client cannot read
    err = r.json()["error"]
    assert err["message"].startswith("POST /v1/embeddings: no such endpoint")
    assert "POST /v1/completions" in err["message"]
    assert "POST /v1/chat/completions" in err["message"]
    r = client.get("/v2/nothing")
    assert r.status_code == 404
    assert "POST /invocations" in r.json()["error"]["message"]
    r = client.get("/v1/completions")
    assert r.status_code == 405
    assert r.json()["error"]["message"].startswith("GET /v1/completions: method not allowed")


def test_an_unknown_model_name_is_404_and_the_served_names_are_listed() -> None:
    server = ReplicaServer(
        load_model("builtin:echo"), name="t", served_names=["my-svc", "builtin:echo", ""]
    )
    with TestClient(server.app()) as c:
        ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert ids == ["builtin:echo", "my-svc"]
        for name in ids:
            body = {"model": name, "prompt": "ab", "max_tokens": 1}
            assert c.post("/v1/completions", json=body).status_code == 200
        r = c.post("/v1/completions", json={"model": "gpt-4", "prompt": "ab", "stream": True})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
        assert "'gpt-4' is not served here" in r.json()["error"]["message"]
        assert "'my-svc'" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("logprobs", 0, "log probabilities are not supported"),  # was answered with null
        ("logprobs", 3, "log probabilities are not supported"),
        ("best_of", 3, "best of several completions needs log probabilities"),
        ("suffix", "};", "insertion"),
        ("logit_bias", {"50256": -100}, "token biases"),
        ("top_p", 0.5, "nucleus sampling"),
        ("presence_penalty", 0.5, "penalties"),
        ("frequency_penalty", -1.0, "penalties"),
    ],
)
def test_fields_the_model_cannot_honour_are_refused_by_name(
    client: TestClient, field: str, value: object, needle: str
) -> None:
    for stream in (False, True):
        r = client.post("/v1/completions", json={"prompt": "abc", "stream": stream, field: value})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == field and err["type"] == "invalid_request_error"
        assert err["message"].startswith(f"{field}: ") and needle in err["message"]
    # their no-op values are accepted, and the answer has no (null) log probabilities to hide
    noop = {
        "logprobs": None,
        "best_of": 1,
        "suffix": "",
        "logit_bias": {},
        "top_p": 1.0,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
    }
    r = client.post("/v1/completions", json={"prompt": "abc", "max_tokens": 2, **noop})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "cb"
