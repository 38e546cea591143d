"""Text from users, jobs and the server is printed as it is, never read as rich markup.

The CLI prints through rich, which reads ``[...]`` as markup: a job name, pending or failure
reason, event message, dataset message, file name, model or service name, path or URL with
``[/]`` crashed the command (MarkupError), ``[bold]x[/bold]`` came out as ``x``, a ``[link=...]``
became a hyperlink; an emoji code such as ``:fire:`` came out as an emoji."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app, main
from aistack.client import Client
from aistack.errors import ConflictError, NotFoundError

runner = CliRunner()

HOSTILE = [
    "oops [/] here",
    "[bold]x[/bold]",
    "[link=http://e]y[/link]",
    "copy failed [Errno 2]",
    "[red]unclosed",
    "hot :fire: job",
    "ends in C:\\dir\\",
]
NOW = dt.datetime.now(dt.UTC).isoformat()


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no table cell is folded: each text is found whole in the output."""
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(jobs_cli.console, "_width", 1000)
    monkeypatch.setattr(jobs_cli.err_console, "_width", 1000)


def _ok(res: Any, *texts: str, code: int = 0) -> str:
    assert res.exit_code == code, (res.exception, res.output)
    out = " ".join(res.output.split())  # (a table title wraps at the table's width)
    for text in texts:
        assert " ".join(text.split()) in out, (text, res.output)
    return out


# -- esc / the consoles -------------------------------------------------------------------------


