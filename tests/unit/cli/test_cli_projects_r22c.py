"""`aistack projects set --share` was accepted and did nothing on a server with the default
policy: only the ``fairshare`` policy reads fair-share weights, and nothing said so. The CLI
now says it (stderr) when a weight is set or listed on a server whose policy ignores it; and
--budget says it is a report, not a limit that stops jobs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import projects as projects_cli
from aistack.cli.projects import app

runner = CliRunner()
NOTE = (
    "note: this server schedules with the 'default' policy, which does not use fair-share "
    "weights; they take effect with the fairshare policy (AISTACK_POLICY=fairshare, then "
    "restart the server)"
)


class _Fake:
    def __init__(self, policy: str | None) -> None:
        self.policy = policy
        self.rows: dict[str, dict[str, Any]] = {}

    def set_project(self, name: str, **changes: Any) -> dict[str, Any]:
        p = self.rows.setdefault(
            name, {"name": name, "gpu_quota": None, "monthly_budget_usd": None, "share": 1.0}
        )
        p.update(changes)
        return p

    def projects(self) -> list[dict[str, Any]]:
        return list(self.rows.values())

    def cluster(self) -> dict[str, Any]:
        return {"executor": "local", "nodes": [], "scheduler": {"policy": self.policy}}


def _run(monkeypatch: pytest.MonkeyPatch, fake: _Fake, *args: str) -> Any:
    monkeypatch.setattr(projects_cli, "client", lambda: fake)
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def test_a_share_on_a_server_that_ignores_it_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _Fake("default")
    res = _run(monkeypatch, fake, "set", "llm", "--share", "3", "--json")
    assert json.loads(res.stdout)["share"] == 3  # stdout: the project alone
    assert res.stderr.strip() == NOTE
    res = _run(monkeypatch, fake, "ls")
    assert res.stderr.strip() == NOTE
    # no --share given, or every weight the default: nothing to say
    res = _run(monkeypatch, fake, "set", "llm", "--budget", "5")
    assert res.stderr == ""
    _run(monkeypatch, fake, "set", "llm", "--share", "1")
    assert _run(monkeypatch, fake, "ls").stderr == ""


@pytest.mark.parametrize("policy", ["fairshare", None])
def test_no_note_where_shares_count_or_the_policy_is_unknown(
    monkeypatch: pytest.MonkeyPatch, policy: str | None
) -> None:
    fake = _Fake(policy)
    assert _run(monkeypatch, fake, "set", "llm", "--share", "3").stderr == ""
    assert _run(monkeypatch, fake, "ls").stderr == ""


def test_budget_help_says_it_is_not_enforced() -> None:
    res = runner.invoke(app, ["set", "--help"], terminal_width=200)
    text = " ".join(res.output.replace("│", " ").split())
    assert "jobs are not stopped over it" in text
    assert "used by the fairshare policy only" in text
