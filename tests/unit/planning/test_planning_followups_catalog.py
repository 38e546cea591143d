"""Follow-ups to the audit of the catalog loader: an ``as_of`` date in the future (which the
staleness check never flagged), an alias two accelerators share (the last one won without a
word), and a hint that fits the field that failed (every error said "every price needs
usd_per_hour, source and as_of", an on-premises figure's too)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from catalog_files import load_text, refused_text

from aistack.errors import ValidationError
from aistack.planning.catalog import Catalog, load_catalog

_PRICE_HINT = "every price needs usd_per_hour, source and as_of"


def _load(tmp_path: Path, text: str) -> Catalog:
    return load_text(tmp_path, text)


def _refused(tmp_path: Path, text: str) -> ValidationError:
    return refused_text(tmp_path, text)


def _acc(name: str, aliases: str, as_of: str = "2025-01-01") -> str:
    return (
        f"  - {{name: {name}, aliases: {aliases}, vendor: nvidia, generation: hopper, "
        "bf16_tflops: 989, memory_gb: 80, memory_bw_tbs: 3.35, tdp_w: 700, interconnect: nvlink, "
        f"nvlink_gbs: 450, network_gbs: 50, source: x, as_of: {as_of}}}\n"
    )


def _instance(as_of: str) -> str:
    return (
        "instances:\n  - {name: x9.large, provider: aws, accelerator: H100, gpus: 8, vcpus: 192, "
        f"memory_gb: 2048, prices: {{on_demand: {{usd_per_hour: 90, source: x, as_of: {as_of}}}}}}}\n"
    )


def _server(as_of: str) -> str:
    return (
        "servers:\n  - {name: box-1, accelerator: H100, gpus: 8, price_usd: 300000, power_kw: 10, "
        f"source: x, as_of: {as_of}}}\n"
    )


# -- as_of in the future ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "entry"),
    [
        (_instance("2099-01-01"), "instances.0.prices.on_demand.as_of", "instance 'x9.large'"),
        (_server("2099-01-01"), "servers.0.as_of", "server 'box-1'"),
        ("accelerators:\n" + _acc("Z9", "[]", "2099-01-01"), "accelerators.0.as_of", "'Z9'"),
        (
            "onprem:\n  pue: {value: 1.3, source: x, as_of: 2099-01-01}\n",
            "onprem.pue.as_of",
            "onprem.pue",
        ),
    ],
)
def test_an_as_of_date_in_the_future_is_refused(
    tmp_path: Path, text: str, where: str, entry: str
) -> None:
    """A price dated 2099 was never stale: the warning to check it could not fire."""
    e = _refused(tmp_path, text)
    assert "mine.yaml" in e.message and where in e.message and entry in e.message, e.message
    assert "2099-01-01 is later than today" in e.message, e.message
    assert e.hint and "as_of" in e.hint and _PRICE_HINT not in e.hint, e.hint


def test_an_as_of_date_of_tomorrow_is_taken(tmp_path: Path) -> None:
    """A day of slack: a file written east of UTC on its today."""
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    cat = _load(tmp_path, _instance(tomorrow.isoformat()) + _server(tomorrow.isoformat()))
    assert cat.instance("x9.large").prices["on_demand"].as_of == tomorrow
    assert cat.server("box-1").as_of == tomorrow


def test_the_shipped_catalog_still_loads() -> None:
    cat = load_catalog(include_user=False)
    assert cat.accelerator("H100").name == "H100-SXM"


# -- an alias of two accelerators -------------------------------------------------------------
def test_an_alias_of_two_accelerators_in_one_file_is_refused(tmp_path: Path) -> None:
    e = _refused(tmp_path, "accelerators:\n" + _acc("Z1-A", "[Z1, za]") + _acc("Z1-B", "[z-1]"))
    assert "'Z1-A'" in e.message and "'Z1-B'" in e.message, e.message
    assert "alias" in e.message and "'Z1'" in e.message and "'z-1'" in e.message, e.message
    assert str(tmp_path / "mine.yaml") in e.message, e.message
    assert e.hint and "alias" in e.hint


def test_a_user_alias_of_a_shipped_accelerator_is_refused(tmp_path: Path) -> None:
    """The shipped H100-SXM has the alias H100: a user's H100-NVL with it won every look-up of
    "H100" (or lost it, by the order of the files), without a word."""
    e = _refused(tmp_path, "accelerators:\n" + _acc("H100-NVL", "[H100]"))
    assert "'H100-SXM'" in e.message and "'H100-NVL'" in e.message, e.message
    assert "builtin" in e.message and "mine.yaml" in e.message, e.message


def test_a_user_entry_that_replaces_a_shipped_one_keeps_its_aliases(tmp_path: Path) -> None:
    cat = _load(tmp_path, "accelerators:\n" + _acc("H100-SXM", "[H100, H100-SXM5]"))
    assert cat.accelerator("H100").bf16_tflops == 989
    assert cat.accelerator("h100 sxm5").name == "H100-SXM"


def test_a_name_another_entry_gives_as_an_alias_still_names_itself(tmp_path: Path) -> None:
    """A canonical name wins over another entry's alias (as before)."""
    cat = _load(tmp_path, "accelerators:\n" + _acc("H100", "[]"))
    assert cat.accelerator("H100").name == "H100"


# -- the hint fits the field ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "hint_words"),
    [
        (
            "onprem:\n  pue: {value: 1.3, as_of: 2025-01-01}\n",
            "onprem.pue.source",
            ("on-premises figure", "value, source and as_of", "onprem.yaml"),
        ),
        (
            "onprem:\n  pue: {value: 0.5, source: x, as_of: 2025-01-01}\n",
            "onprem.pue",
            ("pue is facility power / IT power", "pue: {value: 1.4", "onprem.yaml"),
        ),
        (
            "onprem:\n  pue2: {value: 1.3, source: x, as_of: 2025-01-01}\n",
            "onprem.pue2",
            ("pue", "electricity_usd_per_kwh", "idle_power_fraction"),
        ),
        (
            "servers:\n  - {name: b, accelerator: H100, gpus: 8, power_kw: 10, source: x, "
            "as_of: 2025-01-01}\n",
            "servers.0.price_usd",
            ("every server needs", "price_usd", "onprem.yaml"),
        ),
        (
            "accelerators:\n  - {name: Q1, vendor: x, generation: hopper}\n",
            "accelerators.0.bf16_tflops",
            ("every accelerator needs", "bf16_tflops", "accelerators.yaml"),
        ),
        (
            _server("2025-13-01"),
            "servers.0.as_of",
            ("as_of", "YYYY-MM-DD"),
        ),
        (
            "gpus:\n  - {name: Q1}\n",
            "gpus",
            ("efficiency, accelerators, instances, cpu_prices, servers", "onprem"),
        ),
    ],
)
def test_the_hint_fits_the_field_that_failed(
    tmp_path: Path, text: str, where: str, hint_words: tuple[str, ...]
) -> None:
    e = _refused(tmp_path, text)
    assert where in e.message, e.message
    assert e.hint and _PRICE_HINT not in e.hint, e.hint
    for w in hint_words:
        assert w in e.hint, e.hint


def test_a_price_still_gets_the_price_hint(tmp_path: Path) -> None:
    e = _refused(tmp_path, _instance("2025-01-01").replace("usd_per_hour: 90, ", ""))
    assert "instances.0.prices.on_demand.usd_per_hour" in e.message, e.message
    assert e.hint and e.hint.startswith(_PRICE_HINT), e.hint
