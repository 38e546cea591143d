"""aistack's Ray driver: the one process that talks to the Ray cluster for a
:class:`aistack.executors.ray.RayExecutor`.

It runs as a child of the aistack server (``python -m aistack.executors.ray_driver FD``),
never inside it: a Ray driver whose cluster has gone away hangs in its next call to the GCS
and is ended by Ray itself after ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s), and that
must not take the server along. :mod:`aistack.executors.ray_connection` starts it, talks to it
over the socket ``FD`` (``multiprocessing.connection`` messages), and kills and restarts it.

Protocol: the parent sends ``{"address", "namespace", "runtime_env"}``; the driver connects
(``ray.init``; ``auto`` is looked up first and checked like an explicit address, see
:func:`resolve_address`) and answers ``("hello", True, {"gcs_address", "pid"})`` or
``("hello", False, error)``. Then each request ``(id, method, args)`` runs in a thread of
its own and is answered ``(id, True, result)`` or ``(id, False, (kind, message))``; results
are plain data (no Ray objects cross the pipe). The driver exits when the socket closes or
its parent process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aistack.errors import ConnectionFailed
from aistack.executors.ray_connection import host_port, tcp_error

log = logging.getLogger(__name__)

# what the parent may call (methods of _Driver)
METHODS = frozenset(
    {"ping", "nodes", "launch", "poll_job", "finish", "cancel", "signal", "usage", "job_nodes"}
)
LOG_CHUNKS_RUNNING = 4  # log chunks (LOG_CHUNK each) pulled per poll while the job runs
LOG_CHUNKS_FINAL = 64  # and once it has ended, before its coordinator is removed
AUTO_TCP_TIMEOUT_S = 5.0  # for the check that something listens where `auto` points


def on_local_clock(st: dict[str, Any], sent: float, received: float) -> dict[str, Any]:
    """The coordinator's status with its ``started_at`` moved onto this host's clock.

    The coordinator stamps the start with the clock of the host Ray placed it on; a job's
    runtime, GPU-hours and preemption protection count from it on the server's clock. The
    status carries the coordinator's ``now``; the offset is taken against the middle of the
    round trip and applied only where it exceeds half the round trip (its error bound), so a
    synchronised cluster's start is kept as it was stamped."""
    remote_now = st.pop("now", None)
    began = st.get("started_at")
    if not isinstance(remote_now, int | float) or not isinstance(began, int | float):
        return st
    offset = (sent + received) / 2.0 - float(remote_now)
    if abs(offset) > (received - sent) / 2.0 + 0.05:
        st["started_at"] = float(began) + offset
    return st


@contextlib.contextmanager
def loopback_bootstrap() -> Any:
    """Keep 127.0.0.1 as 127.0.0.1 while connecting to a cluster bound to loopback.

    ``ray.init(address="127.0.0.1:port")`` rewrites a loopback address to the machine's
    outward IP, which a cluster bound to 127.0.0.1 (tests, a laptop) does not listen on.
    Only the GCS address is kept: pass no ``_node_ip_address="127.0.0.1"`` along with it.
    ``ray start --head --node-ip-address=127.0.0.1`` (and ``ray start --head``) registers its
    raylet under the machine's outward IP (Ray rewrites that flag the same way), and a
    driver that names 127.0.0.1 as its node waits for a raylet at 127.0.0.1 until
    ``ray.init`` gives up. Without it Ray picks the raylet of this machine that the cluster
    knows, at the address that raylet registered (127.0.0.1 for ``ray.cluster_utils``).
    """
    try:
        from ray._private import services

        orig = services.resolve_ip_for_localhost
    except (ImportError, AttributeError) as exc:  # an older or newer Ray, or a stand-in
        log.warning(
            "cannot keep 127.0.0.1 for ray.init (%s): Ray may dial this machine's outward IP",
            exc,
        )
        yield
        return

    def _keep(host: str) -> str:
        return "127.0.0.1" if host in ("localhost", "127.0.0.1") else orig(host)

    services.resolve_ip_for_localhost = _keep
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = orig


def is_loopback(address: str | None) -> bool:
    return bool(address) and str(address).split(":")[0] in ("127.0.0.1", "localhost")


