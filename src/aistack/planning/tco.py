"""Total cost of ownership: on-premises vs cloud (on-demand, committed, spot) vs hybrid.

The team needs ``gpus`` GPUs at peak and uses them ``utilization`` of the time on average
(GPU-hours per month = gpus · utilization · 730).

* on-premises: buy whole servers up front (server + network + storage per node), then pay
  every month for power (idle share + busy share, times PUE), colocation per provisioned kW,
  staff, and the cost of the capital tied up (capex · rate / 12). The first fleet is charged
  in full whatever the horizon (no resale value is assumed). Servers are bought again when they
  reach their depreciation age within the horizon; such a refresh keeps serving after the
  horizon, so it is charged only for the share of its life inside the horizon (straight line:
  capex · months used / depreciation months). Without that, one month past the server life
  bought a whole second fleet and flipped the ranking.
* cloud on-demand and spot: pay only for the hours used (spot plus a rework overhead for
  preemptions), of whole instances: 3 GPUs on an 8-GPU instance pay for 8 while in use.
* committed (1 or 3 years): whole instances (⌈gpus / GPUs per instance⌉) around the clock at
  the committed rate, for whole terms: a horizon shorter than the term (or not a multiple of
  it) still pays the rest of the last term, added at the end of the horizon.
* hybrid: own whole servers for the steady base load, burst the rest on on-demand.

Break-even month: the first month when the cumulative on-premises cost (purchase + running
costs) falls to or below cumulative on-demand, looked for over the first server life even when
the horizon is shorter (the report then says "after the N-month horizon"); None: never within
the server life. For a fleet the size of the need this is capex / (on-demand per month −
running cost per month) (:func:`breakeven_month`).
Break-even utilization: where the amortized monthly on-premises cost (annuity over the
depreciation years at the cost of capital, plus running costs) equals on-demand.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from aistack.errors import ValidationError
from aistack.planning import limits
from aistack.planning.catalog import Catalog, Instance, Price, Server, default_catalog
from aistack.planning.limits import check_range, is_number

HOURS_PER_MONTH = 730.0
# what the JSON of a TcoResult (the CLI's --json and POST /plan/tco) counts its numbers in
UNITS = (
    "USD (*_usd, cumulative_usd; cost_per_useful_gpu_hour: USD per useful GPU-hour; "
    "*_usd_per_gpu_hour: USD per GPU-hour), months (*_month*), "
    "fraction 0-1 (utilization, breakeven_utilization), GPUs (gpus, hybrid_base_gpus)"
)
DEFAULT_SPOT_OVERHEAD = 0.10
# The plan is built month by month (a cumulative cost per month and scenario): 10**8 months
# never finished and held a server worker. 100 years (also the CLI's cap on its months).
MAX_HORIZON_MONTHS = 1200
_GPUS_WHY = "the largest clusters hold about 200,000 GPUs"


@dataclass(frozen=True, kw_only=True)
class OnPremCost:
    """The cost structure of owning ``servers`` servers."""

    servers: int
    gpus: int
    capex_usd: float
    power_idle_usd_month: float  # at zero utilization
    power_busy_usd_month: float  # extra at 100% utilization
    colocation_usd_month: float
    staff_usd_month: float
    capital_usd_month: float
    annuity_usd_month: float
    depreciation_months: int

    def opex_month(self, utilization: float) -> float:
        """Cash running cost per month (power, hosting, staff, cost of capital)."""
        return (
            self.power_idle_usd_month
            + self.power_busy_usd_month * utilization
            + self.colocation_usd_month
            + self.staff_usd_month
            + self.capital_usd_month
        )

    def amortized_month(self, utilization: float) -> float:
        """Monthly cost with the capex spread as an annuity (includes the cost of capital)."""
        return (
            self.annuity_usd_month
            + self.power_idle_usd_month
            + self.power_busy_usd_month * utilization
            + self.colocation_usd_month
            + self.staff_usd_month
        )


def onprem_cost(
    server: Server, servers: int, catalog: Catalog, *, server_price_usd: float | None = None
) -> OnPremCost:
    op = catalog.onprem
    price = server_price_usd if server_price_usd is not None else server.price_usd
    capex = servers * (price + op.network_usd_per_node.value + op.storage_usd_per_node.value)
    kw = servers * server.power_kw
    kwh_price = op.electricity_usd_per_kwh.value * op.pue.value
    idle = op.idle_power_fraction.value
    rate = op.cost_of_capital.value / 12.0
    n = int(round(op.depreciation_years.value * 12))
    annuity = capex / n if rate == 0 else capex * rate / (1.0 - (1.0 + rate) ** (-n))
    return OnPremCost(
        servers=servers,
        gpus=servers * server.gpus,
        capex_usd=capex,
        power_idle_usd_month=kw * idle * kwh_price * HOURS_PER_MONTH,
        power_busy_usd_month=kw * (1.0 - idle) * kwh_price * HOURS_PER_MONTH,
        colocation_usd_month=kw * op.colocation_usd_per_kw_month.value,
        staff_usd_month=servers * op.staff_usd_per_node_year.value / 12.0,
        capital_usd_month=capex * rate,
        annuity_usd_month=annuity,
        depreciation_months=n,
    )


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str
    upfront_usd: float
    monthly_usd: float  # average over the horizon, excluding upfront
    total_usd: float
    cost_per_useful_gpu_hour: float
    breakeven_month_vs_on_demand: float | None
    cumulative_usd: list[float]  # index = month 0..horizon


@dataclass(frozen=True, kw_only=True)
class TcoResult:
    gpus: int
    gpu: str
    utilization: float
    horizon_months: int
    instance: str
    server: str
    servers: int
    on_demand_usd_per_gpu_hour: float
    onprem_usd_per_gpu_hour_amortized: float
    breakeven_month: float | None
    breakeven_utilization: float | None
    hybrid_base_gpus: int
    scenarios: list[Scenario]
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_life_months: int = 0  # the depreciation life break-even months are looked for in

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON, with ``units``: what its numbers count (the REST answer had none)."""
        return {**asdict(self), "units": UNITS}


