"""What changed between two dataset versions, file by file
(:meth:`Datasets.diff <aistack.storage.datasets.Datasets.diff>`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aistack.storage.manifest import FileEntry


@dataclass(frozen=True, kw_only=True)
class FileChange:
    path: str
    old_size: int | None
    new_size: int | None
    mode: str | None = None  # changed files: "+x" / "-x" when the execute bit changed
    content: bool = True  # changed files: whether the bytes changed (False: the mode only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "mode": self.mode,
            "content": self.content,
        }


@dataclass(frozen=True, kw_only=True)
class DatasetDiff:
    a: str
    b: str
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int

    @property
    def bytes_added(self) -> int:
        return sum(c.new_size or 0 for c in self.added)

    @property
    def bytes_removed(self) -> int:
        return sum(c.old_size or 0 for c in self.removed)

    @property
    def bytes_changed(self) -> int:
        """Size of the changed files in ``b``."""
        return sum(c.new_size or 0 for c in self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": [c.to_dict() for c in self.added],
            "removed": [c.to_dict() for c in self.removed],
            "changed": [c.to_dict() for c in self.changed],
            "unchanged": self.unchanged,
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
            "bytes_changed": self.bytes_changed,
        }


def diff_entries(
    a: str, a_entries: list[FileEntry], b: str, b_entries: list[FileEntry]
) -> DatasetDiff:
    """The diff from version ``a`` (its manifest ``a_entries``) to version ``b``."""
    fa = {e.path: e for e in a_entries}
    fb = {e.path: e for e in b_entries}
    added = tuple(
        FileChange(path=p, old_size=None, new_size=fb[p].size)
        for p in sorted(fb.keys() - fa.keys())
    )
    removed = tuple(
        FileChange(path=p, old_size=fa[p].size, new_size=None)
        for p in sorted(fa.keys() - fb.keys())
    )
    both = sorted(fa.keys() & fb.keys())
    changed = tuple(
        FileChange(
            path=p,
            old_size=fa[p].size,
            new_size=fb[p].size,
            mode=None
            if fa[p].executable == fb[p].executable
            else ("+x" if fb[p].executable else "-x"),
            content=fa[p].hash != fb[p].hash,
        )
        for p in both
        if fa[p].hash != fb[p].hash or fa[p].executable != fb[p].executable
    )
    return DatasetDiff(
        a=a,
        b=b,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=len(both) - len(changed),
    )
