"""Spool files: the metric points a :class:`~aistack.mlops.logger.BufferedMetricsLogger` could
not send, kept on disk, and :func:`replay_spool`, which sends them later.

A spool file is JSON lines, one point a line (``{"key", "value", "timestamp", "step"}``, plus
``"in_flight": true`` for the points of a chunk whose send close() gave up on while it was still
running), named ``<run id>-<pid>-<ms>-<seq>.jsonl`` and written whole or not at all
(:func:`write_spool`). :func:`replay_spool` sends it to the run; resumable, it records its progress
in ``<spool>.progress`` and checks against the run's metric history the points that may be on the
server already, so nothing is lost and nothing is logged twice (see its docstring for the rules
and what the check costs).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

from aistack.errors import (
    AistackError,
    BackendError,
    ConflictError,
    NotFoundError,
    UserError,
    ValidationError,
)
from aistack.mlops._client import (
    _RUN_ID_RE,
    auth_env,
    cannot_open,
    mlflow_client,
    resolve_tracking_uri,
    token_for,
)

# the records keep the logger name they had before this module was split from mlops.logger
log = logging.getLogger("aistack.mlops.logger")

BATCH_LIMIT = 1000  # MLflow's limit of metrics per log_batch request
_SEQ = itertools.count()  # spool files written in the same millisecond get distinct names
# spool files (real path) with "in_flight" lines -> the sending thread whose send of them may
# still land (replay_spool refuses while it runs)
_SENDING: weakref.WeakValueDictionary[str, threading.Thread] = weakref.WeakValueDictionary()
_Point = tuple[str, float, int, int]  # key, value, timestamp ms, step


def write_spool(
    directory: Path,
    run_id: str,
    points: list[_Point],
    in_flight: set[_Point],
    sender: threading.Thread,
) -> Path:
    """Write ``points`` to a new spool file in ``directory`` (written whole or not at all); a
    failure is a BackendError naming the file and the reason. Points in ``in_flight`` (a chunk
    that ``sender`` was still sending when close() spooled it) are marked ``"in_flight": true``,
    and replay_spool refuses the file while ``sender`` runs: in this process (it knows the
    thread) and in others on this machine (a shared lock on the file, taken before it has its
    name, is held until ``sender`` ends)."""
    path = directory / f"{run_id}-{os.getpid()}-{int(time.time() * 1000)}-{next(_SEQ)}.jsonl"
    part = path.with_name(path.name + ".part")
    sending = bool(in_flight.intersection(points)) and sender.is_alive()
    f = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        f = part.open("x")
        for pt in points:
            k, v, ts, st = pt
            row: dict[str, Any] = {"key": k, "value": v, "timestamp": ts, "step": st}
            if pt in in_flight:
                row["in_flight"] = True
            f.write(json.dumps(row) + "\n")
        f.flush()
        if sending:  # locked before the file has its name: no replay can come first
            _lock_while_sending(f, sender)
        os.replace(part, path)
        if sending:  # replay_spool refuses until that send ended
            _SENDING[os.path.realpath(path)] = sender
    except Exception as exc:  # OSError (read-only, full disk) and anything the write raises
        if f is not None:
            f.close()
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackendError(
            f"could not write {len(points)} metric points to the spool file {path} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if sending:  # the lock is released when the send ends (or this process does)
        threading.Thread(
            target=_release_when_ended, args=(f, sender), name="aistack-spool-lock", daemon=True
        ).start()
    else:
        f.close()
    log.error("spooled %d unsent metric points to %s", len(points), path)
    return path


def _lock_while_sending(f: Any, sender: threading.Thread) -> None:
    """Hold a shared lock on the spool file ``f`` while ``sender`` may still send its in-flight
    points: replay_spool (an exclusive lock, from any process on this machine) refuses the file
    until the lock is released (the send ended, or this process exited or crashed)."""
    with contextlib.suppress(OSError):  # a file system without locks (documented)
        fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)


def _release_when_ended(f: Any, sender: threading.Thread) -> None:
    sender.join()
    f.close()  # releases the shared lock


def replay_spool(path: str | os.PathLike[str], tracking_uri: str | None = None) -> int:
    """Send the points of a spool file written by :meth:`BufferedMetricsLogger.close`; return
    how many this call sent. The file name starts with the run id; the file is removed once every
    point is on the server.

    Resumable: around each chunk (at most 1,000 points) ``<spool>.progress`` (written atomically,
    fsync'd) records how many lines are on the server and which are being sent. A replay that
    stops part way raises BackendError and keeps the spool; called again, it sends only what was
    not accepted. The lines of a send that did not answer (a timeout, or a crash between
    "accepted" and "progress written") are sent again only when the run's metric history lacks
    them, so that chunk is not logged twice either. Without a progress file (a first replay, or
    one deleted by hand or lost in a crash) and with an unreadable one or one of other spool
    content (ignored with a warning), every line is checked against the history that way before
    anything is sent: nothing already on the server is sent again, nothing missing is skipped.
    A second replay of the file while one runs is refused (a file lock; where the file system has
    no locks, do not start two).
    A run that does not exist on the server (NotFoundError) or was deleted (ConflictError: restore
    it) stops the replay with the file kept; a file whose name starts with no run id is refused.

    The check against the history (:func:`_on_server`) tells points apart as MLflow does (same
    key, value, timestamp and step) and counts them: a point the spool has n times is sent as
    many times as the spool has it beyond the copies on the server. It costs one
    ``get_metric_history`` per distinct key checked, one key at a time (the whole history of that
    key is read): the price of a first replay on a run with long histories.

    Lines marked ``"in_flight"`` (a chunk close() spooled while it was still being sent) are sent
    only when the history lacks them. That check is exact once that send has ended, so until it
    has replay_spool refuses (BackendError, nothing sent): the writing process holds a shared
    lock on the spool file while its send runs (released when the send ends or the process
    exits), in that process and in any other on the same machine. A spool file copied to another
    machine carries no lock (replay_spool warns, naming the writer's process id): replay it after
    the writer exited or its send ended, or a send that lands after the history was read is
    logged twice.
    """
    p = Path(path)
    run_id = p.name.split("-", 1)[0]
    if p.is_dir():  # was IsADirectoryError
        raise ValidationError(
            f"path: {p} is a folder, not a spool file",
            hint="pass one of its <run id>-....jsonl files",
            field="path",
        )
    if not _RUN_ID_RE.match(run_id) or "-" not in p.name:
        # the run id was read from any name ('notes.jsonl': MLflow's 'Invalid value' at send)
        raise ValidationError(
            f"path: {p.name!r} does not start with a run id and '-' as a spool file's name does",
            hint="keep the name close() gave it (<run id>-<pid>-<ms>-<n>.jsonl) when moving it",
            field="path",
        )
    sender = _SENDING.get(os.path.realpath(p))
    if sender is not None and sender.is_alive():
        raise BackendError(
            f"the send of the chunk that close() spooled as in flight to {p} has not ended yet "
            "in this process; replaying now could log those points twice (nothing was sent)",
            hint="call replay_spool again once that request returns or times out "
            "(MLFLOW_HTTP_REQUEST_TIMEOUT), or replay from a new process after this one exited",
        )
    try:
        f = p.open("rb")
    except FileNotFoundError:
        raise ValidationError(
            f"{p}: no such spool file",
            hint="pass a file that close() named (<run id>-....jsonl in "
            "AISTACK_HOME/mlflow-spool); a spool file is removed once all of it was replayed",
        ) from None
    with f:
        try:  # held by another replay of this file (released when closed, also by a crash)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held(p) from None
        except OSError:  # pragma: no cover - a file system without locks (documented)
            pass
        try:
            same = os.path.samestat(os.fstat(f.fileno()), os.stat(p))
        except FileNotFoundError:
            same = False
        if not same:  # a replay that held the lock until now sent all of it and removed it
            log.info("%s was replayed meanwhile by another call", p)
            return 0
        # MLflow sends only $MLFLOW_TRACKING_TOKEN: outside a job, the aistack server's own
        with auth_env(token_for(tracking_uri)):
            return _replay_locked(p, run_id, f.read(), tracking_uri)


def _held(p: Path) -> BackendError:
    """Why the spool file ``p`` cannot be locked: the process that wrote it holds a shared lock
    while its send of the in-flight points runs (see write_spool), a replay an exclusive one."""
    try:
        with p.open("rb") as g:
            fcntl.flock(g.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when closed
    except OSError:  # BlockingIOError: exclusive, i.e. another replay (or the file went away)
        return BackendError(
            f"{p} is being replayed by another call now (nothing was sent by this one)",
            hint="wait for that replay to end; if it fails, call replay_spool again",
        )
    parts = p.name.split("-")
    pid = parts[1] if len(parts) >= 4 else "?"
    return BackendError(
        f"the process that wrote {p} (process {pid}) is still sending the points that its "
        "close() spooled as in flight; replaying now could log them twice, so nothing was sent",
        hint="call replay_spool again once that request has returned or timed out "
        "(MLFLOW_HTTP_REQUEST_TIMEOUT) or that process has exited: the file is locked until then",
    )


def _replay_locked(p: Path, run_id: str, data: bytes, tracking_uri: str | None) -> int:
    from mlflow.entities import Metric

    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{p}: not a spool file (byte {exc.start} is not UTF-8); nothing was sent",
            hint="pass a JSON-lines file that close() wrote",
        ) from None
    rows = [(i, _spool_row(p, i, line)) for i, line in enumerate(lines) if line.strip()]
    prog = p.with_name(p.name + ".progress")
    done, maybe_to = _read_progress(prog, p, len(data), len(lines))
    todo = [(i, d) for i, d in rows if i >= done]
    try:
        client = mlflow_client(tracking_uri)
    except AistackError:
        raise
    except Exception as exc:  # a URI MLflow cannot open (MlflowException from the constructor)
        raise cannot_open(resolve_tracking_uri(tracking_uri), exc) from exc

    def maybe_sent(i: int, d: dict[str, Any]) -> bool:
        return bool(d.get("in_flight")) or i < maybe_to

    check = [(i, d) for i, d in todo if maybe_sent(i, d)]
    if check:
        in_flight = sum(1 for _, d in check if d.get("in_flight"))
        if in_flight:
            _warn_if_another_process_may_send(p, in_flight)
        on_server = _on_server(client, run_id, p, rows, done, check)
        todo = [(i, d) for i, d in todo if i not in on_server]
        # the lines after the last one found on the server were not on it when the history was
        # read: a replay resumed after this one needs to check only up to there (and in_flight)
        maybe_to = max(on_server, default=done - 1) + 1
    sent = 0
    for start in range(0, len(todo), BATCH_LIMIT):
        chunk = todo[start : start + BATCH_LIMIT]
        last = start + BATCH_LIMIT >= len(todo)
        end = len(lines) if last else chunk[-1][0] + 1  # lines on the server once it is accepted
        # from here this chunk may be on the server (also if the request fails: a timeout)
        _write_progress(prog, p, len(data), done, max(end, maybe_to))
        try:
            client.log_batch(
                run_id,
                metrics=[Metric(d["key"], d["value"], d["timestamp"], d["step"]) for _, d in chunk],
            )
        except Exception as exc:
            left = len(todo) - sent
            gone = _run_gone(client, run_id, exc)
            if gone is not None:
                gone.message = (
                    f"replay of {p}: {gone.message}; {sent} of {len(todo)} points were sent, the "
                    "spool file is kept"
                )
                gone.args = (f"{gone.message} ({gone.hint})",)
                raise gone from exc
            raise BackendError(
                f"replay of {p} stopped: {sent} of {len(todo)} points were accepted by run "
                f"{run_id}, {left} were not ({type(exc).__name__}: {exc}); the spool file is kept "
                f"and {prog.name} records how far the replay got",
                hint=f"call replay_spool({str(p)!r}) again when the tracking server answers: it "
                "sends only the points not accepted yet (those of the failed request only if the "
                "run's history lacks them)",
                pending=left,
            ) from exc
        done = end
        _write_progress(prog, p, len(data), done, maybe_to if maybe_to > done else None)
        sent += len(chunk)
    try:
        p.unlink()
    except OSError as exc:
        raise BackendError(
            f"all points of {p} are on the server but the file could not be removed ({exc})",
            hint=f"delete it and {prog.name}; replaying it again would send nothing",
        ) from exc
    try:
        prog.unlink(missing_ok=True)
    except OSError as exc:  # the spool is gone: a stale progress file is only clutter
        log.warning("could not remove %s (%s); delete it by hand", prog, exc)
    return sent


def _on_server(
    client: Any,
    run_id: str,
    p: Path,
    rows: list[tuple[int, dict[str, Any]]],
    done: int,
    check: list[tuple[int, dict[str, Any]]],
) -> set[int]:
    """The spool lines of ``check`` (lines that may be on the server already) that the run's
    metric history has: those are not sent again.

    Points are told apart as MLflow does, by (key, value, timestamp, step), and counted as a
    multiset: a point the spool has n times (logged on purpose more than once) is sent as many
    times as the spool has it beyond the copies on the server, so nothing already there is sent
    again and nothing missing is skipped. The copies of the lines before ``done`` (accepted by an
    earlier replay of this file) are on the server and are not counted for ``check``. A copy of
    the same point that the logger had sent before it spooled the rest cannot be told from one
    sent by a replay, so it counts as one of the spool's copies: on a store that keeps identical
    points (MLflow's file store) such a run ends with one copy fewer; the SQL stores (SQLite,
    PostgreSQL: aistack's) store identical points once anyway.

    Cost: one ``get_metric_history`` per distinct key of ``check``, one key at a time (MLflow's
    client reads that key's whole history, in pages of 25,000 points from a tracking server), so
    memory holds one key's history plus counts of the points the spool has; on a run with long
    histories this is the slow part of a replay (it reads each key's history once, however many
    points of it the spool has). A replay with a valid progress file checks only the lines of the
    request that did not answer and the ``in_flight`` ones; a replay without one (a first replay,
    a deleted progress file) checks every line.
    """
    by_key: dict[str, list[tuple[int, tuple[str, str, int, int]]]] = {}
    for i, d in check:
        ident = _identity(d["key"], d["value"], d["timestamp"], d["step"])
        by_key.setdefault(d["key"], []).append((i, ident))
    keys = set(by_key)
    accepted = Counter(
        _identity(d["key"], d["value"], d["timestamp"], d["step"])
        for i, d in rows
        if i < done and d["key"] in keys
    )
    found: set[int] = set()
    for key in sorted(by_key):
        wanted = {ident for _, ident in by_key[key]}
        try:
            history = client.get_metric_history(run_id, key)
            there = Counter(
                ident
                for m in history
                if (ident := _identity(m.key, m.value, m.timestamp, m.step)) in wanted
            )
        except Exception as exc:
            raise BackendError(
                f"could not read the metric history of run {run_id} to find which points of {p} "
                f"are on the server already ({type(exc).__name__}: {exc}); nothing was sent, the "
                "spool file is kept",
                hint=f"call replay_spool({str(p)!r}) again when the tracking server answers",
            ) from exc
        del history
        for ident in there:
            there[ident] -= accepted[ident]
        for i, ident in by_key[key]:
            if there[ident] > 0:
                there[ident] -= 1
                found.add(i)
    return found


def _run_gone(client: Any, run_id: str, exc: BaseException) -> UserError | None:
    """When the server refused a batch for good because the run does not exist or was deleted
    (a retry cannot help, as the 'when the tracking server answers' hint said), the error that
    says so; None for anything else (a transient failure, a point refused)."""
    if getattr(exc, "error_code", None) not in (
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    ):
        return None
    try:
        stage = client.get_run(run_id).info.lifecycle_stage
    except Exception as err:  # noqa: BLE001 - only a clear 'no such run' counts
        if getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(
                f"run {run_id} does not exist on this tracking server",
                hint="pass the tracking_uri of the server the run is on (the spool file's name "
                "starts with its run id)",
            )
        return None
    if stage == "deleted":
        return ConflictError(
            f"run {run_id} was deleted",
            hint=f"restore it (mlflow runs restore --run-id {run_id}, or "
            "MlflowClient().restore_run) and call replay_spool again",
        )
    return None


def _warn_if_another_process_may_send(p: Path, n: int) -> None:
    """Say that ``n`` in-flight lines of ``p`` are checked against the history: on this machine
    the writer's send of them has ended (its lock on the file is released); a spool file copied
    from another machine carries no lock (the cross-machine race replay cannot see)."""
    parts = p.name.split("-")
    pid = parts[1] if len(parts) >= 4 else "?"
    if pid == str(os.getpid()):
        return  # written by this process: replay_spool refused while that send ran
    log.warning(
        "%d points of %s were being sent by process %s (on the machine that wrote the spool) "
        "when its close() gave up and spooled them; they are sent now only if the run's history "
        "lacks them. That send has ended if the file was written on this machine (the writer "
        "locks it while the send runs); if it was copied from another machine where that process "
        "still runs and its request lands after this check, those points are logged twice: "
        "replay a spool with in-flight points only after the process that wrote it has exited "
        "(or after MLFLOW_HTTP_REQUEST_TIMEOUT and its retries)",
        n,
        p,
        pid,
    )


def _spool_row(p: Path, i: int, line: str) -> dict[str, Any]:
    """One spool line as a metric point dict; a clear error naming the line when it is not."""
    try:
        d = json.loads(line)
        row = {
            "key": d["key"],
            "value": float(d["value"]),
            "timestamp": int(d["timestamp"]),
            "step": int(d["step"]),
        }
        if not isinstance(row["key"], str) or not row["key"]:
            raise ValueError(f"key {row['key']!r} is not a non-empty string")
    except Exception as exc:  # noqa: BLE001 - JSON, a missing field, a wrong type
        raise ValidationError(
            f"{p}, line {i + 1}: not a metric point ({type(exc).__name__}: {exc}); nothing was "
            "sent by this replay",
            hint='a spool line is {"key": ..., "value": ..., "timestamp": ..., "step": ...}: fix '
            "or delete that line and call replay_spool again",
        ) from None
    return {**row, "in_flight": True} if d.get("in_flight") else row


def _read_progress(prog: Path, p: Path, size: int, n_lines: int) -> tuple[int, int]:
    """``(done, maybe_to)``: spool lines before ``done`` are on the server; lines before
    ``maybe_to`` may be (their send did not answer). Without a progress file every line counts
    as maybe sent (a replay may have sent them before the file was lost), and so it does,
    with a warning, when the file is unreadable or of another spool content: every line is
    checked against the run's history (nothing lost, nothing twice)."""
    try:
        text = prog.read_text()
    except FileNotFoundError:  # a first replay, or one whose progress file was lost
        return 0, n_lines
    except OSError as exc:
        why = f"{type(exc).__name__}: {exc}"
    else:
        try:
            rec = json.loads(text)
            done, to, nbytes = rec["done"], rec["sending_to"], rec["spool_bytes"]
            if to is None:
                to = done
            if not (all(type(x) is int for x in (done, to, nbytes)) and 0 <= done <= to <= n_lines):
                why = f"bad values {text.strip()[:200]!r}"
            elif nbytes != size:
                why = f"it was written for a {nbytes}-byte spool, this one has {size} bytes"
            else:
                return done, to
        except (ValueError, KeyError, TypeError) as exc:
            why = f"{type(exc).__name__}: {exc}"
    log.warning(
        "replay progress file %s is unreadable or does not match %s (%s): ignoring it and checking "
        "all points against the run's metric history (those there already are not sent again)",
        prog,
        p,
        why,
    )
    return 0, n_lines


def _write_progress(prog: Path, p: Path, size: int, done: int, sending_to: int | None) -> None:
    """Record replay progress atomically and durably (temp file, fsync, rename, fsync dir)."""
    part = prog.with_name(prog.name + ".part")
    rec = {"spool_bytes": size, "done": done, "sending_to": sending_to}
    try:
        with part.open("w") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, prog)
        with contextlib.suppress(OSError):  # a directory fsync is not possible everywhere
            fd = os.open(prog.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackendError(
            f"could not record replay progress in {prog} ({type(exc).__name__}: {exc}); the "
            f"next chunk was not sent, the spool file {p} is kept",
            hint="make its directory writable (or copy the spool file, keeping its name, to a "
            "writable directory and replay the copy) and call replay_spool again",
        ) from exc


def _identity(key: str, value: float, timestamp: int, step: int) -> tuple[str, str, int, int]:
    """A metric point as MLflow tells points apart: (key, value, timestamp, step). NaN equals
    NaN here, and infinities equal the largest double (the SQL store keeps them so)."""
    v = float(value) + 0.0  # -0.0 → 0.0 (equal to it, as in SQL)
    if math.isnan(v):
        text = "nan"
    elif math.isinf(v) or abs(v) == sys.float_info.max:
        text = "inf" if v > 0 else "-inf"
    else:
        text = repr(v)
    return (key, text, int(timestamp), int(step))
