"""Where a pipeline run's tasks run: :class:`TaskRunner` runs a stage's tasks in this process,
in local worker processes (``executor: local``) or as Ray tasks (``executor: ray``), and
returns their results in task order.

On Ray, the runner connects on the first stage that has tasks to run (a run that resumes
everything never connects) and, when it connected, disconnects (``ray.shutdown``) when the
run ends, so one process can run pipelines one after another. A Ray session this process
opened already (``ray.init()`` in a notebook or a test) is used and left open. Which cluster:

* ``AISTACK_RAY_ADDRESS`` unset: a private Ray instance on this machine (``workers`` CPUs),
  stopped at the end of the run;
* ``host:port`` (the head's GCS) or ``auto`` (the cluster Ray finds for ``ray.init(address=
  "auto")``: ``RAY_ADDRESS``, else the latest one started on this machine): as a driver;
* ``ray://host:port`` (the head's Ray Client server, 10001 unless ``ray start --head
  --ray-client-server-port`` set another): from outside the cluster, as the job executor
  connects (docs/cluster.md). A loopback GCS address (``127.0.0.1:port``, a cluster bound to
  this machine's loopback only), also one that ``auto`` finds, stays loopback, as for the job
  executor (:func:`aistack.executors.ray_driver.loopback_bootstrap`); ``auto`` that finds no
  cluster fails at once.

The tasks read the input files and write to the output folder by path, so the Ray nodes must
see both at the same paths as this machine (a shared filesystem). An address where nothing
listens is refused at once with how to fix it, and a port that answers but not as the given
form expects (the GCS port with ``ray://``, the client port without it) fails when Ray gives
up (its own timeout, tens of seconds) with which form to write; the hints are the job executor's
(:meth:`aistack.executors.ray_connection.RayConnection.fix_hint`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aistack.errors import ConnectionFailed, require

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
TCP_TIMEOUT_S = 5.0  # for the check that something listens at the Ray address


class TaskRunner:
    """Runs the tasks of each stage of one pipeline run (see the module docstring); ``close``
    (or the end of a ``with`` block) disconnects from Ray if :meth:`run` connected."""

    def __init__(self, *, executor: str, workers: int) -> None:
        self.executor = executor
        self.workers = workers
        self._ray: Any = None  # the ray module, once connected by this runner
        self.ray_address: str | None = None  # what this runner connected to ("local": its own)

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        ray, self._ray = self._ray, None
        if ray is not None:
            try:
                ray.shutdown()
            except Exception as exc:  # noqa: BLE001 - the run's own error (if any) matters more
                log.warning("ray.shutdown() after the run failed: %s", exc)

    def run(
        self,
        fn: Callable[..., dict[str, Any]],
        args: list[tuple[Any, ...]],
        *,
        stage: str,
        progress: Progress | None,
    ) -> list[dict[str, Any]]:
        """``fn(*a)`` for each ``a`` of ``args``; the results in the order of ``args``."""
        results: list[dict[str, Any] | None] = [None] * len(args)
        if progress:
            progress(stage, 0, len(args))
        if not args:
            return []
        workers = self.workers
        if self.executor == "ray":
            ray = self._connect()
            remote = ray.remote(num_cpus=1, max_retries=2)(fn)
            refs = [remote.remote(*a) for a in args]
            index = {r: i for i, r in enumerate(refs)}
            pending = list(refs)
            done_n = 0
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for r in ready:
                    results[index[r]] = ray.get(r)
                    done_n += 1
                    if progress:
                        progress(stage, done_n, len(args))
        elif workers <= 1 or len(args) == 1:
            for i, a in enumerate(args):
                results[i] = fn(*a)
                if progress:
                    progress(stage, i + 1, len(args))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            pool = ProcessPoolExecutor(
                max_workers=min(workers, len(args)), mp_context=mp.get_context("spawn")
            )
            stopped = True
            try:
                futs = {pool.submit(fn, *a): i for i, a in enumerate(args)}
                for n, fut in enumerate(as_completed(futs), 1):
                    results[futs[fut]] = fut.result()
                    if progress:
                        progress(stage, n, len(args))
                stopped = False
            finally:
                # Ctrl-C (or a task's error) drops the tasks not started: a `with` block would
                # wait for every queued task, the whole stage (Ctrl-C at file 4 of 50 ran the
                # other 46 first). The ones running end (a terminal's Ctrl-C interrupts them
                # too); the next run resumes from the tasks done
                pool.shutdown(wait=True, cancel_futures=stopped)
        return [r for r in results if r is not None]

    def _connect(self) -> Any:
        ray = require("ray", extra="ray")
        if ray.is_initialized():  # ours (still up), or the caller's (left open)
            return ray
        from aistack.settings import get_settings

        address = get_settings().ray_address
        if address:
            connect_ray(ray, address)
        else:
            ray.init(
                address="local",
                num_cpus=self.workers,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
            )
        self._ray, self.ray_address = ray, address or "local"
        return ray


def connect_ray(ray: Any, address: str) -> None:
    """``ray.init`` on the cluster at ``address`` (``host:port``, ``auto`` or
    ``ray://host:port``) as this process's driver, or ConnectionFailed that says how to fix
    the address. ``auto`` is first looked up as Ray does (``RAY_ADDRESS``, else the latest
    cluster started on this machine; :func:`aistack.executors.ray_driver.resolve_address`),
    and finding none fails at once. Nothing listening at the address fails at once, before
    Ray is asked (Ray itself would retry for a long while)."""
    from aistack.executors.ray_connection import RayConnection, host_port, tcp_error
    from aistack.executors.ray_driver import describe, init_ray, resolve_address, token_auth_hint

    unset = "or unset it: --executor ray then starts a Ray instance on this machine"
    try:
        resolved = resolve_address(address)  # auto: the cluster Ray finds for it
    except ConnectionFailed as exc:
        raise ConnectionFailed(exc.message, hint=f"{exc.hint}; {unset}") from None
    where = describe(address, resolved)
    link = RayConnection(resolved)  # (not started: it only words the fix, as for jobs)
    target = host_port(resolved)
    if target is not None:
        err = tcp_error(target, timeout=TCP_TIMEOUT_S)
        if err:
            raise ConnectionFailed(
                f"the Ray cluster at {where} is unreachable ({target[0]}:{target[1]}: {err})",
                hint=f"{link.fix_hint()}; {unset}",
            )
    try:
        # a loopback GCS address (also one `auto` found) stays 127.0.0.1: ray.init would dial
        # the machine's outward IP instead, where a cluster bound to 127.0.0.1 does not
        # listen, and retry there for many minutes (Ray has no overall timeout for
        # ray.init); the check above is then of the very address Ray dials. As the job
        # executor connects (see loopback_bootstrap)
        init_ray(ray, address, resolved)
    except Exception as exc:  # noqa: BLE001 - any failure: not connected
        with contextlib.suppress(Exception):  # (a half-made session would block the next run)
            ray.shutdown()
        if type(exc) is ConnectionError:
            # Ray's "no answer" (a subclass such as ConnectionAbortedError is an answer): as
            # something listens there, most likely the cluster's other port (the GCS for the
            # client server or back), which the job executor's hint names; it records that
            # as it does after a failed attempt of its own
            hint = link.fix_hint(listening=target is not None)
            auth = token_auth_hint()  # a GCS that refuses a driver without Ray's token
            if auth:
                hint = f"{auth}; otherwise {hint}"
        else:
            hint = (
                "Ray answered there but could not start the session: see the reason (for "
                "ray://, ray_client_server_*.err in the head's session logs) and try again"
            )
        raise ConnectionFailed(
            f"cannot connect to the Ray cluster at {where}: {type(exc).__name__}: {exc}",
            hint=hint,
        ) from None
    log.info("connected to the Ray cluster at %s", where)
