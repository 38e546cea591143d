"""Shared helpers for benchmarks: machine facts, a rich table, and a JSON result file."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _gpus() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return [x.strip() for x in out.stdout.splitlines() if x.strip()]
    except (OSError, subprocess.TimeoutExpired):
        return []


def report(
    name: str,
    title: str,
    columns: list[str],
    rows: list[list[Any]],
    extra: dict[str, Any] | None = None,
    out_dir: Path | None = None,
) -> Path:
    """Print a rich table and write bench/results/<name>.json (or ``out_dir``/<name>.json)
    with the machine it ran on."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[_fmt(v) for v in r])
    Console().print(table)
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    payload = {
        "benchmark": name,
        "title": title,
        "machine": machine_info(),
        "columns": columns,
        "rows": rows,
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    Console().print(f"[dim]wrote {path}[/dim]")
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def quiet_datatrove() -> None:
    """datatrove logs every task at INFO through logging and loguru: warnings only."""
    import logging
    import sys

    logging.getLogger("datatrove").setLevel(logging.WARNING)
    try:
        from loguru import logger
    except ImportError:
        return
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
