"""`aistack bench allreduce`: options checked before any worker starts; a stored result is
replaced only by a complete, valid run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.bench import app
from aistack.errors import BackendError, ValidationError

runner = CliRunner()
GOOD = {"backend": "gloo", "nprocs": 2, "rows": [{"size_bytes": 1024, "iters": 5}]}


@pytest.fixture
def stored(aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A good stored result, two usable CPUs, and no worker process may start."""
    import aistack.launch.allreduce as ar

    def spawn(*_a: object, **_k: object) -> None:
        raise AssertionError("the benchmark started worker processes")

    monkeypatch.setattr(ar, "run_gang", spawn)
    monkeypatch.setattr(ar, "usable_cpus", lambda: 2, raising=False)
    saved = aistack_home / "bench" / "allreduce-gloo-2.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps(GOOD))
    return saved


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--iters", "-1"], "iters: must be an integer ≥ 1"),
        (["--warmup", "-1"], "warmup: must be an integer ≥ 0"),
        (["--nprocs", "1000"], "nprocs: 1000 gloo processes on 2 usable CPU(s); at most 2"),
        (["--sizes", "1K..1000G"], "sizes: 2 processes each holding 2 buffers"),
    ],
    ids=["iters", "warmup", "nprocs", "sizes"],
)
def test_bad_options_are_refused_before_anything_runs_or_is_written(
    stored: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str
) -> None:
    import types

    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=8 << 30))
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2", *args])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert str(res.exception).startswith(needle), str(res.exception)
    assert json.loads(stored.read_text()) == GOOD
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]


@pytest.mark.parametrize(
    "row",
    [
        {"size_bytes": 1024, "count": 256, "iters": -1, "time_us": -4.0},
        {"size_bytes": 1024, "count": 256, "iters": 3, "time_us": float("nan")},
    ],
)
def test_an_unusable_result_does_not_replace_the_stored_one(
    stored: Path, monkeypatch: pytest.MonkeyPatch, row: dict[str, Any]
) -> None:
    import aistack.launch.allreduce as ar

    bad = {**GOOD, "rows": [{**row, "algbw_gbps": -0.255, "busbw_gbps": -0.255}]}
    monkeypatch.setattr(ar, "run_allreduce", lambda **_k: dict(bad))
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2"])
    assert isinstance(res.exception, BackendError), (res.output, res.exception)
    assert "stored result was kept" in str(res.exception)
    assert json.loads(stored.read_text()) == GOOD


def test_a_valid_result_replaces_the_stored_one_atomically(
    stored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aistack.launch.allreduce as ar

    row = {"size_bytes": 1024, "count": 256, "iters": 2, "time_us": 100.0}
    new = {**GOOD, "rows": [{**row, "algbw_gbps": 0.01, "busbw_gbps": 0.01}]}
    monkeypatch.setattr(ar, "run_allreduce", lambda **_k: dict(new))
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(stored.read_text()) == new
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]  # no temp file left


def test_a_result_path_that_is_a_folder_is_refused_before_the_run(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aistack.launch.allreduce as ar

    def run(**_k: object) -> None:
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(ar, "run_allreduce", run)
    (aistack_home / "bench" / "allreduce-gloo-2.json").mkdir(parents=True)
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert "is a folder" in str(res.exception)
