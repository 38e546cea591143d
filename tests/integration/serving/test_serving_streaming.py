"""Token streaming end to end: a replica process streams each decoded piece as the model makes
it, and the router relays the events as they come (not buffered to the end)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN_MS = 60  # each decoding step of the fake model
N = 12  # characters of the completion


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture
def router_url(tmp_path: Path) -> Iterator[str]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rport, port = _free_port(), _free_port()
        log = (tmp_path / "procs.log").open("ab")
        procs.append(
            subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "aistack.serving.replica",
                    "--model",
                    f"builtin:echo?token_ms={TOKEN_MS}",
                    "--port",
                    str(rport),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        _wait(f"http://127.0.0.1:{rport}/health", procs[0])
        procs.append(
            subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "aistack.serving.router",
                    "--replica",
                    f"http://127.0.0.1:{rport}",
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        _wait(f"http://127.0.0.1:{port}/metrics", procs[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def _events(url: str, body: dict) -> list[tuple[float, str]]:  # type: ignore[type-arg]
    out = []
    t0 = time.perf_counter()
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append((time.perf_counter() - t0, line[len("data: ") :]))
    return out


def test_router_relays_tokens_as_the_replica_makes_them(router_url: str) -> None:
    prompt = "abcdefghijklmnop"
    ev = _events(
        router_url,
        {
            "prompt": prompt,
            "max_tokens": N,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert ev[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in ev[:-1]]
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert "".join(texts) == prompt[::-1][:N]
    assert len(texts) >= N  # a chunk per step, not one at the end
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == N
    # the first piece came while the model still had most of its steps to go
    first, last = ev[0][0], ev[-1][0]
    assert last >= N * TOKEN_MS / 1000 * 0.9
    assert first < last / 2, (first, last)


def test_stop_sequence_is_never_sent_even_across_pieces(router_url: str) -> None:
    ev = _events(
        router_url, {"prompt": "abcdefgh", "max_tokens": 8, "stream": True, "stop": ["dc", "zz"]}
    )
    chunks = [json.loads(d) for _, d in ev[:-1]]
    texts = [c["choices"][0]["text"] for c in chunks]
    assert "".join(texts) == "hgfe"  # "hgfedcba" cut before "dc"
    assert all("d" not in t for t in texts)  # the held-back "d" never went out
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_streamed_bad_request_is_a_plain_400_through_the_router(router_url: str) -> None:
    r = httpx.post(
        router_url + "/v1/completions", json={"prompt": "x", "stream": True, "n": 3}, timeout=30
    )
    assert r.status_code == 400 and "n" in r.json()["error"]["message"]


def test_chat_completions_through_the_router_whole_and_streamed(router_url: str) -> None:
    """OpenAI chat completions on a real replica process, through the router."""
    messages = [{"role": "user", "content": "ping"}]
    prompt = "User: ping\nAssistant:"  # the default chat template (aistack.serving.chat)
    r = httpx.post(
        router_url + "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 6},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": prompt[::-1][:6],
        "refusal": None,
    }
    assert body["usage"]["prompt_tokens"] == len(prompt)
    out = []
    with httpx.stream(
        "POST",
        router_url + "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 6, "stream": True},
        timeout=30,
    ) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        out = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert out[-1] == "[DONE]"
    chunks = [json.loads(d) for d in out[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == prompt[::-1][:6]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    bad = httpx.post(
        router_url + "/v1/chat/completions",
        json={"model": "nope", "messages": messages},
        timeout=30,
    )
    assert bad.status_code == 404 and bad.json()["error"]["param"] == "model"
