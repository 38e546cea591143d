"""The register step: the output's ``dataset/`` folder becomes a dataset version in
aistack.storage (imported lazily, so a pipeline without the step runs without the storage
layer), and a resumed run finds the version an earlier run registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aistack.errors import ValidationError


def register_output(
    path: Path,
    name: str,
    message: str | None,
    report: dict[str, Any],
    *,
    run_node: str | None = None,
) -> dict[str, Any]:
    """Register the dataset folder as a dataset version in aistack.storage (imported lazily,
    so the pipeline runs without the storage layer). ``run_node``: the run's lineage node
    (:func:`input_lineage`), kept in the version's metadata as ``webdata_run``."""
    try:
        from aistack.storage import Datasets  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ValidationError(
            "register: aistack.storage.Datasets is not available in this installation",
            hint="remove the register step or install the storage layer",
        ) from exc
    ds = Datasets.from_settings()
    metadata: dict[str, Any] = {"webdata_report": report["counts"]}
    if run_node:
        metadata["webdata_run"] = run_node
    message = message or f"webdata pipeline {report['name']}"
    bad = report.get("bad_files") or []
    if bad:  # registered with --skip-bad: the version says which inputs are missing from it
        metadata["webdata_bad_files"] = [{"file": b["file"], "reason": b["reason"]} for b in bad]
        message += f" ({len(bad):,} bad input files skipped)"
    version = ds.add(name, str(path), message=message, metadata=metadata)
    to_dict = getattr(version, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return {"name": name, "version": str(version)}


def registered_earlier(done: Path) -> dict[str, Any] | None:
    """The dataset version an earlier run of this output registered, if it still exists with
    the same manifest (deleted meanwhile: None, so the run registers again)."""
    try:
        old = json.loads(done.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or not old.get("ref") or not old.get("manifest"):
        return None
    try:
        from aistack.storage import Datasets  # type: ignore[attr-defined]

        current = Datasets.from_settings().resolve(str(old["ref"]))
    except Exception:  # noqa: BLE001 - gone, or another store: register again
        return None
    return old if getattr(current, "manifest", None) == old["manifest"] else None
