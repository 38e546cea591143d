"""submit("python train.py") says how to run a command (a str is a spec file's path: it read
"job file ... not found"); promote(require="val_loss<3") takes one condition as a string (the
server refused it with a bare "should be a valid list")."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.client import Client
from aistack.errors import ValidationError


def test_a_command_given_as_the_spec_says_how_to_run_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = Client("http://127.0.0.1:9", "t")
    with pytest.raises(ValidationError) as ei:
        c.submit("python train.py --epochs 3")
    assert "no job spec file" in ei.value.message
    assert "submit({'command': 'python train.py --epochs 3'})" in (ei.value.hint or "")
    c.close()


def test_one_condition_as_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    c = Client("http://127.0.0.1:9", "t")
    sent: dict[str, Any] = {}

    def fake(method: str, path: str, **kw: Any) -> dict[str, Any]:
        sent.update(kw["json"])
        return {}

    monkeypatch.setattr(c, "_obj", fake)
    c.promote("m", 3, "production", require="val_loss<3")
    assert sent["require"] == ["val_loss<3"]
    c.close()


def test_a_mistyped_spec_path_keeps_the_files_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = Client("http://127.0.0.1:9", "t")
    with pytest.raises(Exception) as ei:
        c.submit(str(tmp_path / "my jobs" / "train.yaml"))
    assert "no job spec file" not in str(ei.value)  # not the "pass a command" hint
    c.close()