@pytest.mark.parametrize("text", [*HOSTILE, "plain text", "a\\\\", "\\[bold]", "x\\"])
@pytest.mark.parametrize("after", ["", " more", "[/red] tail"])
def test_esc_prints_the_text_whatever_follows(
    text: str, after: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from aistack.cli._common import esc, make_console

    con = make_console()
    con.print(f"[red]{esc(text)}{after}" + ("" if after.startswith("[/red]") else "[/red]"))
    assert capsys.readouterr().out == text + after.replace("[/red]", "") + "\n"


def test_esc_leaves_text_without_brackets_or_backslashes_unchanged() -> None:
    from aistack.cli._common import esc

    for text in ("plain", "job 7f3a: exit 1 (OOM)", "a → b", "x:y:z"):
        assert esc(text) == text


# -- jobs, events, status, cluster, cancel, wait, logs ------------------------------------------


def _job(i: int, text: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"job-{i}",
        "name": text,
        "project": text,
        "state": state,
        "resources": {"gpus": 1, "cpus": 2, "nodes": 1},
        "submitted_at": NOW,
        "pending_reason": None,
        "estimated_start": None,
        "exit_code": None,
        "failure_reason": None,
        "stop_reason": None,
        "devices": {},
        **extra,
    }


class FakeClient:
    """What the server answers, with hostile text in every free-text field."""

    url = "http://127.0.0.1:8765"

    def __init__(self, text: str) -> None:
        self.text = text

    # the SDK's own paging (`aistack status` reads through it) over list_jobs
    iter_jobs = Client.iter_jobs
    _iter_jobs = Client._iter_jobs

    def list_jobs(self, **_kw: Any) -> list[dict[str, Any]]:
        t = self.text
        return [
            _job(1, t, "QUEUED", pending_reason=f"waiting: {t}"),
            _job(2, t, "FAILED", exit_code=1, failure_reason=f"failed: {t}"),
            _job(3, t, "RUNNING", stop_reason=f"stopped: {t}"),
            _job(4, t, "RUNNING", devices={t: {"gpus": [0], "cpus": [1]}}),
            _job(5, t, "SOMETHING_NEW"),  # a state without a style: was "[]X[/]", a crash
        ]

    def events(self, _job_id: str) -> list[dict[str, Any]]:
        return [{"t": NOW, "kind": "failed", "message": f"event: {self.text}"}]

    def health(self) -> dict[str, Any]:
        return {"status": self.text, "version": self.text, "executor": "local", "uptime_s": 5}

    def cluster(self) -> dict[str, Any]:
        t = self.text
        return {
            "executor": t,
            "scheduler": {"policy": t, "last_pass_ms": 1},
            "totals": {"gpus": 1, "gpus_allocated": 1, "cpus": 8, "cpus_allocated": 2},
            "nodes": [
                {
                    "name": f"node {t}",
                    "cpus": 8,
                    "cpus_allocated": 2,
                    "cpu_percent": 1.0,
                    "memory_mb": 1024,
                    "memory_used_mb": 512,
                    "cpu_jobs": {"0": f"cpujob {t}"},
                    "gpus": [
                        {
                            "index": 0,
                            "name": f"gpu {t}",
                            "memory_mb": 1024,
                            "job": f"gpujob {t}",
                            "util_percent": 3.0,
                        }
                    ],
                }
            ],
        }

    def cancel(self, job_id: str) -> dict[str, Any]:
        if job_id == "missing":
            raise NotFoundError(f"job {self.text} not found", hint=f"list {self.text}")
        return {"id": job_id, "state": f"CANCELLED {self.text}"}

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        return _job(9, self.text, "FAILED", exit_code=3, failure_reason=f"why: {self.text}")

    def logs(self, _job_id: str, offset: int = 0, attempt: Any = None) -> dict[str, Any]:
        text = f"log line {self.text}\n"
        return {"text": text if offset == 0 else "", "next_offset": len(text)}


@pytest.fixture(params=HOSTILE)
def fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    c = FakeClient(request.param)
    monkeypatch.setattr(jobs_cli, "client", lambda: c)
    return c


def test_jobs_table(fake: FakeClient) -> None:
    t = fake.text
    out = _ok(
        runner.invoke(app, ["jobs", "--all"]),
        f"waiting: {t}",
        f"exit code 1; failed: {t}",
        f"stopped: {t}",
        f"{t}: GPU ids 0 and CPU cores 1",
        "SOMETHING_NEW",
    )
    assert out.count(t) >= 10  # name and project of each job too


def test_events(fake: FakeClient) -> None:
    _ok(runner.invoke(app, ["events", "job-1"]), f"event: {fake.text}")


def test_status(fake: FakeClient) -> None:
    _ok(runner.invoke(app, ["status"]), f": {fake.text} (version {fake.text},")


def test_cluster(fake: FakeClient) -> None:
    t = fake.text
    _ok(
        runner.invoke(app, ["cluster"]),
        f"cluster ({t} executor, policy {t})",
        f"node {t}",
        f"cpujob {t}",
        f"gpu {t}",
        f"gpujob {t}",
    )


def test_cancel(fake: FakeClient) -> None:
    t = fake.text
    res = runner.invoke(app, ["cancel", "job-1", "missing"])
    _ok(res, f"job-1: CANCELLED {t}", f"missing: job {t} not found (list {t})", code=2)


def test_wait(fake: FakeClient) -> None:
    res = runner.invoke(app, ["wait", "job-9"])
    _ok(res, f"job job-9 FAILED exit code 3 (why: {fake.text})", code=1)


def test_logs(fake: FakeClient) -> None:
    _ok(runner.invoke(app, ["logs", "job-1"]), f"log line {fake.text}")


# -- the error line (cli.main) ------------------------------------------------------------------


def test_an_error_message_and_hint_are_printed_as_they_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Refusing:
        def list_jobs(self, **_kw: Any) -> Any:
            raise ConflictError(
                "refused [/] because [bold]x[/bold] :fire:", hint="try [link=http://e]y[/link]"
            )

    monkeypatch.setattr(jobs_cli, "client", Refusing)
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["aistack", "jobs"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    assert capsys.readouterr().err == (
        "error: refused [/] because [bold]x[/bold] :fire: (try [link=http://e]y[/link])\n"
    )


# -- projects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_projects(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.cli import projects

    row = {"name": text, "gpu_quota": 2, "share": 1.0, "monthly_budget_usd": None}

    class C:
        def projects(self) -> list[dict[str, Any]]:
            return [row]

        def set_project(self, _name: str, **_kw: Any) -> dict[str, Any]:
            return row

    monkeypatch.setattr(projects, "client", C)
    _ok(runner.invoke(app, ["projects", "ls"]), text)
    _ok(runner.invoke(app, ["projects", "set", "p"]), f"project {text}: quota 2 GPUs")


# -- data --------------------------------------------------------------------------------------


def test_data_messages_file_names_and_paths(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    names = ["[bold]x[bold].txt", "copy [Errno 2].txt", "[red]y.txt", ":fire:.txt"]
    (src / "plain.txt").write_text("p")
    message = "; ".join(HOSTILE)
    _ok(runner.invoke(app, ["data", "add", "ds", str(src), "-m", message]))
    for n in names:
        (src / n).write_text(n)
    _ok(runner.invoke(app, ["data", "add", "ds", str(src), "-m", message]))
    _ok(runner.invoke(app, ["data", "log", "ds"]), message)
    _ok(runner.invoke(app, ["data", "diff", "ds@v1", "ds@v2"]), *(f"+ {n}" for n in names))
    dest = home / "out [bold]d [Errno 2] :fire:"
    dest.mkdir()
    _ok(runner.invoke(app, ["data", "get", "ds@v2", str(dest)]), f"→ {dest}:")


# -- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_models_ls_and_show(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.cli import models

    monkeypatch.setattr(models, "_uri", lambda uri: "http://127.0.0.1:1/mlflow")
    model = {
        "name": f"m {text}",
        "latest_version": 2,
        "aliases": {f"alias {text}": 2},
        "updated_ms": 1_700_000_000_000,
    }
    monkeypatch.setattr(models, "_list_models", lambda _uri: [model])
    shown = {
        "name": f"m {text}",
        "versions": [
            {
                "version": 2,
                "aliases": [f"alias {text}"],
                "run_id": f"run {text}",
                "tags": {"aistack.job_id": f"job {text}"},
                "source": f"source {text}",
                "created_ms": 1_700_000_000_000,
            }
        ],
    }
    monkeypatch.setattr("aistack.mlops.registry.show_model", lambda *_a, **_kw: shown)
    _ok(runner.invoke(app, ["models", "ls"]), f"m {text}", f"alias {text}→v2")
    _ok(
        runner.invoke(app, ["models", "show", "m"]),
        f"m {text}: 1 version",
        f"alias {text}",
        f"run {text}",
        f"job {text}",
        f"source {text}",
    )


# -- serve -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_serve_ls_and_status(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = {
        "name": f"svc {text}",
        "model_uri": f"models:/{text}",
        "status": f"status {text}",
        "url": f"http://h/{text}",
        "ready_replicas": 1,
        "desired_replicas": 1,
        "min_replicas": 1,
        "max_replicas": 2,
        "metrics": {"qps": 1.0},
        "replicas": [
            {
                "id": f"r1 {text}",
                "state": f"state {text}",
                "model": f"model {text}",
                "url": f"http://r/{text}",
                "reason": f"reason {text}",
            }
        ],
        "failed": f"failed {text}",
        "rollout": {"from": "a", "to": "b", "state": "running", "message": f"ro {text}"},
        "autoscaler": {
            "last": {"reason": f"auto {text}"},
            "decisions": [{"time": NOW, "action": "up", "reason": f"decided {text}"}],
        },
    }
    monkeypatch.setattr("aistack.serving.manager.list_services", lambda: [svc])
    monkeypatch.setattr("aistack.serving.manager.status", lambda _name: svc)
    _ok(
        runner.invoke(app, ["serve", "ls"]),
        f"svc {text}",
        f"models:/{text}",
        f"status {text}",
        f"http://h/{text}",
    )
    _ok(
        runner.invoke(app, ["serve", "status", "svc"]),
        f"svc {text}  status {text}  model models:/{text}  url http://h/{text}",
        f"r1 {text}",
        f"state {text}",
        f"model {text}",
        f"http://r/{text}",
        f"reason {text}",
        f"failed: failed {text} (",
        f"(ro {text})",
        f"autoscaler now: auto {text}",
        f"decided {text}",
    )


# -- sim ---------------------------------------------------------------------------------------


def test_sim_run_and_whatif_name_a_history_file_with_brackets(tmp_path: Path) -> None:
    folder = tmp_path / "h [bold]x [red]y :fire:"
    folder.mkdir()
    history = folder / "jobs [Errno 2].json"
    rows = [
        {
            "id": f"j{i}",
            "state": "SUCCEEDED",
            "submitted_at": f"2026-01-01T00:{i:02d}:00Z",
            "started_at": f"2026-01-01T00:{i + 1:02d}:00Z",
            "finished_at": f"2026-01-01T00:{i + 2:02d}:00Z",
            "resources": {"gpus": 1, "cpus": 1},
        }
        for i in range(3)
    ]
    history.write_text(json.dumps(rows))
    run = ["sim", "run", "--history", str(history), "--nodes", "1", "--policy", "fifo"]
    _ok(runner.invoke(app, run), f"{history}: 3 jobs on 1×8 GPUs")
    whatif = ["sim", "whatif", "--history", str(history), "--nodes", "1", "--gpus-delta", "8"]
    _ok(runner.invoke(app, whatif), f"{history}: 3 GPU jobs, policy default")


# -- webdata -----------------------------------------------------------------------------------


def test_webdata_extract_names_its_output_as_it_is(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text(
        "<html><body><article><p>" + "Some real sentences of text here. " * 20 + "</p>"
        "</article></body></html>"
    )
    out = tmp_path / "o [bold]x [i]y :fire:"
    out.mkdir()
    target = out / "t [Errno 2].jsonl"
    res = runner.invoke(
        app, ["webdata", "extract", str(page), "--mode", "fast", "--out", str(target)]
    )
    _ok(res, f"→ {target}")
