"""Every usage line of the ``aistack`` CLI reads plainly: ``deploy [OPTIONS] MODEL``.

typer writes a required argument as ``{name}`` (``{name}...`` for several), which reads like
shell brace syntax; ``aistack.cli._common._Command`` strips the braces and each argument gets
an uppercase metavar. These tests walk the whole app, so a command added without the class or
without a metavar is caught here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aistack.cli._common import _Command
from aistack.cli.main import app


def _walk(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    """(command, its click context) for the root and every group and command below it."""
    yield cmd, ctx
    if hasattr(cmd, "list_commands"):  # a group
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            yield from _walk(sub, sub.context_class(sub, info_name=name, parent=ctx))


def _commands() -> list[tuple[Any, Any]]:
    root = typer.main.get_command(app)
    return list(_walk(root, root.context_class(root, info_name="aistack")))


def test_the_walk_reaches_every_group_and_their_commands() -> None:
    paths = {ctx.command_path for _, ctx in _commands()}
    for expected in (
        "aistack",
        "aistack cancel",
        "aistack projects set",
        "aistack data tag",
        "aistack webdata extract",
        "aistack models alias",
        "aistack serve deploy",
        "aistack bench allreduce",
    ):
        assert expected in paths


def test_no_usage_line_has_braces() -> None:
    bad = [
        cmd.get_usage(ctx)
        for cmd, ctx in _commands()
        if "{" in cmd.get_usage(ctx) or "}" in cmd.get_usage(ctx)
    ]
    assert bad == []


def test_every_argument_has_an_uppercase_name_and_every_command_the_shared_class() -> None:
    lower, plain_class = [], []
    for cmd, ctx in _commands():
        if hasattr(cmd, "list_commands"):
            continue
        if not isinstance(cmd, _Command):
            plain_class.append(ctx.command_path)
        for p in cmd.params:
            if p.param_type_name == "argument":
                name = p.metavar or p.name
                if name != name.upper():
                    lower.append(f"{ctx.command_path}: {name}")
    assert lower == []
    assert plain_class == []


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["serve", "deploy", "--help"], "Usage: aistack serve deploy [OPTIONS] MODEL"),
        (["cancel", "--help"], "Usage: aistack cancel [OPTIONS] JOB_ID..."),
        (["submit", "--help"], "Usage: aistack submit [OPTIONS] [FILE]"),
        (["models", "alias", "--help"], "Usage: aistack models alias [OPTIONS] NAME ALIAS"),
    ],
)
def test_help_prints_the_plain_usage_line(args: list[str], usage: str) -> None:
    r = CliRunner().invoke(app, args, prog_name="aistack", env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert usage in r.output


def test_a_missing_argument_is_named_in_uppercase() -> None:
    # (one error line with the usage in its hint, no longer typer's usage panel: see
    # test_cli_usage_errors.py)
    r = CliRunner().invoke(app, ["serve", "status"], prog_name="aistack")
    assert r.exit_code == 2
    assert r.stderr == (
        "error: Missing argument 'NAME' (usage: aistack serve status [OPTIONS] NAME; see "
        "`aistack serve status --help`)\n"
    )
