"""Start a gang of rank processes on this machine and supervise them as one job.

:func:`run_gang` is what the local executor's per-job supervisor calls for a
``distributed:`` job:

* every rank is its own process; all ranks share one new process group (the first rank
  leads it), so stopping the group also stops whatever the ranks started (data-loader
  workers, shells);
* stdout and stderr of all ranks go to one log, each line prefixed ``[rank N]`` (a line
  longer than ``MAX_LINE_BYTES`` is cut into parts, each prefixed: a rank that writes
  hundreds of MB without a newline does not make the runner hold them in memory);
* the first rank that exits with a non-zero status fails the gang: the others get SIGTERM,
  then SIGKILL after ``grace_s``; the result carries that rank's exit code and the last lines
  of its stderr (at most ``TAIL_CHARS`` characters);
* SIGTERM, SIGINT and SIGUSR1 received by the calling process (when it runs in the main
  thread) are forwarded to the ranks' whole process group, so a preemption notice reaches the
  trainers, which checkpoint; after SIGTERM/SIGINT they get ``grace_s`` before SIGKILL;
* a stop signal is followed by SIGCONT, so a rank whose processes are stopped (SIGSTOP,
  SIGTSTP) gets it at once and can checkpoint in its grace period;
* every rank gets at most one stop signal (SIGTERM/SIGINT), then SIGKILL after ``grace_s``:
  many trainers take a second SIGTERM for "quit now" and abandon their checkpoint. Once the
  gang is stopping (a forwarded stop signal, a failed rank, the timeout), another stop signal
  received is not forwarded, and a rank failing does not stop the others a second time;
* a SIGTERM/SIGINT that arrives while the ranks are being started stops the start: no further
  rank is started, the ranks already running get the signal (once: one received inside the
  start of a rank waits until that rank is recorded, then goes to the group), and the result
  says how many started (``rank_exit_codes`` is None for the others);
* with ``timeout_s``, a gang still running that long after the start is stopped as a forwarded
  SIGTERM stops it (SIGTERM to the group, SIGKILL after ``grace_s``); the result has
  ``timed_out`` set and exit code ``TIMEOUT_EXIT_CODE`` (124, as ``timeout(1)`` reports);
* while a stop is in progress the gang waits for the whole group, not only the processes it
  started: a rank started as ``sh -c CMD`` whose shell dies at once keeps its real process
  (the trainer writing its checkpoint) until that exits or the grace period ends. String
  commands run under bash, which execs a single command: the trainer is the rank itself.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import math
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aistack.errors import ValidationError
from aistack.launch.env import RankSpec, check_env

log = logging.getLogger(__name__)

TAIL_LINES = 20
TAIL_CHARS = 2000  # of the failing rank's stderr quoted in GangResult.message
MAX_LINE_BYTES = 64 * 1024  # a longer output line is written in parts of this size
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # forwarded signals that start the grace period
SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
TIMEOUT_EXIT_CODE = 124  # GangResult.exit_code of a gang stopped by its timeout_s
DEFAULT_GRACE_S = 10.0  # run_gang's grace_s; also used when a grace_s callable returns nonsense


@dataclass(kw_only=True)
class GangResult:
    """How a gang ended. ``exit_code`` 0 means every rank succeeded.

    A rank killed by signal ``S`` counts as exit code ``128 + S`` (as a shell reports it).
    ``failed_rank`` is the first rank that failed (None on success); ``message`` names it
    and quotes the last lines of its stderr.

    ``timed_out``: the gang ran past ``timeout_s`` and was stopped (``exit_code`` is
    ``TIMEOUT_EXIT_CODE``, the message starts ``gang timed out after N s``).
    ``ranks_started`` < the number of ranks: a stop signal arrived while the ranks were being
    started and the others were never started (their ``rank_exit_codes`` are None; the exit
    code is the first failed rank's, else ``128 + signal``).
    """

    exit_code: int
    failed_rank: int | None
    message: str
    rank_exit_codes: list[int | None] = field(default_factory=list)
    signals_forwarded: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    timed_out: bool = False
    ranks_started: int = 0


def _code(rc: int | None) -> int | None:
    if rc is None:
        return None
    return 128 + (-rc) if rc < 0 else rc


class _LogSink:
    """Thread-safe line writer with a per-line rank prefix."""

    def __init__(self, target: str | os.PathLike[str] | IO[Any] | None) -> None:
        self._lock = threading.Lock()
        self._own = False
        self._binary = False
        if target is None:
            self._fh: IO[Any] | None = None
        elif isinstance(target, str | os.PathLike):
            path = Path(target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
            except OSError as exc:
                why = exc.strerror or str(exc)
                if os.path.isdir(path):
                    why = "it is a folder"
                raise ValidationError(
                    f"log_file: cannot append to {str(path)!r}: {why}",
                    hint="give the path of a file in a folder you can write to, or None to "
                    "discard the output",
                    field="log_file",
                ) from None
            self._own = True
            self._binary = True
        else:
            self._fh = target
            self._binary = isinstance(target, io.BufferedIOBase | io.RawIOBase) or (
                "b" in str(getattr(target, "mode", ""))
            )

    def write(self, prefix: bytes, line: bytes) -> None:
        if self._fh is None:
            return
        if not line.endswith(b"\n"):
            line += b"\n"
        data = prefix + line
        with self._lock:
            if self._binary:
                self._fh.write(data)
            else:
                self._fh.write(data.decode("utf-8", "replace"))
            with contextlib.suppress(Exception):
                self._fh.flush()

    def close(self) -> None:
        if self._own and self._fh is not None:
            self._fh.close()


def _pump(
    stream: IO[bytes], prefix: bytes, sink: _LogSink, tail: collections.deque[str] | None
) -> None:
    for line in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
        sink.write(prefix, line)
        if tail is not None:
            tail.append(line[-TAIL_CHARS:].decode("utf-8", "replace").rstrip("\n"))
    stream.close()


def _signal_group(pgid: int | None, procs: list[subprocess.Popen[bytes]], sig: int) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
            return
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)


def group_alive(pgid: int | None) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies waiting for a reaper
    other than us do not count)."""
    if pgid is None:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return True
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _seconds(value: float) -> str:
    return f"{value:g}"


def check_timeout_s(
    timeout_s: Any, *, hint: str = "e.g. timeout_s=600, or None for no limit"
) -> float | None:
    """``timeout_s`` as seconds (None: no limit); a ValidationError unless it is a positive,
    finite number."""
    if timeout_s is None:
        return None
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or timeout_s <= 0
    ):
        raise ValidationError(
            f"timeout_s: must be a positive, finite number of seconds, got {timeout_s!r}",
            hint=hint,
            field="timeout_s",
        )
    return float(timeout_s)


