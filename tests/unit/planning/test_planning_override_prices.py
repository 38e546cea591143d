"""plan_tco's cloud_usd_per_hour: the tiers it derives are validated as catalog prices.

The override scaled spot/committed with ``model_copy(update=...)``, which skips validation: a
$0.02/h on-demand made p5.48xlarge's spot $0.008/h, under limits.MIN_USD_PER_HOUR, and a tier
priced above on-demand could pass limits.MAX_USD_PER_HOUR. Such a tier is now clamped to the
bound, with a note (the override itself is in its documented range).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.planning import limits
from aistack.planning.catalog import Catalog, Price, load_catalog
from aistack.planning.tco import plan_tco

CAT = load_catalog(include_user=False)
# p5.48xlarge in the shipped catalog: on-demand $55.04/h, spot $22.02/h (40 %)
_P5 = dict(gpus=8, instance="p5.48xlarge", server="dgx-h200", horizon_months=12, catalog=CAT)


def _spot_total(r: object, instance_usd_per_hour: float, months: int) -> float:
    """What the spot scenario costs for 8 GPUs busy all the time at that instance price."""
    return instance_usd_per_hour * 730 * months * 1.10  # + the default 10 % rework


def test_derived_spot_under_the_minimum_is_clamped_with_a_note() -> None:
    # spot: 0.02 * 22.02 / 55.04 = $0.008/h, under limits.MIN_USD_PER_HOUR
    r = plan_tco(**{**_P5, "cloud_usd_per_hour": 0.02})  # type: ignore[arg-type]
    spot = r.scenario("cloud spot")
    assert spot.total_usd == pytest.approx(_spot_total(r, limits.MIN_USD_PER_HOUR, 12), rel=1e-9)
    note = next(n for n in r.notes if "'s spot price" in n)
    assert note.startswith("cloud_usd_per_hour $0.02/h scales p5.48xlarge's spot price"), note
    assert "0.00800145" in note and "spot priced at $0.01/h instead" in note, note
    # the override the note gives keeps the discount: nothing clamped there
    assert "at least $0.03/h" in note, note
    r = plan_tco(**{**_P5, "cloud_usd_per_hour": 0.03})  # type: ignore[arg-type]
    assert not any("instead" in n for n in r.notes), r.notes
    assert r.scenario("cloud spot").total_usd == pytest.approx(
        _spot_total(r, 0.03 * 22.02 / 55.04, 12), rel=1e-9
    )


def test_the_least_override_is_still_accepted() -> None:
    """cloud_usd_per_hour's documented bound ($0.01/h) plans; every derived tier is >= $0.01/h."""
    r = plan_tco(**{**_P5, "cloud_usd_per_hour": limits.MIN_USD_PER_HOUR})  # type: ignore[arg-type]
    for name in ("cloud spot", "cloud 1-year commitment", "cloud 3-year commitment"):
        total = r.scenario(name).total_usd
        assert total >= limits.MIN_USD_PER_HOUR * 730 * 12 * (1 - 1e-9), (name, total)


def test_derived_tier_over_the_maximum_is_clamped_with_a_note(tmp_path: Path) -> None:
    """A catalog tier priced above on-demand (a user file may) scaled past $1e6/h."""
    f = tmp_path / "mine.yaml"
    f.write_text(
        "instances:\n"
        "  - name: odd.8x\n    provider: aws\n    accelerator: H100-SXM\n    gpus: 8\n"
        "    vcpus: 192\n    memory_gb: 2048\n    prices:\n"
        "      on_demand: {usd_per_hour: 10, source: test, as_of: 2025-01-01}\n"
        "      spot: {usd_per_hour: 20, source: test, as_of: 2025-01-01}\n",
        encoding="utf-8",
    )
    cat = load_catalog([f], include_user=False)
    r = plan_tco(
        gpus=8,
        instance="odd.8x",
        server="dgx-h200",
        cloud_usd_per_hour=limits.MAX_USD_PER_HOUR,
        catalog=cat,
    )
    assert r.scenario("cloud spot").total_usd == pytest.approx(
        _spot_total(r, limits.MAX_USD_PER_HOUR, 36), rel=1e-9
    )
    note = next(n for n in r.notes if "'s spot price" in n)
    assert "over the most price" in note and "at most $500,000/h" in note, note


def test_valid_override_keeps_the_numbers() -> None:
    """Valid input: the derived tiers are the scaled catalog prices, as before."""
    r = plan_tco(**{**_P5, "cloud_usd_per_hour": 84.0})  # type: ignore[arg-type]
    scale = 84.0 / 55.04
    spot = r.scenario("cloud spot")
    assert spot.total_usd == pytest.approx(22.02 * scale * 8760 * 1.10, rel=1e-9)
    assert any("scaled by the same factor" in n for n in r.notes)


def test_derived_prices_are_validated_price_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every derived price goes through Price validation (no model_copy(update=...))."""
    seen: list[float] = []
    orig = Price.model_validate.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Price], obj: object, *a: object, **kw: object) -> Price:
        if isinstance(obj, dict):
            seen.append(obj["usd_per_hour"])
        return orig(cls, obj, *a, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Price, "model_validate", classmethod(spy))
    plan_tco(**{**_P5, "cloud_usd_per_hour": 84.0})  # type: ignore[arg-type]
    assert len(seen) == 4  # on-demand, committed_1y, committed_3y, spot
    assert max(seen) == pytest.approx(84.0)


def test_instance_without_on_demand_gets_a_validated_price(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        "instances:\n"
        "  - name: spotonly.8x\n    provider: aws\n    accelerator: H100-SXM\n    gpus: 8\n"
        "    vcpus: 192\n    memory_gb: 2048\n    prices:\n"
        "      spot: {usd_per_hour: 20, source: test, as_of: 2025-01-01}\n",
        encoding="utf-8",
    )
    cat: Catalog = load_catalog([f], include_user=False)
    r = plan_tco(
        gpus=8, instance="spotonly.8x", server="dgx-h200", cloud_usd_per_hour=40.0, catalog=cat
    )
    assert r.scenario("cloud on-demand").total_usd == pytest.approx(40.0 * 730 * 36, rel=1e-9)
