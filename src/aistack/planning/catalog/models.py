"""The catalog's entries: accelerators, cloud instances and their prices, CPU prices,
on-premises servers and figures, and the layout of one catalog file (pydantic, checked at load)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from aistack.errors import NotFoundError, ValidationError
from aistack.planning import limits

PriceTier = Literal["on_demand", "committed_1y", "committed_3y", "spot"]
PRICE_TIERS: tuple[PriceTier, ...] = ("on_demand", "committed_1y", "committed_3y", "spot")


class _Model(BaseModel):
    # allow_inf_nan=False: `.inf` (or `.nan`) in a file priced owning at $inf and the hybrid at
    # NaN; it is "Input should be a finite number" naming the file and the field
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QuotedText(str):
    """A scalar the catalog file quoted (``'8'``, ``"55.04"``): text, whatever it looks like.
    The loader reads quoted scalars so; a number field refuses one (a text field reads it as
    a plain ``str``)."""


def _a_number(v: Any) -> Any:
    # YAML reads `true`/`false` (and yes/no/on/off in YAML 1.1) as booleans, which pydantic
    # took as 1 and 0: `price_usd: true` priced a server at $1
    if isinstance(v, bool):
        raise ValueError(f"a boolean ({str(v).lower()}) is not a number: give a number")
    if not isinstance(v, str):
        return v
    try:
        float(v)
    except ValueError:
        raise PydanticCustomError(
            "number_type",
            "must be a number, got the text {text}",
            {"text": repr(str(v)), "hint": "give a number, e.g. 8 or 0.5"},
        ) from None
    # `usd_per_hour: '8'` was read as 8: a number field takes a YAML number, as the REST API
    # takes a JSON one. (An unquoted 1e-300 is text to YAML 1.1, a number to YAML 1.2 and
    # to the catalog, as before.)
    if isinstance(v, QuotedText):
        raise PydanticCustomError(
            "number_quoted",
            "{text} is in quotes, so it is text: give it as a number without quotes",
            {
                "text": repr(str(v)),
                "hint": "write a number bare (8, not '8'); only names, sources and dates are "
                "text that may be quoted",
            },
        )
    return v


def _not_blank(v: str) -> str:
    # every figure has a source (DESIGN.md): `source: ""` passed as one; an empty name could
    # not be asked for
    if not v.strip():
        raise ValueError("must not be empty")
    return v


def _at_most(high: float, why: str) -> AfterValidator:
    def check(v: float) -> float:
        if v > high:
            raise ValueError(
                f"must be at most {limits.number(high)}, got {limits.number(v)} ({why})"
            )
        return v

    return AfterValidator(check)


def _bounded(*, low: float | None = None, high: float | None = None, hint: str) -> AfterValidator:
    """A bound whose error carries its own ``hint`` (the loader answers it instead of the
    section's layout hint): "must be at least 0.01, got 1e-300"."""

    def check(v: float) -> float:
        if low is not None and v < low:
            word, bound = "least", low
        elif high is not None and v > high:
            word, bound = "most", high
        else:
            return v
        raise PydanticCustomError(
            "number_out_of_range",
            "must be at {word} {bound}, got {got}",
            {"word": word, "bound": limits.number(bound), "got": limits.number(v), "hint": hint},
        )

    return AfterValidator(check)


def _not_future(v: dt.date) -> dt.date:
    # a figure dated 2099 was never stale: the warning to check it could not fire. A day of
    # slack for a file written east of UTC on its today.
    today = dt.datetime.now(dt.UTC).date()
    if v > today + dt.timedelta(days=1):
        raise PydanticCustomError(
            "date_in_future",
            "{date} is later than today ({today}, UTC)",
            {"date": v.isoformat(), "today": today.isoformat()},
        )
    return v


Text = Annotated[str, AfterValidator(_not_blank)]
# the date a figure was looked up: today at the latest
AsOf = Annotated[dt.date, AfterValidator(_not_future)]
Number = Annotated[float, BeforeValidator(_a_number)]
Count = Annotated[int, BeforeValidator(_a_number)]
# far past any real figure, so that a slip (a price in cents typed as dollars x 1e9, 1e308) is an
# error and no product of catalog figures overflows to inf
_GPUS_MAX = _at_most(limits.MAX_GPUS, "the largest clusters hold about 200,000 GPUs")
_USD_PER_HOUR_MAX = _at_most(limits.MAX_USD_PER_HOUR, "8-GPU instances cost up to about $100/h")
_SERVER_USD_MAX = _at_most(limits.MAX_SERVER_USD, "a GB200 NVL72 rack costs about $4e6")
_SERVER_KW_MAX = _at_most(10_000.0, "a whole GB200 NVL72 rack draws about 130 kW")
# the least price, as the Python API's and REST's (limits): 1e-300 priced renting or owning at
# nothing
_USD_PER_HOUR_MIN = _bounded(
    low=limits.MIN_USD_PER_HOUR,
    hint="USD per instance-hour, for the whole instance: the cheapest cloud GPUs (one small GPU, "
    "spot) rent for about $0.10/h",
)
_USD_PER_VCPU_HOUR_MIN = _bounded(
    low=limits.MIN_USD_PER_VCPU_HOUR,
    hint="USD per vCPU-hour: a vCPU rents for $0.01 to $0.05/h on demand, e.g. 0.0504",
)
_SERVER_USD_MIN = _bounded(
    low=limits.MIN_SERVER_USD,
    hint="USD per server, in dollars (not thousands): a one-GPU workstation costs a few "
    "thousand, e.g. 450000 for an 8-GPU server",
)


def _spec_max(high: float, unit: str, largest: str) -> AfterValidator:
    return _bounded(
        high=high,
        hint=f"give it in {unit}: {largest} (the bound is about 100x that, so this is likely "
        "another unit)",
    )


# the most each accelerator spec can be (limits): far past every device, so that a unit slip
# (memory in MB, TFLOP/s in FLOP/s) is an error naming the unit, not a plan on a GPU of 80 TB
_BF16_TFLOPS_MAX = _spec_max(
    limits.MAX_BF16_TFLOPS, "TFLOP/s (10^12 FLOP/s, dense)", "B200 has 2,250 TFLOP/s BF16"
)
_FP8_TFLOPS_MAX = _spec_max(
    limits.MAX_FP8_TFLOPS, "TFLOP/s (10^12 FLOP/s, dense)", "B200 has 4,500 TFLOP/s FP8"
)
_MEMORY_GB_MAX = _spec_max(
    limits.MAX_ACCELERATOR_MEMORY_GB, "GB (10^9 bytes) per accelerator", "MI300X has 192 GB"
)
_MEMORY_BW_TBS_MAX = _spec_max(
    limits.MAX_MEMORY_BW_TBS, "TB/s (10^12 bytes/s)", "B200 has 7.7 TB/s (7,700 GB/s is 7.7)"
)
_TDP_W_MAX = _spec_max(limits.MAX_TDP_W, "W per accelerator", "B200 draws 1,000 W")
_NVLINK_GBS_MAX = _spec_max(
    limits.MAX_NVLINK_GBS, "GB/s (bytes) per GPU per direction", "B200's NVLink 5 has 900 GB/s"
)
_NETWORK_GBS_MAX = _spec_max(
    limits.MAX_NETWORK_GBS,
    "GB/s (bytes, not bits) per GPU per direction",
    "a 400 Gb/s NIC per GPU is 50 GB/s",
)


class Efficiency(_Model):
    generation: Text
    mfu: Number = Field(gt=0, le=1)
    goodput: Number = Field(gt=0, le=1)
    source: Text
    as_of: AsOf


class Accelerator(_Model):
    name: Text
    aliases: list[Text] = Field(default_factory=list)
    vendor: str
    generation: Text
    bf16_tflops: Annotated[Number, _BF16_TFLOPS_MAX] = Field(gt=0)
    fp8_tflops: Annotated[Number, _FP8_TFLOPS_MAX] | None = Field(default=None, gt=0)
    memory_gb: Annotated[Number, _MEMORY_GB_MAX] = Field(gt=0)
    memory_bw_tbs: Annotated[Number, _MEMORY_BW_TBS_MAX] = Field(gt=0)
    tdp_w: Annotated[Number, _TDP_W_MAX] = Field(gt=0)
    interconnect: str
    nvlink_gbs: Annotated[Number, _NVLINK_GBS_MAX] = Field(
        gt=0, description="intra-node GB/s per GPU per direction"
    )
    network_gbs: Annotated[Number, _NETWORK_GBS_MAX] = Field(
        gt=0, description="inter-node GB/s per GPU per direction"
    )
    source: Text
    as_of: AsOf

    def peak_tflops(self, precision: str) -> float:
        p = precision.lower()
        if p in ("bf16", "fp16"):
            return self.bf16_tflops
        if p == "fp8":
            if self.fp8_tflops is None:
                raise ValidationError(
                    f"precision: {self.name} has no FP8 tensor cores",
                    hint="use bf16, or pick an accelerator with FP8 (H100, H200, B200, MI300X, L40S)",
                    field="precision",
                )
            return self.fp8_tflops
        raise ValidationError(
            f"precision: unknown training precision {precision!r}",
            hint="use bf16, fp16 or fp8",
            field="precision",
        )


class Price(_Model):
    usd_per_hour: Annotated[Number, _USD_PER_HOUR_MIN, _USD_PER_HOUR_MAX] = Field(gt=0)
    source: Text
    as_of: AsOf


class Instance(_Model):
    name: Text
    provider: Text
    accelerator: Text
    gpus: Annotated[Count, _GPUS_MAX] = Field(gt=0)
    vcpus: Count = Field(gt=0)
    memory_gb: Number = Field(gt=0)
    region: str = ""
    prices: dict[PriceTier, Price] = Field(default_factory=dict)

    def price(self, tier: PriceTier) -> Price:
        if tier not in self.prices:
            have = ", ".join(sorted(self.prices)) or "none"
            raise NotFoundError(
                f"no {tier} price for {self.name} ({self.provider}) in the catalog (it has: {have})",
                hint="add one under prices: in AISTACK_HOME/catalog/<file>.yaml or another catalog "
                "file, "
                "or choose another tier/instance (aistack plan catalog lists them)",
            )
        return self.prices[tier]

    def gpu_hour_usd(self, tier: PriceTier = "on_demand") -> float:
        return self.price(tier).usd_per_hour / self.gpus


class CpuPrice(_Model):
    provider: Text
    usd_per_vcpu_hour: Annotated[Number, _USD_PER_VCPU_HOUR_MIN, _USD_PER_HOUR_MAX] = Field(gt=0)
    source: Text
    as_of: AsOf


class Server(_Model):
    name: Text
    accelerator: Text
    gpus: Annotated[Count, _GPUS_MAX] = Field(gt=0)
    price_usd: Annotated[Number, _SERVER_USD_MIN, _SERVER_USD_MAX] = Field(gt=0)
    power_kw: Annotated[Number, _SERVER_KW_MAX] = Field(gt=0)
    source: Text
    as_of: AsOf


class Figure(_Model):
    value: Number = Field(ge=0)
    source: Text
    as_of: AsOf


MAX_DEPRECIATION_YEARS = 100  # as the TCO horizon (tco.MAX_HORIZON_MONTHS = 1200 months)

# The most each on-premises figure can be, with why: far past every real site, so that a slip (a
# percent typed as a fraction, cents typed as dollars) is an error, not a TCO that favours the
# cloud by 20x. (pue's least, depreciation_years and idle_power_fraction: in _check_onprem.)
_ONPREM_MAX: dict[str, tuple[float, str]] = {
    "pue": (5.0, "facility power / IT power: new GPU halls run at 1.1 to 1.4, old rooms at 2.5"),
    "electricity_usd_per_kwh": (
        5.0,
        "USD per kWh: industrial prices are $0.03 to $0.40; 8.3 cents is 0.083",
    ),
    "colocation_usd_per_kw_month": (10_000.0, "USD per kW-month: rents are $100 to $300"),
    "network_usd_per_node": (limits.MAX_SERVER_USD, "USD per node"),
    "storage_usd_per_node": (limits.MAX_SERVER_USD, "USD per node"),
    "staff_usd_per_node_year": (10_000_000.0, "USD per node-year: $1,000 to $50,000 is usual"),
    "cost_of_capital": (1.0, "a fraction per year: 8 % a year is 0.08, not 8"),
}


def _check_onprem(name: str, v: Figure | None) -> Figure | None:
    """The bounds of one on-premises figure (in a user file as in the merged inputs)."""
    if v is None:
        return v
    if name == "pue" and v.value < 1:
        raise ValueError("pue must be >= 1.0 (facility power / IT power)")
    if name == "depreciation_years":
        # break-even is looked for month by month over the server life: 1e9 years never
        # finished (and .inf was an OverflowError in round)
        if not v.value <= MAX_DEPRECIATION_YEARS:
            raise ValueError(
                f"depreciation_years must be at most {MAX_DEPRECIATION_YEARS} years, got "
                f"{v.value:g} (servers are written off in 3 to 5 years)"
            )
        # costs are by month: a life under half a month rounded to 0 months (ZeroDivisionError)
        if round(v.value * 12) < 1:
            raise ValueError("depreciation_years must be at least one month (0.083 years)")
    if name == "idle_power_fraction" and v.value > 1:
        raise ValueError(
            "idle_power_fraction must be in [0, 1] (idle draw / maximum draw: 30 % is 0.3)"
        )
    high = _ONPREM_MAX.get(name)
    if high is not None and v.value > high[0]:
        raise ValueError(
            f"{name} must be at most {limits.number(high[0])}, got {limits.number(v.value)} "
            f"({high[1]})"
        )
    return v


class OnPremInputs(_Model):
    pue: Figure
    electricity_usd_per_kwh: Figure
    colocation_usd_per_kw_month: Figure
    network_usd_per_node: Figure
    storage_usd_per_node: Figure
    staff_usd_per_node_year: Figure
    depreciation_years: Figure
    cost_of_capital: Figure
    idle_power_fraction: Figure

    @field_validator("*")
    @classmethod
    def _bounds(cls, v: Figure, info: ValidationInfo) -> Figure:
        _check_onprem(str(info.field_name), v)
        return v


class OnPremPatch(_Model):
    """A user file may override any subset of the on-premises figures (checked in that file,
    so that the error names it)."""

    pue: Figure | None = None
    electricity_usd_per_kwh: Figure | None = None
    colocation_usd_per_kw_month: Figure | None = None
    network_usd_per_node: Figure | None = None
    storage_usd_per_node: Figure | None = None
    staff_usd_per_node_year: Figure | None = None
    depreciation_years: Figure | None = None
    cost_of_capital: Figure | None = None
    idle_power_fraction: Figure | None = None

    @field_validator("*")
    @classmethod
    def _bounds(cls, v: Figure | None, info: ValidationInfo) -> Figure | None:
        return _check_onprem(str(info.field_name), v)


class CatalogFile(_Model):
    """The layout of one catalog YAML file (all sections optional)."""

    efficiency: list[Efficiency] = Field(default_factory=list)
    accelerators: list[Accelerator] = Field(default_factory=list)
    instances: list[Instance] = Field(default_factory=list)
    cpu_prices: list[CpuPrice] = Field(default_factory=list)
    servers: list[Server] = Field(default_factory=list)
    onprem: OnPremPatch | None = None


@dataclass(frozen=True, kw_only=True)
class FigureRow:
    """One dated figure, for listing and staleness checks."""

    kind: str
    name: str
    field: str
    value: float
    unit: str
    source: str
    as_of: dt.date
    origin: str

    def age_days(self, today: dt.date) -> int:
        return (today - self.as_of).days

    def is_price(self) -> bool:
        return self.kind in ("instance", "server", "cpu")
