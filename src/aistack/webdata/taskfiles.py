"""Files a pipeline run writes in its output folder: atomically (a write to ``NAME.tmp``,
fsynced, then a rename, so a killed run or a crash of the machine leaves the old file or the
new one, never half of one), and the ``.tasks/*.done`` records that make a re-run resume
instead of starting over."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through ``NAME.tmp`` beside it and a rename.

    The data is fsynced before the rename (the name says the file is whole only once its
    bytes are on disk: without it, a crash soon after could leave an empty or short file that
    a ``.done`` record vouches for), and the folder after it, where the filesystem allows
    (some refuse to fsync a folder; that is ignored). A write that fails (full disk, Ctrl-C, a
    folder at ``path``) removes its ``.tmp`` and leaves what was at ``path`` as it was.

    Callers write once per task (a stage's output, a ``.done`` record), so the two fsyncs are
    cheap next to the task; ``sync=False`` skips them, for files written once per input file
    that a re-run compares and writes again when they are not whole."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """fsync ``folder`` so a rename in it is on disk; a filesystem or OS that cannot (EINVAL,
    a folder that cannot be opened) is left as it is: the file's own data is synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_done(path: Path, payload: dict[str, Any]) -> None:
    """A task's result as JSON, atomically (its presence marks the task done)."""
    # keys in their own order: a resumed run reports its steps in the pipeline's order
    atomic_write(path, json.dumps(payload).encode())
