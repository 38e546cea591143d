"""A bad-input audit of the CLI: inputs that crashed with a traceback, were read as something
else (an empty path as the current folder, an empty --policy as the default one, NaN as a
policy bound), lost data (extract --out over its own input) or queued a job forever
(a gpu_type no node has, exactly). Each is now a one-line ValidationError (exit status 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.errors import ValidationError

runner = CliRunner()
TRACE = "job_id,submission_time,duration,num_gpu\n1,0,100,1\n2,10,50,2\n"
HTML = "<html><body><p>Hello world, this is the text of the page.</p></body></html>"


def _error(res: Any) -> str:
    assert isinstance(res.exception, ValidationError), (res.exception, res.output)
    msg = str(res.exception)
    assert "\n" not in msg
    return msg


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)
    return api


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    p = tmp_path / "trace.csv"
    p.write_text(TRACE)
    return p


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["data", "add", "ds", ""], "PATH"),
        (["webdata", "extract", ""], "PATH"),
        (["webdata", "crawl", "http://127.0.0.1:1/", "--out", ""], "--out"),
        (["sim", "run", "--trace", "", "--nodes", "1"], "--trace"),
        (["cost", "report", "--records", ""], "--records"),
        (["plan", "tco", "--gpus", "8", "--gpu", "H100", "--chart", ""], "--chart"),
    ],
)
def test_an_empty_path_is_an_error_not_the_current_folder(
    home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], name: str
) -> None:
    # `data add ds ""` stored the whole current folder, `data get REF ""` and `crawl --out ""`
    # wrote into it: typer reads "" (an unset shell variable) as Path("") == Path(".")
    cwd = home / "cwd"
    cwd.mkdir()
    (cwd / "notes.txt").write_text("mine")
    (cwd / "page.html").write_text(HTML)
    monkeypatch.chdir(cwd)
    msg = _error(runner.invoke(app, args))
    assert msg.startswith(f"{name}: the path is empty")
    assert sorted(os.listdir(cwd)) == ["notes.txt", "page.html"]
    res = runner.invoke(app, ["data", "ls", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []


def test_data_get_into_an_empty_dest_is_an_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    res = runner.invoke(app, ["data", "add", "ds", str(src), "--json"])  # a path still works
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["version"] == 1
    cwd = home / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    msg = _error(runner.invoke(app, ["data", "get", "ds@v1", ""]))
    assert msg.startswith("DEST: the path is empty")
    assert os.listdir(cwd) == []  # was: a.txt written into the current folder


def test_extract_refuses_to_write_over_an_input_file(tmp_path: Path) -> None:
    page = tmp_path / "site" / "page.html"
    page.parent.mkdir()
    page.write_text(HTML)
    for inputs in ([str(page)], [str(page.parent)]):  # named, or inside a named folder
        msg = _error(runner.invoke(app, ["webdata", "extract", *inputs, "--out", str(page)]))
        assert "is one of the input files" in msg and str(page) in msg
        assert page.read_text() == HTML  # was replaced by the JSON lines
    out = tmp_path / "texts.jsonl"
    res = runner.invoke(app, ["webdata", "extract", str(page.parent), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["path"] == str(page)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--delay", "inf"], "--delay: must be a finite number of seconds >= 0, got inf"),
        (["--delay", "1e999"], "--delay: must be a finite number of seconds >= 0, got inf"),
    ],
)
def test_crawl_infinite_delay_is_an_error(tmp_path: Path, extra: list[str], expected: str) -> None:
    # was OverflowError from time.sleep(inf) after the first request
    res = runner.invoke(
        app, ["webdata", "crawl", "http://127.0.0.1:1/", "--out", str(tmp_path / "c"), *extra]
    )
    assert _error(res).startswith(expected)
    assert not (tmp_path / "c").exists()


def test_crawl_malformed_seed_is_an_error(tmp_path: Path) -> None:
    # was ValueError('Invalid IPv6 URL') from urlsplit, with a traceback
    res = runner.invoke(app, ["webdata", "crawl", "http://[::1/", "--out", str(tmp_path / "c")])
    msg = _error(res)
    assert msg.startswith("crawl: seed 'http://[::1/' is not a valid URL (Invalid IPv6 URL)")


@pytest.mark.parametrize("since", ["99999999999d", "1000000d", "999999999h"])
def test_cost_since_before_year_one_is_an_error(tmp_path: Path, since: str) -> None:
    # was OverflowError (timedelta / datetime out of range) with a traceback
    recs = tmp_path / "recs.json"
    recs.write_text("[]")
    msg = _error(runner.invoke(app, ["cost", "report", "--records", str(recs), "--since", since]))
    assert msg.startswith(f"--since: {since!r} reaches back before the year 1")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", "--policy: unknown policy (none)"),
        (",", "--policy: unknown policy (none)"),
        ("fifo,easy", "--policy: whatif compares two cluster sizes under one policy"),
    ],
)
def test_whatif_policy_must_name_one_policy(trace: Path, policy: str, expected: str) -> None:
    # "" ran the default policy under a table titled "policy " (none named)
    args = ["sim", "whatif", "--gpus-delta", "8", "--trace", str(trace), "--nodes", "1"]
    assert _error(runner.invoke(app, [*args, "--policy", policy])).startswith(expected)
    res = runner.invoke(app, [*args, "--policy", " fifo ", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["policy"] == "fifo"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_sim_option_refuses_non_finite_numbers(trace: Path, value: str) -> None:
    # json.loads reads NaN as a float: max_wait_factor=NaN compared false everywhere, so the
    # run silently had no wait bound
    args = ["sim", "run", "--trace", str(trace), "--nodes", "1", "--policy", "default"]
    res = runner.invoke(app, [*args, "--option", f"default.max_wait_factor={value}"])
    assert _error(res).startswith(
        f"--option: 'default.max_wait_factor={value}': {value} is not a finite number"
    )
    res = runner.invoke(app, [*args, "--option", "default.max_wait_factor=null", "--json"])
    assert res.exit_code == 0, res.output


def test_plan_hybrid_infinite_step_names_the_option(trace: Path) -> None:
    # was "step_s: must be a positive number of seconds, got inf" (an internal name)
    args = ["plan", "hybrid", "--trace", str(trace), "--gpu", "H100", "--step-minutes", "inf"]
    msg = _error(runner.invoke(app, args))
    assert msg.startswith("--step-minutes: must be a positive number of minutes, got inf")


def test_plan_hybrid_records_errors_say_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    msg = _error(runner.invoke(app, ["plan", "hybrid", "--records", str(missing)]))
    assert msg == (
        f"--records: cannot read {str(missing)!r}: No such file or directory "
        "(pass an existing JSON file)"
    )


def test_plan_tco_months_is_bounded() -> None:
    # 10**8 months never finished (a table of every month); 5000 printed 416 years of costs
    args = ["plan", "tco", "--gpus", "8", "--gpu", "H100", "--json"]
    for months in ("5000", "100000000"):
        msg = _error(runner.invoke(app, [*args, "--months", months]))
        assert msg.startswith(f"--months {months}: at most 1200 months (100 years)")
    res = runner.invoke(app, [*args, "--months", "1200"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["horizon_months"] == 1200


def test_plan_catalog_empty_today_is_not_today() -> None:
    msg = _error(runner.invoke(app, ["plan", "catalog", "--today", ""]))
    assert msg == "--today: not a date: '' (YYYY-MM-DD)"


def test_data_get_copy_and_hardlink_contradict(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    assert runner.invoke(app, ["data", "add", "ds", str(src)]).exit_code == 0
    dest = home / "dest"
    args = ["data", "get", "ds@v1", str(dest), "--copy", "--link", "hardlink"]
    msg = _error(runner.invoke(app, args))
    assert msg.startswith("--copy and --link hardlink contradict each other")
    assert not dest.exists()  # was: silently copied


def test_submit_empty_workdir_is_an_error(cli) -> None:  # type: ignore[no-untyped-def]
    # "" was dropped, so the job ran in the server's folder rather than the one asked for
    msg = _error(runner.invoke(app, ["submit", "--cmd", "true", "--workdir", ""]))
    assert msg.startswith("--workdir: the folder is empty")
    assert cli.client.list_jobs(all=True) == []


@pytest.mark.parametrize(
    ("gpu_type", "expected", "hint"),
    [
        # (said as the option given: it was "resources.gpu_type: ...")
        ("", "--gpu-type '' is empty: leave --gpu-type out", None),
        ("  ", "--gpu-type '  ' is empty", None),
        ("fake", "--gpu-type: no node has a 'fake' GPU (available: 'FakeGPU')", "FakeGPU"),
        ("-", "--gpu-type '-' has no letter or digit", None),
    ],
)
def test_submit_gpu_type_must_be_one_the_scheduler_places(  # type: ignore[no-untyped-def]
    cli, gpu_type: str, expected: str, hint: str | None
) -> None:
    # these were accepted (an empty type skipped the check; a part of a word of the type, in
    # any case, passed it) and then queued forever: the scheduler matches whole words
    args = ["submit", "--cmd", "true", "--gpus", "1", "--gpu-type", gpu_type]
    msg = _error(runner.invoke(app, args))
    assert expected in msg
    if hint:
        assert msg.endswith(f"e.g. --gpu-type {hint!r})")
    assert cli.client.list_jobs(all=True) == []
    res = runner.invoke(app, [*args[:-1], "FakeGPU", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["resources"]["gpu_type"] == "FakeGPU"


def test_cancel_errors_are_error_lines(cli) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(app, ["cancel", "nosuch"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: nosuch: job 'nosuch' not found")


def test_a_policy_named_twice_runs_once(trace: Path) -> None:
    # fifo,fifo simulated fifo twice and listed it twice
    args = ["sim", "run", "--trace", str(trace), "--nodes", "1", "--json"]
    res = runner.invoke(app, [*args, "--policy", "fifo, easy,fifo"])
    assert res.exit_code == 0, res.output
    assert [r["policy"] for r in json.loads(res.stdout)] == ["fifo", "easy"]


def test_jobs_before_an_empty_id_is_an_error(cli) -> None:  # type: ignore[no-untyped-def]
    # "" (an unset shell variable) was ignored: the first page came back as if it were the next
    msg = _error(runner.invoke(app, ["jobs", "--all", "--before", ""]))
    assert msg.startswith("--before: the job id is empty")
