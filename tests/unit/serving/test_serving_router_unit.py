"""Router logic with a fake upstream: balancing, retries and what is safe to retry."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from aistack.serving.http import HTTPProblem
from aistack.serving.router import Endpoint, Router, is_idempotent
from aistack.serving.upstream import UpstreamConnectError, UpstreamDropped


def test_least_outstanding_pick() -> None:
    r = Router()
    r.add(Endpoint(id="a", url="http://a", outstanding=3))
    r.add(Endpoint(id="b", url="http://b", outstanding=1))
    r.add(Endpoint(id="c", url="http://c", outstanding=0, in_rotation=False))
    assert r.pick(set()).id == "b"
    assert r.pick({"b"}).id == "a"
    assert r.pick({"a", "b"}) is None


def test_idempotency_rules() -> None:
    assert is_idempotent("POST", "/v1/completions", {})
    assert is_idempotent("GET", "/anything", {})
    assert not is_idempotent("POST", "/admin/reset", {})
    assert is_idempotent("POST", "/admin/reset", {"idempotency-key": "k1"})


class _Fake:
    """Stands in for UpstreamPool: calls handler(host) → status or raises."""

    def __init__(self, handler) -> None:
        self.handler = handler

    async def request(self, base_url, method, target, headers, body):
        status = self.handler(base_url.split("//")[1])
        return status, [("content-type", "application/json")], b"{}"


def _router_with(handler) -> Router:
    r = Router(service="t", max_retries=2, wait_for_replica_s=0.2, upstream=_Fake(handler))
    r.add(Endpoint(id="a", url="http://a"))
    r.add(Endpoint(id="b", url="http://b"))
    return r


def test_connection_refused_is_retried_on_another_replica() -> None:
    seen: list[str] = []

    def handler(host: str) -> int:
        seen.append(host)
        if host == "a":
            raise UpstreamConnectError("refused")
        return 200

    async def main() -> None:
        r = _router_with(handler)
        r.endpoints["b"].outstanding = 5  # a is preferred first
        status, body, _ = await r.forward("POST", "/not-idempotent", "", {}, b"{}")
        assert status == 200
        assert seen == ["a", "b"]
        assert r.endpoints["a"].in_rotation is False  # out until a health check passes
        assert r.metrics.retries_total == 1

    asyncio.run(main())


def test_dropped_idempotent_request_is_retried_but_not_a_non_idempotent_one() -> None:
    def handler(host: str) -> int:
        if host == "a":
            raise UpstreamDropped("Server disconnected")
        return 200

    async def main() -> None:
        r = _router_with(handler)
        r.endpoints["b"].outstanding = 5
        status, _, _ = await r.forward("POST", "/v1/completions", "", {}, b"{}")
        assert status == 200
        r2 = _router_with(handler)
        r2.endpoints["b"].outstanding = 5
        with pytest.raises(HTTPProblem) as exc:
            await r2.forward("POST", "/admin/reset", "", {}, b"{}")
        assert exc.value.status == 502
        assert "not idempotent" in exc.value.message

    asyncio.run(main())


def test_503_from_replica_is_retried_and_no_replica_is_503() -> None:
    def handler(host: str) -> int:
        return 503 if host == "a" else 200

    async def main() -> None:
        r = _router_with(handler)
        r.endpoints["b"].outstanding = 5
        status, _, _ = await r.forward("POST", "/invocations", "", {}, b"{}")
        assert status == 200
        empty = Router(service="empty", wait_for_replica_s=0.1)
        empty._changed = asyncio.Event()
        with pytest.raises(HTTPProblem) as exc:
            await empty.forward("GET", "/health", "", {}, b"")
        assert exc.value.status == 503
        assert "no ready replica" in exc.value.message

    asyncio.run(main())


def test_every_replica_down_gives_502_after_bounded_attempts() -> None:
    calls = []

    def handler(host: str) -> int:
        calls.append(host)
        raise UpstreamConnectError("refused")

    async def main() -> None:
        r = _router_with(handler)
        with pytest.raises(HTTPProblem) as exc:
            await r.forward("POST", "/v1/completions", "", {}, b"{}")
        assert exc.value.status in (502, 503)

    asyncio.run(main())
    assert 1 <= len(calls) <= 3


@pytest.mark.parametrize(
    ("method", "body", "want"),
    [
        ("POST", b'{"prompt": "x", "stream": true}', True),
        ("POST", b'{"prompt": "x", "stream": false}', False),
        ("POST", b'{"prompt": "x"}', False),
        ("POST", b'{"prompt": "say \\"stream\\": true"}', False),  # only the key counts
        ("POST", b'{"stream": true', False),  # not JSON: the replica answers 400 as usual
        ("GET", b'{"stream": true}', False),
        ("POST", b'[{"stream": true}]', False),
    ],
)
def test_which_requests_are_relayed_as_streams(method: str, body: bytes, want: bool) -> None:
    from aistack.serving.router import wants_stream

    assert wants_stream(method, body) is want


class _SlowStream(httpx.AsyncByteStream):
    """An upstream event stream: one event, a pause, then the end or a broken connection."""

    def __init__(self, pause_s: float, breaks: bool) -> None:
        self.pause_s, self.breaks = pause_s, breaks

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield b'data: {"choices": [{"text": "a"}]}\n\n'
        await asyncio.sleep(self.pause_s)
        if self.breaks:
            raise httpx.ReadError("connection reset by peer")
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        pass


def _streaming_router(breaks: bool) -> tuple[Router, object]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_SlowStream(0.3, breaks),
        )

    r = Router(service="t", wait_for_replica_s=0.2)
    r._stream_client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    r.add(Endpoint(id="a", url="http://a"))
    app = Starlette(routes=[Route("/{path:path}", r.asgi_handler(), methods=["POST"])])
    return r, app


@pytest.mark.parametrize("breaks", [False, True])
def test_stream_latency_is_to_the_last_byte_and_a_broken_stream_says_so(breaks: bool) -> None:
    from starlette.testclient import TestClient

    r, app = _streaming_router(breaks)
    with TestClient(app) as client:
        resp = client.post("/v1/completions", json={"prompt": "x", "stream": True})
    assert resp.status_code == 200
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[0].startswith('{"choices"')
    code = "502" if breaks else "200"
    assert dict(r.metrics.requests_total) == {code: 1}
    if breaks:  # an error answer: counted, but not a latency
        assert r.metrics.latency_count == 0
    else:
        assert r.metrics.latency_sum_s >= 0.3  # the whole stream, not the time to its headers
    assert r.endpoints["a"].outstanding == 0
    if breaks:
        assert "[DONE]" not in events
        err = json.loads(events[-1])["error"]
        assert "replica a broke the stream off" in err["message"] and err["code"] is None
        assert r.metrics.summary()["errors_total"] == 1
    else:
        assert events[-1] == "[DONE]"


class _Gated:
    """An upstream whose POSTs wait until ``gate`` is set (replicas busy), GETs answer at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def request(self, base_url, method, target, headers, body):  # type: ignore[no-untyped-def]
        if method == "POST":
            await self.gate.wait()
        return 200, [("content-type", "application/json")], b"{}"