def whole_instance_gpus(gpus: float, per_instance: int) -> float:
    """GPUs the cloud bills for ``gpus`` in use at once on instances of ``per_instance`` GPUs:
    the GPUs rounded up to whole instances (3 on 8-GPU instances pay 8, 12 pay 16, 0 pay 0).

    The one rounding of every cloud figure (:func:`plan_tco`'s on-demand, spot and hybrid
    burst; the what-if sweep's overflow; the usage report's advice). A fractional ``gpus`` is a
    mean over a time step (0.25: one GPU a quarter of the step): it is taken as its whole GPUs
    (rounded up) that share of the time, and billed as their instances that share of the time
    (0.25 on 8-GPU instances pays 2)."""
    if gpus <= 1e-12:
        return 0.0
    need = max(1, math.ceil(gpus - 1e-9))  # whole GPUs wanted at once
    return gpus * math.ceil(need / per_instance) * per_instance / need


def _cumulative(upfront_at: dict[int, float], monthly: float, horizon: int) -> list[float]:
    out, total = [], 0.0
    for m in range(horizon + 1):
        total += upfront_at.get(m, 0.0)
        out.append(total)
        total += monthly
    return out


def _crossing(cum_a: list[float], cum_b: list[float]) -> float | None:
    """First (fractional) month where a (own) drops to or below b (rent), after month 0."""
    for m in range(1, len(cum_a)):
        if cum_a[m] <= cum_b[m]:
            da0, db0 = cum_a[m - 1], cum_b[m - 1]
            gap0, gap1 = da0 - db0, cum_a[m] - cum_b[m]
            if gap0 <= 0 or gap0 == gap1:
                return float(m)
            return (m - 1) + gap0 / (gap0 - gap1)
    return None


