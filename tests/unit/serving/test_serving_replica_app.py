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
        "/v1/completions", json={"model": "m", "prompt": "hello", "max_tokens": 3, "temperature": 0}
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


def test_streaming_is_server_sent_events(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "hey", "max_tokens": 8, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[0])["choices"][0]["text"] == "yeh"


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
        (b'{"prompt": "x", "n": 2}', 400, "n"),
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
