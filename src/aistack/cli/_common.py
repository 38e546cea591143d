"""Helpers shared by the CLI modules: JSON output, the console, the client, the command class."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import pathlib
import re
import sys
import types
import typing
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from aistack.errors import NotFoundError, ValidationError
from aistack.errors import fmt_number as fmt_number  # (moved to aistack.errors; the CLI's name)


def make_console(stderr: bool = False, *, markup: bool = True) -> Console:
    """A rich console for the CLI: emoji codes off, so a ``:fire:`` in a job name, an event
    message or a log line is printed as it is, not as an emoji (no aistack text uses them).
    ``markup=False``: strings it prints (Table cells and titles too) are all taken as text."""
    return Console(stderr=stderr, emoji=False, markup=markup)


console = make_console()
err_console = make_console(stderr=True)


def esc(value: object) -> str:
    """``str(value)`` as rich markup that prints exactly that text: for a name, reason, message,
    path or URL (from users, jobs or the server) put into a string that rich reads as markup
    (``console.print``, a Table cell or title, a Tree label, a progress description). Rich
    reads ``[...]`` in it as markup: ``[/]`` crashed the command (MarkupError), ``[bold]`` was
    silently dropped, ``[link=...]`` made a hyperlink.

    Trailing backslashes are written so that they print as they are whatever follows (rich's
    ``escape`` doubles one, which prints two when plain text follows): doubled, then closed by
    an empty span."""
    text = str(value)
    body = text.rstrip("\\")
    if len(body) == len(text):
        return escape(text)
    return escape(body) + "\\" * (2 * (len(text) - len(body))) + "[dim][/dim]"


_BRACED = re.compile(r"\{([^{}]+)\}((?:\.\.\.)?)")


class _Command(TyperCommand):
    """Usage lines with arguments as ``REF TAG`` / ``PATHS...``: typer writes a required
    argument as ``{name}`` (``{name}...`` for several), which reads like shell brace syntax.
    Every ``aistack`` command uses this class (``@app.command(cls=_Command)``) and gives its
    arguments uppercase metavars (``typer.Argument(..., metavar="NAME")``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = _reflowed(self.help)
        for param in self.params:
            if _is_path(getattr(getattr(param, "type_descriptor", None), "annotation", None)):
                _refuse_empty_path(param)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [m[1] + m[2] if (m := _BRACED.fullmatch(p)) else p for p in pieces]


def hide_flag_types(root: Any, ctx: Any) -> None:
    """No ``<bool>`` after a flag in help: typer 0.29's rich help writes the type of every
    option, a flag's too (``--detach -d <bool>``, ``--help <bool>``), which reads as if the
    flag took a value. A parameter's ``metavar`` (public click API, what
    ``typer.Option(metavar=...)`` sets) is shown instead of its type when it is set, so each
    flag of ``root``'s commands and sub-groups, their ``--help`` included, gets an empty one
    (click never shows a flag's metavar elsewhere: usage lines and errors name the flag)."""
    todo = [root]
    while todo:
        cmd = todo.pop()
        params = list(getattr(cmd, "params", []))
        with contextlib.suppress(Exception):  # (an older typer's help option needs more)
            params.append(cmd.get_help_option(ctx))
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        todo.extend(getattr(cmd, "commands", {}).values())


def _reflowed(doc: str) -> str:
    """A command's docstring as help: each paragraph's lines joined, for the terminal to wrap.
    Typer's rich help keeps single line breaks, so the source's ~95-column lines printed cut
    in mid-sentence ("with job ids, show" / "each in detail") in the `aistack --help` list
    and folded twice at 80 columns. A paragraph that starts with ``\b`` keeps its lines."""
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def _is_path(annotation: Any) -> bool:
    """``Path``, ``Path | None``, ``list[Path]``: a parameter that typer turns into a Path."""
    if isinstance(annotation, type):
        return issubclass(annotation, pathlib.PurePath)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        return any(_is_path(a) for a in typing.get_args(annotation))
    return False


def _refuse_empty_path(param: Any) -> None:
    """An empty path argument ("" from an unset shell variable) is an error: typer makes it
    Path(""), which is the current folder, so `data add NAME ""` stored the whole folder and
    `data get REF ""` or `webdata crawl --out ""` wrote into it."""
    from aistack.errors import ValidationError

    process = param.process_value
    name = param.opts[0] if param.param_type_name == "option" else (param.metavar or param.name)

    def process_value(ctx: Any, value: Any) -> Any:
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, str) and v == "" for v in values):
            raise ValidationError(
                f"{name}: the path is empty",
                hint="give a file or folder name (the current folder is .); an unset shell "
                "variable expands to an empty argument",
            )
        return process(ctx, value)

    param.process_value = process_value


