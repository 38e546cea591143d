"""The request router: least-outstanding-requests balancing, health, retries, metrics.

``Router`` is used by the service controller (which adds and removes replicas as they start,
fail and drain). Standalone, over a fixed list of replicas::

    python -m aistack.serving.router --replica http://127.0.0.1:9001 --replica http://127.0.0.1:9002 --port 9000

Streaming: a request whose JSON body asks for ``"stream": true`` is relayed as the replica
sends it (server-sent events, chunk by chunk) instead of being buffered whole; it is retried
only while no byte of the answer has come back (connection refused), and a replica that dies
mid-stream ends the stream there with an ``error`` event (a consumer sees no ``[DONE]``; the
request counts as a 502). A stream's latency in the metrics is the time to its last byte.

Retries: a request that never reached a replica (connection refused) is retried on another
replica whatever its kind; a request that failed after it was sent (the replica died, or
answered 502/503) is retried only when it is idempotent: GET/HEAD, a POST to an inference
path (``/v1/completions``, ``/v1/chat/completions``, ``/invocations`` — inference has no side
effects), or any request
carrying an ``Idempotency-Key`` header. A replica that fails a request leaves the rotation
at once; the health checks bring it back.

Admission control (``max_queued`` with ``replica_capacity``): a replica in rotation works on
up to ``replica_capacity`` requests at once (its batch size); requests beyond that, and those
waiting for any replica, are *queued*. A POST that arrives while no replica has room and
``max_queued`` requests are already queued is answered 429 at once (OpenAI error JSON, a
``Retry-After`` header, see :meth:`Router.retry_after_s`) instead of waiting into a timeout.
Rejected requests still count as load for the autoscaler: :attr:`Router.load` is the requests
in flight plus those rejected and not yet past the ``Retry-After`` they were given (each one is
expected back then).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aistack.serving.http import RATE_LIMIT_EXCEEDED, HTTPProblem, read_body
from aistack.serving.metrics import RequestMetrics

log = logging.getLogger(__name__)

IDEMPOTENT_PATHS = (
    "/v1/completions",
    "/v1/chat/completions",
    "/invocations",
    "/v1/models",
    "/health",
)
RETRY_AFTER_S = 1  # the least a 429 asks the client to wait (whole seconds, as HTTP wants)
MAX_RETRY_AFTER_S = 30  # and the most
LATENCY_WINDOW_S = 10.0  # the recent answers whose mean latency estimates the wait
_HOP_HEADERS = {
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
}


@dataclass(kw_only=True)
class Endpoint:
    """A replica as the router sees it."""

    id: str
    url: str
    in_rotation: bool = True
    outstanding: int = 0
    served: int = 0
    failures: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_idempotent(method: str, path: str, headers: Any) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    if headers.get("idempotency-key"):
        return True
    return method == "POST" and path in IDEMPOTENT_PATHS


def wants_stream(method: str, body: bytes) -> bool:
    """Whether a request asks for a streamed answer (a JSON body with ``"stream": true``);
    the body is parsed only when it mentions "stream" at all."""
    if method != "POST" or b'"stream"' not in body:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("stream") is True


class NoReplica(Exception):
    pass


class Router:
    def __init__(
        self,
        *,
        service: str = "service",
        max_retries: int = 2,
        request_timeout_s: float = 60.0,
        max_body_bytes: int = 1_048_576,
        wait_for_replica_s: float = 10.0,
        upstream: Any = None,
        replica_capacity: int | None = None,
        max_queued: int | None = None,
    ) -> None:
        self.service = service
        # admission control (see the module docstring); None: requests are never refused
        self.replica_capacity = replica_capacity
        self.max_queued = max_queued
        self.rejected_total = 0
        # when each refused request is expected back (monotonic time of its Retry-After)
        self._rejected_t: collections.deque[float] = collections.deque(maxlen=100_000)
        self._latency_cache: tuple[float, float | None] = (-1e18, None)
        self.endpoints: dict[str, Endpoint] = {}
        self.max_retries = max_retries
        self.request_timeout_s = request_timeout_s
        self.max_body_bytes = max_body_bytes
        self.wait_for_replica_s = wait_for_replica_s
        self.metrics = RequestMetrics(prefix="aistack_serve", labels={"service": service})
        self.waiting = 0  # requests waiting for any replica
        self._changed: asyncio.Event | None = None
        self._upstream: Any = upstream
        self._stream_client: Any = None  # httpx.AsyncClient for streamed requests, made on use
        self.on_replica_error: Callable[[Endpoint, str], Awaitable[None] | None] | None = None

    # ---- membership
    def add(self, ep: Endpoint) -> None:
        self.endpoints[ep.id] = ep
        self.notify()

    def remove(self, ep_id: str) -> None:
        ep = self.endpoints.pop(ep_id, None)
        if ep is not None and hasattr(self._upstream, "forget"):
            self._upstream.forget(ep.url)
        self.notify()

    def set_rotation(self, ep_id: str, on: bool) -> None:
        ep = self.endpoints.get(ep_id)
        if ep is not None and ep.in_rotation != on:
            ep.in_rotation = on
            self.notify()

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    @property
    def inflight(self) -> int:
        return self.waiting + sum(e.outstanding for e in self.endpoints.values())

    @property
    def queued(self) -> int:
        """Requests waiting for a replica, plus those beyond ``replica_capacity`` at replicas
        in rotation (they wait in the replica's batcher)."""
        cap = self.replica_capacity
        if cap is None:
            return self.waiting
        return self.waiting + sum(
            max(0, e.outstanding - cap) for e in self.endpoints.values() if e.in_rotation
        )

    @property
    def load(self) -> float:
        """What the autoscaler should see: requests in flight plus those refused (429) whose
        ``Retry-After`` has not passed yet: their clients are expected to send them again."""
        now = time.monotonic()
        while self._rejected_t and self._rejected_t[0] < now:
            self._rejected_t.popleft()
        return float(self.inflight + sum(1 for t in self._rejected_t if t >= now))

    def retry_after_s(self) -> int:
        """What a 429 asks the client to wait, in whole seconds: the time the queue ahead of it
        needs to drain at the service's measured pace,

            ceil(L × (Q + 1) / S), bounded to [RETRY_AFTER_S, MAX_RETRY_AFTER_S] = [1, 30] s

        L: mean latency of the requests answered (status < 400) in the last
        ``LATENCY_WINDOW_S`` (10) seconds; Q: requests queued now (:attr:`queued`); S: requests
        worked on at once, ``replica_capacity`` × the replicas in rotation (one replica's worth
        while none is ready, and 1 when the capacity is unknown). Each of the S slots finishes a
        request every L seconds, so the Q queued ones and this one are through in about
        L × (Q + 1) / S. With no answered request to measure (a service that just started),
        it is ``RETRY_AFTER_S``. L is recomputed at most once a second (refusals come in
        bursts)."""
        now = time.monotonic()
        at, lat = self._latency_cache
        if now - at >= 1.0:
            lat = self.metrics.mean_latency_s(LATENCY_WINDOW_S)
            self._latency_cache = (now, lat)
        if lat is None:
            return RETRY_AFTER_S
        cap = self.replica_capacity or 1
        live = sum(1 for e in self.endpoints.values() if e.in_rotation)
        slots = cap * max(1, live)
        wait = math.ceil(lat * (self.queued + 1) / slots)
        return max(RETRY_AFTER_S, min(MAX_RETRY_AFTER_S, wait))

    def admit(self) -> None:
        """Raise HTTPProblem(429) when a new request would queue beyond ``max_queued``."""
        if self.max_queued is None:
            return
        cap = self.replica_capacity
        if cap is not None and any(
            e.in_rotation and e.outstanding < cap for e in self.endpoints.values()
        ):
            return  # a replica has room: the request does not queue
        queued = self.queued
        if queued < self.max_queued:
            return
        self.rejected_total += 1
        retry = self.retry_after_s()
        self._rejected_t.append(time.monotonic() + retry)
        live = sum(1 for e in self.endpoints.values() if e.in_rotation)
        busy = (
            f"its {live} ready replica{'s are' if live != 1 else ' is'} busy with {cap} "
            f"request{'s' if cap != 1 else ''}{' each' if live != 1 else ''}"
            if live and cap is not None
            else "no replica is ready yet"
        )
        queue = (
            f"{queued} request{'s are' if queued != 1 else ' is'} queued"
            if self.max_queued
            else "queueing is off"
        )
        raise HTTPProblem(
            429,
            f"service {self.service!r} is over capacity: {busy} and {queue} "
            f"(max_queued_requests {self.max_queued}); retry after {retry} s "
            "(the autoscaler counts this request as load)",
            # as OpenAI answers a requests-per-minute limit (its "tokens" type is for tokens)
            kind="requests",
            code=RATE_LIMIT_EXCEEDED,
            headers={"retry-after": str(retry)},
        )

    def _check_status(self) -> str:
        """What a client told "no ready replica" can look at: the service's status, by the CLI
        or the REST call (the answer reaches HTTP clients, which may not have the CLI)."""
        return (
            f"check its status (`aistack serve status {self.service}` or "
            f"GET /api/v1/services/{self.service})"
        )

    def pick(self, exclude: set[str]) -> Endpoint | None:
        """Least outstanding requests among replicas in rotation; ties broken at random."""
        live = [e for e in self.endpoints.values() if e.in_rotation and e.id not in exclude]
        if not live:
            return None
        low = min(e.outstanding for e in live)
        return random.choice([e for e in live if e.outstanding == low])

    async def _wait_pick(self, exclude: set[str], deadline: float) -> Endpoint:
        if self._changed is None:
            self._changed = asyncio.Event()
        ep = self.pick(exclude)
        if ep is not None:
            return ep
        self.waiting += 1
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NoReplica()
                self._changed.clear()
                ep = self.pick(exclude)
                if ep is not None:
                    return ep
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
                except TimeoutError:
                    pass
        finally:
            self.waiting -= 1

    async def start(self) -> None:
        from aistack.serving.upstream import UpstreamPool

        self._changed = asyncio.Event()
        if self._upstream is None:
            self._upstream = UpstreamPool(
                read_timeout_s=self.request_timeout_s, idle_timeout_s=30.0
            )

    async def close(self) -> None:
        if self._upstream is not None and hasattr(self._upstream, "close"):
            await self._upstream.close()
        if self._stream_client is not None:
            await self._stream_client.aclose()
            self._stream_client = None

    # ---- streamed proxy (server-sent events pass through as they come)
    async def forward_stream(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        on_end: Callable[[int], None] | None = None,
    ) -> Any:
        """Relay one streamed request: a Starlette response whose body is the replica's, chunk
        by chunk. The replica is picked as for :meth:`forward`; it counts as outstanding until
        the stream ends. ``on_end(status)`` is called when a relayed event stream ends (502
        when the replica broke it, which the client is told in a last ``error`` event)."""
        import httpx
        from starlette.responses import Response, StreamingResponse

        if self._stream_client is None:
            self._stream_client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.request_timeout_s, connect=2.0)
            )
        fwd_headers = [(k, v) for k, v in headers.items() if k.lower() not in _HOP_HEADERS]
        target = path + (f"?{query}" if query else "")
        tried: set[str] = set()
        deadline = time.monotonic() + self.wait_for_replica_s
        last_err = "no replica answered"
        for attempt in range(1 + self.max_retries):
            try:
                ep = await self._wait_pick(
                    tried, deadline if attempt == 0 else time.monotonic() + 2.0
                )
            except NoReplica:
                if tried:
                    break
                raise HTTPProblem(
                    503,
                    f"service {self.service!r} has no ready replica (waited "
                    f"{self.wait_for_replica_s:g} s); {self._check_status()}",
                ) from None
            tried.add(ep.id)
            if attempt > 0:
                self.metrics.retries_total += 1
            ep.outstanding += 1
            req = self._stream_client.build_request(
                method, ep.url + target, headers=fwd_headers, content=body
            )
            try:
                resp = await self._stream_client.send(req, stream=True)
            except httpx.ConnectError as exc:
                ep.outstanding -= 1
                self.notify()
                last_err = f"replica {ep.id} refused the connection: {exc}"
                await self._replica_failed(ep, last_err)
                continue  # never reached the replica: safe to retry
            except httpx.TimeoutException:
                ep.outstanding -= 1
                self.notify()
                raise HTTPProblem(
                    504, f"replica {ep.id} did not answer within {self.request_timeout_s:g} s"
                ) from None
            except httpx.HTTPError as exc:
                ep.outstanding -= 1
                self.notify()
                last_err = f"replica {ep.id} dropped the request: {exc}"
                await self._replica_failed(ep, last_err)
                raise HTTPProblem(502, last_err) from None
            out_headers = {
                k: v
                for k, v in resp.headers.items()
                if k.lower() not in _HOP_HEADERS and k.lower() not in ("date", "server")
            }
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                try:  # an error answer (400 …): pass it on whole
                    content = await resp.aread()
                finally:
                    await resp.aclose()
                    ep.outstanding -= 1
                    ep.served += 1
                    self.notify()
                return Response(content, status_code=resp.status_code, headers=out_headers)

            async def relay(resp: Any = resp, ep: Endpoint = ep) -> Any:
                status = resp.status_code
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                except httpx.HTTPError as exc:  # the replica died mid-stream: end it here
                    log.warning("%s: stream from %s broke: %s", self.service, ep.id, exc)
                    status = 502
                    # the 200 status line is long gone: say it in the stream, as the replica
                    # does when its model fails (OpenAI clients raise on an "error" event)
                    err = {
                        "message": f"replica {ep.id} broke the stream off: {exc}; "
                        "the completion is incomplete, send the request again",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                    yield f"data: {json.dumps({'error': err})}\n\n".encode()
                finally:
                    await resp.aclose()
                    ep.outstanding -= 1
                    ep.served += 1
                    self.notify()
                    if on_end is not None:
                        on_end(status)

            return StreamingResponse(relay(), status_code=resp.status_code, headers=out_headers)
        raise HTTPProblem(502, f"all attempts failed; last: {last_err}")

    # ---- proxy
    async def forward(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        from aistack.serving.upstream import UpstreamConnectError, UpstreamDropped, UpstreamTimeout

        if self._changed is None:
            self._changed = asyncio.Event()
        idempotent = is_idempotent(method, path, headers)
        fwd_headers = [(k, v) for k, v in headers.items() if k.lower() not in _HOP_HEADERS]
        target = path + (f"?{query}" if query else "")
        tried: set[str] = set()
        last_err = "no replica answered"
        attempts = 1 + self.max_retries
        deadline = time.monotonic() + self.wait_for_replica_s
        for attempt in range(attempts):
            try:
                ep = await self._wait_pick(
                    tried, deadline if attempt == 0 else time.monotonic() + 2.0
                )
            except NoReplica:
                if tried:
                    # every replica was tried: allow a second go on the least busy one
                    again = self.pick(set())
                    if again is None:
                        break
                    ep = again
                else:
                    raise HTTPProblem(
                        503,
                        f"service {self.service!r} has no ready replica (waited "
                        f"{self.wait_for_replica_s:g} s); {self._check_status()}",
                    ) from None
            tried.add(ep.id)
            if attempt > 0:
                self.metrics.retries_total += 1
            ep.outstanding += 1
            try:
                status, resp_headers, content = await self._upstream.request(
                    ep.url, method, target, fwd_headers, body
                )
                if status in (502, 503) and idempotent and attempt + 1 < attempts:
                    last_err = f"replica {ep.id} answered {status}"
                    await self._replica_failed(ep, last_err)
                    continue
                ep.served += 1
                out_headers = {
                    k: v
                    for k, v in resp_headers
                    if k.lower() not in _HOP_HEADERS and k.lower() not in ("date", "server")
                }
                return status, content, out_headers
            except UpstreamConnectError as exc:
                last_err = f"replica {ep.id} refused the connection: {exc}"
                await self._replica_failed(ep, last_err)
                continue  # never reached the replica: safe to retry
            except UpstreamDropped as exc:
                last_err = f"replica {ep.id} dropped the request: {exc}"
                await self._replica_failed(ep, last_err)
                if idempotent:
                    continue
                raise HTTPProblem(
                    502, f"{last_err}; the request is not idempotent so it was not retried"
                ) from None
            except UpstreamTimeout:
                raise HTTPProblem(
                    504, f"replica {ep.id} did not answer within {self.request_timeout_s:g} s"
                ) from None
            finally:
                ep.outstanding -= 1
                self.notify()
        raise HTTPProblem(502, f"all attempts failed ({attempts}); last: {last_err}")

    async def _replica_failed(self, ep: Endpoint, why: str) -> None:
        ep.failures += 1
        ep.last_error = why
        ep.in_rotation = False  # out until a health check passes
        log.warning("%s: %s", self.service, why)
        if self.on_replica_error is not None:
            res = self.on_replica_error(ep, why)
            if asyncio.iscoroutine(res):
                await res

    def prometheus(self, gauges: dict[str, float] | None = None) -> str:
        g = {
            "inflight_requests": float(self.inflight),
            "queued_requests": float(self.queued),
            "replicas_in_rotation": float(sum(1 for e in self.endpoints.values() if e.in_rotation)),
        }
        g.update(gauges or {})
        return self.metrics.prometheus(g)

    def asgi_handler(self) -> Callable[[Any], Awaitable[Any]]:
        """A Starlette endpoint that proxies any request through the router."""
        from starlette.requests import Request
        from starlette.responses import Response, StreamingResponse

        async def handle(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                body = await read_body(request, self.max_body_bytes)
                headers = {
                    k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS
                }
                if request.method == "POST":  # inference; GETs (models, health) are cheap
                    self.admit()
                if wants_stream(request.method, body):

                    def on_end(status: int) -> None:  # the latency of a stream is all of it
                        self.metrics.observe(status, time.perf_counter() - t0)

                    resp = await self.forward_stream(
                        request.method, request.url.path, request.url.query, headers, body, on_end
                    )
                    if isinstance(resp, StreamingResponse):
                        return resp  # observed by on_end when the stream ends
                else:
                    status, content, out_headers = await self.forward(
                        request.method, request.url.path, request.url.query, headers, body
                    )
                    resp = Response(content, status_code=status, headers=out_headers)
            except HTTPProblem as exc:
                resp = exc.response()
            except Exception as exc:  # a router bug must not look like a hang
                log.exception("router failed")
                resp = HTTPProblem(500, f"router error: {type(exc).__name__}: {exc}").response()
            self.metrics.observe(resp.status_code, time.perf_counter() - t0)
            return resp

        return handle


async def health_check(
    client: Any, url: str, timeout_s: float = 2.0
) -> tuple[bool, dict[str, Any] | None, str | None]:
    """GET url/health → (healthy, body, error)."""
    try:
        resp = await client.get(url + "/health", timeout=timeout_s)
    except Exception as exc:
        return False, None, f"health check failed: {type(exc).__name__}"
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200:
        return True, body, None
    return False, body, f"health check answered {resp.status_code}"


def build_static_app(router: Router, health_interval_s: float = 1.0) -> Any:
    """A router app over fixed replicas, with its own health loop."""
    from contextlib import asynccontextmanager

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app: Any):  # type: ignore[no-untyped-def]
        await router.start()
        client = httpx.AsyncClient()

        async def loop() -> None:
            while True:
                for ep in list(router.endpoints.values()):
                    ok, _, err = await health_check(client, ep.url)
                    router.set_rotation(ep.id, ok)
                    if err:
                        ep.last_error = err
                await asyncio.sleep(health_interval_s)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        await client.aclose()
        await router.close()

    async def metrics(request: Any) -> Any:
        return PlainTextResponse(router.prometheus(), media_type="text/plain; version=0.0.4")

    proxy = router.asgi_handler()
    routes = [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/{path:path}", proxy, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from aistack.serving.http import bind_socket, serve_app

    ap = argparse.ArgumentParser(prog="python -m aistack.serving.router")
    ap.add_argument("--replica", action="append", default=[], help="replica base URL (repeat)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--service", default="service")
    ap.add_argument("--max-retries", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.replica:
        ap.error("give at least one --replica URL")
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    router = Router(service=args.service, max_retries=args.max_retries)
    for i, url in enumerate(args.replica):
        router.add(Endpoint(id=f"r{i}", url=url.rstrip("/")))
    sock = bind_socket(args.host, args.port)
    log.info("router on http://%s:%d", *sock.getsockname()[:2])
    serve_app(build_static_app(router), sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
