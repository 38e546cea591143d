"""Numbers in catalog files: a price below any real one (1e-300 priced the cloud or owning at
nothing), a number in quotes (``usd_per_hour: '8'`` was read as 8) and an accelerator spec in
the wrong unit (memory in MB as GB, TFLOP/s in FLOP/s) are errors that name the file, the field
and the entry, with a hint that fits; the shipped files still load."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_files import accelerator, load_text, refused_text

from aistack.errors import ValidationError
from aistack.planning import limits
from aistack.planning.catalog import Catalog, load_catalog
from aistack.planning.catalog.models import MEMORY_GB_UNIT_SLIP


def _load(tmp_path: Path, text: str) -> Catalog:
    return load_text(tmp_path, text)


def _refused(tmp_path: Path, text: str, where: str, entry: str) -> ValidationError:
    e = refused_text(tmp_path, text)
    assert "mine.yaml" in e.message, e.message
    assert f"{where} ({entry}):" in e.message, e.message
    assert e.hint, e.message
    return e


def _instance(price: object) -> str:
    return (
        "instances:\n  - {name: x9.large, provider: aws, accelerator: H100, gpus: 8, vcpus: 192, "
        f"memory_gb: 2048, prices: {{on_demand: {{usd_per_hour: {price}, source: x, "
        "as_of: 2025-01-01}}}\n"
    )


def _server(price: object, gpus: object = 8) -> str:
    return (
        f"servers:\n  - {{name: box-1, accelerator: H100, gpus: {gpus}, price_usd: {price}, "
        "power_kw: 10, source: x, as_of: 2025-01-01}\n"
    )


def _cpu(price: object) -> str:
    return (
        f"cpu_prices:\n  - {{provider: aws, usd_per_vcpu_hour: {price}, source: x, "
        "as_of: 2025-01-01}\n"
    )


_SPECS = {
    "bf16_tflops": 989,
    "fp8_tflops": 1979,
    "memory_gb": 80,
    "memory_bw_tbs": 3.35,
    "tdp_w": 700,
    "nvlink_gbs": 450,
    "network_gbs": 50,
}


def _acc(**specs: object) -> str:
    return accelerator("Z9", "nvlink", {**_SPECS, **specs})


# -- prices: the same minimums as the Python API and REST -------------------------------------
_USD_H = "instances.0.prices.on_demand.usd_per_hour"


@pytest.mark.parametrize(
    ("text", "where", "entry", "low", "got"),
    [
        (_instance("1e-300"), _USD_H, "instance 'x9.large'", "0.01", "1e-300"),
        (_instance(0.001), _USD_H, "instance 'x9.large'", "0.01", "0.001"),
        (_server("1e-300"), "servers.0.price_usd", "server 'box-1'", "1,000", "1e-300"),
        # $450,000 typed in thousands
        (_server(450), "servers.0.price_usd", "server 'box-1'", "1,000", "450"),
        (_cpu("1e-300"), "cpu_prices.0.usd_per_vcpu_hour", "CPU price 'aws'", "0.0001", "1e-300"),
    ],
)
def test_a_price_below_any_real_one_is_refused(
    tmp_path: Path, text: str, where: str, entry: str, low: str, got: str
) -> None:
    e = _refused(tmp_path, text, where, entry)
    assert e.message.endswith(f": must be at least {low}, got {got}"), e.message
    assert e.hint and "USD per" in e.hint, e.hint
    # the layout hint ("every price needs usd_per_hour, ...") fits a missing field, not this
    assert "needs" not in e.hint, e.hint


def test_the_price_minimums_are_the_api_ones(tmp_path: Path) -> None:
    """One constant each: the catalog takes a price at the bound and refuses one just below."""
    for text, low in (
        (_instance, limits.MIN_USD_PER_HOUR),
        (_server, limits.MIN_SERVER_USD),
        (_cpu, limits.MIN_USD_PER_VCPU_HOUR),
    ):
        cat = _load(tmp_path, text(low))
        assert cat.figures()
        with pytest.raises(ValidationError, match="must be at least"):
            _load(tmp_path, text(low * 0.99))
    assert _load(tmp_path, _instance(0.01)).instance("x9.large").gpu_hour_usd() == 0.01 / 8


def test_every_shipped_figure_is_within_the_catalog_bounds() -> None:
    """The bounds are below every real price and far above every real spec (checked on the
    shipped data, so that a bound is never tighter than a figure we ship)."""
    cat = load_catalog(include_user=False)
    for i in cat.instances.values():
        for p in i.prices.values():
            assert p.usd_per_hour >= 10 * limits.MIN_USD_PER_HOUR, i.name
    for s in cat.servers.values():
        assert s.price_usd >= 10 * limits.MIN_SERVER_USD, s.name
    for c in cat.cpu_prices.values():
        assert c.usd_per_vcpu_hour >= 10 * limits.MIN_USD_PER_VCPU_HOUR, c.provider
    bounds = {
        "bf16_tflops": limits.MAX_BF16_TFLOPS,
        "fp8_tflops": limits.MAX_FP8_TFLOPS,
        "memory_gb": limits.MAX_ACCELERATOR_MEMORY_GB,
        "memory_bw_tbs": limits.MAX_MEMORY_BW_TBS,
        "tdp_w": limits.MAX_TDP_W,
        "nvlink_gbs": limits.MAX_NVLINK_GBS,
        "network_gbs": limits.MAX_NETWORK_GBS,
    }
    for field, high in bounds.items():
        largest = max(getattr(a, field) or 0 for a in cat.accelerators.values())
        if field == "memory_bw_tbs":
            # above every HBM figure shipped and above on-chip SRAM (Cerebras WSE-3: ~21,000
            # TB/s); a GB/s slip is caught by the read-whole-memory time, not by this bound
            assert 21_000 <= high <= 5_000 * largest, (field, largest, high)
            continue
        assert 90 * largest <= high <= 1000 * largest, (field, largest, high)


# -- numbers in quotes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "entry"),
    [
        (_instance("'8'"), _USD_H, "instance 'x9.large'"),
        (_instance('"55.04"'), _USD_H, "instance 'x9.large'"),
        (_server("'450000'"), "servers.0.price_usd", "server 'box-1'"),
        (_server(450000, gpus="'8'"), "servers.0.gpus", "server 'box-1'"),
        (_cpu("'0.05'"), "cpu_prices.0.usd_per_vcpu_hour", "CPU price 'aws'"),
        (_acc(memory_gb="'80'"), "accelerators.0.memory_gb", "accelerator 'Z9'"),
        (_acc(fp8_tflops="'1979'"), "accelerators.0.fp8_tflops", "accelerator 'Z9'"),
        (
            "efficiency:\n  - {generation: hopper, mfu: '0.4', goodput: 0.9, source: x, "
            "as_of: 2025-01-01}\n",
            "efficiency.0.mfu",
            "efficiency entry 'hopper'",
        ),
    ],
)
def test_a_number_in_quotes_is_refused(tmp_path: Path, text: str, where: str, entry: str) -> None:
    e = _refused(tmp_path, text, where, entry)
    assert "give it as a number without quotes" in e.message + (e.hint or ""), e.message
    assert "in quotes" in e.message, e.message


def test_an_on_premises_figure_in_quotes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as ei:
        _load(tmp_path, "onprem:\n  pue: {value: '1.3', source: x, as_of: 2025-01-01}\n")
    assert "mine.yaml" in ei.value.message and "onprem.pue.value" in ei.value.message
    assert "without quotes" in ei.value.message + (ei.value.hint or "")


def test_text_in_a_number_field_is_refused_naming_it(tmp_path: Path) -> None:
    e = _refused(tmp_path, _instance("'cheap'"), _USD_H, "instance 'x9.large'")
    assert "'cheap'" in e.message and "number" in e.message, e.message


def test_text_fields_and_dates_in_quotes_are_still_read(tmp_path: Path) -> None:
    """A field documented to take text keeps taking a number-like text; a date in quotes is
    a date as before."""
    cat = _load(
        tmp_path,
        "instances:\n  - {name: '8', provider: '1', accelerator: H100, gpus: 8, vcpus: 192, "
        "memory_gb: 2048, region: '3', prices: {on_demand: {usd_per_hour: 8, source: '2024', "
        "as_of: '2025-01-01'}}}\n",
    )
    i = cat.instance("8")
    assert (i.provider, i.region) == ("1", "3")
    assert i.prices["on_demand"].source == "2024"
    assert i.prices["on_demand"].as_of.isoformat() == "2025-01-01"
    assert i.prices["on_demand"].usd_per_hour == 8


# -- accelerator specs: a unit slip -----------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "unit"),
    [
        ("bf16_tflops", 9.89e14, "TFLOP/s"),  # FLOP/s typed as TFLOP/s
        ("bf16_tflops", 989_000, "TFLOP/s"),  # GFLOP/s
        ("fp8_tflops", 1.979e15, "TFLOP/s"),
        ("memory_bw_tbs", 3_350_000, "TB/s"),  # MB/s
        ("tdp_w", 700_000, "W"),  # mW
        ("nvlink_gbs", 450_000, "GB/s"),  # MB/s
        ("network_gbs", 400_000, "GB/s"),  # Mb/s
    ],
)
def test_an_accelerator_spec_in_the_wrong_unit_is_refused(
    tmp_path: Path, field: str, value: float, unit: str
) -> None:
    e = _refused(tmp_path, _acc(**{field: value}), f"accelerators.0.{field}", "accelerator 'Z9'")
    assert "must be at most" in e.message, e.message
    assert e.hint and unit in e.hint, e.hint
    assert "needs" not in e.hint, e.hint


def test_accelerator_specs_at_the_bounds_are_taken(tmp_path: Path) -> None:
    cat = _load(
        tmp_path,
        _acc(
            bf16_tflops=limits.MAX_BF16_TFLOPS,
            fp8_tflops=limits.MAX_FP8_TFLOPS,
            # memory is bounded tighter, as a unit slip (test_planning_catalog_unit_slips.py)
            memory_gb=MEMORY_GB_UNIT_SLIP - 1,
            tdp_w=limits.MAX_TDP_W,
            nvlink_gbs=limits.MAX_NVLINK_GBS,
            network_gbs=limits.MAX_NETWORK_GBS,
        ),
    )
    assert cat.accelerator("Z9").memory_gb == MEMORY_GB_UNIT_SLIP - 1
    # the bandwidth bound with SRAM-sized memory (3,999 GB read in 0.04 ms looks like GB/s)
    cat = _load(tmp_path, _acc(memory_gb=44, memory_bw_tbs=limits.MAX_MEMORY_BW_TBS))
    assert cat.accelerator("Z9").memory_bw_tbs == limits.MAX_MEMORY_BW_TBS


def test_a_number_in_exponent_form_without_quotes_is_still_a_number(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML) reads an unquoted ``4.5e5`` as a float but ``4e5`` as text; the
    catalog took both as numbers, and still does: only a quoted scalar is refused."""
    cat = _load(tmp_path, _server("4e5") + _cpu("5e-2"))
    assert cat.server("box-1").price_usd == 400_000
    assert cat.cpu_price("aws").usd_per_vcpu_hour == 0.05
