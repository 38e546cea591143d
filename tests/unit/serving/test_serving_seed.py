"""``seed`` on /v1/completions and /v1/chat/completions: a sample (temperature above 0) with a
seed is reproducible, also when its request shares a batch with others."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

torch = pytest.importorskip("torch")

from aistack.serving.models import LoadedModel, load_model  # noqa: E402
from aistack.serving.replica import ReplicaServer  # noqa: E402
from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig  # noqa: E402

MODEL = "builtin:tiny-gpt?layers=1&dim=32&heads=2"


@pytest.fixture
def server() -> ReplicaServer:
    # requests that arrive within 300 ms run as one batch
    return ReplicaServer(load_model(MODEL), name="s", max_batch_size=8, max_wait_ms=300)


@pytest.fixture
def client(server: ReplicaServer) -> Iterator[TestClient]:
    with TestClient(server.app()) as c:
        yield c


def _complete(client: TestClient, prompt: str, **body: Any) -> str:
    r = client.post(
        "/v1/completions",
        json={"prompt": prompt, "max_tokens": 16, "temperature": 1.0, **body},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["text"])


def _chat(client: TestClient, text: str, **body: Any) -> str:
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": text}], "max_tokens": 16, **body},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def test_the_same_seed_gives_the_same_text_and_other_seeds_other_text(client: TestClient) -> None:
    a = _complete(client, "hello", seed=7)
    assert _complete(client, "hello", seed=7) == a
    # 16 bytes sampled at temperature 1 from a random byte-level model: two seeds that agree
    # on all of them are (near) impossible
    others = {_complete(client, "hello", seed=s) for s in (8, 9, 2**63, -1)}
    assert a not in others and len(others) == 4
    # chat: the same
    c = _chat(client, "hi", seed=7, temperature=1.5)
    assert _chat(client, "hi", seed=7, temperature=1.5) == c
    assert _chat(client, "hi", seed=8, temperature=1.5) != c


def test_a_seeded_request_samples_the_same_text_batched_with_others(
    server: ReplicaServer, client: TestClient
) -> None:
    alone = _complete(client, "the quick brown fox", seed=123)
    alone_chat = _chat(client, "hi", seed=5, temperature=1.0)
    # the same requests among unseeded and other-seeded ones, sent at once: one batch
    calls: list[tuple[Any, ...]] = [
        (_complete, "the quick brown fox", {"seed": 123}),
        (_complete, "the quick brown fox", {}),
        (_complete, "zz", {"seed": 4}),
        (_complete, "a longer prompt than the others", {}),
        (_chat, "hi", {"seed": 5, "temperature": 1.0}),
        (_complete, "the quick brown fox", {"seed": 99}),
    ]
    before = server.gen_batcher.stats.batches  # type: ignore[union-attr]
    with ThreadPoolExecutor(len(calls)) as pool:
        futs = [pool.submit(f, client, p, **kw) for f, p, kw in calls]
        out = [f.result() for f in futs]
    stats = server.gen_batcher.stats  # type: ignore[union-attr]
    assert stats.batches - before < len(calls), stats.as_dict()  # some ran batched together
    assert out[0] == alone
    assert out[4] == alone_chat
    assert out[5] != alone  # its own seed, its own sample


def test_the_batch_function_gives_each_seeded_prompt_its_own_generator(
    server: ReplicaServer,
) -> None:
    """Deterministic batching: the same items alone and in one model call."""
    from aistack.serving.replica import _GenItem

    def item(prompt: str, seed: int | None) -> _GenItem:
        return _GenItem(prompt=prompt, max_tokens=12, temperature=1.0, seed=seed)

    alone = [
        server._generate_batch([item("abc", 1)])[0],
        server._generate_batch([item("xyz", 2)])[0],
    ]
    batch = server._generate_batch(
        [item("q", None), item("abc", 1), item("a much longer prompt", None), item("xyz", 2)]
    )
    assert [batch[1], batch[3]] == alone
    # streamed in a batch: the same text again
    pieces: dict[int, list[str]] = {0: [], 1: []}
    streamed = [
        _GenItem(prompt="abc", max_tokens=12, temperature=1.0, seed=1, sink=pieces[0].append),
        _GenItem(prompt="xyz", max_tokens=12, temperature=1.0, seed=2, sink=pieces[1].append),
        item("other", 3),
    ]
    out = server._generate_batch(streamed)
    assert out[:2] == alone and ["".join(pieces[0]), "".join(pieces[1])] == alone


def test_without_a_seed_sampling_is_as_before() -> None:
    g = TinyGPT(TinyGPTConfig(n_layer=1, d_model=32, n_head=2))
    prompts = ["hello", "xyz"]
    plain = g.generate(prompts, 10, 1.0)
    assert g.generate(prompts, 10, 1.0, seeds=[None, None]) == plain
    seeded = g.generate(prompts, 10, 1.0, seeds=[11, None])
    assert seeded[0] == g.generate(["hello"], 10, 1.0, seeds=[11])[0]
    with pytest.raises(ValueError, match="1 seeds for 2 prompts"):
        g.generate(prompts, 4, 1.0, seeds=[1])


def test_reference_gpt_seeded_prompts_are_reproducible_in_any_batch(
    tiny_reference_gpt: Any,
) -> None:
    gen = tiny_reference_gpt
    from aistack.serving.generators import takes_seeds

    assert takes_seeds(gen)
    alone = gen.generate(["abc"], 8, 1.0, seeds=[3])[0]
    torch.manual_seed(1)  # the global generator, which unseeded prompts use, moves on
    batch = gen.generate(["xyz", "abc", "abd"], 8, 1.0, seeds=[None, 3, 4])
    assert batch[1] == alone and batch[2] != alone
    pieces: list[str] = []
    streamed = gen.generate(["abc"], 8, 1.0, on_text=lambda i, p: pieces.append(p), seeds=[3])
    assert streamed[0] == alone == "".join(pieces)


def test_a_model_that_takes_no_seeds_refuses_a_seeded_sample() -> None:
    from aistack.serving.generators import takes_seeds

    class Plain:
        def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
            return [p[:max_tokens] for p in prompts]

    assert not takes_seeds(Plain()) and takes_seeds(load_model("builtin:echo").generator)
    with TestClient(ReplicaServer(LoadedModel(uri="plain", generator=Plain())).app()) as c:
        for path, body in (
            ("/v1/completions", {"prompt": "x"}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
        ):
            r = c.post(path, json={**body, "seed": 1, "temperature": 0.5})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["param"] == "seed" and "leave seed out" in err["message"]
            # greedy: nothing to seed, so the seed is harmless
            r = c.post(path, json={**body, "seed": 1, "temperature": 0})
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, "x"])
def test_a_seed_out_of_range_is_refused_naming_the_field(client: TestClient, seed: Any) -> None:
    r = client.post("/v1/completions", json={"prompt": "x", "seed": seed})
    assert r.status_code == 400 and r.json()["error"]["param"] == "seed", r.text
