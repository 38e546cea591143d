"""Audit of the catalog loader: a figure that cannot be right (infinite, a boolean, a percent typed
as a fraction, far past any real price), an entry without a source, and a name given twice are
errors that name the file and the field; a user entry spelled in another case replaces the
shipped one instead of being ignored by the look-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.planning import load_catalog, plan_tco
from aistack.planning.usage import PriceSheet

_SERVER = "servers:\n  - {{name: x1, accelerator: H100, gpus: {gpus}, price_usd: {price}, power_kw: {kw}, source: {src}, as_of: 2025-01-01}}\n"
_INSTANCE = (
    "instances:\n  - {{name: {name}, provider: aws, accelerator: H100, gpus: 8, vcpus: 192, "
    "memory_gb: 2048, prices: {{on_demand: {{usd_per_hour: {price}, source: x, as_of: 2025-01-01}}}}}}\n"
)


def _cat(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "mine.yaml"
    p.write_text(text, encoding="utf-8")
    return load_catalog([p], include_user=False)


def _refused(tmp_path: Path, text: str, *words: str) -> str:
    with pytest.raises(ValidationError) as ei:
        _cat(tmp_path, text)
    msg = str(ei.value)
    assert "mine.yaml" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.mark.parametrize(
    ("fig", "value", "words"),
    [
        # an infinite figure priced owning at $inf and the hybrid at NaN
        ("electricity_usd_per_kwh", ".inf", ("electricity_usd_per_kwh", "finite")),
        ("pue", ".inf", ("pue", "finite")),
        ("staff_usd_per_node_year", ".inf", ("staff_usd_per_node_year", "finite")),
        # finite but overflowing: 1e308 x servers is inf
        ("network_usd_per_node", "1e308", ("network_usd_per_node", "at most")),
        # 8 %/year typed as 8: owning cost $49/GPU-h
        ("cost_of_capital", "8", ("cost_of_capital", "0.08")),
        # 8.3 cents typed as dollars
        ("electricity_usd_per_kwh", "8.3", ("electricity_usd_per_kwh", "at most")),
        ("pue", "140", ("pue", "at most")),
    ],
)
def test_onprem_figures_that_cannot_be_right_are_refused(
    tmp_path: Path, fig: str, value: str, words: tuple[str, ...]
) -> None:
    _refused(
        tmp_path, f"onprem:\n  {fig}: {{value: {value}, source: x, as_of: 2025-01-01}}\n", *words
    )


@pytest.mark.parametrize(
    ("gpus", "price", "kw", "src", "words"),
    [
        (8, ".inf", 10, "x", ("price_usd", "finite")),
        (8, "1e308", 10, "x", ("price_usd", "at most")),
        (8, 1000, ".inf", "x", ("power_kw", "finite")),
        (8, "true", 10, "x", ("price_usd", "boolean")),
        (10**23, 1000, 10, "x", ("gpus", "at most")),
        (8, 1000, 10, "''", ("source", "empty")),
        (8, 1000, 10, "'   '", ("source", "empty")),
    ],
)
def test_server_entries_that_cannot_be_right_are_refused(
    tmp_path: Path, gpus: object, price: object, kw: object, src: str, words: tuple[str, ...]
) -> None:
    _refused(tmp_path, _SERVER.format(gpus=gpus, price=price, kw=kw, src=src), *words)


@pytest.mark.parametrize("price", [".inf", "1e308", "true"])
def test_instance_prices_that_cannot_be_right_are_refused(tmp_path: Path, price: str) -> None:
    # .inf gave a break-even at month 0.0 and a hybrid total of NaN
    _refused(tmp_path, _INSTANCE.format(name="p5.48xlarge", price=price), "usd_per_hour")


def test_a_cpu_price_of_infinity_is_refused(tmp_path: Path) -> None:
    _refused(
        tmp_path,
        "cpu_prices:\n  - {provider: aws, usd_per_vcpu_hour: .inf, source: x, as_of: 2025-01-01}\n",
        "usd_per_vcpu_hour",
    )


def test_an_empty_name_is_refused(tmp_path: Path) -> None:
    _refused(
        tmp_path,
        "servers:\n  - {name: '', accelerator: H100, gpus: 8, price_usd: 1, power_kw: 1, "
        "source: x, as_of: 2025-01-01}\n",
        "name",
    )


def test_a_name_given_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    # the second silently won
    text = (
        "servers:\n"
        "  - {name: x1, accelerator: H100, gpus: 8, price_usd: 1000, power_kw: 1, source: x, as_of: 2025-01-01}\n"
        "  - {name: X1, accelerator: H100, gpus: 8, price_usd: 2000, power_kw: 1, source: x, as_of: 2025-01-01}\n"
    )
    msg = _refused(tmp_path, text, "servers", "x1", "twice")
    assert "X1" in msg


def test_a_user_server_in_another_case_replaces_the_shipped_one(tmp_path: Path) -> None:
    # it was added beside dgx-h100, and every look-up found the shipped one: the user's price
    # was silently ignored
    cat = _cat(
        tmp_path,
        "servers:\n  - {name: DGX-H100, accelerator: H100, gpus: 8, price_usd: 1000, "
        "power_kw: 10, source: my quote, as_of: 2025-01-01}\n",
    )
    assert cat.server("dgx-h100").price_usd == 1000
    assert len([s for s in cat.servers if s.lower() == "dgx-h100"]) == 1
    assert cat.default_server("H100").price_usd in {1000, cat.servers["hgx-h100-oem"].price_usd}


def test_a_user_instance_in_another_case_replaces_the_shipped_one(tmp_path: Path) -> None:
    cat = _cat(tmp_path, _INSTANCE.format(name="P5.48XLARGE", price=80))
    assert cat.instance("p5.48xlarge").prices["on_demand"].usd_per_hour == 80
    # the other tiers of the shipped entry are kept, as for a same-case override
    assert "spot" in cat.instance("p5.48xlarge").prices
    assert PriceSheet.cloud(cat).gpu_hour_usd["H100-SXM"] == pytest.approx(10.0)
    res = plan_tco(gpus=8, instance="p5.48xlarge", catalog=cat)
    assert res.on_demand_usd_per_gpu_hour == pytest.approx(10.0)


def test_an_unknown_gpu_error_names_its_field() -> None:
    # the CLI turns the field into the option (--gpu): it said "gpu: unknown GPU"
    with pytest.raises(NotFoundError) as ei:
        plan_tco(gpus=8, gpu="h10o")
    assert ei.value.details.get("field") == "gpu"
    assert "did you mean" in ei.value.message


def test_the_shipped_catalog_still_loads_with_every_source() -> None:
    cat = load_catalog(include_user=False)
    assert all(f.source.strip() for f in cat.figures())
