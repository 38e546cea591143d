"""Golden files for the planner's text reports (regenerate: AISTACK_UPDATE_GOLDEN=1 pytest ...)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from aistack.planning.catalog import load_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.report import render_serve, render_tco, render_train, render_usage
from aistack.planning.tco import plan_tco
from aistack.planning.training import plan_training
from aistack.planning.usage import AllocationRecord, price_usage

GOLDEN = Path(__file__).resolve().parent / "golden"
CAT = load_catalog(include_user=False)
UTC = dt.UTC


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AISTACK_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}; run with AISTACK_UPDATE_GOLDEN=1"
    assert text == path.read_text()
    assert "nan" not in text.lower().replace("financ", "")


def test_golden_train() -> None:
    p = plan_training(
        params=70e9,
        tokens=2e12,
        gpu="H100",
        days=30,
        seq_len=8192,
        layers=80,
        hidden=8192,
        catalog=CAT,
    )
    check("train_70b_h100_30d.txt", render_train(p))


def test_golden_serve() -> None:
    p = plan_serving(
        params=70e9,
        gpu="H200",
        layers=80,
        hidden=8192,
        kv_heads=8,
        context=8192,
        concurrency=32,
        target_tokens_per_s=10_000,
        catalog=CAT,
    )
    check("serve_70b_h200.txt", render_serve(p))


def test_golden_tco() -> None:
    r = plan_tco(
        gpus=16,
        gpu="H100",
        instance="p5.48xlarge",
        server="hgx-h100-oem",
        utilization=0.63,
        horizon_months=36,
        catalog=CAT,
    )
    check("tco_16xh100_63pct.txt", render_tco(r))


def test_golden_usage() -> None:
    now = dt.datetime(2026, 11, 28, tzinfo=UTC)
    recs = []
    for d in range(30):
        s = now - dt.timedelta(days=30 - d)
        recs.append(
            AllocationRecord(
                f"llm-{d}",
                "llm",
                "ann",
                "gpu-1",
                8,
                "NVIDIA H100 80GB HBM3",
                64,
                s,
                s + dt.timedelta(hours=18),
                74.0,
                35.0,
            )
        )
        recs.append(
            AllocationRecord(
                f"cv-{d}",
                "vision",
                "bo",
                "gpu-2",
                4,
                "NVIDIA H100 80GB HBM3",
                32,
                s,
                s + dt.timedelta(hours=12),
                None,
                20.0,
            )
        )
        recs.append(
            AllocationRecord(
                f"etl-{d}",
                "data",
                "cy",
                "cpu-1",
                0,
                None,
                32,
                s,
                s + dt.timedelta(hours=6),
                None,
                80.0,
            )
        )
    r = price_usage(
        recs,
        now=now,
        since=now - dt.timedelta(days=30),
        budgets={"llm": 60_000, "vision": 10_000, "data": 500},
        catalog=CAT,
    )
    check("usage_30d.txt", render_usage(r, top_jobs=5))


@pytest.mark.parametrize(
    "name",
    ["train_70b_h100_30d.txt", "serve_70b_h200.txt", "tco_16xh100_63pct.txt", "usage_30d.txt"],
)
def test_golden_lines_have_units(name: str) -> None:
    text = (GOLDEN / name).read_text()
    assert any(u in text for u in ("GB", "GPU-h", "$", "tokens/s"))