def test_requests_beyond_the_bounded_queue_are_429_at_once_with_retry_after() -> None:
    """Requests beyond capacity used to wait for a replica until the 60 s timeout (504)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    up = _Gated()
    r = Router(service="t", upstream=up, replica_capacity=2, max_queued=3)
    r.add(Endpoint(id="a", url="http://a"))
    app = Starlette(routes=[Route("/{path:path}", r.asgi_handler(), methods=["GET", "POST"])])

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            held = [asyncio.create_task(c.post("/v1/completions", json={})) for _ in range(5)]
            for _ in range(200):
                if r.inflight == 5:
                    break
                await asyncio.sleep(0.01)
            assert r.inflight == 5 and r.queued == 3  # 2 at the replica, 3 waiting behind
            over = await asyncio.wait_for(c.post("/v1/chat/completions", json={}), 2.0)
            assert over.status_code == 429
            assert over.headers["retry-after"] == "1"
            err = over.json()["error"]
            assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")
            assert "over capacity" in err["message"]
            assert "3 requests are queued (max_queued_requests 3)" in err["message"]
            assert r.rejected_total == 1
            assert r.load == 6.0  # the refused request still counts for the autoscaler
            # cheap GETs are not refused
            assert (await c.get("/v1/models")).status_code == 200
            up.gate.set()
            assert [(await t).status_code for t in held] == [200] * 5
            # room again: admitted
            assert (await c.post("/v1/completions", json={})).status_code == 200

    asyncio.run(main())
    assert dict(r.metrics.requests_total) == {"200": 7, "429": 1}
    assert r.metrics.latency_count == 7  # the 429 is not a latency
    fams = r.prometheus()
    assert 'aistack_serve_queued_requests{service="t"} 0.0' in fams


def test_429_with_queueing_off_says_so_not_that_0_requests_are_queued() -> None:
    r = Router(service="t", replica_capacity=4, max_queued=0)
    r.add(Endpoint(id="a", url="http://a", outstanding=4))
    with pytest.raises(HTTPProblem) as exc:
        r.admit()
    retry = exc.value.headers["retry-after"]
    assert exc.value.message == (
        "service 't' is over capacity: its 1 ready replica is busy with 4 requests and "
        f"queueing is off (max_queued_requests 0); retry after {retry} s "
        "(the autoscaler counts this request as load)"
    )
    empty = Router(service="e", replica_capacity=4, max_queued=0)
    with pytest.raises(HTTPProblem) as exc:
        empty.admit()
    assert "no replica is ready yet and queueing is off (max_queued_requests 0)" in (
        exc.value.message
    )
    queueing = Router(service="q", replica_capacity=4, max_queued=2)
    queueing.add(Endpoint(id="a", url="http://a", outstanding=4))
    queueing.waiting = 2
    with pytest.raises(HTTPProblem) as exc:
        queueing.admit()
    assert "and 2 requests are queued (max_queued_requests 2)" in exc.value.message


def test_queue_counts_waiting_for_a_replica_and_refusals_age_out() -> None:
    r = Router(service="t", replica_capacity=4, max_queued=0)  # 0: no queue at all
    with pytest.raises(HTTPProblem) as exc:
        r.admit()  # no replica yet, and nothing may wait for one
    assert exc.value.status == 429 and "no replica is ready yet" in exc.value.message
    r.add(Endpoint(id="a", url="http://a", outstanding=3))
    r.admit()  # the replica has room for one more
    r.endpoints["a"].outstanding = 4
    with pytest.raises(HTTPProblem) as exc:
        r.admit()
    assert "its 1 ready replica is busy with 4 requests and queueing is off" in exc.value.message
    r.add(Endpoint(id="b", url="http://b", outstanding=4))
    with pytest.raises(HTTPProblem) as exc:
        r.admit()
    assert "its 2 ready replicas are busy with 4 requests each" in exc.value.message
    one = Router(service="o", replica_capacity=1, max_queued=1)
    one.add(Endpoint(id="a", url="http://a", outstanding=1))
    one.waiting = 1
    with pytest.raises(HTTPProblem) as exc:
        one.admit()
    assert "its 1 ready replica is busy with 1 request and 1 request is queued" in (
        exc.value.message
    )
    r.endpoints["a"].in_rotation = False  # a draining replica's requests are not queued
    assert r.queued == 0

    r2 = Router(service="z", replica_capacity=4, max_queued=1)
    r2.admit()  # nothing queued yet: admitted, it will wait for a replica
    r2.waiting = 1
    with pytest.raises(HTTPProblem):
        r2.admit()
    assert r2.rejected_total == 1 and r2.load == 2.0
    r2._rejected_t[0] -= 5.0  # older than Retry-After: no longer load
    assert r2.load == 1.0
    unbounded = Router(service="u")  # the standalone router refuses nothing
    unbounded.waiting = 10_000
    unbounded.admit()


def test_retry_after_is_the_measured_time_to_drain_the_queue_bounded() -> None:
    """Retry-After was always 1 s, however long the queue ahead took at the measured pace."""
    r = Router(service="t", replica_capacity=2, max_queued=3)
    r.add(Endpoint(id="a", url="http://a", outstanding=5))  # 2 worked on, 3 queued
    assert r.retry_after_s() == 1  # nothing answered yet: nothing to measure, the least
    r._latency_cache = (-1e18, None)  # (recomputed at most once a second)
    for lat in (1.5, 2.5):
        r.metrics.observe(200, lat)  # mean 2 s
    r.metrics.observe(429, 0.001)  # refusals are no latency
    with pytest.raises(HTTPProblem) as exc:
        r.admit()
    # ceil(L 2 s × (Q 3 + 1) / S 2 slots) = 4 s
    assert exc.value.status == 429 and exc.value.headers == {"retry-after": "4"}
    assert "retry after 4 s" in exc.value.message
    assert r.load == 6.0  # 5 in flight + the refused one, expected back in 4 s
    r._rejected_t[0] -= 3.5  # 0.5 s left of its 4 s: still load
    assert r.load == 6.0
    r._rejected_t[0] -= 1.0  # past its Retry-After: no longer load
    assert r.load == 5.0

    r.add(Endpoint(id="b", url="http://b", outstanding=2))  # a second replica: 4 slots
    r._latency_cache = (-1e18, None)
    assert r.retry_after_s() == 2  # ceil(2 × 4 / 4)
    r.endpoints["b"].in_rotation = False  # out of rotation: not a slot
    r._latency_cache = (-1e18, None)
    assert r.retry_after_s() == 4
    r.metrics.observe(200, 300.0)  # very slow answers: bounded above
    r._latency_cache = (-1e18, None)
    assert r.retry_after_s() == 30
    fast = Router(service="f", replica_capacity=8, max_queued=1)
    fast.add(Endpoint(id="a", url="http://a", outstanding=9))
    fast.metrics.observe(200, 0.05)
    assert fast.retry_after_s() == 1  # ceil(0.05 × 2 / 8) = 1: never 0
