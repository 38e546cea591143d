"""A buffered, asynchronous metrics logger for training loops.

``mlflow.log_metric`` sends one HTTP request per point (tens of ms on a loaded server); a
training loop logging a few metrics per step spends more time logging than training.
:class:`BufferedMetricsLogger` appends points to an in-memory buffer (about a microsecond per
point) and a background thread sends them with ``log_batch`` in chunks of at most 1,000 (MLflow's
per-request limit), every ``flush_every`` points or ``flush_interval_s`` seconds.

It never drops a point: a chunk that fails stays at the head of the buffer and is retried with
exponential backoff (capped at ``max_backoff_s``). ``flush()`` waits until everything logged
before it was accepted by the server, at most ``flush_timeout_s`` (then BackendError says how
many points are pending; they stay buffered and retried); ``close()`` (also called by the
context manager, at interpreter exit and on SIGTERM — a job's cancel or preemption — when the
program set no SIGTERM handler of its own; the process then dies of the signal as before)
flushes, and if the server stays unreachable for
``close_timeout_s`` it writes the unsent points — the buffer and the chunk still being sent — to
a spool file (JSON lines in ``<AISTACK_HOME>/mlflow-spool/``; :mod:`aistack.mlops.spool` writes
it) that :func:`~aistack.mlops.spool.replay_spool` (importable from here too) sends later
(resumable: called again after it stopped part way, it sends only what the server did not
accept, checking the run's history when it cannot tell), and raises BackendError naming that
file. The chunk still being sent may yet reach the
server after close() gave up on it: its lines carry ``"in_flight": true``, and replay_spool
sends those only when the run's metric history does not have them already (a point is the same
point when key, value, timestamp and step are equal, MLflow's own identity), so each point is
logged once. A batch the server refuses for good (e.g. the run was deleted) is split to find the
points it refuses; only those go to a spool file (``.rejected`` counts them, ``.spooled`` lists
the files) so the rest keeps flowing.

A spool file that cannot be written (directory not writable, disk full) loses nothing either:
the points stay in memory (:meth:`BufferedMetricsLogger.unsent` returns them), the next
``log()``/``flush()`` raises BackendError saying how many points and which file, and ``close()``
tries the spool again (and raises the same way if it still cannot write it). Metric names, values,
steps and timestamps are checked at ``log()`` time (names against MLflow's rules, steps and
timestamps whole numbers within int64, timestamps in milliseconds: one before 1973-03-03
(``1e11``) is whole seconds, e.g. ``int(time.time())``, and refused), so a point the server
could never accept, or would file under January 1970, is a ValidationError in the caller
rather than a batch that fails in the background.

Example::

    with BufferedMetricsLogger() as ml:        # run from $MLFLOW_RUN_ID or the active run
        for step in range(steps):
            ml.log_many({"loss": loss, "lr": lr}, step=step)
"""

from __future__ import annotations

import atexit
import logging
import math
import operator
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, ValidationError, short_repr
from aistack.mlops._client import auth_env, check_run_id, open_client, redact_uri, token_for
from aistack.mlops.spool import BATCH_LIMIT, _Point, write_spool
from aistack.mlops.spool import replay_spool as replay_spool  # its home before mlops.spool

log = logging.getLogger(__name__)

_OPEN: weakref.WeakSet[BufferedMetricsLogger] = weakref.WeakSet()


