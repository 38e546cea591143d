"""A buffered, asynchronous metrics logger for training loops.

``mlflow.log_metric`` sends one HTTP request per point (tens of ms on a loaded server); a
training loop logging a few metrics per step spends more time logging than training.
:class:`BufferedMetricsLogger` appends points to an in-memory buffer (about a microsecond per
point) and a background thread sends them with ``log_batch`` in chunks of at most 1,000 (MLflow's
per-request limit), every ``flush_every`` points or ``flush_interval_s`` seconds.

It never drops a point: a chunk that fails stays at the head of the buffer and is retried with
exponential backoff (capped at ``max_backoff_s``). ``flush()`` waits until everything logged
before it was accepted by the server; ``close()`` (also called by the context manager and at
interpreter exit) flushes, and if the server stays unreachable for ``close_timeout_s`` it
writes the unsent points — the buffer and the chunk still being sent — to a spool file (JSON
lines in ``<AISTACK_HOME>/mlflow-spool/``) that :func:`replay_spool` sends later, and raises
BackendError naming that file. A batch the server refuses for good (e.g. the run was
deleted) is split to find the points it refuses; only those go to a spool file (``.rejected``
counts them, ``.spooled`` lists the files) so the rest keeps flowing. Metric names, values,
steps and timestamps are checked at ``log()`` time (names against MLflow's rules, steps and
timestamps within int64), so a point the server could never accept is a ValidationError in
the caller rather than a batch that fails in the background.

Example::

    with BufferedMetricsLogger() as ml:        # run from $MLFLOW_RUN_ID or the active run
        for step in range(steps):
            ml.log_many({"loss": loss, "lr": lr}, step=step)
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, ValidationError
from aistack.mlops._client import mlflow_client

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000
_OPEN: weakref.WeakSet[BufferedMetricsLogger] = weakref.WeakSet()
_Point = tuple[str, float, int, int]  # key, value, timestamp ms, step


def _resolve_run_id(run_id: str | None) -> str:
    if run_id:
        return run_id
    env = os.environ.get("MLFLOW_RUN_ID")
    if env:
        return env
    try:
        import mlflow

        active = mlflow.active_run()
    except ImportError:  # pragma: no cover
        active = None
    if active is not None:
        return str(active.info.run_id)
    raise ValidationError(
        "run_id: no MLflow run to log into",
        hint="pass run_id=..., set MLFLOW_RUN_ID (aistack jobs have it) or call mlflow.start_run()",
    )


class BufferedMetricsLogger:
    """Buffered, batched, retrying metrics logger (see the module docstring).

    ``client``: anything with ``log_batch(run_id, metrics=[mlflow.entities.Metric, ...])``;
    defaults to an ``MlflowClient`` for ``tracking_uri`` ($MLFLOW_TRACKING_URI when None).
    """

    def __init__(
        self,
        run_id: str | None = None,
        tracking_uri: str | None = None,
        flush_every: int = 1000,
        flush_interval_s: float = 1.0,
        *,
        client: Any = None,
        max_backoff_s: float = 30.0,
        close_timeout_s: float = 300.0,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if flush_every < 1:
            raise ValidationError(f"flush_every: must be >= 1, got {flush_every}")
        if not flush_interval_s > 0:
            raise ValidationError(f"flush_interval_s: must be > 0, got {flush_interval_s}")
        self.run_id = _resolve_run_id(run_id)
        self.flush_every = int(flush_every)
        self.flush_interval_s = float(flush_interval_s)
        self.max_backoff_s = float(max_backoff_s)
        self.close_timeout_s = float(close_timeout_s)
        self._spool_dir = Path(spool_dir) if spool_dir else None
        # import now: at interpreter exit a first import of mlflow fails (it registers atexit)
        from mlflow.entities import Metric

        self._metric_cls = Metric
        self._valid_keys: set[str] = set()
        self.rejected = 0  # points the server refused as invalid (spooled, not dropped)
        self.spooled: list[Path] = []
        self._client = client if client is not None else mlflow_client(tracking_uri)
        self._buf: deque[_Point] = deque()
        self._inflight: list[_Point] = []  # the chunk the thread is sending (close spools it)
        self._cond = threading.Condition()
        self._logged = 0  # points accepted by log()
        self._sent = 0  # points acknowledged by the server (in order)
        self._closing = False
        self._closed = False
        self._flush_wanted = False
        self.requests = 0
        self.retries = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"aistack-metrics-{self.run_id[:8]}", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)

    # ---------------------------------------------------------------- public API
    def log(
        self,
        key: str,
        value: float,
        step: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one point (``timestamp`` in ms since the epoch, default now; ``step`` 0)."""
        point = _point(key, value, step, timestamp)
        if key not in self._valid_keys:
            self._check_key(key)
        with self._cond:
            self._append([point])

    def log_many(
        self, metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Queue several metrics at one step and one timestamp."""
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        points = [_point(k, v, step, ts) for k, v in metrics.items()]
        for k in metrics:
            if k not in self._valid_keys:
                self._check_key(k)
        with self._cond:
            self._append(points)

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every point logged so far has been accepted by the server."""
        with self._cond:
            target = self._logged
            if self._closed:
                if self._sent < target:
                    raise BackendError(f"{target - self._sent} points were spooled, not sent")
                return
            self._flush_wanted = True
            self._cond.notify_all()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._sent < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise BackendError(
                        f"flush timed out after {timeout_s} s with {target - self._sent} points "
                        f"unsent (last error: {self.last_error})",
                        hint="the points stay buffered and are retried; check the tracking server",
                    )
                self._cond.wait(timeout=left if left is not None else 1.0)

    def close(self) -> None:
        """Flush and stop the background thread. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=self.close_timeout_s)
        with self._cond:
            self._closed = True  # from now on the thread drops what it fails to send
            left = list(self._inflight) + list(self._buf)
            self._buf.clear()
            self._cond.notify_all()
        _OPEN.discard(self)
        if left:
            path = self._spool(left)
            self.spooled.append(path)
            raise BackendError(
                f"{len(left)} metric points could not be sent to run {self.run_id} "
                f"(last error: {self.last_error}); saved to {path}",
                hint=f"send them later with aistack.mlops.logger.replay_spool({str(path)!r})",
            )

    @property
    def pending(self) -> int:
        """Points logged but not yet accepted by the server."""
        with self._cond:
            return self._logged - self._sent

    @property
    def sent(self) -> int:
        return self._sent

    def __enter__(self) -> BufferedMetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals
    def _check_key(self, key: str) -> None:
        """MLflow's own metric-name rules, checked once per key at log() time (a bad key would
        otherwise be refused by the server later, in the background)."""
        try:
            from mlflow.utils.validation import _validate_metric_name
        except ImportError:  # pragma: no cover - private MLflow API moved
            self._valid_keys.add(key)
            return
        if len(key) > 250:
            raise ValidationError(f"key {key[:40]!r}...: longer than 250 characters")
        try:
            _validate_metric_name(key)
        except Exception as exc:
            raise ValidationError(
                f"key {key!r}: not a valid MLflow metric name",
                hint="use letters, digits, '_', '-', '.', ' ', ':' and '/', no '..' or leading '/'",
            ) from exc
        self._valid_keys.add(key)

    def _append(self, points: list[_Point]) -> None:
        if self._closed or self._closing:
            raise ValidationError("the metrics logger is closed", hint="create a new one")
        self._buf.extend(points)
        self._logged += len(points)
        if len(self._buf) >= self.flush_every:
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                if backoff:
                    # retry after the backoff even when closing (never drop)
                    self._cond.wait(timeout=backoff)
                else:
                    deadline = time.monotonic() + self.flush_interval_s
                    while (
                        len(self._buf) < self.flush_every
                        and not self._closing
                        and not self._flush_wanted
                    ):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(timeout=left)
                if not self._buf:
                    self._flush_wanted = False
                    if self._closing:
                        return
                    continue
                chunk = [self._buf.popleft() for _ in range(min(BATCH_LIMIT, len(self._buf)))]
                self._inflight = chunk
            refused: list[tuple[_Point, BaseException]] = []
            try:
                self._send_isolating(chunk, refused)
            except Exception as exc:
                # transient: keep the chunk, retry with backoff (unless close() spooled it)
                with self._cond:
                    self._inflight = []
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    if self._closed:
                        return
                    self._buf.extendleft(reversed(chunk))
                    self.retries += 1
                backoff = min(self.max_backoff_s, max(0.05, backoff * 2 or 0.1))
                log.warning(
                    "metrics batch of %d points failed (%s); retrying in %.1f s",
                    len(chunk),
                    self.last_error,
                    backoff,
                )
                continue
            backoff = 0.0
            if refused:
                # the server refuses these points for good (e.g. the run was deleted): keep
                # them in a spool file rather than retrying forever
                exc = refused[-1][1]
                path = self._spool([pt for pt, _ in refused])
                with self._cond:
                    self.spooled.append(path)
                    self.rejected += len(refused)
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            with self._cond:
                self._inflight = []
                self._sent += len(chunk)
                self.requests += 1
                if not self._buf:
                    self._flush_wanted = False
                self._cond.notify_all()

    def _send_isolating(
        self, chunk: list[_Point], refused: list[tuple[_Point, BaseException]]
    ) -> None:
        """Send ``chunk``; when the server refuses it for good, split it to send the points it
        accepts and collect the ones it refuses in ``refused``. Transient errors propagate."""
        try:
            self._send(chunk)
        except Exception as exc:
            if not _is_permanent(exc):
                raise
            if len(chunk) == 1:
                refused.append((chunk[0], exc))
                return
            mid = len(chunk) // 2
            self._send_isolating(chunk[:mid], refused)
            self._send_isolating(chunk[mid:], refused)

    def _send(self, chunk: list[_Point]) -> None:
        metric = self._metric_cls
        metrics = [metric(k, v, ts, st) for k, v, ts, st in chunk]
        self._client.log_batch(self.run_id, metrics=metrics)

    def _spool(self, points: list[_Point]) -> Path:
        d = self._spool_dir
        if d is None:
            from aistack.settings import get_settings

            d = get_settings().home / "mlflow-spool"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.run_id}-{os.getpid()}-{int(time.time() * 1000)}.jsonl"
        with path.open("w") as f:
            for k, v, ts, st in points:
                f.write(json.dumps({"key": k, "value": v, "timestamp": ts, "step": st}) + "\n")
        log.error("spooled %d unsent metric points to %s", len(points), path)
        return path


def _is_permanent(exc: BaseException) -> bool:
    """A refusal that a retry cannot fix (MLflow's INVALID_PARAMETER_VALUE and the like), or
    a point the client cannot even encode (ValueError / TypeError raised locally; network
    errors are OSError / MlflowException, never these)."""
    code = getattr(exc, "error_code", None)
    if code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST"):
        return True
    return isinstance(exc, ValueError | TypeError) and not isinstance(exc, OSError)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int64(name: str, key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"{name} of {key!r}: must be an integer, got {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"{name} of {key!r}: must be an integer, got {value!r}") from None
    if not INT64_MIN <= out <= INT64_MAX:
        raise ValidationError(
            f"{name} of {key!r}: {out} is outside MLflow's 64-bit range",
            hint=f"use a {name} between -2**63 and 2**63-1",
        )
    return out


def _point(key: str, value: float, step: int | None, timestamp: int | None) -> _Point:
    if not isinstance(key, str) or not key:
        raise ValidationError(f"key: must be a non-empty string, got {key!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy and torch scalars
        except (TypeError, ValueError):
            raise ValidationError(f"value of {key!r}: must be a number, got {value!r}") from None
    try:
        v = float(value)
    except OverflowError:
        raise ValidationError(f"value of {key!r}: {value!r} does not fit a double") from None
    ts = int(time.time() * 1000) if timestamp is None else _int64("timestamp", key, timestamp)
    return (key, v, ts, 0 if step is None else _int64("step", key, step))


def replay_spool(path: str | os.PathLike[str], tracking_uri: str | None = None) -> int:
    """Send the points of a spool file written by :meth:`BufferedMetricsLogger.close`.

    The file name starts with the run id. Returns the number of points sent; the file is
    removed only after every point was accepted.
    """
    from mlflow.entities import Metric

    p = Path(path)
    run_id = p.name.split("-", 1)[0]
    points = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    client = mlflow_client(tracking_uri)
    for i in range(0, len(points), BATCH_LIMIT):
        chunk = points[i : i + BATCH_LIMIT]
        client.log_batch(
            run_id,
            metrics=[Metric(d["key"], d["value"], d["timestamp"], d["step"]) for d in chunk],
        )
    p.unlink()
    return len(points)


@atexit.register
def _close_all_at_exit() -> None:
    for lg in list(_OPEN):
        try:
            lg.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            log.error("metrics logger for run %s: %s", lg.run_id, exc)
