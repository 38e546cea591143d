"""Checkpoints on any fsspec URL (local directory, ``s3://…``), written atomically.

Layout under ``<objects_url>/checkpoints/<run-name>/``::

    step_00000100.pt      torch.save of {"step", "model", "optimizer", "loader", "rng", ...}
    step_00000200.pt
    metrics.jsonl         (written by the trainer)

A checkpoint is first written as ``.step_XXXXXXXX.pt.<pid>.tmp`` and then renamed (on S3
the object appears in one PUT, so a reader never sees half a file either); the latest
checkpoint is the highest step number among complete ``step_*.pt`` files, so a crash while
writing leaves the previous one in place, and a write that fails (a full disk, Ctrl-C) removes
its temporary file. On a local filesystem the folder is fsynced after the rename, so a
completed checkpoint survives a power loss, and a temporary file that a killed writer left
(SIGKILL, OOM killer, power loss) is removed when a store opens the folder; on an object
store, a temporary object left more than an hour ago is deleted the same way: see
:meth:`CheckpointStore.sweep_leftovers`. Older checkpoints beyond ``keep`` are deleted (never
the one just written). A latest checkpoint that cannot be read (truncated, corrupt) is skipped
with a warning and the next older one is loaded. :meth:`CheckpointStore.archive` moves a run's
checkpoints into ``previous-<time>/`` (``--no-resume`` starts a new lineage with it).

Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint store can be shared
(a bucket, an NFS folder) and a full unpickle runs whatever code the file names. What the
trainer writes (tensors, state dicts, RNG states, numbers, strings) loads that way; a
checkpoint of the earlier format (numpy's RNG state as an array) too, with just numpy's
array and uint32 dtype allowed. A file that names any other Python object is refused with
:class:`UntrustedCheckpointError`, never skipped for an older one; ``trust=True``
(``--trust-checkpoints``, or ``AISTACK_TRUST_CHECKPOINTS=1``) loads it with a full unpickle.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import numbers
import os
import re
import time
from typing import Any

from aistack.errors import BackendError, NotFoundError, ValidationError, short_repr

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d{8,})\.pt\Z")
# the temporary files this module writes: ``.step_XXXXXXXX.pt.<pid>.tmp`` and check_writable's
# ``.probe.<pid>.tmp``
_TMP_NAME = re.compile(r"^\.(?:step_\d{8,}\.pt|probe)\.(\d{1,10})\.tmp\Z")
# how old (by mtime) a leftover temporary file must be before it is removed; see sweep_leftovers
LEFTOVER_GRACE_S = 3600.0
# temporary files this process is writing now (never swept, whatever their age)
_WRITING: set[str] = set()
# set to 1 (true, yes, on) to load checkpoints that name Python objects with a full unpickle
TRUST_ENV = "AISTACK_TRUST_CHECKPOINTS"
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("", "0", "false", "no", "off")


def url_to_fs(url: str) -> tuple[Any, str]:
    """fsspec filesystem and path for ``url``; for ``s3://`` the endpoint and region come
    from the same environment as aistack storage (AISTACK_S3_ENDPOINT_URL, AWS_*), and
    listings are never cached (other processes write checkpoints too)."""
    import fsspec

    opts: dict[str, Any] = {}
    if url.split("://", 1)[0].lower() in ("s3", "s3a"):
        try:
            from aistack.storage.backends import s3_options

            opts.update(s3_options())
        except ImportError:  # pragma: no cover - storage is part of aistack
            pass
        opts.update(skip_instance_cache=True, use_listings_cache=False)
    try:
        return fsspec.core.url_to_fs(url, **opts)
    except (ValueError, ImportError) as exc:
        raise ValidationError(
            f"checkpoint_url: {url!r} cannot be opened: {exc}",
            hint="use a local directory or a URL such as s3://bucket/path "
            "(its fsspec package installed)",
            field="checkpoint_url",
        ) from None


def run_checkpoint_url(run_name: str, objects_url: str | None = None) -> str:
    """``<settings.objects_url>/checkpoints/<run_name>`` (no trailing slash)."""
    if objects_url is None:
        from aistack.settings import get_settings

        objects_url = get_settings().objects_url
    return f"{str(objects_url).rstrip('/')}/checkpoints/{run_name}"


def _step_number(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValidationError(
            f"step: expected a whole number ≥ 0, got {short_repr(step)}",
            hint="checkpoints are named by the number of optimizer steps done",
            field="step",
        )
    return int(step)


def _shown_steps(steps: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(s) for s in steps[-limit:])
    return f"… {shown}" if len(steps) > limit else shown


# how a file torch.save wrote starts: a zip archive (the format since torch 1.6), or a pickle
# (the legacy format: protocol 2+ opens with PROTO)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _unreadable(data: bytes, exc: BaseException) -> str:
    """Why ``data`` (a checkpoint file's bytes) cannot be loaded, in words: torch.load's own
    error for a file of another kind is pickle's (``invalid literal for int() with base 10:
    'arbage'``)."""
    if not data:
        return "the file is empty (0 bytes): not a checkpoint"
    if not data.startswith(_TORCH_MAGIC):
        return (
            f"not a PyTorch checkpoint file ({len(data):,} bytes starting {data[:12]!r}; one "
            "torch.save writes is a zip archive)"
        )
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # torch's safe loader; its advice is not ours
        text = "weights_only=True: " + text.split("WeightsUnpickler error:", 1)[1]
    said = " ".join(f"{type(exc).__name__}: {text}".split()).split(". ")[0][:160]
    return f"a damaged or truncated PyTorch file ({len(data):,} bytes; torch.load: {said})"


def _writer_alive(pid: int, path: str) -> bool:
    """Whether the process that wrote the temporary file ``path`` (named with ``pid``) may
    still be writing it."""
    if pid == os.getpid():
        return path in _WRITING
    if pid <= 0:
        return False  # no writer has such a pid (and os.kill(0, …) would mean our group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's process), or cannot tell: keep the file
    return True


def _modified_epoch(when: Any) -> float:
    """Seconds since the epoch of an fsspec ``modified()`` answer: a datetime (s3fs: aware,
    in UTC; a naive one is taken as UTC) or a number."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    if isinstance(when, numbers.Real) and not isinstance(when, bool):
        return float(when)
    raise TypeError(f"no modification time ({short_repr(when, 60)})")


