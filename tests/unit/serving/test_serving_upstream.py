"""The router's HTTP/1.1 hop against small asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

import pytest

from aistack.serving.upstream import (
    UpstreamConnectError,
    UpstreamDropped,
    UpstreamPool,
    UpstreamTimeout,
)


async def _serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length) if length else b""


def test_keep_alive_reuse_chunked_body_and_stale_connection() -> None:
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        n = 0
        while True:
            try:
                body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            n += 1
            if body == b"chunked":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                )
            else:
                writer.write(
                    b"HTTP/1.1 201 Created\r\ncontent-length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
            await writer.drain()
            if body == b"then-close":
                writer.close()
                break

    async def main() -> None:
        server, url = await _serve(handler)
        pool = UpstreamPool()
        assert await pool.request(url, "POST", "/x", [], b"hello") == (
            201,
            [("content-length", "5")],
            b"hello",
        )
        status, headers, body = await pool.request(url, "POST", "/x", [], b"chunked")
        assert (status, body) == (200, b"abcde")
        assert len(connections) == 1  # the connection was kept alive and reused
        await pool.request(url, "POST", "/x", [], b"then-close")
        await asyncio.sleep(0.05)
        # the pooled connection was closed by the server: a fresh one is used transparently
        assert (await pool.request(url, "POST", "/x", [], b"again"))[2] == b"again"
        await pool.close()
        server.close()

    asyncio.run(main())


def test_refused_dropped_and_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    async def drop(reader, writer):
        await _read_request(reader)
        writer.close()  # the replica dies after reading the request

    async def slow(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        pool = UpstreamPool(read_timeout_s=0.2)
        with pytest.raises(UpstreamConnectError):
            await pool.request(f"http://127.0.0.1:{closed_port}", "GET", "/", [], b"")
        server, url = await _serve(drop)
        with pytest.raises(UpstreamDropped):
            await pool.request(url, "POST", "/v1/completions", [], b"{}")
        server.close()
        server2, url2 = await _serve(slow)
        with pytest.raises(UpstreamTimeout):
            await pool.request(url2, "GET", "/", [], b"")
        server2.close()

    asyncio.run(main())


def test_many_stale_pooled_connections_are_all_dropped_and_idle_ones_expire() -> None:
    writers = []

    async def handler(reader, writer):
        writers.append(writer)
        while True:
            try:
                body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()

    async def main() -> None:
        server, url = await _serve(handler)
        pool = UpstreamPool(idle_timeout_s=30)
        await asyncio.gather(*(pool.request(url, "POST", "/", [], b"x") for _ in range(3)))
        assert len(writers) == 3
        for w in writers:  # the server's keep-alive timeout closes every idle connection
            w.close()
        await asyncio.sleep(0.05)
        assert (await pool.request(url, "POST", "/", [], b"after"))[2] == b"after"
        short = UpstreamPool(idle_timeout_s=0.05)
        await short.request(url, "POST", "/", [], b"a")
        n = len(writers)
        await asyncio.sleep(0.1)
        await short.request(url, "POST", "/", [], b"b")
        assert len(writers) == n + 1  # the idle connection expired: a new one was opened
        await pool.close()
        await short.close()
        server.close()

    asyncio.run(main())


class _ClosedTransportWriter:
    """A writer whose transport the peer closed, as uvloop reports it: RuntimeError, not
    OSError (seen when a replica was SIGKILLed under load: the client got a 500)."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, _data: bytes) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False 0x1>; "
            "the handler is closed"
        )

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_a_closed_transport_uvloop_style_is_a_dropped_connection() -> None:
    """A pooled connection whose transport is closed is dropped and the request goes out on a
    fresh one; a fresh connection that is closed is UpstreamDropped (the router retries an
    idempotent request on another replica), never a bare RuntimeError."""

    async def handler(reader, writer):
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode())
        writer.write(b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, url = await _serve(handler)
        pool = UpstreamPool()
        stale = _ClosedTransportWriter()
        pool._take = lambda _pool: (asyncio.StreamReader(), stale)  # type: ignore[method-assign,assignment,return-value]
        assert (await pool.request(url, "POST", "/x", [], b"hi"))[::2] == (200, b"hi")
        assert stale.closed
        fresh = _ClosedTransportWriter()

        async def connect(_host: str, _port: int):  # type: ignore[no-untyped-def]
            return asyncio.StreamReader(), fresh

        pool._take = lambda _pool: None  # type: ignore[method-assign,assignment,return-value]
        pool._connect = connect  # type: ignore[method-assign]
        with pytest.raises(UpstreamDropped, match="handler is closed"):
            await pool.request(url, "POST", "/x", [], b"hi")
        assert fresh.closed
        server.close()

    asyncio.run(main())