def breakeven_month(
    cost: OnPremCost, *, cloud_usd_per_gpu_hour: float, gpus: int, utilization: float
) -> float | None:
    """Months until owning is cheaper than on-demand (first server life only); None if never."""
    cloud_month = gpus * utilization * HOURS_PER_MONTH * cloud_usd_per_gpu_hour
    saving = cloud_month - cost.opex_month(utilization)
    if saving <= 0:
        return None
    m = cost.capex_usd / saving
    return m if m <= cost.depreciation_months else None


def breakeven_utilization(
    cost: OnPremCost, *, cloud_usd_per_gpu_hour: float, gpus: int
) -> float | None:
    """Utilization above which owning (amortized) beats on-demand; None if it never does (<= 100%).

    ``utilization`` is of the ``gpus`` needed, as in :func:`plan_tco`: the owned fleet (whole
    servers, ``cost.gpus`` >= ``gpus``) is then busy ``utilization · gpus / cost.gpus`` of the
    time, and draws busy power only for that share."""
    fixed = cost.amortized_month(0.0)
    per_util = (
        gpus * HOURS_PER_MONTH * cloud_usd_per_gpu_hour
        - cost.power_busy_usd_month * gpus / cost.gpus
    )
    if per_util <= 0:
        return None
    u = fixed / per_util
    return u if u <= 1.0 else None


def _check(name: str, v: float | int | None, hint: str) -> None:
    if v is None:
        return
    if not is_number(v) or v <= 0:
        shown = limits.number(v) if is_number(v) else repr(v)
        raise ValidationError(
            f"{name}: must be a positive number, got {shown}", hint=hint, field=name
        )


def _scaled_prices(inst: Instance, cloud_usd_per_hour: float) -> tuple[Instance, list[str]]:
    """``inst`` with on-demand at ``cloud_usd_per_hour`` and every other tier scaled by the
    same factor (keeping the catalog's discounts), and the notes to show.

    Each derived price is validated as a catalog price is (``model_copy(update=...)`` skipped
    that: a $0.02/h on-demand made p5.48xlarge's spot $0.008/h, under the catalog's least price).
    A derived tier outside limits.MIN_USD_PER_HOUR to MAX_USD_PER_HOUR ($0.01 to $1e6 an hour)
    is clamped to the bound, with a note naming the tier, the derived price and the override
    that keeps its discount: the override itself is in range, so the plan still runs. Anything
    else a derived price fails is a ValidationError on ``cloud_usd_per_hour``."""
    catalog_od = inst.prices["on_demand"].usd_per_hour
    scale = cloud_usd_per_hour / catalog_od
    prices: dict[str, Price] = {}
    notes: list[str] = []
    for tier, p in inst.prices.items():
        derived = p.usd_per_hour * scale
        price = min(max(derived, limits.MIN_USD_PER_HOUR), limits.MAX_USD_PER_HOUR)
        if price != derived and tier != "on_demand":  # (on-demand: at most a rounding off)
            ratio = p.usd_per_hour / catalog_od
            if derived < price:
                word = "under the least"
                # the least override that keeps this tier's discount, rounded up to a cent
                need = f"at least ${limits.number(math.ceil(price / ratio * 100) / 100)}/h"
            else:
                word = "over the most"
                need = f"at most ${limits.number(math.floor(price / ratio * 100) / 100)}/h"
            notes.append(
                f"cloud_usd_per_hour ${limits.number(cloud_usd_per_hour)}/h scales "
                f"{inst.name}'s {tier} price ({ratio:.0%} of on-demand in the catalog) to "
                f"${limits.number(derived)}/h, {word} price a catalog may give: {tier} priced "
                f"at ${limits.number(price)}/h instead (give cloud_usd_per_hour {need} to keep "
                "its discount)"
            )
        try:
            prices[tier] = Price.model_validate({**dict(p), "usd_per_hour": price})
        except PydanticValidationError as exc:
            raise ValidationError(
                f"cloud_usd_per_hour: ${limits.number(cloud_usd_per_hour)}/h scales "
                f"{inst.name}'s {tier} price to ${limits.number(price)}/h: "
                f"{exc.errors()[0]['msg']}",
                hint="the other tiers keep the catalog's ratio to on-demand: give another "
                f"cloud_usd_per_hour, or correct the {tier} price in the catalog",
                field="cloud_usd_per_hour",
            ) from None
    return Instance.model_validate({**dict(inst), "prices": prices}), notes


