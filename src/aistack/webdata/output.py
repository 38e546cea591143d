"""A pipeline run's output folder: what a run writes there (:data:`OUTPUT_ENTRIES`, and first
its marker :data:`MARKER`), what ``--fresh`` deletes (those entries and nothing else), and the
check that a run never writes over files of the user's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from aistack.errors import ConflictError
from aistack.webdata.lineage import INPUT_DATASETS

# What run_pipeline writes in its output folder; --fresh deletes these and nothing else.
OUTPUT_ENTRIES = (
    "stage1",
    "dedup",
    "corpus",
    "dataset",
    ".tasks",
    INPUT_DATASETS,
    "report.json",
    "report.txt",
)
MARKER = Path(".tasks") / "spec.json"


def is_pipeline_output(out: Path) -> bool:
    """True when ``out`` holds the marker a run writes first (``.tasks/spec.json``, a JSON
    object with a ``fingerprint``)."""
    try:
        data = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "fingerprint" in data


def _inside(p: Path, folder: Path) -> bool:
    p, folder = p.resolve(), folder.resolve()
    return p == folder or folder in p.parents


def clear_output(out: Path, *, protect: list[Path]) -> None:
    """``--fresh``: delete what an earlier run of the pipeline wrote in ``out``.

    Only the entries in :data:`OUTPUT_ENTRIES` are deleted, and only when ``out`` carries the
    marker a run writes (``.tasks/spec.json``): other files in ``out`` (the pipeline YAML, notes,
    a user's own ``dataset/`` folder) are never touched. A folder that has such entries but no
    marker is refused, and so is a deletion that would remove an input file or the pipeline
    file's folder (``protect``).
    """
    if not out.exists():
        return
    present = [out / n for n in OUTPUT_ENTRIES if (out / n).exists() or (out / n).is_symlink()]
    if not present:
        return  # nothing of ours to delete (an empty or unrelated folder): start there
    if not is_pipeline_output(out):
        raise ConflictError(
            f"output {out} is not an aistack pipeline output (no {MARKER}); "
            "refusing to delete anything in it",
            hint="point output: at a new or empty folder, or delete the old results yourself",
        )
    for p in present:
        for q in protect:
            if not p.is_symlink() and _inside(q, p):
                raise ConflictError(
                    f"--fresh would delete {p}, which holds {q}",
                    hint="move the inputs and the pipeline file out of the output folder",
                )
    for p in present:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def check_output(out: Path) -> None:
    """A run (or resume) writes only into a new folder, an earlier run's folder, or one where
    the names it writes (:data:`OUTPUT_ENTRIES`) are free or empty folders: a user's own
    ``report.txt`` or ``dataset/`` would be overwritten, or registered with the shards."""
    if not out.is_dir() or is_pipeline_output(out):
        return
    taken = []
    for name in OUTPUT_ENTRIES:
        p = out / name
        if p.is_symlink() or p.is_file() or (p.is_dir() and any(p.iterdir())):
            taken.append(name)
    if taken:
        raise ConflictError(
            f"output {out} is not an aistack pipeline output (no {MARKER}) and already holds "
            f"{', '.join(taken)}; refusing to write over it",
            hint="point output: at a new or empty folder, or move those entries elsewhere",
        )
