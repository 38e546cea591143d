"""Entry point: ``aistack``. Sub-groups live in their own modules and are added here."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from aistack.errors import AistackError

# click's exceptions as typer raises them: typer 0.29 has its own copy of click (typer._click),
# older typers use click itself; typer.BadParameter is the one in use either way
_clickexc: Any = importlib.import_module(typer.BadParameter.__module__)


@contextmanager
def _usage_errors(resilient: bool) -> Iterator[None]:
    """A usage error (a value outside an option's min=/max=, one that is not a number, an
    unknown option or command, a missing argument) as the one ``error: MESSAGE (HINT)`` line
    every other aistack error is, exit status 2, instead of typer's boxed usage panel. The
    message is click's (it names the option); the hint says where the help is, and for a
    missing argument gives the usage line. Help without arguments (no_args_is_help) and shell
    completion (resilient parsing) are left to typer."""
    try:
        yield
    except _clickexc.UsageError as exc:
        if isinstance(exc, getattr(_clickexc, "NoArgsIsHelpError", ())):
            raise
        if resilient:
            raise
        from aistack.cli._common import print_error

        hints = []
        ctx = exc.ctx
        if ctx is not None:
            param = (
                getattr(exc, "param", None) if isinstance(exc, _clickexc.MissingParameter) else None
            )
            if getattr(param, "param_type_name", None) == "argument":
                hints.append(" ".join(ctx.get_usage().split()).replace("Usage:", "usage:", 1))
            hints.append(f"see `{ctx.command_path} {ctx.help_option_names[0]}`")
        message = exc.format_message()
        if hints:
            message = f"{message.rstrip('.')} ({'; '.join(hints)})"
        print_error(_UsageError(message))
        raise typer.Exit(exc.exit_code) from None


class _UsageError(Exception):
    """The text of a usage error, for print_error."""


class _Group(TyperGroup):
    """The ``aistack`` group: every command and sub-group runs inside its ``invoke``, so its
    usage errors all pass through :func:`_usage_errors`."""

    def make_context(
        self,
        info_name: str | None,
        args: Sequence[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        with _usage_errors(bool(extra.get("resilient_parsing"))):
            return super().make_context(info_name, list(args), parent=parent, **extra)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is None:  # (the root, before its --help or a command's is printed)
            from aistack.cli._common import hide_flag_types

            hide_flag_types(self, ctx)
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors(ctx.resilient_parsing):
            return super().invoke(ctx)


app = typer.Typer(
    name="aistack",
    help="aistack: the AI infrastructure stack in one pip install.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Group,
)

# (sub-command name, module under aistack.cli, attribute)
_GROUPS: list[tuple[str, str]] = [
    ("projects", "aistack.cli.projects"),
    ("data", "aistack.cli.data"),
    ("webdata", "aistack.cli.webdata"),
    ("plan", "aistack.cli.plan"),
    ("cost", "aistack.cli.cost"),
    ("sim", "aistack.cli.sim"),
    ("models", "aistack.cli.models"),
    ("serve", "aistack.cli.serve"),
    ("bench", "aistack.cli.bench"),
]

# top-level commands (up, down, submit, jobs, ...) register themselves on `app`
importlib.import_module("aistack.cli.jobs")

for _name, _mod in _GROUPS:
    try:
        _m = importlib.import_module(_mod)
    except ModuleNotFoundError as _exc:
        if _exc.name != _mod:
            raise
        continue
    app.add_typer(_m.app, name=_name)


def _prog_name() -> str:
    """``aistack`` as it was run, for usage lines and hints: the script's name, or ``python -m
    aistack``. (Click guesses it from the ``__main__`` module, which is the host's, e.g. pytest's
    "python -m pytest", when main() is called from Python.)"""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name in ("__main__.py", "main.py", "-c"):
        return "python -m aistack"
    return name


def main() -> None:
    try:
        app(prog_name=_prog_name())
    except AistackError as exc:
        if os.environ.get("AISTACK_DEBUG") == "1":
            raise
        from aistack.cli._common import print_error

        print_error(exc)  # one logical line: a command quoted in the hint copies whole
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover - use `python -m aistack`
    from aistack.cli.main import main as _main

    _main()
