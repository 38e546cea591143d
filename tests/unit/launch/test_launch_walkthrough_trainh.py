"""First-user walkthrough of `aistack bench allreduce`: one process is refused before anything
runs (it measured "0.000 GB/s" bus bandwidth and stored it for the planner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.launch.allreduce import check_run


@pytest.mark.parametrize("backend", ["gloo", "nccl"])
def test_one_process_is_refused(backend: str) -> None:
    with pytest.raises(ValidationError) as ei:
        check_run(backend=backend, nprocs=1, sizes=[1024], iters=2, warmup=0)
    assert ei.value.message == (
        "nprocs: an all-reduce needs at least 2 processes, got 1 (one process sends nothing: "
        "its bus bandwidth is 0 GB/s by definition)"
    )
    assert ei.value.hint == "use --nprocs 2 or more"


def test_cli_refuses_one_process_and_stores_nothing(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import aistack.launch.allreduce as ar
    from aistack.cli.bench import app

    def spawn(*_a: object, **_k: object) -> None:
        raise AssertionError("a worker was started")

    monkeypatch.setattr(ar, "run_gang", spawn)
    res = CliRunner().invoke(app, ["allreduce", "--nprocs", "1", "--sizes", "1K"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert res.exception.message.startswith("nprocs: an all-reduce needs at least 2 processes")
    assert not (aistack_home / "bench" / "allreduce-gloo-1.json").exists()