def print_error(exc: BaseException) -> None:
    """``error: MESSAGE (HINT)`` on stderr as one logical line: rich inserts no line breaks at
    the terminal width (the terminal wraps it instead), so a command quoted in the hint is
    copied whole, and brackets in it are printed as they are, not read as markup."""
    make_console(stderr=True).print(f"[red]error:[/red] {esc(exc)}", soft_wrap=True)


def read_json_file(path: pathlib.Path, what: str) -> Any:
    """The JSON in ``path`` (a file option named ``what``, e.g. ``--records``), or a
    ValidationError that names the option and says why: unreadable, or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(
            f"{what}: cannot read {str(path)!r}: {exc.strerror}", hint="pass an existing JSON file"
        ) from exc
    except ValueError as exc:
        raise ValidationError(
            f"{what}: {str(path)!r} is not valid JSON: {exc}", hint="export it with --json"
        ) from exc


_FIELD_REF = re.compile(r"`([a-z_]+)`")


def as_options(text: str, options: dict[str, str]) -> str:
    """``text`` with each `field` it names that ``options`` has written as its option."""
    return _FIELD_REF.sub(lambda m: options.get(m[1], m[0]), text)


@contextlib.contextmanager
def options_for(options: dict[str, str]) -> Iterator[None]:
    """A planner's error in this command's words: its "field: " prefix, the `fields` its
    message and hint name and its ``field`` detail become the options (``gpus: must be at most
    1,000,000`` -> ``--gpus: must be at most 1,000,000``)."""
    try:
        yield
    except (ValidationError, NotFoundError) as exc:
        field = str(exc.details.get("field"))
        option = options.get(field)
        message = as_options(exc.message, options)
        if option is not None and message.startswith(f"{field}: "):
            message = f"{option}: {message.removeprefix(f'{field}: ')}"
        hint = as_options(exc.hint, options) if exc.hint else exc.hint
        details = {**exc.details, "field": option} if option else exc.details
        if (message, hint, details) == (exc.message, exc.hint, exc.details):
            raise
        raise type(exc)(message, hint=hint, **details) from None


def notes_as_options(plan: Any, options: dict[str, str]) -> Any:
    """``plan`` (a frozen dataclass with ``notes``) with its notes in the command's words."""
    return dataclasses.replace(plan, notes=[as_options(n, options) for n in plan.notes])


def load_catalog_option(paths: list[pathlib.Path] | None):  # type: ignore[no-untyped-def]
    """The price catalog with the ``--catalog`` files; an error about one of them names the
    option ("--catalog: 'x.yaml' is a folder")."""
    from aistack.planning.catalog import load_catalog

    try:
        return load_catalog([str(p) for p in (paths or [])])
    except (ValidationError, NotFoundError) as exc:  # "catalog file 'x' ...": one of `paths`
        if exc.details.get("field") != "paths" or not exc.message.startswith("catalog file "):
            raise
        message = f"--catalog: {exc.message.removeprefix('catalog file ')}"
        raise type(exc)(message, hint=exc.hint, field="--catalog") from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def client() -> Any:
    from aistack.client import Client

    return Client()


def ago(ts: str | None) -> str:
    if not ts:
        return "-"
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    s = (dt.datetime.now(dt.UTC) - t).total_seconds()
    if s < 0:
        return f"in {fmt_duration(-s)}"
    return f"{fmt_duration(s)} ago"


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