def _fsync_dir(path: str) -> None:
    """fsync the folder ``path`` (its entries, e.g. a rename), where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows cannot open a folder; nothing to sync there
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and platforms) refuse fsync on a folder
    finally:
        os.close(fd)


class UntrustedCheckpointError(ValidationError):
    """A checkpoint that ``torch.load(weights_only=True)`` refuses: loading it would unpickle
    Python objects (and so could run code) that a checkpoint of this trainer never holds."""


def trust_from_env() -> bool:
    """``AISTACK_TRUST_CHECKPOINTS`` as a bool (unset: False); another word is an error."""
    raw = os.environ.get(TRUST_ENV, "").strip().lower()
    if raw in _TRUE_WORDS:
        return True
    if raw in _FALSE_WORDS:
        return False
    raise ValidationError(
        f"{TRUST_ENV}: expected 1 or 0 (true/false, yes/no, on/off), got "
        f"{short_repr(os.environ.get(TRUST_ENV))}",
        hint=f"set {TRUST_ENV}=1 to load checkpoints with a full unpickle, or unset it",
        field=TRUST_ENV,
    )


def _numpy_rng_globals() -> list[Any]:
    """What a checkpoint of the earlier format needs besides torch's own safe types: numpy's
    RNG state held its 624 keys as a uint32 ndarray (pickled through ``_reconstruct``, named
    ``numpy.core.multiarray`` by numpy 1.x and ``numpy._core.multiarray`` by numpy 2)."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    rebuild = core.multiarray._reconstruct
    return [
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
        (rebuild, "numpy._core.multiarray._reconstruct"),
        (rebuild, "numpy.core.multiarray._reconstruct"),
    ]


def _refused_names(data: bytes, exc: BaseException) -> list[str]:
    """The Python objects (module.name) that made the safe loader refuse ``data``: every one
    the pickle names (a zip-format file), else the one torch's error names."""
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
        if names:
            return sorted(names)
    except Exception:  # noqa: BLE001 - the legacy format (not a zip): torch's words below
        pass
    return sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(exc))))


