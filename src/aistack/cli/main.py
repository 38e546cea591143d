"""Entry point: ``aistack``. Sub-groups live in their own modules and are added here."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from aistack.errors import AistackError

app = typer.Typer(
    name="aistack",
    help="aistack: the AI infrastructure stack in one pip install.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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


def main() -> None:
    try:
        app()
    except AistackError as exc:
        if os.environ.get("AISTACK_DEBUG") == "1":
            raise
        from aistack.cli._common import print_error

        print_error(exc)  # one logical line: a command quoted in the hint copies whole
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover - use `python -m aistack`
    from aistack.cli.main import main as _main

    _main()