def _resolve_run_id(run_id: str | None) -> str:
    if run_id is not None:
        return check_run_id(run_id)
    env = os.environ.get("MLFLOW_RUN_ID")
    if env:
        return check_run_id(env, "MLFLOW_RUN_ID")
    try:
        import mlflow

        active = mlflow.active_run()
    except ImportError:  # pragma: no cover
        active = None
    if active is not None:
        return str(active.info.run_id)
    job_id = os.environ.get("AISTACK_JOB_ID")
    if job_id:
        # MLflow takes MLFLOW_RUN_ID out of the environment when mlflow.start_run() joins the
        # run, so after a ``with mlflow.start_run():`` block a job had no run to log into
        # (and the hint said "aistack jobs have it"): the run that block ended is the job's
        job_run = _ended_job_run(job_id)
        if job_run is not None:
            return job_run
        raise ValidationError(
            f"run_id: no MLflow run to log into: MLFLOW_RUN_ID is not set in job {job_id} "
            "(mlflow.start_run() takes it out of the environment) and no run is active",
            hint="create the logger inside the `with mlflow.start_run():` block, or pass "
            "run_id=... (the job's run id is its mlflow_run_id in `aistack jobs JOB_ID`)",
            field="run_id",
        )
    raise ValidationError(
        "run_id: no MLflow run to log into",
        hint="pass run_id=..., set MLFLOW_RUN_ID (aistack jobs have it) or call mlflow.start_run()",
        field="run_id",
    )


