"""Catalog files written by the planning tests: a YAML text loaded as the only catalog file
(``load_text``, ``refused_text``) and one accelerator entry (``accelerator``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.planning.catalog import Catalog, load_catalog


def load_text(tmp_path: Path, text: str) -> Catalog:
    """The catalog of one file, ``tmp_path/mine.yaml`` holding ``text`` (no user files)."""
    p = tmp_path / "mine.yaml"
    p.write_text(text, encoding="utf-8")
    return load_catalog([p], include_user=False)


def refused_text(tmp_path: Path, text: str) -> ValidationError:
    """The error loading ``text`` as the catalog file raises (it must raise one)."""
    with pytest.raises(ValidationError) as ei:
        load_text(tmp_path, text)
    return ei.value


def accelerator(name: str, interconnect: str, specs: dict[str, object]) -> str:
    """An ``accelerators:`` section of one entry with these figures."""
    return (
        f"accelerators:\n  - {{name: {name}, vendor: nvidia, generation: hopper, "
        + ", ".join(f"{k}: {v}" for k, v in specs.items())
        + f", interconnect: {interconnect}, source: x, as_of: 2025-01-01}}\n"
    )
