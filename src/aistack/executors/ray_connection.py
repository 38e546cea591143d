"""The aistack server's link to its Ray cluster: a Ray driver in a child process.

Why a child process: a Ray driver cannot outlive its cluster. When the GCS goes away, the
driver's next call to it hangs, and after ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s by
default) Ray ends the whole driver process; raising that timeout keeps the process alive but
leaves every call (``ray.nodes()``, ``ray.get``) hanging, and ``ray.init`` on an address where
nothing listens hangs for minutes. Ray Client (``ray://``) would avoid the first problem only
for clusters that run a client server. So :class:`RayConnection` keeps all of Ray in
:mod:`aistack.executors.ray_driver`, started with ``python -m``, and talks to it over a
socket pair:

* every call has a timeout, and a call fails at once (``ConnectionFailed`` whose message says
  which cluster is unreachable, since when, and how to fix it) while the link is down, so the
  scheduling loop never waits on a dead cluster;
* a monitor thread checks the link every ``health_interval_s``: the driver process is alive,
  the GCS port accepts a TCP connection, and a ping through Ray answers within
  ``health_timeout_s``. On a failure the link is *down*: the driver is killed, calls in flight
  fail at once;
* while down, it retries every ``retry_interval_s`` (longer after failed attempts, at most
  60 s): first a plain TCP connect to the GCS port (cheap; no driver is started while nothing
  listens), then a fresh driver process, whose ``ray.init`` must answer within
  ``connect_timeout_s``. On success ``on_reconnect`` runs (in a thread of its own).

The first connection is made on first use; calls wait for its outcome (``FIRST_WAIT_S`` at
most; ``ray.init`` takes a few seconds), later reconnects happen in the background. The driver
exits when the socket closes or when this process is gone (it watches its parent), so a
``kill -9`` of the server leaves no driver behind; jobs keep running either way (their
coordinators are detached actors).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from aistack.errors import BackendError, ConnectionFailed

log = logging.getLogger(__name__)

MAX_RETRY_INTERVAL_S = 60.0
FIRST_WAIT_S = 30.0  # how long the first call waits for the first connection at most


class _Slot:
    __slots__ = ("event", "value", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: Exception | None = None


class _Pipe:
    """The socket to a driver process, carrying ``multiprocessing.connection`` messages.
    ``close`` shuts the socket down first: a plain close would not wake a thread blocked in
    ``recv`` on it, and the driver would not see the end of file."""

    def __init__(self, sock: socket.socket) -> None:
        from multiprocessing.connection import Connection

        self.sock = sock
        self.conn = Connection(os.dup(sock.fileno()))
        self.send, self.recv, self.poll = self.conn.send, self.conn.recv, self.conn.poll

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(OSError):
            self.sock.close()


def host_port(address: str | None) -> tuple[str, int] | None:
    """The TCP endpoint of a Ray address (GCS, or Ray Client for ``ray://``); None for
    ``auto`` or an address without a port."""
    if not address or address == "auto":
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def tcp_error(target: tuple[str, int], timeout: float) -> str | None:
    """None when something accepts a TCP connection at ``target``, else why not."""
    try:
        with socket.create_connection(target, timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(t if t is not None else time.time()))


class RayConnection:
    """A Ray driver in a child process, with timeouts, health checks and reconnects (module
    docstring). ``state``: ``new`` (never tried), ``up``, ``down`` or ``closed``."""

    def __init__(
        self,
        address: str | None,
        *,
        namespace: str = "aistack",
        runtime_env: dict[str, Any] | None = None,
        health_interval_s: float = 5.0,
        health_timeout_s: float = 10.0,
        retry_interval_s: float = 5.0,
        connect_timeout_s: float = 60.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.address = address or "auto"
        self.namespace = namespace
        self.runtime_env = runtime_env
        self.health_interval_s = health_interval_s
        self.health_timeout_s = health_timeout_s
        self.retry_interval_s = retry_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.on_reconnect = on_reconnect
        self.connects = 0  # successful connections so far
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._state = "new"
        self._why: str | None = None
        self._down_since: float | None = None  # epoch seconds
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Any = None
        self._gen = 0
        self._pending: dict[int, _Slot] = {}
        self._ids = itertools.count(1)
        self._first = threading.Event()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._started: float | None = None  # when the first connection attempt began
        self._target = host_port(self.address)
        # the last connection attempt found the target listening but Ray did not answer there
        # (ray.init failed or timed out): before a first success, most likely the other port
        # of the cluster (fix_hint)
        self._listening = False
        self._next_try = 0.0
        self._backoff = retry_interval_s

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def pid(self) -> int | None:
        """The driver process, while the link is up."""
        p = self._proc
        return p.pid if p is not None and self._state == "up" else None

    def down_for(self) -> float | None:
        """Seconds since the link went down (None while up or never tried)."""
        since = self._down_since
        return None if since is None or self._state == "up" else max(0.0, time.time() - since)

    def unavailable_reason(self) -> str | None:
        """Why calls fail now (None while up): the cluster, since when, how to fix it."""
        with self._lock:
            state, why, since = self._state, self._why, self._down_since
        if state == "up" or (state == "new" and self._started is None):
            return None
        if state == "new":
            return (
                f"connecting to the Ray cluster at {self.address} (since {_clock(self._started)})"
            )
        if state == "closed":
            return f"the connection to the Ray cluster at {self.address} was closed"
        # no running duration: the text stays the same for the whole outage (a pending reason)
        return (
            f"the Ray cluster at {self.address} is unreachable ({why}; since "
            f"{_clock(since)}): {self.fix_hint()}; aistack reconnects by itself when it "
            "answers again"
        )

    def fix_hint(self, *, listening: bool | None = None) -> str:
        """How to fix the address; ``listening``: whether something accepted a connection at
        it (default: what this connection's last attempt found)."""
        t = self._target
        client = self.address.startswith("ray://")
        if listening is None:
            listening = self._listening
        if t and listening and self.connects == 0:
            # a GCS port given as ray://, or a Ray Client port without it
            host, port = t
            if client:
                return (
                    f"{host}:{port} accepts connections but no Ray Client server answered "
                    f"there: use the port of the cluster's Ray Client server (10001 unless "
                    "`ray start --head --ray-client-server-port` set another); if "
                    f"{port} is the cluster's GCS port, drop ray:// "
                    f"(AISTACK_RAY_ADDRESS={host}:{port})"
                )
            return (
                f"{host}:{port} accepts connections but no Ray GCS answered there: use the "
                "port of the cluster's GCS (`ray start --head --port`, 6379 by default); if "
                f"{port} is the cluster's Ray Client server, write "
                f"AISTACK_RAY_ADDRESS=ray://{host}:{port}"
            )
        if client and t:
            return (
                f"start the cluster with its Ray Client server on port {t[1]} of {t[0]}, or "
                "set AISTACK_RAY_ADDRESS to a running cluster"
            )
        if t:
            return (
                f"start it (`ray start --head --port={t[1]}` on {t[0]}) or set "
                "AISTACK_RAY_ADDRESS to the host:port of a running cluster"
            )
        return (
            "start a cluster on this machine (`ray start --head`) or set "
            "AISTACK_RAY_ADDRESS=host:port"
        )

    def _unavailable(self) -> ConnectionFailed:
        return ConnectionFailed(
            self.unavailable_reason() or f"the Ray cluster at {self.address} is unreachable"
        )

    # -- calls -----------------------------------------------------------------------------
    def ensure(self) -> None:
        """Start the monitor (and the first connection) once; wait for that first outcome."""
        with self._lock:
            if self._monitor is None and self._state != "closed":
                self._started = time.time()
                self._monitor = threading.Thread(
                    target=self._run, name="aistack-ray-link", daemon=True
                )
                self._monitor.start()
        if self._state == "new":
            self._first.wait(min(self.connect_timeout_s + 5, FIRST_WAIT_S))

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        """Run ``method`` of the driver; ConnectionFailed at once while the link is down,
        BackendError when the driver raised or did not answer within ``timeout``."""
        self.ensure()
        with self._lock:
            up = self._state == "up"
            if up:
                conn, gen = self._conn, self._gen
                rid = next(self._ids)
                slot = self._pending[rid] = _Slot()
        if not up:
            raise self._unavailable()
        try:
            with self._send_lock:
                conn.send((rid, method, args))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.pop(rid, None)
            self._mark_down(gen, f"aistack's Ray driver process is gone ({exc})")
            raise self._unavailable() from None
        if not slot.event.wait(timeout):
            with self._lock:
                self._pending.pop(rid, None)
            raise BackendError(f"Ray did not answer {method} within {timeout:g} s")
        if slot.error is not None:
            raise slot.error
        return slot.value

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._state = "closed"
            proc, conn, pending = self._proc, self._conn, self._pending
            self._proc, self._conn, self._pending = None, None, {}
        self._fail(pending, ConnectionFailed("the Ray connection was closed"))
        self._end(proc, conn, graceful=True)

    # -- the monitor -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._state in ("new", "down"):
                    if time.monotonic() >= self._next_try:
                        self._try_connect()
                elif self._state == "up":
                    self._check()
            except Exception:  # noqa: BLE001 - the monitor must survive
                log.exception("Ray link monitor")
            if self._state != "new":
                self._first.set()
            if self._state == "up":
                wait = self.health_interval_s
            else:
                wait = max(0.05, min(1.0, self._next_try - time.monotonic()))
            self._stop.wait(wait)

    def _check(self) -> None:
        with self._lock:
            proc, gen = self._proc, self._gen
        if proc is None:
            return
        code = proc.poll()
        if code is not None:
            self._mark_down(
                gen,
                f"aistack's Ray driver process exited with code {code}; Ray ends a driver "
                "whose cluster is gone",
            )
            return
        if self._target is not None:
            err = tcp_error(self._target, timeout=min(5.0, self.health_timeout_s))
            if err:
                self._mark_down(gen, f"{self._target[0]}:{self._target[1]}: {err}")
                return
        try:
            self.call("ping", timeout=self.health_timeout_s)
        except ConnectionFailed:
            return
        except BackendError as exc:
            self._mark_down(gen, f"a ping through Ray failed: {exc}")

    def _try_connect(self) -> None:
        # `auto` is looked up again on each attempt, by the driver, which checks what it finds
        # (a cluster restarted on another port); _target is then the GCS of the last
        # connection, for health checks only
        target = None if self.address == "auto" else self._target
        if target is not None:
            err = tcp_error(target, timeout=min(5.0, self.connect_timeout_s))
            if err:
                self._listening = False
                self._set_down(f"{target[0]}:{target[1]}: {err}")
                self._next_try = time.monotonic() + self.retry_interval_s
                return
        parent, child = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aistack.executors.ray_driver", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of the server reaches the server only
            )
        except OSError as exc:
            self._listening = False
            parent.close()
            child.close()
            self._set_down(f"cannot start aistack's Ray driver process: {exc}")
            self._next_try = time.monotonic() + self._bump()
            return
        child.close()
        conn = _Pipe(parent)
        ok, info = False, "it did not answer"
        try:
            conn.send(
                {
                    "address": self.address,
                    "namespace": self.namespace,
                    "runtime_env": self.runtime_env,
                }
            )
            if conn.poll(self.connect_timeout_s):
                _, ok, info = conn.recv()
            else:
                info = f"ray.init did not return within {self.connect_timeout_s:g} s"
            self._listening = not ok and self._target is not None
        except (EOFError, OSError) as exc:
            self._listening = False
            info = f"aistack's Ray driver process exited while connecting ({exc or 'EOF'})"
        if not ok or self._stop.is_set():
            self._end(proc, conn, graceful=False)
            self._set_down(f"cannot connect: {info}")
            self._next_try = time.monotonic() + self._bump()
            return
        with self._lock:
            closed = self._state == "closed"
            if not closed:
                self._gen += 1
                gen = self._gen
                self._proc, self._conn = proc, conn
                self._state, self._why, self._down_since = "up", None, None
                self.connects += 1
        if closed:  # close() ran meanwhile
            self._end(proc, conn, graceful=True)
            return
        if isinstance(info, dict) and host_port(self.address) is None and info.get("gcs_address"):
            self._target = host_port(str(info["gcs_address"]))
        self._backoff = self.retry_interval_s
        threading.Thread(
            target=self._read, args=(gen, conn), name="aistack-ray-link-read", daemon=True
        ).start()
        log.info("connected to the Ray cluster at %s (driver pid %s)", self.address, proc.pid)
        if self.connects > 1 and self.on_reconnect is not None:
            threading.Thread(
                target=self._reconnected, name="aistack-ray-reconnected", daemon=True
            ).start()

    def _reconnected(self) -> None:
        try:
            self.on_reconnect()  # type: ignore[misc]
        except Exception:  # noqa: BLE001
            log.exception("after reconnecting to Ray")

    def _bump(self) -> float:
        wait = self._backoff
        self._backoff = min(self._backoff * 2, MAX_RETRY_INTERVAL_S)
        return wait

    def _read(self, gen: int, conn: Any) -> None:
        while True:
            try:
                rid, ok, value = conn.recv()
            except (EOFError, OSError):
                with self._lock:
                    proc = self._proc if gen == self._gen else None
                code = None
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        code = proc.wait(timeout=2)
                self._mark_down(
                    gen,
                    f"aistack's Ray driver process exited (code {code}); Ray ends a driver "
                    "whose cluster is gone",
                )
                return
            with self._lock:
                slot = self._pending.pop(rid, None)
            if slot is None:
                continue
            if ok:
                slot.value = value
            else:
                kind, msg = value
                slot.error = BackendError(msg if kind == "BackendError" else f"{kind}: {msg}")
            slot.event.set()

    def _set_down(self, why: str) -> None:
        with self._lock:
            if self._state == "closed":
                return
            first = self._state != "down"
            self._state, self._why = "down", why
            if self._down_since is None:
                self._down_since = time.time()
        if first:
            log.warning("%s", self.unavailable_reason())

    def _mark_down(self, gen: int, why: str) -> None:
        """The link of generation ``gen`` failed: kill its driver, fail its calls."""
        with self._lock:
            if gen != self._gen or self._state != "up":
                return
            proc, conn, pending = self._proc, self._conn, self._pending
            self._proc, self._conn, self._pending = None, None, {}
        self._set_down(why)
        self._next_try = time.monotonic() + self.retry_interval_s
        self._fail(pending, self._unavailable())
        self._end(proc, conn, graceful=False)

    @staticmethod
    def _fail(pending: dict[int, _Slot], err: Exception) -> None:
        for slot in pending.values():
            slot.error = err
            slot.event.set()

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None, conn: Any, *, graceful: bool) -> None:
        if conn is not None:
            conn.close()
        if proc is None:
            return
        if graceful:  # the driver disconnects from Ray when its socket closes
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
