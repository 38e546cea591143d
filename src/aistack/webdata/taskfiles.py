"""Files a pipeline run writes in its output folder: atomically (a write to ``NAME.tmp``,
then a rename, so a killed run leaves the old file or the new one, never half of one), and
the ``.tasks/*.done`` records that make a re-run resume instead of starting over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_done(path: Path, payload: dict[str, Any]) -> None:
    """A task's result as JSON, atomically (its presence marks the task done)."""
    # keys in their own order: a resumed run reports its steps in the pipeline's order
    atomic_write(path, json.dumps(payload).encode())
