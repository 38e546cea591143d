"""Errors on the terminal: one logical line, so a command in the hint copies whole."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aistack.cli._common import print_error
from aistack.errors import ConflictError


def test_error_with_a_command_in_its_hint_is_not_broken_at_the_terminal_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    exc = ConflictError(
        "ds@v1 cannot be deleted: it is referenced by job 7f3a9c",
        hint="drop the references first: `aistack data unref ds@v1 --by job:7f3a9c` (Python: "
        "Datasets.remove_reference('ds@v1', 'job', '7f3a9c'))",
    )
    print_error(exc)
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"error: {exc}\n"  # no line break inserted at 40 columns


def test_error_text_in_brackets_is_printed_as_it_is(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    print_error(ConflictError("usage: aistack data tag [OPTIONS] REF TAG", hint="[bold]x"))
    assert capsys.readouterr().err == (
        "error: usage: aistack data tag [OPTIONS] REF TAG ([bold]x)\n"
    )


def test_cli_errors_are_not_hard_wrapped_at_the_terminal_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real entry point: the `data rm` refusal's hint quotes a command, and at a
    narrow terminal it is still one line (the terminal wraps it, copy-paste keeps it whole)."""
    from aistack.cli.main import main
    from aistack.storage import Datasets

    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISTACK_DATABASE_URL", raising=False)
    monkeypatch.delenv("AISTACK_STORAGE_URL", raising=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    Datasets.from_settings().add("ds", src)
    Datasets.from_settings().add_reference("ds@v1", "job", "job-7")
    monkeypatch.setattr(sys, "argv", ["aistack", "data", "rm", "ds@v1"])
    with pytest.raises(SystemExit) as ei:
        main()
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "`aistack data unref ds@v1 --by job:job-7`" in err
    assert "Datasets.remove_reference('ds@v1', 'job', 'job-7')" in err
    assert err.count("\n") == 1, err  # one logical line
