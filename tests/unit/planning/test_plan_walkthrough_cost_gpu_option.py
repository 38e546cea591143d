"""`aistack cost report --gpu NAME` (price_usage's ``default_gpu_type``) is checked against the
catalog whether or not a record lacks its GPU type. An unknown name was accepted in silence when
every record named its type, and made every untyped record "unpriced" (at $0) when some did
not, instead of an error that names the option and the known GPUs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.cost import app as cost_app
from aistack.errors import NotFoundError
from aistack.planning.usage import AllocationRecord, price_usage

UTC = dt.UTC
START = dt.datetime(2026, 11, 1, tzinfo=UTC)


def _rec(gpu_type: str | None) -> AllocationRecord:
    return AllocationRecord(
        job_id="j1",
        project="p",
        user="u",
        node="n",
        gpus=8,
        gpu_type=gpu_type,
        cpus=8,
        start=START,
        end=START + dt.timedelta(hours=10),
        gpu_util=50.0,
        cpu_util=10.0,
    )


@pytest.mark.parametrize("gpu_type", ["H100", None])
def test_unknown_default_gpu_type_is_an_error(gpu_type: str | None) -> None:
    with pytest.raises(NotFoundError) as ei:
        price_usage([_rec(gpu_type)], now=START + dt.timedelta(days=1), default_gpu_type="Z9")
    assert "unknown GPU 'Z9'" in ei.value.message
    assert ei.value.details.get("field") == "default_gpu_type"


def test_known_default_gpu_type_prices_untyped_records() -> None:
    rep = price_usage([_rec(None)], now=START + dt.timedelta(days=1), default_gpu_type="h100")
    # 80 GPU-hours at p5.48xlarge's $55.04 / 8 = $6.88 per GPU-hour
    assert rep.total.gpu_hours == pytest.approx(80.0)
    assert rep.total.cost_usd == pytest.approx(80 * 6.88)


def test_cli_names_the_option(tmp_path: Path, aistack_home: Path) -> None:
    f = tmp_path / "usage.json"
    r = _rec("H100")
    f.write_text(
        json.dumps(
            [{**r.to_dict(), "start": r.start.isoformat(), "end": r.end.isoformat()}]  # type: ignore[union-attr]
        )
    )
    res = CliRunner().invoke(
        cost_app, ["report", "--records", str(f), "--gpu", "Z9", "--now", "2026-11-02"]
    )
    assert isinstance(res.exception, NotFoundError), (res.output, res.exception)
    assert str(res.exception).startswith("--gpu: unknown GPU 'Z9'")
