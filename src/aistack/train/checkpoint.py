"""Checkpoints on any fsspec URL (local directory, ``s3://…``), written atomically.

Layout under ``<objects_url>/checkpoints/<run-name>/``::

    step_00000100.pt      torch.save of {"step", "model", "optimizer", "loader", "rng", ...}
    step_00000200.pt
    metrics.jsonl         (written by the trainer)

A checkpoint is first written as ``.step_XXXXXXXX.pt.<pid>.tmp`` and then renamed (on S3
the object appears in one PUT, so a reader never sees half a file either); the latest
checkpoint is the highest step number among complete ``step_*.pt`` files, so a crash while
writing leaves the previous one in place. Older checkpoints beyond ``keep`` are deleted.
"""

from __future__ import annotations

import io
import logging
import os
import re
from typing import Any

from aistack.errors import BackendError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d{8,})\.pt$")


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
    return fsspec.core.url_to_fs(url, **opts)


def run_checkpoint_url(run_name: str, objects_url: str | None = None) -> str:
    """``<settings.objects_url>/checkpoints/<run_name>`` (no trailing slash)."""
    if objects_url is None:
        from aistack.settings import get_settings

        objects_url = get_settings().objects_url
    return f"{str(objects_url).rstrip('/')}/checkpoints/{run_name}"


class CheckpointStore:
    """Save / find / load checkpoints of one run under ``url``."""

    def __init__(self, url: str, *, keep: int = 3) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = url_to_fs(self.url)
        self.keep = max(1, int(keep))

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
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        final = self.path_for(step)
        tmp = self._path(f".step_{step:08d}.pt.{os.getpid()}.tmp")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
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
        except OSError as exc:
            raise BackendError(f"cannot write checkpoint {final}: {exc}") from exc
        log.info("checkpoint step %d saved to %s (%.1f MB)", step, final, len(data) / 1e6)
        self._prune()
        return final

    def _prune(self) -> None:
        for old in self.steps()[: -self.keep]:
            try:
                self.fs.rm(self.path_for(old))
            except OSError as exc:  # pragma: no cover - best effort
                log.warning("could not delete old checkpoint step %d: %s", old, exc)

    def load(self, step: int | None = None) -> dict[str, Any] | None:
        """The checkpoint at ``step`` (default: latest), or None when the run has none."""
        import torch

        step = self.latest_step() if step is None else step
        if step is None:
            return None
        with self.fs.open(self.path_for(step), "rb") as fh:
            data = fh.read()
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