def plan_tco(
    *,
    gpus: int,
    gpu: str | None = None,
    instance: str | None = None,
    server: str | None = None,
    utilization: float = 1.0,
    horizon_months: int = 36,
    hybrid_base_gpus: int | None = None,
    spot_overhead: float = DEFAULT_SPOT_OVERHEAD,
    cloud_usd_per_hour: float | None = None,
    server_price_usd: float | None = None,
    catalog: Catalog | None = None,
) -> TcoResult:
    """Compare owning vs renting ``gpus`` GPUs of one type over ``horizon_months``.

    ``gpu`` picks the default instance and server for that accelerator; ``instance``/``server``
    choose them by name. ``cloud_usd_per_hour`` overrides the instance's on-demand price (USD per
    instance-hour, from limits.MIN_USD_PER_HOUR to MAX_USD_PER_HOUR: $0.01 to $1e6),
    ``server_price_usd`` the server's purchase price (USD, from limits.MIN_SERVER_USD to
    MAX_SERVER_USD: $1,000 to $1e10); outside, a ValidationError names the field.
    With ``cloud_usd_per_hour``, the instance's other tiers (committed, spot) are scaled by the
    same factor as on-demand and validated as catalog prices. A derived tier outside $0.01 to
    $1e6 an hour (e.g. spot at 40 % of a $0.01/h on-demand: $0.004/h) is clamped to the bound,
    with a note in ``notes`` naming the tier, the derived price and the override that keeps its
    discount: every override in the range above is accepted, and no tier is priced below what
    a catalog file may give.
    ``horizon_months`` is at most MAX_HORIZON_MONTHS (1200).
    """
    cat = catalog or default_catalog()
    _check("gpus", gpus, "GPUs needed at peak, e.g. 16")
    if int(gpus) != gpus:
        raise ValidationError(f"gpus: must be a whole number, got {gpus!r}", field="gpus")
    check_range("gpus", gpus, high=limits.MAX_GPUS, hint=_GPUS_WHY)
    _check("horizon_months", horizon_months, "e.g. 36")
    if int(horizon_months) != horizon_months:
        raise ValidationError(
            f"horizon_months: must be a whole number of months, got {horizon_months!r}",
            hint="e.g. 36",
            field="horizon_months",
        )
    if horizon_months > MAX_HORIZON_MONTHS:
        raise ValidationError(
            f"horizon_months: at most {MAX_HORIZON_MONTHS} months "
            f"({MAX_HORIZON_MONTHS // 12} years), got {horizon_months!r}",
            hint="servers are written off in 3 to 5 years: e.g. 36 or 60",
            field="horizon_months",
        )
    _check("cloud_usd_per_hour", cloud_usd_per_hour, "USD per instance-hour, e.g. 84")
    check_range(
        "cloud_usd_per_hour",
        cloud_usd_per_hour,
        low=limits.MIN_USD_PER_HOUR,
        hint="USD per instance-hour: the cheapest (one small GPU, spot) rent for about $0.10/h",
    )
    check_range(
        "cloud_usd_per_hour",
        cloud_usd_per_hour,
        high=limits.MAX_USD_PER_HOUR,
        hint="USD per instance-hour: 8-GPU instances cost up to about $100/h",
    )
    _check("server_price_usd", server_price_usd, "USD per server, e.g. 450000")
    check_range(
        "server_price_usd",
        server_price_usd,
        low=limits.MIN_SERVER_USD,
        hint="USD per server, in dollars (not thousands): a one-GPU workstation costs a few "
        "thousand, e.g. 450000 for an 8-GPU server",
    )
    check_range(
        "server_price_usd",
        server_price_usd,
        high=limits.MAX_SERVER_USD,
        hint="USD per server: $10,000 to about $4e6 (a GB200 NVL72 rack)",
    )
    if (
        isinstance(utilization, bool)
        or not isinstance(utilization, int | float)
        or not (0 < utilization <= 1)
    ):
        percent = is_number(utilization) and 1 < utilization <= 100
        raise ValidationError(
            f"utilization: must be in (0, 1], got {utilization!r}",
            # 80 for 80 %: say the fraction it most likely meant
            hint=f"a fraction, not a percent: {utilization:g} % is {utilization / 100:g}"
            if percent
            else "a fraction of the time the GPUs are busy, e.g. 0.6",
            field="utilization",
        )
    # (a text or None was a TypeError from the comparison)
    if not is_number(spot_overhead) or not (0 <= spot_overhead < 1):
        raise ValidationError(
            f"spot_overhead: must be in [0, 1), got {spot_overhead!r}",
            hint="the share of spot GPU-hours redone after preemptions, e.g. 0.1",
            field="spot_overhead",
        )
    for name, given in (("gpu", gpu), ("instance", instance), ("server", server)):
        # "" was taken for "not given" and the error blamed a name nobody gave ("unknown
        # server 'None'"); a number or a list was a TypeError
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise ValidationError(
                f"{name}: must be a name from the catalog, got {given!r}",
                hint="`aistack plan catalog` lists them; leave it out to use the default",
                field=name,
            )
    if hybrid_base_gpus is not None:
        if (
            not is_number(hybrid_base_gpus)
            or hybrid_base_gpus < 0
            or int(hybrid_base_gpus) != hybrid_base_gpus
        ):
            raise ValidationError(
                f"hybrid_base_gpus: must be a whole number >= 0, got {hybrid_base_gpus!r}",
                field="hybrid_base_gpus",
            )
        check_range("hybrid_base_gpus", hybrid_base_gpus, high=limits.MAX_GPUS, hint=_GPUS_WHY)
    if gpu is None and instance is None and server is None:
        raise ValidationError(
            "give gpu, instance or server",
            hint="e.g. `gpu` H100 or `instance` p5.48xlarge",
            field="gpu",
        )
    gpus = int(gpus)
    horizon = int(horizon_months)
    notes: list[str] = []
    missing: list[str] = []

    inst: Instance = (
        cat.instance(instance)
        if instance
        else cat.default_instance(gpu or cat.server(str(server)).accelerator)
    )
    acc = cat.accelerator(gpu) if gpu else cat.accelerator(inst.accelerator)
    if cat.accelerator(inst.accelerator).name != acc.name:
        raise ValidationError(
            f"instance: {inst.name} has {inst.accelerator}, not {acc.name}",
            hint=f"pick an instance with {acc.name}: {', '.join(i.name for i in cat.instances_for(acc.name)) or 'none in the catalog'}",
        )
    srv: Server = cat.server(server) if server else cat.default_server(acc.name)
    if cat.accelerator(srv.accelerator).name != acc.name:
        notes.append(
            f"comparing unlike GPUs: the cloud instance has {acc.name}, the server {srv.accelerator}"
        )
    if cloud_usd_per_hour is not None:
        od = cloud_usd_per_hour / inst.gpus
        notes.append(
            f"on-demand price set by the caller: ${cloud_usd_per_hour:,.2f}/h for {inst.name}"
        )
        if "on_demand" in inst.prices:
            # keep the catalog's discounts of the other tiers relative to on-demand
            inst, clamped = _scaled_prices(inst, cloud_usd_per_hour)
            if len(inst.prices) > 1:
                notes.append("committed and spot prices scaled by the same factor as on-demand")
            notes.extend(clamped)
        else:
            # Price(...) validates, as a catalog price is (the range was checked above)
            prices = {
                **inst.prices,
                "on_demand": Price(
                    usd_per_hour=cloud_usd_per_hour,
                    source="set by the caller",
                    as_of=dt.date.today(),
                ),
            }
            inst = Instance.model_validate({**dict(inst), "prices": prices})
    else:
        od = inst.gpu_hour_usd("on_demand")

    n_servers = math.ceil(gpus / srv.gpus)
    own = onprem_cost(srv, n_servers, cat, server_price_usd=server_price_usd)
    used_hours_month = gpus * utilization * HOURS_PER_MONTH
    useful_total = used_hours_month * horizon
    dep = own.depreciation_months
    # break-even months are looked for over the first server life even past a short horizon
    life = max(horizon, dep)
    life_cum: dict[str, list[float]] = {}

    def purchases(capex: float) -> dict[int, float]:
        """The first fleet in full at month 0; refreshes (month dep, 2·dep, … inside the
        horizon) pro rata for the months of their life inside the horizon."""
        out = {0: capex}
        for m in range(dep, horizon, dep):
            out[m] = capex * min(1.0, (horizon - m) / dep)
        return out

    refresh = purchases(own.capex_usd)

    scen: list[Scenario] = []

    def add(name: str, desc: str, upfront_at: dict[int, float], monthly: float) -> None:
        cum = _cumulative(upfront_at, monthly, horizon)
        life_cum[name] = _cumulative(
            {m: v for m, v in upfront_at.items() if m < horizon or m == 0}, monthly, life
        )
        total = cum[-1]
        scen.append(
            Scenario(
                name=name,
                description=desc,
                upfront_usd=upfront_at.get(0, 0.0),
                monthly_usd=monthly,
                total_usd=total,
                cost_per_useful_gpu_hour=total / useful_total,
                breakeven_month_vs_on_demand=None,
                cumulative_usd=cum,
            )
        )

    add(
        "on-prem",
        f"buy {n_servers} x {srv.name} ({own.gpus} GPUs)",
        refresh,
        own.opex_month(utilization * gpus / own.gpus),
    )
    # the cloud rents whole instances: 3 GPUs on an 8-GPU p5.48xlarge pay for 8 while they run
    # (on-demand and spot were billed per GPU-hour used, as if it rented 3)
    rented = int(whole_instance_gpus(gpus, inst.gpus))
    n_inst = rented // inst.gpus
    whole = rented / gpus  # GPUs paid per GPU used
    add(
        "cloud on-demand",
        f"{inst.name} on-demand, pay per hour used"
        + (f" ({n_inst} x {inst.gpus} GPUs for {gpus})" if rented != gpus else ""),
        {},
        used_hours_month * od * whole,
    )
    if rented != gpus:
        smaller = sorted(
            i.name
            for i in cat.instances_for(acc.name)
            if i.gpus < inst.gpus and "on_demand" in i.prices
        )
        notes.append(
            f"the cloud rents whole instances: {n_inst} x {inst.name} ({rented} GPUs) for the "
            f"{gpus} needed, paid for all {rented} GPUs while in use (on-demand, spot, hybrid "
            "burst)"
            + (
                f"; instances with fewer {acc.name} in the catalog: {', '.join(smaller)} "
                "(`instance`)"
                if smaller
                else ""
            )
        )
    for tier, label, term in (
        ("committed_1y", "1-year commitment", 12),
        ("committed_3y", "3-year commitment", 36),
    ):
        if tier in inst.prices:
            monthly = n_inst * inst.gpus * HOURS_PER_MONTH * inst.gpu_hour_usd(tier)
            paid = math.ceil(horizon / term) * term  # a commitment is bought for whole terms
            unexpired = (paid - horizon) * monthly
            add(
                f"cloud {label}",
                f"{n_inst} x {inst.name} ({n_inst * inst.gpus} GPUs) {label} around the clock"
                + (f", {paid} months paid" if unexpired else ""),
                {horizon: unexpired} if unexpired else {},
                monthly,
            )
            if unexpired:
                notes.append(
                    f"{label}: {paid} months must be paid ({usd_text(unexpired)} for the "
                    f"{paid - horizon} months after the {horizon}-month horizon, in its total)"
                )
        else:
            missing.append(f"no {tier} price for {inst.name} ({inst.provider}) in the catalog")
    if "spot" in inst.prices:
        add(
            "cloud spot",
            f"{inst.name} spot, +{spot_overhead:.0%} rework after preemptions",
            {},
            used_hours_month * whole * inst.gpu_hour_usd("spot") * (1.0 + spot_overhead),
        )
    else:
        missing.append(f"no spot price for {inst.name} ({inst.provider}) in the catalog")

    # hybrid: own whole servers for the steady base, burst the rest on-demand
    if hybrid_base_gpus is None:
        base_servers = int((gpus * utilization) // srv.gpus)
    else:
        base_servers = math.ceil(hybrid_base_gpus / srv.gpus)
        if hybrid_base_gpus > gpus:
            notes.append(
                f"hybrid: the base of {hybrid_base_gpus} GPUs is more than the {gpus} needed"
            )
    base_gpus = base_servers * srv.gpus
    if base_servers > 0:
        base = onprem_cost(srv, base_servers, cat, server_price_usd=server_price_usd)
        served = min(used_hours_month, base_gpus * HOURS_PER_MONTH)
        burst = used_hours_month - served
        if gpus > base_gpus:  # the burst, too, rents whole instances
            need = gpus - base_gpus
            burst *= whole_instance_gpus(need, inst.gpus) / need
        b_refresh = purchases(base.capex_usd)
        add(
            "hybrid",
            f"own {base_servers} x {srv.name} ({base_gpus} GPUs) for the base load, burst {inst.name} on-demand",
            b_refresh,
            base.opex_month(served / (base_gpus * HOURS_PER_MONTH)) + burst * od,
        )
    elif hybrid_base_gpus is not None:
        notes.append(
            "hybrid: a base of 0 GPUs owns nothing: the hybrid is the same as cloud on-demand"
        )
    else:
        notes.append(
            f"hybrid: the average load ({gpus * utilization:.1f} GPUs) is under one {srv.gpus}-GPU server; "
            "nothing to own for a base load (give `hybrid_base_gpus` to force one)"
        )

    od_cum = life_cum["cloud on-demand"]
    scen = [
        s
        if s.upfront_usd == 0
        else Scenario(
            **{
                **asdict(s),
                "breakeven_month_vs_on_demand": _crossing(life_cum[s.name], od_cum),
            }
        )
        for s in scen
    ]
    # one definition for the table and the summary (the crossing of the cumulative curves)
    be_month = next(s for s in scen if s.name == "on-prem").breakeven_month_vs_on_demand
    be_util = breakeven_utilization(own, cloud_usd_per_gpu_hour=od * whole, gpus=gpus)
    if own.gpus != gpus:
        notes.append(f"on-prem rounds up to whole servers: {own.gpus} GPUs owned for {gpus} needed")
    return TcoResult(
        gpus=gpus,
        gpu=acc.name,
        utilization=float(utilization),
        horizon_months=horizon,
        instance=inst.name,
        server=srv.name,
        servers=n_servers,
        on_demand_usd_per_gpu_hour=od,
        onprem_usd_per_gpu_hour_amortized=own.amortized_month(1.0) / (own.gpus * HOURS_PER_MONTH),
        breakeven_month=be_month,
        breakeven_utilization=be_util,
        hybrid_base_gpus=base_gpus,
        scenarios=scen,
        missing=missing,
        notes=notes,
        server_life_months=dep,
    )


def usd_text(x: float) -> str:
    return f"${x:,.0f}"
