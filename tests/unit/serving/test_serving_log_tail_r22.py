"""`serve logs` reads a replica log's last lines from its end (it read the whole file into
memory for the default 100 lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.serving.manager import _last_lines


@pytest.mark.parametrize("n", [1, 3, 100, 5000, 10**6])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_the_last_lines_are_the_files(tmp_path: Path, n: int, trailing_newline: bool) -> None:
    p = tmp_path / "r1.log"
    text = "\n".join(f"line {i} é" for i in range(20_000)) + ("\n" if trailing_newline else "")
    p.write_text(text)
    assert _last_lines(p, n, block=997) == text.splitlines()[-n:]


def test_only_the_end_is_read(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    p.write_bytes(b"x" * 50_000_000 + b"\nlast\n")
    assert _last_lines(p, 1) == ["last"]
