"""`aistack models promote|alias|lineage` said the registry's field names where the user had
typed options: "version: must be >= 1", "to: the alias 'v3' is reserved", "require[0]: 'loss<<3'
is not a condition" — the other commands say `--gpus`, `--to`, … Now the CLI names the option
(the registry's own messages, for the SDK and the API, are unchanged)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aistack.cli.models import app
from aistack.errors import ValidationError
from aistack.mlops import registry

_DOWN = "http://127.0.0.1:1"  # refused before the tracking server is asked


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", "m", "--version", "0", "--to", "staging"], "--version: must be >= 1, got 0"),
        (
            ["promote", "m", "--version", "1", "--to", "v3"],
            "--to: the alias 'v3' is reserved: it reads as version 3 (models:/NAME@v3)",
        ),
        (
            ["promote", "m", "--version", "1", "--to", "staging"]
            + ["--require", "loss<3", "--require", "loss<<3"],
            "--require: 'loss<<3' is not a condition",
        ),
        (["alias", "m", "canary", "--version", "-2"], "--version: must be >= 1, got -2"),
        (["lineage", "m", "--version", "0"], "--version: must be >= 1, got 0"),
    ],
)
def test_registry_errors_name_the_options(argv: list[str], message: str) -> None:
    res = CliRunner().invoke(app, [*argv, "--tracking-uri", _DOWN])
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    assert res.exception.message == message
    assert res.exception.details["field"] == message.split(":")[0]


def test_the_sdk_keeps_the_field_names() -> None:
    with pytest.raises(ValidationError) as ei:
        registry.promote("m", 0, "staging", [], tracking_uri=_DOWN)
    assert ei.value.message == "version: must be >= 1, got 0"