AUTO_FIX = (
    "start a cluster on this machine (`ray start --head`) or set "
    "AISTACK_RAY_ADDRESS=host:port (the GCS of a running cluster; ray://host:port for its "
    "Ray Client server)"
)


def resolve_address(address: str | None) -> str:
    """The address Ray dials for ``address``: ``auto`` (or none) is the cluster Ray's own
    lookup finds for ``ray.init(address="auto")`` (``get_ray_address_from_environment``):
    ``RAY_ADDRESS`` when set, else the cluster Ray recorded as the latest started on this
    machine (``ray_current_cluster`` in Ray's temporary directory, written by ``ray start``
    and ``ray.cluster_utils``), else a raylet running here. Any other address is returned as
    it is, without importing Ray.

    Callers check that something listens at the result and keep it loopback
    (:func:`loopback_bootstrap`) before ``ray.init``: ``auto`` that finds a cluster bound to
    127.0.0.1 hangs ``ray.init`` as ``127.0.0.1:port`` does. ConnectionFailed, with how to
    fix it, when ``auto`` finds no cluster. A Ray without this lookup: ``auto`` unchanged.
    """
    if address and address != "auto":
        return address
    try:
        from ray._private import services

        lookup = services.get_ray_address_from_environment
    except (ImportError, AttributeError) as exc:  # an older or newer Ray, or a stand-in
        log.warning("cannot look up the Ray cluster for `auto` (%s): not checked first", exc)
        return "auto"
    try:
        found = lookup("auto", None)
    except ConnectionError:
        raise ConnectionFailed(
            f"no Ray cluster found for the address `auto`: {_auto_sources()}",
            hint=AUTO_FIX,
        ) from None
    if not found or found == "auto":  # (Ray raises instead; a newer Ray may not)
        raise ConnectionFailed(
            f"no Ray cluster found for the address `auto`: {_auto_sources()}", hint=AUTO_FIX
        )
    return str(found)


def _auto_sources() -> str:
    """Where Ray looked for ``auto`` and found nothing (for the error)."""
    env = os.environ.get("RAY_ADDRESS")
    said = "RAY_ADDRESS is unset" if not env else f"RAY_ADDRESS={env}"
    record = "Ray's record of the latest cluster started on this machine"
    with contextlib.suppress(Exception):
        from ray._common.utils import get_ray_address_file

        record = f"{record} ({get_ray_address_file(None)})"
    return f"{said}, {record} names none, and no raylet runs on this machine"


def describe(address: str, resolved: str) -> str:
    """``address`` for messages, with what ``auto`` resolved to."""
    return address if resolved == address else f"{address} ({resolved})"


def init_ray(ray: Any, address: str, resolved: str, **kw: Any) -> None:
    """``ray.init(address=address, **kw)`` for ``address`` resolved to ``resolved``
    (:func:`resolve_address`), keeping a loopback GCS address loopback
    (:func:`loopback_bootstrap`). ``auto`` is passed on as ``auto``: Ray resolves it the
    same way, and for ``auto`` only it sends the token of this machine
    (``~/.ray/auth_token``) unless ``RAY_AUTH_MODE`` says otherwise."""
    if is_loopback(resolved):
        # the GCS address stays 127.0.0.1; the node is the local raylet, wherever it
        # registered (see loopback_bootstrap)
        with loopback_bootstrap():
            ray.init(address=address, **kw)
    else:
        ray.init(address=address, **kw)


def token_auth_hint() -> str | None:
    """What to do when ``ray.init`` on an explicit address may have failed for want of
    Ray's token: this process holds a token but does not send it.

    ``ray start`` turns token authentication on when a token exists (``~/.ray/auth_token``,
    written by any ``ray.init()`` that started a local cluster), and a driver given an
    explicit address sends it only with ``RAY_AUTH_MODE=token``; the GCS then refuses the
    driver and ``ray.init`` says only that it failed to connect.
    """
    try:
        from ray._raylet import (  # type: ignore[attr-defined]  # not in Ray's stubs
            AuthenticationMode,
            AuthenticationTokenLoader,
            get_authentication_mode,
        )

        if get_authentication_mode() == AuthenticationMode.TOKEN:
            return None
        if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
            return None
    except Exception:  # noqa: BLE001 - an older or newer Ray: no hint
        return None
    mode = os.environ.get("RAY_AUTH_MODE")
    now = f"RAY_AUTH_MODE={mode}" if mode else "RAY_AUTH_MODE is unset"
    return (
        "if the cluster uses token authentication (`ray start` turns it on when "
        f"~/.ray/auth_token exists), set RAY_AUTH_MODE=token where aistack runs ({now}; "
        "Ray sends its token to an explicit address only then)"
    )


