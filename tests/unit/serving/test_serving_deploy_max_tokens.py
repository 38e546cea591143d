"""`serve deploy --max-tokens` and POST /services' `max_tokens`: the cap on a completion's
max_tokens for a model that does not say its context could be set only through the SDK's
`extra` or a replica option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ValidationError
from aistack.server.schemas.services import ServiceCreate
from aistack.serving import manager

runner = CliRunner()
ARGS = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]


def _spec(name: str) -> dict[str, Any]:
    return json.loads((manager.service_dir(name) / "spec.json").read_text())


def _no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    started: list[Any] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: started.append(a))
    return started


def test_deploy_stores_the_max_tokens_given(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_spawn(monkeypatch)
    runner.invoke(serve_cli.app, [*ARGS, "--max-tokens", "512"])
    assert _spec("w")["max_tokens"] == 512
    runner.invoke(serve_cli.app, [*ARGS[:3], "v", *ARGS[4:]])
    assert _spec("v")["max_tokens"] == 4096  # the spec's default


def test_a_max_tokens_below_a_requests_default_names_the_option(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _no_spawn(monkeypatch)
    res = runner.invoke(serve_cli.app, [*ARGS, "--max-tokens", "8"])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception).startswith("--max-tokens 8:"), str(res.exception)
    assert started == []


def test_the_api_takes_max_tokens() -> None:
    assert ServiceCreate(model="builtin:echo", max_tokens=100).max_tokens == 100
    assert ServiceCreate(model="builtin:echo").max_tokens is None
    with pytest.raises(Exception, match="max_tokens"):
        ServiceCreate(model="builtin:echo", max_tokens=8)
