"""Test files have unique basenames across tests/: pytest imports them by basename (no
__init__.py packages), so two files with one name break collection of the whole suite."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]


def test_test_file_basenames_are_unique() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        by_name[path.name].append(str(path.relative_to(TESTS)))
    dupes = {name: sorted(paths) for name, paths in by_name.items() if len(paths) > 1}
    assert not dupes, f"rename one of each: {dupes}"
    assert len(by_name) > 100
