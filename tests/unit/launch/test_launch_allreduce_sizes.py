from __future__ import annotations

import pytest

from aistack.errors import ValidationError
from aistack.launch.allreduce import bus_factor, human_bytes, parse_size, parse_sizes, run_allreduce


def test_parse_sizes_range_and_list() -> None:
    assert parse_sizes("1K..8K") == [1024, 2048, 4096, 8192]
    assert parse_sizes("1K..64M")[-1] == 64 * 2**20
    assert len(parse_sizes("1K..64M")) == 17
    assert parse_sizes("4,1K,2MiB") == [4, 1024, 2 * 2**20]
    assert parse_size("1G") == 2**30


@pytest.mark.parametrize("bad", ["", "abc", "2", "64M..1K", "1X"])
def test_bad_sizes_name_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="sizes"):
        parse_sizes(bad)


def test_bus_bandwidth_factor_as_nccl_tests() -> None:
    assert bus_factor(2) == 1.0
    assert bus_factor(8) == pytest.approx(1.75)
    assert bus_factor(1) == 0.0


def test_human_bytes() -> None:
    assert human_bytes(1024) == "1 KiB"
    assert human_bytes(64 * 2**20) == "64 MiB"
    assert human_bytes(100) == "100 B"


def test_bad_backend_and_nprocs() -> None:
    with pytest.raises(ValidationError, match="backend"):
        run_allreduce(backend="mpi")
    with pytest.raises(ValidationError, match="nprocs"):
        run_allreduce(nprocs=0)
