"""`aistack plan train --params -5`: a negative count is "must be a positive number", as 0 is,
not "cannot read '-5' as a number" (it is one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("--params", ["--params", "-5", "--tokens", "1T"]),
        ("--tokens", ["--params", "7B", "--tokens", "-1T"]),
        ("--batch-tokens", ["--params", "7B", "--tokens", "1T", "--batch-tokens", "-4e6"]),
    ],
)
def test_negative_count_says_positive(option: str, args: list[str], aistack_home: Path) -> None:
    res = CliRunner().invoke(plan_app, ["train", *args, "--gpu", "H100", "--gpus", "8"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert str(res.exception).startswith(f"{option}: must be a positive number, got -")
    assert "cannot read" not in str(res.exception)


def test_text_is_still_unreadable(aistack_home: Path) -> None:
    res = CliRunner().invoke(
        plan_app, ["train", "--params", "abc", "--tokens", "1T", "--gpu", "H100"]
    )
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception).startswith("--params: cannot read 'abc' as a number")