class _Driver:
    """The Ray calls of the executor, run in the driver process."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.namespace = cfg.get("namespace") or "aistack"

    def connect(self) -> dict[str, Any]:
        import ray

        address = self.cfg.get("address") or "auto"
        try:
            resolved = resolve_address(address)
        except ConnectionFailed as exc:  # the parent adds how to fix (fix_hint)
            raise ConnectionError(exc.message) from None
        target = host_port(resolved) if resolved != address else None
        if target is not None:
            # the cluster `auto` found: the parent checked no address (it had none); nothing
            # listening there fails now instead of hanging in ray.init
            err = tcp_error(target, timeout=AUTO_TCP_TIMEOUT_S)
            if err:
                raise ConnectionError(
                    f"the Ray cluster at {describe(address, resolved)} is unreachable "
                    f"({target[0]}:{target[1]}: {err})"
                )
        kw: dict[str, Any] = dict(
            namespace=self.namespace,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        if self.cfg.get("runtime_env"):
            kw["runtime_env"] = self.cfg["runtime_env"]
        try:
            init_ray(ray, address, resolved, **kw)
        except ConnectionError as exc:
            hint = token_auth_hint()
            if hint:
                raise ConnectionError(f"{exc}; {hint}") from exc
            raise
        gcs = None
        with contextlib.suppress(Exception):
            gcs = ray.get_runtime_context().gcs_address
        return {"gcs_address": gcs, "pid": os.getpid()}

    # -- helpers -----------------------------------------------------------------------------
    def _actor(self, name: str, namespace: str | None) -> Any | None:
        import ray

        try:
            return ray.get_actor(name, namespace=namespace or self.namespace)
        except ValueError:
            return None

    # -- methods the parent calls ------------------------------------------------------------
    def ping(self) -> bool:
        """One round trip to the GCS."""
        try:
            from ray.experimental.internal_kv import _internal_kv_exists

            _internal_kv_exists(b"aistack-ping")
        except ImportError:  # pragma: no cover - older or newer Ray
            import ray

            ray.nodes()
        return True

    def nodes(self) -> list[dict[str, Any]]:
        import ray

        keep = ("NodeID", "Alive", "Resources", "NodeManagerHostname", "NodeManagerAddress")
        return [{k: n.get(k) for k in keep} for n in ray.nodes()]

    def launch(self, spec: dict[str, Any], name: str, dead: list[str]) -> dict[str, Any]:
        """Create the job's detached coordinator; returns what was changed in ``spec``."""
        import ray

        from aistack.errors import BackendError
        from aistack.executors.ray_actors import JobCoordinator

        nodes = ray.nodes()
        unpinned = None
        if spec.get("label_selectors"):
            alive = {n["NodeID"] for n in nodes if n.get("Alive")} - set(dead)
            gone = [
                s["ray.io/node-id"]
                for s in spec["label_selectors"]
                if s["ray.io/node-id"] not in alive
            ]
            if gone:
                # the scheduler's inventory is stale (a node died): let Ray place the gang
                unpinned = gone[0]
                spec = {**spec, "label_selectors": None}
        opts: dict[str, Any] = dict(
            name=name,
            namespace=self.namespace,
            lifetime="detached",
            num_cpus=0,
            max_concurrency=8,
            max_restarts=0,
        )
        head = any(
            n.get("Alive") and "node:__internal_head__" in (n.get("Resources") or {}) for n in nodes
        )
        if head:  # the coordinator lives on the head node: it dies only with the cluster
            opts["resources"] = {"node:__internal_head__": 0.001}
        try:
            ray.remote(JobCoordinator).options(**opts).remote(spec)
        except ValueError as exc:  # name taken: this attempt was already launched
            raise BackendError(
                f"job {spec['job_id']} attempt {spec['attempt']} is already running on Ray: {exc}"
            ) from exc
        return {"unpinned": unpinned}

    def poll_job(self, name: str, namespace: str | None, offset: int, timeout: float) -> dict:
        """The coordinator's status and the job's output from ``offset`` on:
        ``{"gone"}``, ``{"died": msg}``, ``{"slow"}`` or ``{"status", "log", "offset", "more"}``
        (``more``: the coordinator holds output past ``offset`` still)."""
        import ray

        from aistack.executors.ray_actors import LOG_CHUNK

        coord = self._actor(name, namespace)
        if coord is None:
            return {"gone": True}
        parts: list[bytes] = []
        more = False  # the coordinator holds more output than this answer carries
        try:
            t0 = time.time()
            st = ray.get(coord.status.remote(), timeout=timeout)
            st = on_local_clock(st, t0, time.time())
            final = st.get("state") in ("succeeded", "failed", "cancelled", "timeout", "lost")
            for _ in range(LOG_CHUNKS_FINAL if final else LOG_CHUNKS_RUNNING):
                data, nxt = ray.get(coord.read_log.remote(offset), timeout=timeout)
                parts.append(data)
                offset = nxt
                if len(data) < LOG_CHUNK:
                    break
            else:
                more = True
        except ray.exceptions.RayActorError as exc:
            return {"died": str(exc)}
        except ray.exceptions.GetTimeoutError:
            return {"slow": True}
        return {"status": st, "log": b"".join(parts), "offset": offset, "more": more}

    def finish(self, name: str, namespace: str | None, timeout: float) -> bool:
        """Remove a coordinator with its agents and placement group (False: none found)."""
        import ray

        coord = self._actor(name, namespace)
        if coord is None:
            return False
        with contextlib.suppress(Exception):
            ray.get(coord.cleanup.remote(), timeout=timeout)
        with contextlib.suppress(Exception):
            ray.kill(coord)
        return True

    def cancel(self, name: str, namespace: str | None, grace_s: float) -> bool:
        coord = self._actor(name, namespace)
        if coord is None:
            return False
        coord.cancel.remote(grace_s)
        return True

    def signal(self, name: str, namespace: str | None, sig: int) -> bool:
        coord = self._actor(name, namespace)
        if coord is None:
            return False
        coord.signal.remote(int(sig))
        return True

    def usage(self, name: str, namespace: str | None, timeout: float) -> dict | None:
        import ray

        coord = self._actor(name, namespace)
        if coord is None:
            return None
        try:
            return ray.get(coord.usage.remote(), timeout=timeout)  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001 - usage is best effort
            return None

    def job_nodes(self, name: str, namespace: str | None, timeout: float) -> list[str]:
        import ray

        coord = self._actor(name, namespace)
        if coord is None:
            return []
        return list(ray.get(coord.status.remote(), timeout=timeout).get("nodes") or [])


