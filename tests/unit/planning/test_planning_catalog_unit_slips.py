"""Catalog errors read alike: a bound of a price, GPU count or power, a boolean for a number, an
empty text and an on-premises figure name the file, the field, the value and the bound, with a
hint on how to write the entry (they said "Value error, ..." under the section's layout hint).
And an accelerator's memory in MB or bandwidth in GB/s, which the 100x bounds let through on a
small device (a 16 GB card's 16,000 "GB"), is refused naming the unit it looks like, where no
real device is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from catalog_files import accelerator, load_text, refused_text

from aistack.errors import ValidationError
from aistack.planning.catalog import Catalog, load_catalog, loading


def _load(tmp_path: Path, text: str) -> Catalog:
    return load_text(tmp_path, text)


def _refused(tmp_path: Path, text: str) -> ValidationError:
    e = refused_text(tmp_path, text)
    assert "Value error" not in e.message, e.message
    assert e.hint and "needs" not in e.hint, e.hint  # not the section's layout hint
    return e


_SERVER = (
    "servers:\n  - {{name: box-1, accelerator: H100, gpus: {gpus}, price_usd: {price}, "
    "power_kw: {kw}, source: {src}, as_of: 2025-01-01}}\n"
)
_INSTANCE = (
    "instances:\n  - {{name: x9.large, provider: aws, accelerator: H100, gpus: {gpus}, "
    "vcpus: 192, memory_gb: 2048, prices: {{on_demand: {{usd_per_hour: {price}, source: x, "
    "as_of: 2025-01-01}}}}}}\n"
)


def _server(gpus: object = 8, price: object = 280000, kw: object = 10.2, src: str = "x") -> str:
    return _SERVER.format(gpus=gpus, price=price, kw=kw, src=src)


# -- the bounds that said "Value error, must be at most ..." ------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        (
            _INSTANCE.format(gpus=2_000_000, price=55),
            "instances.0.gpus (instance 'x9.large')",
            "must be at most 1,000,000, got 2,000,000",
            "the GPUs of one instance (8 for p5.48xlarge), not of a cluster: the largest "
            "clusters hold about 200,000 GPUs",
        ),
        (
            _INSTANCE.format(gpus=8, price="5.5e6"),
            "instances.0.prices.on_demand.usd_per_hour (instance 'x9.large')",
            "must be at most 1e+06, got 5.5e+06",
            "USD per instance-hour, for the whole instance: the cheapest cloud GPUs (one small "
            "GPU, spot) rent for about $0.10/h, 8-GPU instances for up to about $100/h "
            "(p5.48xlarge on demand: 55.04)",
        ),
        (
            "cpu_prices:\n  - {provider: aws, usd_per_vcpu_hour: 5.04e6, source: x, "
            "as_of: 2025-01-01}\n",
            "cpu_prices.0.usd_per_vcpu_hour (CPU price 'aws')",
            "must be at most 1e+06, got 5.04e+06",
            "USD per vCPU-hour: a vCPU rents for $0.01 to $0.05/h on demand, e.g. 0.0504",
        ),
        (
            _server(gpus=10**7),
            "servers.0.gpus (server 'box-1')",
            "must be at most 1,000,000, got 10,000,000",
            "the GPUs of one server (8 for an HGX H100, 72 for a GB200 NVL72 rack), not of a "
            "cluster: the largest clusters hold about 200,000 GPUs",
        ),
        (
            _server(price="2.8e11"),
            "servers.0.price_usd (server 'box-1')",
            "must be at most 1e+10, got 2.8e+11",
            "USD per server, in dollars (not thousands): a one-GPU workstation costs a few "
            "thousand, an 8-GPU server about 300,000 (e.g. 280000), a GB200 NVL72 rack about 4e6",
        ),
        (
            _server(kw=10_200),  # W typed as kW
            "servers.0.power_kw (server 'box-1')",
            "must be at most 10,000, got 10,200",
            "kW per server at full load (not W): an 8-GPU H100 server draws about 10 kW (DGX "
            "H100: 10.2), a whole GB200 NVL72 rack about 130 kW",
        ),
    ],
)
def test_a_bound_names_the_field_the_value_and_the_bound_with_the_fields_hint(
    tmp_path: Path, text: str, where: str, message: str, hint: str
) -> None:
    e = _refused(tmp_path, text)
    assert e.message == f"catalog file {tmp_path / 'mine.yaml'}: {where}: {message}"
    assert e.hint == hint


def test_a_boolean_for_a_number_says_so_and_how_to_write_one(tmp_path: Path) -> None:
    e = _refused(tmp_path, _server(price="true"))
    assert e.message.endswith(
        "servers.0.price_usd (server 'box-1'): must be a number, got the boolean true"
    )
    assert e.hint == (
        "give a number, e.g. 8 or 0.5 (YAML reads true/false, yes/no and on/off as booleans)"
    )


@pytest.mark.parametrize(
    ("text", "where", "hint_start"),
    [
        (_server(src="'  '"), "servers.0.source (server 'box-1')", "give where the figure"),
        (
            _server().replace("name: box-1", "name: ''"),
            "servers.0.name (server '')",
            "give the entry's name",
        ),
        (
            _server().replace("accelerator: H100", "accelerator: ''"),
            "servers.0.accelerator (server 'box-1')",
            "give the accelerator's catalog name, e.g. accelerator: H100-SXM",
        ),
    ],
)
def test_an_empty_text_names_what_the_field_holds(
    tmp_path: Path, text: str, where: str, hint_start: str
) -> None:
    e = _refused(tmp_path, text)
    assert f": {where}: must not be empty, got '" in e.message, e.message
    assert e.hint and e.hint.startswith(hint_start), e.hint


@pytest.mark.parametrize(
    ("figure", "value", "message", "hint_start"),
    [
        ("pue", 0.5, "value must be at least 1, got 0.5", "pue is facility power / IT power"),
        ("pue", 140, "value must be at most 5, got 140", "pue is facility power / IT power"),
        (
            "cost_of_capital",
            8,
            "value must be at most 1, got 8",
            "cost_of_capital is a fraction per year: 8 % a year is 0.08, not 8; e.g. "
            "cost_of_capital: {value: 0.08,",
        ),
        (
            "idle_power_fraction",
            1.5,
            "value must be at most 1, got 1.5",
            "idle_power_fraction is idle draw / maximum draw, a fraction in [0, 1]: 30 % is 0.3",
        ),
        (
            "depreciation_years",
            0.01,
            "value must be at least one month (0.083 years), got 0.01 years",
            "depreciation_years is the years a server is written off over: 3 to 5",
        ),
        (
            "electricity_usd_per_kwh",
            8.3,
            "value must be at most 5, got 8.3",
            "electricity_usd_per_kwh is USD per kWh: industrial prices are $0.03 to $0.40; 8.3 "
            "cents is 0.083",
        ),
    ],
)
def test_an_onprem_figure_out_of_range_names_what_it_is_and_the_shipped_figure(
    tmp_path: Path, figure: str, value: float, message: str, hint_start: str
) -> None:
    e = _refused(
        tmp_path, f"onprem:\n  {figure}: {{value: {value}, source: x, as_of: 2025-01-01}}\n"
    )
    assert e.message == f"catalog file {tmp_path / 'mine.yaml'}: onprem.{figure}: {message}"
    assert e.hint and e.hint.startswith(hint_start), e.hint
    assert e.hint.endswith("(the shipped figure: aistack/planning/catalog/onprem.yaml)"), e.hint


def test_a_merged_onprem_figure_missing_gets_the_layout_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The merged on-premises figures (every file's) are checked again: the hint was "fix the
    on-premises figure", whatever failed (here: no file gives pue)."""
    texts = [
        (re.sub(r"^  pue:\n(?:    .*\n)+", "", t, flags=re.M), o)
        for t, o in loading._builtin_texts()
    ]
    assert all("  pue:" not in t for t, _ in texts)
    monkeypatch.setattr(loading, "_builtin_texts", lambda: texts)
    with pytest.raises(ValidationError) as ei:
        load_catalog(include_user=False)
    assert ei.value.message == "catalog onprem.pue: Field required"
    assert ei.value.hint == (
        "every on-premises figure needs value, source and as_of (YYYY-MM-DD), e.g. pue: "
        "{value: 1.3, source: ..., as_of: 2025-01-01}; see aistack/planning/catalog/onprem.yaml"
    )