def _ended_job_run(job_id: str) -> str | None:
    """The run this process last had active (``mlflow.last_active_run()``) when it is the run
    of aistack job ``job_id`` (tagged ``aistack.job_id``); None otherwise, or if it cannot be
    read."""
    try:
        import mlflow

        last = mlflow.last_active_run()
    except Exception as exc:  # noqa: BLE001 - the server cannot be read: the error says what to do
        log.debug("cannot read the last active MLflow run: %s", exc)
        return None
    from aistack.mlops.tracking import TAG_JOB_ID

    if last is None or last.data.tags.get(TAG_JOB_ID) != job_id:
        return None
    return str(last.info.run_id)


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
        flush_timeout_s: float = 300.0,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.flush_every = _count("flush_every", flush_every)
        # the sender waits these (Condition.wait): infinity overflowed and stopped it, NaN made
        # it retry without pause, a negative backoff waited until the next log()
        self.flush_interval_s = _seconds("flush_interval_s", flush_interval_s, finite=True)
        self.max_backoff_s = _seconds("max_backoff_s", max_backoff_s, finite=True)
        # infinity: wait as long as it takes (close() joined with it and raised OverflowError)
        self.close_timeout_s = _seconds("close_timeout_s", close_timeout_s, zero=True)
        self.flush_timeout_s = _seconds("flush_timeout_s", flush_timeout_s)
        self.run_id = _resolve_run_id(run_id)
        self._spool_dir = Path(spool_dir) if spool_dir else None
        # import now: at interpreter exit a first import of mlflow fails (it registers atexit)
        from mlflow.entities import Metric

        self._metric_cls = Metric
        self._valid_keys: set[str] = set()
        self.rejected = 0  # points the server refused as invalid (spooled, not dropped)
        self.spooled: list[Path] = []
        self._client = client if client is not None else open_client(tracking_uri)
        # MLflow sends only $MLFLOW_TRACKING_TOKEN: outside a job, the aistack server's own
        # token (as the registry functions send it); every batch was refused, then spooled
        self._token = None if client is not None else token_for(tracking_uri)
        self._pid = os.getpid()  # a forked child's copy of this logger has no sending thread
        self._buf: deque[_Point] = deque()
        self._inflight: list[_Point] = []  # the chunk the thread is sending (close spools it)
        # points of a chunk close() spooled while it was still being sent: that send may yet
        # succeed, so their spool lines say "in_flight" (replay_spool skips them if sent)
        self._unresolved: set[_Point] = set()
        # refused points whose spool file could not be written, and unsent points close()
        # could not spool: kept here (never dropped) until a spool write succeeds
        self._unspooled: list[_Point] = []
        self._unsaved: list[_Point] = []
        self._error: BackendError | None = None  # raised once by the next log() / flush()
        self._dead: BackendError | None = None  # the sending thread stopped (raised each time)
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
        _flush_on_sigterm()

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
            self._raise_pending()
            self._append([point])

    def log_many(
        self, metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Queue several metrics at one step and one timestamp."""
        if not isinstance(metrics, Mapping):
            raise ValidationError(
                f"metrics: expected a dict of metric name to value, got {short_repr(metrics)}",
                hint='e.g. log_many({"loss": 0.5, "lr": 3e-4}, step=10)',
                field="metrics",
            )
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        points = [_point(k, v, step, ts) for k, v in metrics.items()]
        for k in metrics:
            if k not in self._valid_keys:
                self._check_key(k)
        with self._cond:
            self._raise_pending()
            self._append(points)

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every point logged so far has been accepted by the server, at most
        ``timeout_s`` (default ``flush_timeout_s``); on timeout raise BackendError saying how
        many points are pending (they stay buffered and are retried)."""
        # NaN waited forever (never past the deadline), a negative one 'timed out'
        timeout = (
            self.flush_timeout_s
            if timeout_s is None
            else _seconds("timeout_s", timeout_s, zero=True)
        )
        with self._cond:
            target = self._logged
            if self._closed:
                kept = len(self._unspooled) + len(self._unsaved)
                if kept:
                    raise BackendError(
                        f"the metrics logger of run {self.run_id} is closed with {kept} points "
                        f"it could not write to a spool file (last error: {self.last_error})",
                        hint="logger.unsent() returns them; close() tries the spool again",
                    )
                if self._sent < target:
                    raise BackendError(f"{target - self._sent} points were spooled, not sent")
                return
            self._raise_pending()
            self._flush_wanted = True
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while self._sent < target:
                self._raise_pending()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BackendError(
                        f"flush timed out after {timeout:g} s: {target - self._sent} metric points "
                        f"of run {self.run_id} are still pending, buffered in memory and retried "
                        f"in the background (last error: {self.last_error})",
                        hint="check the tracking server; close() writes what is still unsent to a "
                        f"spool file in {self._spool_target()} (send it later with replay_spool)",
                        pending=target - self._sent,
                    )
                self._cond.wait(timeout=min(left, 1.0))
            self._raise_pending()  # the points waited for include some that could not be saved

    def close(self) -> None:
        """Flush (at most ``close_timeout_s``) and stop the background thread; write what could
        not be sent to a spool file. Idempotent; called again after a spool write failed, it
        tries the spool again."""
        with self._cond:
            if self._closed and not (self._unspooled or self._unsaved):
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(
            timeout=None if math.isinf(self.close_timeout_s) else self.close_timeout_s
        )
        with self._cond:
            self._closed = True  # from now on the thread drops what it fails to send
            self._unresolved.update(self._inflight)
            flying = len(self._inflight)  # a send close() gives up on: it may still land
            refused, self._unspooled = self._unspooled, []
            left = self._unsaved + list(self._inflight) + list(self._buf)
            self._unsaved = []
            self._buf.clear()
            self._cond.notify_all()
        failed: list[BackendError] = []
        if refused:  # refused for good: a file of their own, apart from the unsent ones
            try:
                self.spooled.append(self._spool(refused))
            except BackendError as exc:
                with self._cond:
                    self._unspooled = refused
                failed.append(exc)
        path = None
        if left:
            try:
                path = self._spool(left)
                self.spooled.append(path)
            except BackendError as exc:
                with self._cond:
                    self._unsaved = left
                failed.append(exc)
        if failed:
            kept = len(self._unspooled) + len(self._unsaved)
            raise BackendError(
                f"{kept} metric points of run {self.run_id} were neither sent nor saved: "
                + "; ".join(e.message for e in failed)
                + f" (last send error: {self.last_error}); they are kept in memory",
                hint="make the spool directory writable (spool_dir=..., default "
                "AISTACK_HOME/mlflow-spool) and call close() again; logger.unsent() returns them",
                pending=kept,
            )
        _OPEN.discard(self)
        if path is not None:
            raise BackendError(
                f"{len(left)} metric points could not be sent to run {self.run_id} "
                f"(last error: {self.last_error}); saved to {path}",
                hint=f"send them later with aistack.mlops.logger.replay_spool({str(path)!r})"
                + (
                    f"; {flying} of them were still being sent and that request may yet land: "
                    "replay_spool in this process refuses (sends nothing) until that request has "
                    "ended, from another process replay only after this one has exited (or they "
                    "may be logged twice)"
                    if flying
                    else ""
                ),
            )

    def unsent(self) -> list[dict[str, Any]]:
        """The points neither accepted by the server nor written to a spool file (buffered, in
        flight, or kept in memory after a spool write failed), as ``{"key", "value",
        "timestamp", "step"}`` dicts — the lines of a spool file."""
        with self._cond:
            pts = self._unspooled + self._unsaved + list(self._inflight) + list(self._buf)
        return [{"key": k, "value": v, "timestamp": ts, "step": st} for k, v, ts, st in pts]

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

    def _raise_pending(self) -> None:
        """Raise (with the lock held) what went wrong in the background: a spool file that could
        not be written (once), or the sending thread having stopped (every time)."""
        if self._dead is not None:
            raise self._dead
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _append(self, points: list[_Point]) -> None:
        if self._closed or self._closing:
            raise ValidationError("the metrics logger is closed", hint="create a new one")
        self._buf.extend(points)
        self._logged += len(points)
        if len(self._buf) >= self.flush_every:
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug or MemoryError: say so instead of hanging flush()
            with self._cond:
                if not self._closed:  # (after close() it is in close()'s spool file already)
                    # what it held goes back to the buffer: close() spools it
                    self._buf.extendleft(reversed(self._inflight))
                self._inflight = []
                self.last_error = redact_uri(f"{type(exc).__name__}: {exc}")[:500]
                self._dead = BackendError(
                    f"the metrics sender of run {self.run_id} stopped ({self.last_error}); "
                    f"{self._logged - self._sent} points are pending",
                    hint="close() writes them to a spool file; send it later with replay_spool",
                    pending=self._logged - self._sent,
                )
                self._cond.notify_all()
            log.error("metrics logger for run %s: %s", self.run_id, self._dead.message)

    def _loop(self) -> None:
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
                    # MLflow's message names the request URL, the URI's password included
                    self.last_error = redact_uri(f"{type(exc).__name__}: {exc}")[:500]
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
            path: Path | None = None
            spool_error: BackendError | None = None
            if refused:
                with self._cond:
                    if self._closed:  # close() gave up waiting and spooled this chunk already
                        self._inflight = []
                        return
                # the server refuses these points for good (e.g. the run was deleted): keep
                # them in a spool file rather than retrying forever
                try:
                    path = self._spool([pt for pt, _ in refused])
                except BackendError as exc:
                    spool_error = exc
            with self._cond:
                if refused:
                    why = refused[-1][1]
                    self.rejected += len(refused)
                    self.last_error = redact_uri(f"{type(why).__name__}: {why}")[:500]
                    if path is not None:
                        self.spooled.append(path)
                    elif spool_error is not None:
                        # keep them (never drop); the next log() / flush() says so
                        self._unspooled.extend(pt for pt, _ in refused)
                        self._error = BackendError(
                            f"the tracking server refused {len(refused)} metric points of run "
                            f"{self.run_id} for good ({self.last_error}) and "
                            f"{spool_error.message}; {len(self._unspooled)} such points are kept "
                            "in memory",
                            hint="make the spool directory writable (spool_dir=..., default "
                            "AISTACK_HOME/mlflow-spool): close() writes them there; "
                            "logger.unsent() returns them",
                            pending=len(self._unspooled),
                        )
                        log.error("%s", self._error.message)
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
        with auth_env(self._token):
            self._client.log_batch(self.run_id, metrics=metrics)

    def _spool_target(self) -> Path:
        if self._spool_dir is not None:
            return self._spool_dir
        from aistack.settings import get_settings

        return get_settings().home / "mlflow-spool"

    def _spool(self, points: list[_Point]) -> Path:
        """Write ``points`` to a new spool file (written whole or not at all); a failure is a
        BackendError naming the file and the reason. Points of a chunk that was still being
        sent when close() spooled it are marked ``"in_flight": true``."""
        with self._cond:
            unresolved = set(self._unresolved)
        try:
            d = self._spool_target()
        except Exception as exc:  # noqa: BLE001 - e.g. settings that do not load
            raise BackendError(
                f"could not choose a spool file for {len(points)} points ({exc})"
            ) from exc
        return write_spool(d, self.run_id, points, unresolved, self._thread)


def _is_permanent(exc: BaseException) -> bool:
    """A refusal that a retry cannot fix (MLflow's INVALID_PARAMETER_VALUE and the like), or
    a point the client cannot even encode (ValueError / TypeError raised locally; network
    errors are OSError / MlflowException, never these)."""
    code = getattr(exc, "error_code", None)
    if code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST"):
        return True
    return isinstance(exc, ValueError | TypeError) and not isinstance(exc, OSError)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# the smallest timestamp (ms) taken: 1973-03-03. Below it a value is whole seconds (today's
# int(time.time()) is about 1.7e9, i.e. January 1970 read as milliseconds), not a real time
MIN_TIMESTAMP_MS = 100_000_000_000
_WHOLE_HINT = {
    "step": "use a whole number, e.g. the iteration count",
    "timestamp": "use whole milliseconds since the epoch, e.g. int(time.time() * 1000)",
}


def _int64(name: str, key: str, value: Any) -> int:
    """A step or timestamp as an int64; a fraction is refused (int() cut 2.7 to step 2, and
    time.time()'s seconds to a point in January 1970), as a timestamp before 1970 is (MLflow
    refuses those for good, so the point would end in a spool file nobody can replay) and one
    below :data:`MIN_TIMESTAMP_MS` (whole seconds, ``int(time.time())``, read as ms)."""
    bad = ValidationError(
        f"{name} of {key!r}: must be an integer, got {short_repr(value)}",
        hint=_WHOLE_HINT[name],
        field=name,
    )
    if isinstance(value, bool):
        raise bad
    try:
        out = operator.index(value)  # int, numpy integers
    except TypeError:
        try:
            if isinstance(value, str):
                out = int(value.strip())
            else:
                f = float(value)  # numpy / torch floats
                if not f.is_integer():
                    raise ValueError(value)
                out = int(f)
        except (TypeError, ValueError, OverflowError):
            raise bad from None
    if not INT64_MIN <= out <= INT64_MAX:
        raise ValidationError(
            f"{name} of {key!r}: {out} is outside MLflow's 64-bit range",
            hint=f"use a {name} between -2**63 and 2**63-1",
            field=name,
        )
    if name == "timestamp" and out < 0:
        raise ValidationError(
            f"timestamp of {key!r}: {out} is before 1970 (MLflow refuses negative timestamps)",
            hint=_WHOLE_HINT[name],
            field=name,
        )
    if name == "timestamp" and out < MIN_TIMESTAMP_MS:
        # int(time.time()): whole seconds, accepted as milliseconds of January 1970
        raise ValidationError(
            f"timestamp of {key!r}: {out} reads as seconds, not milliseconds (as milliseconds "
            "it is a time in 1970-1973)",
            hint="pass milliseconds since the epoch: multiply seconds by 1000, e.g. "
            "int(time.time() * 1000)",
            field=name,
        )
    return out


def _count(name: str, value: Any) -> int:
    """A setting that is a whole number >= 1 (2.5 was cut to 2, True read as 1)."""
    try:
        out = operator.index(value) if not isinstance(value, bool | float) else None
    except TypeError:
        out = None
    if out is None and isinstance(value, float) and value.is_integer():
        out = int(value)
    if out is None:
        raise ValidationError(
            f"{name}: must be a whole number >= 1, got {short_repr(value)}", field=name
        )
    if out < 1:
        raise ValidationError(f"{name}: must be >= 1, got {out}", field=name)
    return out


def _seconds(name: str, value: Any, *, zero: bool = False, finite: bool = False) -> float:
    """A duration in seconds: a number > 0 (>= 0 with ``zero``), not NaN, and finite when
    ``finite``; text and bools are refused."""
    try:
        ok = not isinstance(value, bool | str) and (value >= 0 if zero else value > 0)
        v = float(value) if ok else math.nan
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValidationError(
            f"{name}: must be {'>= 0' if zero else '> 0'}, got {short_repr(value)}",
            hint=f"a {'finite ' if finite else ''}number of seconds"
            + ("" if finite else " (float('inf'): no limit)"),
            field=name,
        )
    return v


def _point(key: str, value: float, step: int | None, timestamp: int | None) -> _Point:
    if not isinstance(key, str) or not key:
        raise ValidationError(f"key: must be a non-empty string, got {short_repr(key)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy and torch scalars
        except (TypeError, ValueError):
            raise ValidationError(
                f"value of {key!r}: must be a number, got {short_repr(value)}"
            ) from None
    try:
        v = float(value)
    except OverflowError:
        raise ValidationError(
            f"value of {key!r}: {short_repr(value)} does not fit a double"
        ) from None
    ts = int(time.time() * 1000) if timestamp is None else _int64("timestamp", key, timestamp)
    return (key, v, ts, 0 if step is None else _int64("step", key, step))


@atexit.register
def _close_all_at_exit() -> None:
    for lg in list(_OPEN):
        try:
            lg.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            log.error("metrics logger for run %s: %s", lg.run_id, exc)


# the process whose SIGTERM handler (_on_sigterm) closes its open loggers
_SIGTERM_PID: int | None = None
SIGTERM_CLOSE_S = 10.0  # how long the handler waits to send, without AISTACK_GRACE_S


def _flush_on_sigterm() -> None:
    """Close the open loggers on SIGTERM, then die of it as before.

    Python's default SIGTERM action ends the process at once, without atexit: the points
    still buffered (up to ``flush_interval_s`` of them) were lost without a word when a job was
    cancelled or preempted. Installed from the main thread when SIGTERM has its default action
    only; a handler the program set (the trainer's) is left alone and takes precedence if set
    later."""
    global _SIGTERM_PID
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
        elif current is not _on_sigterm:
            return
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        return
    _SIGTERM_PID = os.getpid()


def _sigterm_budget_s() -> float:
    """Seconds the handler may spend sending before it spools: within the job's grace period
    (AISTACK_GRACE_S, the time between SIGTERM and SIGKILL), less a second to write the spool."""
    try:
        grace = float(os.environ.get("AISTACK_GRACE_S", ""))
    except ValueError:
        grace = math.nan
    if not math.isfinite(grace):
        return SIGTERM_CLOSE_S
    return max(0.5, grace - 1.0)


def _on_sigterm(signum: int, frame: Any) -> None:
    pid = os.getpid()
    if pid == _SIGTERM_PID:
        deadline = time.monotonic() + _sigterm_budget_s()
        for lg in list(_OPEN):
            if lg._pid != pid:  # a forked child's copy: its points are the parent's to send
                continue
            lg.close_timeout_s = min(lg.close_timeout_s, max(0.1, deadline - time.monotonic()))
            try:
                lg.close()
            except Exception as exc:  # noqa: BLE001 - report (names the spool file) and go on
                log.error("metrics logger for run %s: %s", lg.run_id, exc)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(pid, signal.SIGTERM)
