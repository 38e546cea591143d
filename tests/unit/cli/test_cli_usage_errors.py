"""Usage errors (typer's range checks, a value that is not a number, an unknown option or
command, a missing argument) are the one ``error: MESSAGE (HINT)`` line on stderr that every
other aistack error is, exit status 2: they were typer's boxed usage panel
(``╭─ Error ─…│ Invalid value for '--limit': …│``), for every command."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from aistack.cli.main import app, main


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """``aistack ARGV`` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["aistack", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out.out, out.err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["jobs", "--limit", "-1"],
            "Invalid value for '--limit': Input should be greater than or equal to 1 "
            "(see `aistack jobs --help`)",
        ),
        (
            ["jobs", "--limit", "10001"],
            "Invalid value for '--limit': Input should be less than or equal to 10000 "
            "(see `aistack jobs --help`)",
        ),
        (
            ["webdata", "crawl", "--max-pages", "0", "http://127.0.0.1:9/"],
            "Invalid value for '--max-pages': Input should be greater than or equal to 1 "
            "(see `aistack webdata crawl --help`)",
        ),
        (
            ["jobs", "--limit", "ten"],
            "Invalid value for '--limit': Input should be a valid integer, unable to parse "
            "string as an integer (see `aistack jobs --help`)",
        ),
        (["jobs", "--bogus"], "No such option: --bogus (see `aistack jobs --help`)"),
        (["--bogus"], "No such option: --bogus (see `aistack --help`)"),
        (["jobz"], "No such command 'jobz'. Did you mean 'jobs'? (see `aistack --help`)"),
        (["models", "nosuch"], "No such command 'nosuch' (see `aistack models --help`)"),
        (
            ["models", "register", "--name", "gpt"],
            "Missing option '--run' (see `aistack models register --help`)",
        ),
        (
            ["models", "show"],
            "Missing argument 'NAME' (usage: aistack models show [OPTIONS] NAME; see "
            "`aistack models show --help`)",
        ),
    ],
)
def test_a_usage_error_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    code, out, err = _main(monkeypatch, capsys, *argv)
    assert (code, out, err) == (2, "", f"error: {line}\n")


def test_the_same_line_through_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app itself prints it (CliRunner, `python -m aistack`), not only ``main()``."""
    r = CliRunner().invoke(app, ["jobs", "--limit", "0"], prog_name="aistack")
    assert r.exit_code == 2
    assert r.stderr == (
        "error: Invalid value for '--limit': Input should be greater than or equal to 1 "
        "(see `aistack jobs --help`)\n"
    )


@pytest.mark.parametrize(
    ("argv", "code", "usage"),
    [
        (["--help"], 0, "Usage: aistack [OPTIONS] COMMAND [ARGS]..."),
        (["jobs", "--help"], 0, "Usage: aistack jobs [OPTIONS]"),
        ([], 2, "Usage: aistack [OPTIONS] COMMAND [ARGS]..."),  # no_args_is_help
        (["models"], 2, "Usage: aistack models [OPTIONS] COMMAND [ARGS]..."),
    ],
)
def test_help_is_still_typers(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    usage: str,
) -> None:
    got, out, err = _main(monkeypatch, capsys, *argv)
    assert got == code
    assert usage in out + err
    assert "error:" not in out + err


def test_shell_completion_still_completes_after_a_bad_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Completion parses the line resiliently: `--limit -1` there is no error to print."""
    monkeypatch.setenv("_AISTACK_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "aistack jobs --limit -1 --")
    monkeypatch.setenv("COMP_CWORD", "4")
    code, out, err = _main(monkeypatch, capsys, "jobs")
    assert code == 0, err
    assert {"--all", "--json"} <= set(out.split())
    assert "error" not in out + err
