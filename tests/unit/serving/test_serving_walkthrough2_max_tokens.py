"""``max_tokens`` was capped at 200 for every model (``MAX_TOKENS = 200`` in
``aistack.serving.chat``), whatever its context: a model with a 512-token context could not be
asked for 300 tokens ("must be a whole number from 1 to 200"), and the README did not say so.
Now a model that says its context (``context_tokens``: TinyGPT's ``block_size``, the reference
GPT's ``seq_len``; ``max_model_len`` in ``/v1/models``) is bounded by it alone (the context
minus the prompt, OpenAI's ``context_length_exceeded``); a model that does not say it is capped
at the replica's ``--max-tokens`` (the service spec's ``max_tokens``, default 4096), and the
400 says the limit and why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gpt_512() -> Any:
    pytest.importorskip("torch")
    from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig

    return TinyGPT(TinyGPTConfig(n_layer=1, d_model=16, n_head=2, block_size=512))


@pytest.fixture
def client(gpt_512: Any) -> Iterator[TestClient]:
    server = ReplicaServer(LoadedModel(uri="tiny", generator=gpt_512), name="t", max_wait_ms=1)
    with TestClient(server.app(), raise_server_exceptions=False) as c:
        yield c


def test_a_model_with_a_longer_context_gives_more_than_200_tokens(client: TestClient) -> None:
    assert client.get("/v1/models").json()["data"][0]["max_model_len"] == 512
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 300, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 300
    r = client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "max_completion_tokens": 400, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 400


def test_its_bound_is_the_context_minus_the_prompt(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 510, "temperature": 0})
    assert r.status_code == 200, r.text
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 511})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "This model's maximum context length is 512 tokens. However, you requested "
        "513 tokens (2 in the prompt, 511 in the completion). Please reduce the length of the "
        "prompt or completion.",
        "type": "invalid_request_error",
        "param": "prompt",
        "code": "context_length_exceeded",
    }


def _echo(**kw: Any) -> TestClient:
    server = ReplicaServer(load_model("builtin:echo"), name="t", max_wait_ms=1, **kw)
    return TestClient(server.app(), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/completions", {"prompt": "hi"}, "max_tokens"),
        ("/v1/chat/completions", {"messages": MESSAGES}, "max_tokens"),
        ("/v1/chat/completions", {"messages": MESSAGES}, "max_completion_tokens"),
    ],
)
def test_a_model_without_a_context_is_capped_and_told_why(
    path: str, body: dict[str, Any], field: str
) -> None:
    with _echo() as c:
        assert "max_model_len" not in c.get("/v1/models").json()["data"][0]
        assert c.post(path, json={**body, field: 4096}).status_code == 200
        r = c.post(path, json={**body, field: 4097})
        assert r.status_code == 400
        assert r.json()["error"] == {
            "message": f"{field} is too large: 4097. This model supports at most 4096 completion "
            "tokens, whereas you provided 4097: it does not say its context length (no "
            "context_tokens), so this server caps a completion at max_tokens 4096 (nothing else "
            "would bound how long it generates); ask for at most 4096, or raise the service's "
            "max_tokens",
            "type": "invalid_request_error",
            "param": field,
            "code": None,
        }
    with _echo(max_tokens=5000) as c:  # the cap is configurable
        r = c.post(path, json={**body, field: 5000})
        assert r.status_code == 200, r.text
        assert "at most 5000 completion tokens" in c.post(path, json={**body, field: 5001}).text


def test_the_spec_sets_the_cap_and_passes_it_to_the_replica() -> None:
    from pydantic import ValidationError

    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(name="s", model="builtin:echo", model_uri="builtin:echo")
    assert spec.max_tokens == 4096
    assert ServiceSpec.model_validate({**spec.model_dump(), "max_tokens": 9000}).max_tokens == 9000
    with pytest.raises(ValidationError):  # below a request's default of 16
        ServiceSpec.model_validate({**spec.model_dump(), "max_tokens": 8})


def test_the_controller_starts_replicas_with_the_specs_cap(tmp_path: Any) -> None:
    from aistack.serving.controller import ServiceController
    from aistack.serving.launcher import LaunchStatus
    from aistack.serving.spec import ServiceSpec

    class Launcher:
        name = "fake"
        commands: list[list[str]] = []

        def launch(self, *, command: list[str], **_kw: Any) -> str:
            self.commands.append(command)
            return "h1"

        def status(self, handle: str) -> Any:
            return LaunchStatus(state="running")

        def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
            pass

    spec = ServiceSpec(name="s", model="builtin:echo", model_uri="builtin:echo", max_tokens=8192)
    launcher = Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    ctl._new_replica("builtin:echo")
    [cmd] = launcher.commands
    assert cmd[cmd.index("--max-tokens") + 1] == "8192"


def test_the_replica_command_refuses_a_cap_below_a_requests_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aistack.serving.replica import main

    with pytest.raises(SystemExit) as ei:
        main(["--model", "builtin:echo", "--max-tokens", "8"])
    assert ei.value.code == 2
    assert "--max-tokens must be >= 16 tokens" in capsys.readouterr().err