def _check_grace(value: Any) -> float | None:
    """``value`` as a grace period in seconds, or None unless it is a finite number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _check_command(command: Any) -> list[str]:
    """The argv a rank runs (a string runs under ``SHELL -c``), or a ValidationError."""
    if isinstance(command, str):
        if not command.strip():
            raise ValidationError("command: empty command", hint="e.g. 'python train.py'")
        if "\0" in command:
            raise ValidationError(
                "command: contains a NUL character, which no command line can hold",
                hint="remove the NUL (\\0) from the command",
                field="command",
            )
        return [SHELL, "-c", command]
    if not isinstance(command, list | tuple):
        raise ValidationError(
            f"command: must be a list of arguments or a shell command string, got "
            f"{type(command).__name__}",
            hint="e.g. ['python', 'train.py'] or 'python train.py'",
            field="command",
        )
    if not command:
        raise ValidationError("command: empty command", hint="e.g. ['python', 'train.py']")
    argv: list[str] = []
    for i, a in enumerate(command):
        if isinstance(a, bool) or not isinstance(a, str | os.PathLike | int | float):
            raise ValidationError(
                f"command: argument {i} is {a!r}, not text",
                hint="give every argument as a string, e.g. ['python', 'train.py', '--epochs', "
                "'3']",
                field="command",
            )
        text = os.fspath(a) if isinstance(a, os.PathLike) else str(a)
        if not isinstance(text, str):  # (a PathLike of bytes)
            text = os.fsdecode(text)
        if "\0" in text:
            raise ValidationError(
                f"command: argument {i} contains a NUL character, which no command line can hold",
                hint="remove the NUL (\\0) from the argument",
                field="command",
            )
        argv.append(text)
    if not argv[0]:
        raise ValidationError(
            "command: the program (argument 0) is an empty string",
            hint="e.g. ['python', 'train.py']",
            field="command",
        )
    return argv


def _check_ranks(ranks: Any) -> list[RankSpec]:
    """The ranks sorted by rank, or a ValidationError (two ranks with the same number made the
    gang wait forever for an exit it had already counted)."""
    if isinstance(ranks, RankSpec):
        raise ValidationError(
            "ranks: must be a list of RankSpec, got one RankSpec",
            hint="use [rank], or build_rank_envs(...)",
            field="ranks",
        )
    try:
        items = list(ranks or ())
    except TypeError:
        raise ValidationError(
            f"ranks: must be a list of RankSpec, got {type(ranks).__name__}",
            hint="use build_rank_envs(...)",
            field="ranks",
        ) from None
    if not items:
        raise ValidationError("ranks: need at least one rank", hint="use build_rank_envs(...)")
    seen: set[int] = set()
    for r in items:
        if not isinstance(r, RankSpec):
            raise ValidationError(
                f"ranks: must be a list of RankSpec, got a {type(r).__name__} in it",
                hint="use build_rank_envs(...)",
                field="ranks",
            )
        if isinstance(r.rank, bool) or not isinstance(r.rank, int) or r.rank < 0:
            raise ValidationError(
                f"ranks: a rank number must be an integer ≥ 0, got {r.rank!r}",
                hint="use build_rank_envs(...)",
                field="ranks",
            )
        if r.rank in seen:
            raise ValidationError(
                f"ranks: rank {r.rank} appears twice",
                hint="give each process its own rank number, as build_rank_envs(...) does",
                field="ranks",
            )
        seen.add(r.rank)
    return sorted(items, key=lambda r: r.rank)


def _check_cwd(cwd: Any) -> str | None:
    if cwd is None:
        return None
    if not isinstance(cwd, str | os.PathLike):
        raise ValidationError(
            f"cwd: must be a folder path, got {cwd!r}",
            hint="e.g. cwd='/path/to/project', or None for the current folder",
            field="cwd",
        )
    path = os.fsdecode(os.fspath(cwd))
    if not path:
        raise ValidationError(
            "cwd: empty path",
            hint="leave it out, or pass None, to run in the current folder",
            field="cwd",
        )
    if not os.path.isdir(path):
        why = "is not a folder" if os.path.exists(path) else "does not exist"
        raise ValidationError(
            f"cwd: working directory {path!r} {why}",
            hint="give an existing folder, or None for the current folder",
            field="cwd",
        )
    return path


def _check_log_file(log_file: Any) -> None:
    if log_file is None:
        return
    if isinstance(log_file, str | os.PathLike):
        if not os.fspath(log_file):
            raise ValidationError(
                "log_file: empty path",
                hint="give a file path, or None to discard the output",
                field="log_file",
            )
        return
    if not callable(getattr(log_file, "write", None)):
        raise ValidationError(
            f"log_file: must be a path, an open file or None, got {type(log_file).__name__}",
            hint="e.g. log_file='gang.log', or sys.stdout",
            field="log_file",
        )


def run_gang(
    ranks: list[RankSpec],
    command: list[str] | str,
    log_file: str | os.PathLike[str] | IO[Any] | None,
    cwd: str | os.PathLike[str] | None = None,
    on_start: Callable[[list[int]], None] | None = None,
    *,
    grace_s: float | Callable[[], float] = DEFAULT_GRACE_S,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> GangResult:
    """Run ``command`` once per rank on this machine and wait for the gang (module docstring).

    ``command`` is an argv list, or a string run by ``bash -c`` (``/bin/sh`` without bash).
    ``grace_s`` (a finite number ≥ 0, or a callable returning it, read when the stop begins:
    a value that is not, ``DEFAULT_GRACE_S`` with a warning) is how long the ranks have between
    SIGTERM and SIGKILL. Each process gets
    ``os.environ`` (or ``env`` when given) updated with its ``RankSpec.env`` (values are text;
    numbers are written as text: :func:`~aistack.launch.env.check_env`). ``cwd`` (None: the
    current folder) must be an existing folder. ``log_file`` is a
    path (appended to), an open file (text or binary), or None to discard output.
    Bad arguments raise :class:`~aistack.errors.ValidationError` before any rank starts;
    rank numbers must be distinct.
    ``on_start(pids)`` is called once every rank has started, pids ordered by rank (when a
    stop signal ended the start early: with the pids of the ranks that did start). ``timeout_s`` (None: no limit) stops a gang
    still running that many seconds after the start: SIGTERM, SIGKILL after ``grace_s``,
    ``GangResult.timed_out`` set.
    """
    timeout = check_timeout_s(timeout_s)
    ranks = _check_ranks(ranks)
    argv = _check_command(command)
    cwd = _check_cwd(cwd)
    parent_env = dict(os.environ) if env is None else check_env(env, "env")
    rank_envs = {r.rank: check_env(r.env, f"ranks[{r.rank}].env") for r in ranks}
    if not callable(grace_s) and _check_grace(grace_s) is None:
        raise ValidationError(
            f"grace_s: must be a finite number of seconds ≥ 0, got {grace_s!r}",
            hint=f"e.g. grace_s={DEFAULT_GRACE_S:g}",
            field="grace_s",
        )
    if on_start is not None and not callable(on_start):
        raise ValidationError(
            f"on_start: must be a function taking the ranks' pids, got {on_start!r}",
            hint="e.g. on_start=print, or None",
            field="on_start",
        )
    _check_log_file(log_file)
    sink = _LogSink(log_file)
    procs: list[subprocess.Popen[bytes]] = []
    threads: list[threading.Thread] = []
    tails: dict[int, collections.deque[str]] = {}
    exits: queue.Queue[tuple[int, int]] = queue.Queue()
    forwarded: list[str] = []
    pgid: int | None = None
    started = time.monotonic()
    deadline: float | None = None  # SIGKILL time once a stop (failure or signal) is under way
    timed_out = False
    stop_signal: int | None = None  # the first SIGTERM/SIGINT received
    # Signals the handler received while the main thread held them (starting a rank, deciding
    # a stop): forwarded by _release once it is done, so each reaches every rank exactly once.
    pending: list[int] = []
    held = False

    def _grace() -> float:
        if not callable(grace_s):
            return float(grace_s)
        value = grace_s()
        checked = _check_grace(value)
        if checked is None:  # (NaN never reached the SIGKILL; a text failed the stop)
            log.warning(
                "gang: grace_s() returned %r, not a finite number of seconds ≥ 0; using %g s",
                value,
                DEFAULT_GRACE_S,
            )
            return DEFAULT_GRACE_S
        return checked

    def _stop(sig: int) -> bool:
        """Send the ranks the gang's one stop signal (SIGKILL follows after the grace period);
        False when a stop is under way already: a second SIGTERM makes many trainers abandon
        the checkpoint the first one started."""
        nonlocal deadline
        if deadline is not None:
            return False
        deadline = time.monotonic() + _grace()
        _signal_group(pgid, procs, sig)
        # a stopped rank (SIGSTOP, SIGTSTP) holds the signal pending until it is continued:
        # without SIGCONT it could not checkpoint in the grace period (as scancel, systemd)
        _signal_group(pgid, procs, signal.SIGCONT)
        return True

    def _deliver(signum: int) -> None:
        nonlocal stop_signal
        name = signal.Signals(signum).name
        if signum in STOP_SIGNALS:
            if stop_signal is None:
                stop_signal = signum
            if not _stop(signum):
                log.warning("gang: %s received while the ranks are stopping; not sent again", name)
                return
        else:
            _signal_group(pgid, procs, signum)
        forwarded.append(name)

    def _release() -> None:
        """Forward the signals received while held, then stop holding them."""
        nonlocal held
        while True:
            held = True
            while pending:
                _deliver(pending.pop(0))
            held = False
            if not pending:  # (one that came between the last pop and held = False)
                return

    @contextlib.contextmanager
    def _holding() -> Iterator[None]:
        """Signals arriving in the block wait until it ends: it decides what the ranks are sent
        from the state the handler changes (the ranks started, the deadline)."""
        nonlocal held
        held = True
        try:
            yield
        finally:
            _release()

    def _forward(signum: int, _frame: Any) -> None:
        # (a Python handler runs in the main thread between two bytecodes: inside Popen, say,
        # after the rank's process exists but before run_gang has recorded it)
        pending.append(signum)
        if not held:
            _release()

    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in FORWARDED_SIGNALS:
            old_handlers[sig] = signal.signal(sig, _forward)
    try:
        for spec in ranks:
            if stop_signal is not None:
                log.warning(
                    "gang: %s received while starting the ranks; %d of %d started, "
                    "starting no more",
                    signal.Signals(stop_signal).name,
                    len(procs),
                    len(ranks),
                )
                break
            penv = {**parent_env, **rank_envs[spec.rank]}
            # held until the rank is recorded: a stop signal that arrives meanwhile reaches it
            # (and the others) once, whether its process existed yet or not
            with _holding():
                try:
                    p = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=penv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        process_group=0 if pgid is None else pgid,
                    )
                except OSError as exc:
                    pending.clear()  # (the ranks started are killed)
                    _signal_group(pgid, procs, signal.SIGKILL)
                    for q in procs:
                        q.wait()
                    return GangResult(
                        exit_code=127,
                        failed_rank=spec.rank,
                        message=f"rank {spec.rank} could not start {argv[0]!r}: {exc}",
                        rank_exit_codes=[None] * len(ranks),
                        ranks_started=len(procs),
                    )
                procs.append(p)
                if pgid is None:
                    pgid = p.pid
            prefix = f"[rank {spec.rank}] ".encode()
            tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
            tails[spec.rank] = tail
            for stream, t in ((p.stdout, None), (p.stderr, tail)):
                th = threading.Thread(target=_pump, args=(stream, prefix, sink, t), daemon=True)
                th.start()
                threads.append(th)

        # Reap only once every rank has started: rank 0 leads the process group, and a fast
        # rank 0 reaped early would take the group with it (the next setpgid fails with EPERM).
        # (after a stop signal during the start, only those started)
        for spec, p in zip(ranks, procs, strict=False):

            def _waiter(proc: subprocess.Popen[bytes] = p, rank: int = spec.rank) -> None:
                exits.put((rank, proc.wait()))

            threading.Thread(target=_waiter, daemon=True).start()
        if on_start is not None and procs:
            # (after a stop signal during the start: the ranks that did start, so the caller
            # records their process group and can stop them)
            on_start([p.pid for p in procs])

        codes: dict[int, int] = {}
        failed: int | None = None
        killed = False
        while True:
            if len(codes) == len(procs):
                # every rank process is reaped; what else runs in the group (a trainer under a
                # shell that died of the SIGTERM) keeps its grace period to checkpoint
                # (a normal end, deadline None: leftovers are killed below)
                if deadline is None or killed or not group_alive(pgid):
                    break
            try:
                rank, rc = exits.get(timeout=0.1)
            except queue.Empty:
                # (checked once the exits already queued are read: ranks that ended before the
                # deadline, reaped late, e.g. after a slow on_start, did not time out)
                with _holding():
                    if (
                        timeout is not None
                        and deadline is None
                        and time.monotonic() - started >= timeout
                    ):
                        # the same stop as a forwarded SIGTERM: grace_s, then SIGKILL
                        log.warning(
                            "gang: still running after %s s; stopping it", _seconds(timeout)
                        )
                        timed_out = True
                        _stop(signal.SIGTERM)
                if deadline is not None and not killed and time.monotonic() > deadline:
                    log.warning(
                        "gang: ranks still alive %.1f s after SIGTERM; sending SIGKILL", _grace()
                    )
                    _signal_group(pgid, procs, signal.SIGKILL)
                    killed = True
                continue
            codes[rank] = rc
            # a rank ended by the timeout's own stop did not fail: failed_rank stays None
            if rc != 0 and failed is None and not timed_out:
                failed = rank
                # (not when a stop is under way: the others got its signal already)
                with _holding():
                    if len(codes) < len(procs) and _stop(signal.SIGTERM):
                        log.info(
                            "gang: rank %d exited with %s; stopped the other ranks",
                            rank,
                            _code(rc),
                        )
        # whatever the ranks left running in their group goes too
        _signal_group(pgid, [], signal.SIGKILL)
        for th in threads:
            th.join(timeout=5)
    finally:
        for signum, old in old_handlers.items():
            signal.signal(signum, old)
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        sink.close()

    rank_codes = [_code(codes.get(r.rank)) for r in ranks]
    duration = time.monotonic() - started
    n_started = len(procs)
    common: dict[str, Any] = {
        "rank_exit_codes": rank_codes,
        "signals_forwarded": forwarded,
        "duration_s": duration,
        "timed_out": timed_out,
        "ranks_started": n_started,
    }
    if timed_out or n_started < len(ranks):
        if timed_out:
            head = f"gang timed out after {_seconds(timeout or 0.0)} s and was stopped"
            code = TIMEOUT_EXIT_CODE
        else:
            stop = signal.Signals(stop_signal or signal.SIGTERM)
            head = (
                f"gang stopped by {stop.name} before all ranks started "
                f"({n_started} of {len(ranks)} started)"
            )
            code = (_code(codes[failed]) or 1) if failed is not None else 128 + stop.value
        if failed is not None:
            head += "; " + rank_message(failed, codes[failed], tails, [])
        return GangResult(exit_code=code, failed_rank=failed, message=head, **common)
    if failed is None:
        return GangResult(
            exit_code=0,
            failed_rank=None,
            message=f"all {len(ranks)} ranks exited with 0",
            **common,
        )
    return GangResult(
        exit_code=_code(codes[failed]) or 1,
        failed_rank=failed,
        message=rank_message(failed, codes[failed], tails, forwarded),
        **common,
    )


def rank_message(
    failed: int, rc: int, tails: dict[int, collections.deque[str]], forwarded: list[str]
) -> str:
    """'rank N exited with code C' (or 'killed by SIG'), the signals forwarded before, and the
    last lines of its stderr."""
    code = _code(rc) or 1
    lines = list(tails.get(failed, ()))
    how = (
        f"killed by {signal.Signals(code - 128).name}"
        if code > 128 and code - 128 in {s.value for s in signal.Signals}
        else f"exited with code {code}"
    )
    msg = f"rank {failed} {how}"
    if forwarded:
        msg += f" after {', '.join(forwarded)} was forwarded to the gang"
    if lines:
        quoted = "\n".join(lines)
        if len(quoted) > TAIL_CHARS:
            quoted = "…" + quoted[-TAIL_CHARS:]
        msg += ":\n" + quoted
    return msg