def _safe_load(data: bytes, path: str, *, trust: bool) -> Any:
    """``torch.load`` of a checkpoint file's bytes that unpickles no code (see the module's
    doc); ``trust``: a file the safe loader refuses is unpickled in full (with a warning)."""
    import pickle

    import torch

    def load(weights_only: bool) -> Any:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=weights_only)

    try:
        return load(True)
    except pickle.UnpicklingError as first:
        if "weights only" not in str(first).lower():
            raise
    try:  # a checkpoint of the earlier format: numpy's RNG state as an array
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return load(True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise
        refused = exc
    names = _refused_names(data, refused)
    if trust:
        if names:
            log.warning(
                "checkpoint %s names Python objects besides tensors and plain values (%s); "
                "loading it in full because checkpoints are trusted (--trust-checkpoints or "
                "%s=1)",
                path,
                ", ".join(names[:6]),
                TRUST_ENV,
            )
        return load(False)
    if not names:  # refused for no object it names: a damaged file (garbage opcodes)
        raise refused
    shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
    raise UntrustedCheckpointError(
        f"checkpoint {path} was not loaded: it names Python objects a checkpoint of this "
        f"trainer never holds ({shown}), whose unpickling can run code. Checkpoints are loaded "
        "with torch.load(weights_only=True), as anyone who can write to the checkpoint store "
        "could otherwise run code in this process",
        hint=f"only if every writer of the checkpoint store is trusted (your own runs wrote "
        f"this file): load it with --trust-checkpoints or {TRUST_ENV}=1; otherwise move it out "
        "of the folder, or start over with --no-resume (moves the run's checkpoints aside)",
        field="checkpoint_url",
    )


class CheckpointStore:
    """Save / find / load checkpoints of one run under ``url``.

    ``trust``: load a checkpoint that names Python objects besides tensors and plain values
    with a full unpickle (it can run code) instead of refusing it; None:
    ``AISTACK_TRUST_CHECKPOINTS``."""

    def __init__(self, url: str, *, keep: int = 3, trust: bool | None = None) -> None:
        if not isinstance(url, str | os.PathLike) or not str(url).strip():
            raise ValidationError(
                f"checkpoint_url: expected a directory or a URL, got {short_repr(url)}",
                hint="pass a local directory or a URL such as s3://bucket/path",
                field="checkpoint_url",
            )
        if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 1:
            raise ValidationError(
                f"keep: expected a whole number ≥ 1 of checkpoints to keep, got {short_repr(keep)}",
                hint="pass keep=1 or more (--keep-checkpoints)",
                field="keep",
            )
        self.url: str = str(url).rstrip("/")
        self.fs: Any
        self.root: str
        self.fs, self.root = url_to_fs(self.url)
        self.keep: int = int(keep)
        if trust is not None and not isinstance(trust, bool):
            raise ValidationError(
                f"trust: expected true or false, got {short_repr(trust)}",
                hint="pass trust=True only for checkpoints whose every writer you trust",
                field="trust",
            )
        self.trust: bool = trust_from_env() if trust is None else trust
        self.sweep_leftovers()

    @property
    def is_local(self) -> bool:
        """The checkpoints are on this machine's filesystem (not an object store)."""
        protocol = getattr(self.fs, "protocol", ())
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "file" in protocols or "local" in protocols

    def sweep_leftovers(self, *, grace_s: float = LEFTOVER_GRACE_S) -> list[str]:
        """Remove the temporary files (``.step_XXXXXXXX.pt.<pid>.tmp``, ``.probe.<pid>.tmp``)
        of writers that died before they could clean up (SIGKILL, the OOM killer, a power
        loss); returns the paths removed. Only on a local filesystem, best effort.

        A file is removed only when both hold:

        * its writer is gone: no process with its pid exists here (a pid that exists is
          taken to be the writer, even if it is a reused pid: the file stays). A file with
          this process's own pid is gone unless this process is writing it now (a restarted
          container often has the same pid as the one that died);
        * it was last modified more than ``grace_s`` (1 hour) ago. The folder can be shared
          (NFS, a volume mounted into several containers): a writer in another PID namespace
          or on another host has a pid that means nothing here and may look dead. A live
          writer modifies its file as it writes and renames it as soon as it is complete
          (seconds), so a file untouched for an hour is not being written by anyone.

        Complete checkpoints (``step_*.pt``) are never touched.

        On an object store (S3 and other fsspec URLs) a pid means nothing (the writer ran on
        another host), so only the age counts: a temporary object last modified more than
        ``grace_s`` ago is deleted, unless this process is writing it now. Such objects are
        left when a writer is killed between its upload and the rename (a copy and a delete
        on S3), or when the delete of a failed write fails too; a live writer renames its
        object seconds after the upload completes. See :meth:`_sweep_remote`."""
        if not self.is_local:
            return self._sweep_remote(grace_s)
        try:
            names = os.listdir(self.root)
        except OSError:
            return []  # no folder yet, or not readable: nothing to sweep
        removed: list[str] = []
        now = time.time()
        for name in names:
            m = _TMP_NAME.match(name)
            if m is None:
                continue
            path = self._path(name)
            try:
                if now - os.stat(path).st_mtime <= grace_s or _writer_alive(int(m.group(1)), path):
                    continue
                os.remove(path)
            except OSError as exc:  # gone already (another rank swept it), or not ours
                log.debug("leftover %s not removed: %s", path, exc)
                continue
            removed.append(path)
        if removed:
            log.warning(
                "removed %d temporary file(s) of checkpoint writes that were killed: %s",
                len(removed),
                ", ".join(removed[:5]) + (" …" if len(removed) > 5 else ""),
            )
        return removed

    def _sweep_remote(self, grace_s: float) -> list[str]:
        """:meth:`sweep_leftovers` on an object store: by age (last modified) alone."""
        try:
            paths = [str(p).rstrip("/") for p in self.fs.ls(self.root, detail=False)]
        except Exception as exc:  # noqa: BLE001 - no prefix yet, no permission: best effort
            log.debug("checkpoint leftovers under %s not listed: %s", self.url, exc)
            return []
        removed: list[str] = []
        now = time.time()
        for listed in paths:
            name = os.path.basename(listed)
            if _TMP_NAME.match(name) is None:
                continue
            path = self._path(name)
            if path in _WRITING or listed in _WRITING:
                continue
            try:
                age = now - _modified_epoch(self.fs.modified(listed))
                if age <= grace_s:
                    continue
                self.fs.rm(listed)
            except Exception as exc:  # noqa: BLE001 - gone already, no mtime, not ours
                log.debug("leftover %s not removed: %s", path, exc)
                continue
            removed.append(path)
        if removed:
            log.warning(
                "removed %d temporary object(s) of checkpoint writes that did not finish "
                "(older than %.0f s): %s",
                len(removed),
                grace_s,
                ", ".join(removed[:5]) + (" …" if len(removed) > 5 else ""),
            )
        return removed

    def check_writable(self) -> None:
        """Create the directory and write a probe file, so that a bad location is an error
        before training starts rather than at the first checkpoint."""
        probe = self._path(f".probe.{os.getpid()}.tmp")
        try:
            is_file = bool(self.fs.isfile(self.root))
        except Exception:  # noqa: BLE001 - a store that cannot say: the probe below tells
            is_file = False
        if is_file:
            raise ValidationError(
                f"checkpoint_url: {self.url} is a file, not a folder",
                hint="point --checkpoint-url at a folder (it is created when missing), "
                "not at a checkpoint file",
                field="checkpoint_url",
            )
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as fh:
                fh.write(b"ok")
            self.fs.rm(probe)
        except (OSError, ValueError) as exc:
            raise ValidationError(
                f"checkpoint_url: cannot write checkpoints to {self.url}: {exc}",
                hint="fix --checkpoint-url (a writable directory or bucket path)",
                field="checkpoint_url",
            ) from None
        except Exception as exc:  # noqa: BLE001 - a store's own errors (botocore's NoCredentialsError)
            from aistack.storage.objects import S3_CREDENTIALS

            raise ValidationError(
                f"checkpoint_url: cannot write checkpoints to {self.url}: "
                f"{type(exc).__name__}: {exc}",
                hint="fix --checkpoint-url (a writable directory or bucket path); for s3:// set "
                f"{S3_CREDENTIALS}, as for aistack storage",
                field="checkpoint_url",
            ) from None

    def archive(self) -> str | None:
        """Move this run's checkpoints into ``previous-<UTC time>/`` (None when it has none)."""
        steps = self.steps()
        if not steps:
            return None
        dest = self._path(f"previous-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        self.fs.makedirs(dest, exist_ok=True)
        for step in steps:
            self.fs.mv(self.path_for(step), f"{dest}/{os.path.basename(self.path_for(step))}")
        return dest

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def steps(self) -> list[int]:
        try:
            names = [os.path.basename(p.rstrip("/")) for p in self.fs.ls(self.root, detail=False)]
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _NAME.match(n)))

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path_for(self, step: int) -> str:
        return self._path(f"step_{step:08d}.pt")

    def save(self, step: int, state: dict[str, Any]) -> str:
        """Write ``state`` as the checkpoint of ``step`` (atomically). When the write fails
        (disk full, no permission, interrupted) its temporary file is removed, the
        checkpoints already there are left as they were, and a BackendError says which is the
        latest one."""
        import torch

        step = _step_number(step)
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        final = self.path_for(step)
        tmp = self._path(f".step_{step:08d}.pt.{os.getpid()}.tmp")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            _WRITING.add(tmp)
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
                if hasattr(fh, "flush"):
                    fh.flush()
                if hasattr(fh, "fileno"):
                    try:
                        os.fsync(fh.fileno())
                    except (OSError, io.UnsupportedOperation):
                        pass
            self.fs.mv(tmp, final)
            if self.is_local:
                # the rename is an entry of the folder: until the folder is synced, a power
                # loss can undo it (and the data of the new file is then nowhere)
                _fsync_dir(self.root)
        except BaseException as exc:
            # half a checkpoint must not stay behind (it can be most of a full disk)
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
            if not isinstance(exc, OSError):
                raise
            try:
                kept = [s for s in self.steps() if s != step]
            except Exception:  # noqa: BLE001 - only to word the hint
                kept = []
            left = (
                f"the checkpoints already there are untouched (the newest: step {kept[-1]}, "
                f"{self.path_for(kept[-1])})"
                if kept
                else "no earlier checkpoint of this run exists"
            )
            raise BackendError(
                f"cannot write checkpoint {final}: {exc.strerror or exc} "
                f"({len(data) / 1e6:.1f} MB); {left}",
                hint="free space or fix the permissions of the checkpoint location "
                "(--checkpoint-url), then re-run",
            ) from exc
        finally:
            _WRITING.discard(tmp)
        log.info("checkpoint step %d saved to %s (%.1f MB)", step, final, len(data) / 1e6)
        self._prune(step)
        return final

    def _prune(self, just_saved: int) -> None:
        """Keep ``just_saved`` and the ``keep - 1`` newest others."""
        others = [s for s in self.steps() if s != just_saved]
        for old in others[: max(0, len(others) - (self.keep - 1))]:
            try:
                self.fs.rm(self.path_for(old))
            except OSError as exc:  # pragma: no cover - best effort
                log.warning("could not delete old checkpoint step %d: %s", old, exc)

    def _read(self, step: int) -> dict[str, Any]:
        """The checkpoint of ``step``: FileNotFoundError, UntrustedCheckpointError, or
        ValueError saying why it cannot be read."""
        path = self.path_for(step)
        with self.fs.open(path, "rb") as fh:
            data = fh.read()
        try:
            state = _safe_load(data, path, trust=self.trust)
        except UntrustedCheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch's own words say little (int() of 'arbage')
            raise ValueError(_unreadable(data, exc)) from None
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("not a trainer checkpoint (no 'step')")
        return state  # type: ignore[no-any-return]

    def _read_one(self, step: int) -> dict[str, Any]:
        """The checkpoint of ``step``: a clear error naming the file when it is missing or
        cannot be read, with the steps that can be loaded instead."""
        path = self.path_for(step)
        try:
            return self._read(step)
        except FileNotFoundError:
            steps = self.steps()
            raise NotFoundError(
                f"step: this run has no checkpoint of step {step} ({path})",
                hint=f"its checkpoints: steps {_shown_steps(steps)}"
                if steps
                else f"{self.url} holds no checkpoint",
                field="step",
            ) from None
        except UntrustedCheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            others = [s for s in self.steps() if s != step]
            raise BackendError(
                f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})"[:500],
                hint=(
                    f"load another step (this run also has steps {_shown_steps(others)}), or "
                    "delete the damaged file"
                    if others
                    else "delete the damaged file, or start over with --no-resume"
                ),
            ) from None

    def load(self, step: int | None = None) -> dict[str, Any] | None:
        """The checkpoint at ``step``, or None when the run has none.

        Without ``step``: the latest one that can be read; a truncated or corrupt file is
        skipped with a warning naming it. BackendError when none can be read. A file the safe
        loader refuses (:class:`UntrustedCheckpointError`) is not skipped: it is the error.
        """
        if step is not None:
            return self._read_one(_step_number(step))
        steps = self.steps()
        bad: list[str] = []
        for s in reversed(steps):
            try:
                state = self._read(s)
            except UntrustedCheckpointError:
                raise  # someone put it there: resuming from an older one would hide that
            except Exception as exc:  # noqa: BLE001 - any unreadable file: try the older one
                bad.append(f"{self.path_for(s)} ({type(exc).__name__}: {exc})"[:300])
                log.warning(
                    "checkpoint %s cannot be read (%s: %s); trying the previous one",
                    self.path_for(s),
                    type(exc).__name__,
                    exc,
                )
                continue
            if bad:
                log.warning("resuming from step %d instead of the unreadable newer checkpoint", s)
            return state
        if bad:
            raise BackendError(
                "no checkpoint of this run can be read: " + "; ".join(bad),
                hint="delete the bad files, or start over with --no-resume or a new --run-name",
            )
        return None