# -- accelerator memory in MB, bandwidth in GB/s --------------------------------------------------
_SPECS = {
    "bf16_tflops": 65,
    "memory_gb": 16,
    "memory_bw_tbs": 0.32,
    "tdp_w": 70,
    "nvlink_gbs": 32,
    "network_gbs": 12.5,
}


def _acc(**specs: object) -> str:
    return accelerator("T4", "pcie", {**_SPECS, **specs})


@pytest.mark.parametrize(
    ("memory", "got", "unit", "gb"),
    [
        (16_000, "16,000", "MB", "16"),  # a T4 in MB: under the old 20,000 GB bound
        (16_384, "16,384", "MB", "16.384"),  # in MiB
        (4_000, "4,000", "MB", "4"),  # a Jetson Nano's 4 GB
        (80_000, "80,000", "MB", "80"),
        (16_000_000, "1.6e+07", "kB", "16"),
        (17_179_869_184, "1.71799e+10", "bytes", "17.18"),  # 16 GiB in bytes
    ],
)
def test_memory_in_another_unit_is_refused_naming_the_unit(
    tmp_path: Path, memory: int, got: str, unit: str, gb: str
) -> None:
    e = _refused(tmp_path, _acc(memory_gb=memory))
    assert e.message == (
        f"catalog file {tmp_path / 'mine.yaml'}: accelerators.0.memory_gb (accelerator 'T4'): "
        f"{got} GB is more memory than any accelerator has (288 GB at most: MI355X, B300; about "
        f"1 TB announced for Rubin Ultra): it looks like {unit}"
    )
    assert e.hint == (
        f"give memory_gb in GB (10^9 bytes) per accelerator: {got} {unit} is {gb} GB, so "
        f"memory_gb: {gb}"
    )


