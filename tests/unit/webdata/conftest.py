from __future__ import annotations

from pathlib import Path

import pytest

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"


@pytest.fixture
def warc_data() -> Path:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA} (see shared/data/README.md)")
    return WARC_DATA
