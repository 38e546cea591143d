"""Catalog: shipped figures have sources and dates, user overrides win, unknown names get suggestions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog import load_catalog

TODAY = dt.date(2026, 11, 28)


def test_required_accelerators_with_all_specs() -> None:
    cat = load_catalog(include_user=False)
    for name in ("A100", "H100 SXM", "H200", "B200", "MI300X", "L40S"):
        acc = cat.accelerator(name)
        assert acc.bf16_tflops > 0 and acc.memory_gb > 0 and acc.memory_bw_tbs > 0 and acc.tdp_w > 0
        assert acc.interconnect and acc.source and acc.as_of.year >= 2020
    assert cat.accelerator("H100").fp8_tflops == 1979
    assert cat.accelerator("H100").bf16_tflops == 989
    assert cat.accelerator("NVIDIA H100 80GB HBM3").name == "H100-SXM"  # NVML device name
    assert cat.accelerator("NVIDIA A100-SXM4-40GB").name == "A100-40GB"


def test_every_figure_has_source_and_date_and_providers_present() -> None:
    cat = load_catalog(include_user=False)
    figs = cat.figures()
    assert len(figs) > 80
    assert all(f.source.strip() and isinstance(f.as_of, dt.date) for f in figs)
    providers = {i.provider for i in cat.instances.values()}
    assert {"aws", "azure", "gcp"} <= providers and len(providers - {"aws", "azure", "gcp"}) >= 2
    tiers = {t for i in cat.instances.values() for t in i.prices}
    assert tiers == {"on_demand", "committed_1y", "committed_3y", "spot"}
    for f in (
        "pue",
        "electricity_usd_per_kwh",
        "colocation_usd_per_kw_month",
        "network_usd_per_node",
        "storage_usd_per_node",
        "staff_usd_per_node_year",
        "depreciation_years",
        "cost_of_capital",
    ):
        assert getattr(cat.onprem, f).source


def test_stale_prices_are_flagged_by_age() -> None:
    cat = load_catalog(include_user=False)
    stale = cat.stale(TODAY)
    names = {(f.kind, f.name) for f in stale}
    assert ("server", "dgx-a100") in names  # 2020 price
    assert all(f.age_days(TODAY) > 365 and f.is_price() for f in stale)
    assert cat.stale(dt.date(2020, 1, 1)) == []


def test_user_override_in_home_and_explicit_file(aistack_home: Path, tmp_path: Path) -> None:
    d = aistack_home / "catalog"
    d.mkdir(parents=True)
    (d / "mine.yaml").write_text(
        "instances:\n"
        "  - name: p5.48xlarge\n    provider: aws\n    accelerator: H100\n    gpus: 8\n    vcpus: 192\n    memory_gb: 2048\n"
        "    prices:\n      on_demand: {usd_per_hour: 84.0, source: 'our AWS bill', as_of: 2026-11-01}\n"
        "onprem:\n  pue: {value: 1.2, source: 'our facility', as_of: 2026-10-01}\n"
    )
    cat = load_catalog()
    p5 = cat.instance("p5.48xlarge")
    assert p5.prices["on_demand"].usd_per_hour == 84.0
    assert p5.prices["spot"].usd_per_hour > 0  # shipped tiers kept when a user file gives only some
    assert cat.onprem.pue.value == 1.2 and cat.onprem.electricity_usd_per_kwh.value > 0
    assert cat.origins[("instance", "p5.48xlarge")].endswith("mine.yaml")
    extra = tmp_path / "x.yaml"
    extra.write_text(
        "servers:\n  - {name: my-box, accelerator: H200, gpus: 8, price_usd: 420000, power_kw: 10, source: quote, as_of: 2026-09-01}\n"
    )
    assert load_catalog([extra]).server("my-box").price_usd == 420000


def test_unknown_names_suggest_closest() -> None:
    cat = load_catalog(include_user=False)
    with pytest.raises(NotFoundError) as e:
        cat.accelerator("H1000")
    assert "did you mean" in str(e.value) and "H100" in str(e.value)
    with pytest.raises(NotFoundError) as e2:
        cat.instance("p5.48xlarg")
    assert "'p5.48xlarge'" in str(e2.value)
    with pytest.raises(NotFoundError, match="no spot price for p4de.24xlarge"):
        cat.instance("p4de.24xlarge").price("spot")


def test_bad_user_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "instances:\n  - {name: x, provider: aws, accelerator: H100, gpus: 8, vcpus: 1, memory_gb: 1, prices: {on_demand: {usd_per_hour: -3, source: s, as_of: 2026-01-01}}}\n"
    )
    with pytest.raises(ValidationError, match=r"instances\.0\.prices\.on_demand\.usd_per_hour"):
        load_catalog([bad], include_user=False)
    typo = tmp_path / "typo.yaml"
    typo.write_text("instance: []\n")
    with pytest.raises(ValidationError, match="instance"):
        load_catalog([typo], include_user=False)
    with pytest.raises(NotFoundError, match="no such file"):
        load_catalog([tmp_path / "missing.yaml"], include_user=False)


def test_package_all_sorted_and_importable() -> None:
    import aistack.planning as planning

    assert planning.__all__ == sorted(planning.__all__)
    assert all(hasattr(planning, name) for name in planning.__all__)


def test_override_origin_is_per_field(tmp_path: Path) -> None:
    """A file giving only the on-demand tier and one on-prem figure: the listing marked the
    shipped committed/spot tiers as coming from that file, and the on-prem figure as builtin."""
    from aistack.planning.report import render_catalog

    f = tmp_path / "ours.yaml"
    f.write_text(
        "instances:\n"
        "  - name: p5.48xlarge\n    provider: aws\n    accelerator: H100\n    gpus: 8\n    vcpus: 192\n    memory_gb: 2048\n"
        "    prices:\n      on_demand: {usd_per_hour: 84.0, source: 'our AWS bill', as_of: 2026-11-01}\n"
        "onprem:\n  electricity_usd_per_kwh: {value: 0.21, source: 'our contract', as_of: 2026-06-01}\n"
    )
    cat = load_catalog([f], include_user=False)
    origin = {(r.kind, r.name, r.field): r.origin for r in cat.figures()}
    assert origin[("instance", "p5.48xlarge", "on_demand")] == str(f)
    assert origin[("instance", "p5.48xlarge", "spot")] == "builtin"
    assert origin[("onprem", "onprem", "electricity_usd_per_kwh")] == str(f)
    assert origin[("onprem", "onprem", "pue")] == "builtin"
    rep = cat.figures_report(dt.date(2026, 11, 28), "onprem")
    assert [x["origin"] for x in rep["figures"] if x["field"] == "electricity_usd_per_kwh"] == [
        str(f)
    ]
    text = render_catalog(cat, today=dt.date(2026, 11, 28), kind="instance")
    spot = next(line for line in text.splitlines() if "p5.48xlarge" in line and " spot " in line)
    assert "[from" not in spot


def test_catalog_listing_keeps_every_digit_and_the_network_bandwidth() -> None:
    from aistack.planning.report import render_catalog

    cat = load_catalog(include_user=False)
    text = render_catalog(cat, today=dt.date(2026, 11, 28))
    assert "113.93 USD/h" in text  # p6-b200.48xlarge: 4 significant digits showed 113.9
    assert "1,307.4 TFLOP/s" in text  # MI300X BF16
    assert any(r.field == "network_gbs" for r in cat.figures())  # used by the all-reduce


def test_unreadable_catalog_files_name_the_file(aistack_home: Path, tmp_path: Path) -> None:
    """Audit: a non-UTF-8 file raised UnicodeDecodeError (a traceback in every plan and cost
    command when it sat in AISTACK_HOME/catalog/), a folder was 'no such file'."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"accelerators: []\n# caf\xe9\n")
    # load_catalog's own words (the paths it is given), not the CLI's --catalog: `plan` says
    # --catalog (test_planning_cli), the REST API gives no paths
    with pytest.raises(ValidationError, match=r"^catalog file '.*latin\.yaml' is not UTF-8") as ei:
        load_catalog([latin], include_user=False)
    assert "UTF-8" in (ei.value.hint or "") and ei.value.details == {"field": "paths"}
    folder = tmp_path / "more.yaml"
    folder.mkdir()
    with pytest.raises(ValidationError, match=r"^catalog file '.*more\.yaml' is a folder") as ei:
        load_catalog([folder], include_user=False)
    assert "--catalog" not in str(ei.value) and ei.value.details == {"field": "paths"}

    d = aistack_home / "catalog"
    d.mkdir(parents=True)
    (d / "bad.yaml").write_bytes(latin.read_bytes())
    with pytest.raises(ValidationError, match=r"^catalog file '.*bad\.yaml' is not UTF-8") as ei:
        load_catalog()
    assert str(d) in (ei.value.hint or "")  # move it out of the folder


def test_a_folder_in_the_home_catalog_is_skipped_with_a_warning(
    aistack_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = aistack_home / "catalog"
    (d / "old.yaml").mkdir(parents=True)
    (d / "mine.yaml").write_text(
        "servers:\n  - {name: my-box, accelerator: H100, gpus: 8, price_usd: 420000, "
        "power_kw: 10, source: quote, as_of: 2026-01-01}\n"
    )
    with caplog.at_level("WARNING", logger="aistack.planning.catalog"):
        cat = load_catalog()
    assert cat.server("my-box").price_usd == 420000
    assert any("old.yaml" in r.getMessage() and "folder" in r.getMessage() for r in caplog.records)
