"""Path safety: nothing a dataset stores or materializes may escape its root."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from aistack.errors import ValidationError


def check_relpath(rel: str, *, what: str = "path") -> str:
    """Return ``rel`` if it is a clean relative POSIX path inside a root, else raise.

    Refuses absolute paths, ``..`` components, empty components, backslashes and NUL bytes.
    """
    if not isinstance(rel, str) or not rel:
        raise ValidationError(f"{what} is empty", hint="name files relative to the dataset root")
    bad = (
        rel.startswith("/")
        or "\\" in rel
        or "\x00" in rel
        or (len(rel) > 1 and rel[1] == ":")
        or any(part in ("", ".", "..") for part in rel.split("/"))
        or posixpath.normpath(rel) != rel
    )
    if bad:
        raise ValidationError(
            f"{what} {rel!r} escapes the dataset root or is not normalized",
            hint="only plain relative paths inside the dataset (no '..', no leading '/') are allowed",
            path=rel,
        )
    return rel


def inside(root: str | Path, candidate: str | Path) -> bool:
    """True when ``candidate`` (fully resolved, symlinks followed) lies inside ``root``."""
    r = os.path.realpath(root)
    c = os.path.realpath(candidate)
    return c == r or c.startswith(r.rstrip(os.sep) + os.sep)


def safe_dest(dest_root: str | Path, rel: str) -> str:
    """The local path for ``rel`` under ``dest_root``; refuses symlinks that lead outside.

    Only checks: nothing is changed on disk (a refused get leaves the destination as it was).
    """
    check_relpath(rel, what="file name in the manifest")
    target = os.path.join(os.fspath(dest_root), *rel.split("/"))
    parent = os.path.dirname(target)
    if not inside(dest_root, parent) or (os.path.islink(target) and not inside(dest_root, target)):
        raise ValidationError(
            f"refusing to write {rel!r}: a symlink under {dest_root} points outside it",
            hint="remove the symlink or choose an empty destination directory",
            path=rel,
        )
    return target


def blocking_ancestor(dest_root: str | Path, rel: str) -> str | None:
    """The first parent directory of ``rel`` under ``dest_root`` that exists but is not a
    directory (a file where the version has a directory), as a relative path, or None."""
    parts = rel.split("/")[:-1]
    here = os.fspath(dest_root)
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        if not os.path.lexists(here):
            return None
        if not os.path.isdir(here):
            return "/".join(parts[: i + 1])
    return None