def test_memory_too_large_for_any_unit_says_so(tmp_path: Path) -> None:
    e = _refused(tmp_path, _acc(memory_gb="4e15"))
    assert e.message.endswith(
        "memory_gb (accelerator 'T4'): 4e+15 GB is far more memory than an accelerator has "
        "(288 GB at most: MI355X, B300; about 1 TB announced for Rubin Ultra)"
    )
    assert e.hint == "give memory_gb in GB (10^9 bytes) per accelerator, e.g. 80 for H100"


@pytest.mark.parametrize(
    ("memory", "bandwidth", "ms", "tbs"),
    [
        (16, 320, "0.05", "0.32"),  # T4
        (24, 300, "0.08", "0.3"),  # L4
        (48, 864, "0.056", "0.864"),  # L40S
        (64, 204.8, "0.31", "0.2048"),  # Jetson AGX Orin
        (128, 273, "0.47", "0.273"),  # DGX Spark (GB10)
    ],
)
def test_bandwidth_in_gbs_is_refused_naming_the_unit(
    tmp_path: Path, memory: float, bandwidth: float, ms: str, tbs: str
) -> None:
    e = _refused(tmp_path, _acc(memory_gb=memory, memory_bw_tbs=bandwidth))
    got = f"{bandwidth:,g}"
    assert e.message == (
        f"catalog file {tmp_path / 'mine.yaml'}: accelerators.0.memory_bw_tbs (accelerator "
        f"'T4'): {got} TB/s would read this accelerator's {memory:g} GB in {ms} ms; HBM and DRAM "
        "take 10 ms or more (H100: 80 GB at 3.35 TB/s, 24 ms), and on-chip SRAM that fast "
        "holds under a few GB (Groq LPU: 0.23 GB at 80 TB/s): it looks like GB/s"
    )
    assert e.hint == (
        f"give memory_bw_tbs in TB/s (10^12 bytes/s): {got} GB/s is {tbs} TB/s, so "
        f"memory_bw_tbs: {tbs}"
    )


def test_memory_and_bandwidth_both_slipped_is_refused_for_the_memory_first(
    tmp_path: Path,
) -> None:
    e = _refused(tmp_path, _acc(memory_gb=16_000, memory_bw_tbs=320))
    assert "accelerators.0.memory_gb" in e.message and "looks like MB" in e.message, e.message
    e = _refused(tmp_path, _acc(memory_gb=16, memory_bw_tbs=320))
    assert "accelerators.0.memory_bw_tbs" in e.message and "like GB/s" in e.message, e.message


@pytest.mark.parametrize(
    ("memory", "bandwidth"),
    [
        (16, 0.32),  # T4
        (80, 3.35),  # H100 SXM
        (288, 8),  # MI355X, B300
        (288, 22),  # Rubin (2026)
        (1024, 32),  # Rubin Ultra (announced for 2027): about 1 TB
        (128, 0.273),  # DGX Spark
        (512, 0.819),  # Apple M3 Ultra
        (0.23, 80),  # Groq LPU: on-chip SRAM
        (0.9, 47.5),  # Graphcore IPU (Mk2)
        (2, 150),  # d-Matrix Corsair: SRAM
        (4, 0.0256),  # Jetson Nano
        (44, 21_000),  # Cerebras WSE-3: on-chip SRAM, about 21 PB/s (refused: 1,000 at most)
        (3_999, 1_000),  # the largest memory taken
    ],
)
def test_real_devices_are_taken(tmp_path: Path, memory: float, bandwidth: float) -> None:
    a = _load(tmp_path, _acc(memory_gb=memory, memory_bw_tbs=bandwidth)).accelerator("T4")
    assert (a.memory_gb, a.memory_bw_tbs) == (memory, bandwidth)


def test_the_shipped_accelerators_still_load() -> None:
    cat = load_catalog(include_user=False)
    assert cat.accelerator("H100").memory_gb == 80
    assert all(a.memory_gb < 1000 for a in cat.accelerators.values())


@pytest.mark.parametrize("mbs", [3_350_000, 32_000])  # H100; a 32 GB/s board
def test_bandwidth_in_mb_per_s_is_still_refused(tmp_path: Path, mbs: int) -> None:
    """The bound that lets Cerebras' SRAM in (30,000 TB/s) still refuses MB/s for a device
    of 30 GB/s and more."""
    e = _refused(tmp_path, _acc(memory_gb=80, memory_bw_tbs=mbs))
    assert "accelerators.0.memory_bw_tbs" in e.message and "at most 30,000" in e.message, e.message