# -- the process --------------------------------------------------------------------------------


def _watch_parent(ppid: int) -> None:
    """Exit as soon as the process that started us is gone (kill -9 of the server)."""
    while True:
        if os.getppid() != ppid:
            os._exit(0)
        time.sleep(0.5)


def serve(conn: Any, ppid: int) -> None:
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()
    cfg = conn.recv()
    driver = _Driver(cfg)
    try:
        info = driver.connect()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("hello", False, f"{type(exc).__name__}: {exc}"))
        os._exit(3)
    conn.send(("hello", True, info))
    send_lock = threading.Lock()

    def handle(req_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}")
            reply = (req_id, True, getattr(driver, method)(*args))
        except Exception as exc:  # noqa: BLE001 - sent back as data
            reply = (req_id, False, (type(exc).__name__, str(exc)))
        try:
            with send_lock:
                conn.send(reply)
        except (OSError, ValueError):
            os._exit(0)

    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="aistack-ray-call")
    while True:
        try:
            req_id, method, args = conn.recv()
        except (EOFError, OSError):
            break
        pool.submit(handle, req_id, method, args)
    # the parent closed the socket: disconnect (detached coordinators keep running)
    threading.Timer(5.0, os._exit, args=(0,)).start()
    with contextlib.suppress(Exception):
        import ray

        ray.shutdown()
    os._exit(0)


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    serve(Connection(int(argv[1])), os.getppid())


if __name__ == "__main__":
    main(sys.argv)
