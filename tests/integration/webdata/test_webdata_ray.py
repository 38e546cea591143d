"""Ray mode: the same pipeline on a local Ray instance gives the same bytes and counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_ray_matches_local(tmp_path: Path) -> None:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA}")
    ray = pytest.importorskip("ray")
    steps = [
        {"extract": {"mode": "fast"}},
        "language",
        "gopher_quality",
        "fineweb",
        "dedup",
        {"tokenize": {"vocab_size": 600}},
    ]

    def spec(out: Path):  # noqa: ANN202
        return parse_spec(
            {"input": {"paths": [str(WARC_DATA / "samples")]}, "output": str(out), "steps": steps}
        )

    local = run_pipeline(spec(tmp_path / "local"), workers=1)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        remote = run_pipeline(spec(tmp_path / "ray"), workers=2, executor="ray")
    finally:
        ray.shutdown()
    assert remote["run"]["executor"] == "ray"
    assert remote["counts"] == local["counts"]
    for sub in ("corpus", "dataset"):
        names = sorted(p.name for p in (tmp_path / "local" / sub).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "ray" / sub).iterdir())
        for n in names:
            assert (tmp_path / "local" / sub / n).read_bytes() == (
                tmp_path / "ray" / sub / n
            ).read_bytes(), n
