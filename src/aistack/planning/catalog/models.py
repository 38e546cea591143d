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
        raise PydanticCustomError(
            "number_type",
            "must be a number, got the boolean {text}",
            {
                "text": str(v).lower(),
                "hint": "give a number, e.g. 8 or 0.5 (YAML reads true/false, yes/no and on/off "
                "as booleans)",
            },
        )
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


# what each text field of an entry holds (Text), for the hint when it is empty
_TEXT_HINT = {
    "source": "give where the figure was looked up: a URL, a document or a quote, e.g. "
    "source: 'AWS EC2 On-Demand pricing, June 2025'",
    "name": "give the entry's name, e.g. name: p5.48xlarge (an instance), H100-SXM (an "
    "accelerator) or dgx-h100 (a server)",
    "aliases": "give each alias as text, e.g. aliases: [H100, H100-SXM5], or leave it out",
    "provider": "give the cloud provider, e.g. provider: aws",
    "accelerator": "give the accelerator's catalog name, e.g. accelerator: H100-SXM (aistack plan "
    "catalog lists them)",
    "generation": "give the accelerator generation, e.g. generation: hopper",
}


def _not_blank(v: str, info: ValidationInfo) -> str:
    # every figure has a source (DESIGN.md): `source: ""` passed as one; an empty name could
    # not be asked for
    if not v.strip():
        field = info.field_name or ""
        hint = _TEXT_HINT.get(field, f"give {field} as text, or remove the entry")
        raise PydanticCustomError(
            "text_empty", "must not be empty, got {text}", {"text": repr(v), "hint": hint}
        )
    return v


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

# the bounds of the prices, GPU counts and power of a catalog entry (limits), each with the
# unit and the usual range its hint gives: far past any real figure, so that a slip (a price
# in cents typed as dollars x 1e9, 1e308) is an error and no product of catalog figures
# overflows to inf; the least prices as the Python API's and REST's (1e-300 priced renting or
# owning at nothing)
_INSTANCE_GPUS = _bounded(
    high=limits.MAX_GPUS,
    hint="the GPUs of one instance (8 for p5.48xlarge), not of a cluster: the largest clusters "
    "hold about 200,000 GPUs",
)
_SERVER_GPUS = _bounded(
    high=limits.MAX_GPUS,
    hint="the GPUs of one server (8 for an HGX H100, 72 for a GB200 NVL72 rack), not of a "
    "cluster: the largest clusters hold about 200,000 GPUs",
)
_USD_PER_HOUR = _bounded(
    low=limits.MIN_USD_PER_HOUR,
    high=limits.MAX_USD_PER_HOUR,
    hint="USD per instance-hour, for the whole instance: the cheapest cloud GPUs (one small GPU, "
    "spot) rent for about $0.10/h, 8-GPU instances for up to about $100/h (p5.48xlarge on demand: "
    "55.04)",
)
_USD_PER_VCPU_HOUR = _bounded(
    low=limits.MIN_USD_PER_VCPU_HOUR,
    high=limits.MAX_USD_PER_HOUR,
    hint="USD per vCPU-hour: a vCPU rents for $0.01 to $0.05/h on demand, e.g. 0.0504",
)
_SERVER_USD = _bounded(
    low=limits.MIN_SERVER_USD,
    high=limits.MAX_SERVER_USD,
    hint="USD per server, in dollars (not thousands): a one-GPU workstation costs a few "
    "thousand, an 8-GPU server about 300,000 (e.g. 280000), a GB200 NVL72 rack about 4e6",
)
_SERVER_KW = _bounded(
    high=10_000.0,
    hint="kW per server at full load (not W): an 8-GPU H100 server draws about 10 kW (DGX H100: "
    "10.2), a whole GB200 NVL72 rack about 130 kW",
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
_INT8_TOPS_MAX = _spec_max(
    limits.MAX_FP8_TFLOPS, "TOPS (10^12 operations/s, dense)", "B200 has 4,500 TOPS INT8"
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

# Memory and bandwidth given in the unit below (MB, GB/s) on a small device: 100x bounds
# cannot tell those, as a 16 GB card's 16,000 MB or a 0.32 TB/s card's 320 GB/s is under them.
# So, where no real device can be refused:
# * memory: the most one accelerator has is 288 GB (AMD MI355X, NVIDIA B300 and Rubin), the
#   most announced about 1 TB (Rubin Ultra, 2027): from 4,000 GB it is MB (a 16 GB T4 is
#   16,000), or kB or bytes. (Memory of a card under 4 GB given in MB still passes.)
# * bandwidth, TB/s: the HBM and DRAM of a device are read whole in 10 ms or more (H100 80 GB
#   at 3.35 TB/s: 24 ms; Rubin 288 GB at 22 TB/s: 13 ms; a DGX Spark's 128 GB at 0.27 TB/s:
#   470 ms); the on-chip SRAM of Groq's LPU (0.23 GB at 80 TB/s), Graphcore's IPU (0.9 GB at
#   47.5 TB/s) or d-Matrix's Corsair (2 GB at 150 TB/s) in 15 us or less. GB/s given for TB/s
#   makes the first 1,000x faster: 0.02 to 1 ms (a T4's 16 GB at "320 TB/s": 0.05 ms), a time
#   no memory has, at 50 TB/s and more, a speed no HBM or DRAM has (Rubin Ultra's, the most
#   announced: 32 TB/s). (GB/s under 50, the bandwidth of a small edge device, still passes.)
MEMORY_GB_UNIT_SLIP = 4_000.0
BANDWIDTH_TBS_UNIT_SLIP = 50.0
READ_WHOLE_MS_UNIT_SLIP = (0.02, 2.0)
_MEMORY_KNOWN = "288 GB at most: MI355X, B300; about 1 TB announced for Rubin Ultra"


def _memory_gb_unit(v: float) -> float:
    if v < MEMORY_GB_UNIT_SLIP:
        return v
    unit, factor = next(
        (
            (u, f)
            for u, f in (("MB", 1e3), ("kB", 1e6), ("bytes", 1e9))
            if v / f < MEMORY_GB_UNIT_SLIP
        ),
        ("", 0.0),
    )
    if not unit:
        raise PydanticCustomError(
            "unit_slip",
            "{got} GB is far more memory than an accelerator has ({known})",
            {
                "got": limits.number(v),
                "known": _MEMORY_KNOWN,
                "hint": "give memory_gb in GB (10^9 bytes) per accelerator, e.g. 80 for H100",
            },
        )
    gb = limits.number(round(v / factor, 3))
    raise PydanticCustomError(
        "unit_slip",
        "{got} GB is more memory than any accelerator has ({known}): it looks like {unit}",
        {
            "got": limits.number(v),
            "known": _MEMORY_KNOWN,
            "unit": unit,
            "hint": f"give memory_gb in GB (10^9 bytes) per accelerator: {limits.number(v)} "
            f"{unit} is {gb} GB, so memory_gb: {gb}",
        },
    )


def _bandwidth_tbs_unit(v: float, memory_gb: float) -> float:
    read_ms = memory_gb / v
    low, high = READ_WHOLE_MS_UNIT_SLIP
    if v < BANDWIDTH_TBS_UNIT_SLIP or not low <= read_ms < high:
        return v
    tbs = limits.number(round(v / 1000, 6))
    raise PydanticCustomError(
        "unit_slip",
        "{got} TB/s would read this accelerator's {memory} GB in {ms} ms; HBM and DRAM take 10 ms "
        "or more (H100: 80 GB at 3.35 TB/s, 24 ms), and on-chip SRAM that fast holds under a few "
        "GB (Groq LPU: 0.23 GB at 80 TB/s): it looks like GB/s",
        {
            "got": limits.number(v),
            "memory": limits.number(memory_gb),
            "ms": f"{read_ms:.2g}",
            "hint": f"give memory_bw_tbs in TB/s (10^12 bytes/s): {limits.number(v)} GB/s is "
            f"{tbs} TB/s, so memory_bw_tbs: {tbs}",
        },
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
    bf16: bool = Field(
        default=True,
        description="has BF16 tensor cores; false (V100): bf16_tflops is the FP16 tensor rate",
    )
    fp8_tflops: Annotated[Number, _FP8_TFLOPS_MAX] | None = Field(default=None, gt=0)
    fp32_tflops: Annotated[Number, _BF16_TFLOPS_MAX] | None = Field(
        default=None,
        gt=0,
        description="FP32 peak without tensor cores (what fp32 matmuls run at unless TF32 is "
        "allowed); none: no vendor figure in the catalog, fp32 is refused",
    )
    int8_tops: Annotated[Number, _INT8_TOPS_MAX] | None = Field(
        default=None,
        gt=0,
        description="dense INT8 tensor TOPS; none (V100): int8 weights compute at 16 bits",
    )
    memory_gb: Annotated[Number, AfterValidator(_memory_gb_unit)] = Field(gt=0)
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

    @field_validator("memory_bw_tbs")
    @classmethod
    def _bandwidth_in_tbs(cls, v: float, info: ValidationInfo) -> float:
        memory_gb = info.data.get("memory_gb")  # absent where it was refused
        return v if memory_gb is None else _bandwidth_tbs_unit(v, memory_gb)

    @property
    def default_precision(self) -> str:
        """The 16-bit precision a plan uses when none is given: bf16, or fp16 without BF16."""
        return "bf16" if self.bf16 else "fp16"

    def peak_tflops(self, precision: str) -> float:
        p = precision.lower()
        if p == "bf16" and not self.bf16:
            # V100 has FP16 tensor cores only: bf16 was priced at the FP16 rate, as if it ran
            raise ValidationError(
                f"precision: {self.name} has no BF16 tensor cores (BF16 came with A100)",
                hint="use fp16, or pick an accelerator with BF16 (A100, H100, B200, MI300X...)",
                field="precision",
            )
        if p in ("bf16", "fp16"):
            return self.bf16_tflops
        if p == "fp32":
            if self.fp32_tflops is None:
                # it was planned at the BF16 tensor peak: 15x too fast on an H100
                raise ValidationError(
                    f"precision: the FP32 peak of {self.name} is unknown: the catalog cites no "
                    "vendor figure for it",
                    hint=f"use {self.default_precision} (weights in 16 bits), or give "
                    f"{self.name} an fp32_tflops (dense FP32 TFLOP/s from its datasheet, in the "
                    "source) in a catalog file (`--catalog`)",
                    field="precision",
                )
            return self.fp32_tflops
        if p == "fp8":
            if self.fp8_tflops is None:
                raise ValidationError(
                    f"precision: {self.name} has no FP8 tensor cores",
                    hint=f"use {self.default_precision}, or pick an accelerator with FP8 "
                    "(H100, H200, B200, MI300X, L40S)",
                    field="precision",
                )
            return self.fp8_tflops
        if p == "int8":
            if self.int8_tops is None:
                raise ValidationError(
                    f"precision: {self.name} has no INT8 tensor cores",
                    hint=f"use {self.default_precision}, or pick an accelerator with INT8 "
                    "(A100, H100, H200, B200, MI300X, L40S)",
                    field="precision",
                )
            return self.int8_tops
        raise ValidationError(
            f"precision: unknown training precision {precision!r}",
            hint="use bf16, fp16 or fp8",
            field="precision",
        )


class Price(_Model):
    usd_per_hour: Annotated[Number, _USD_PER_HOUR] = Field(gt=0)
    source: Text
    as_of: AsOf


class Instance(_Model):
    name: Text
    provider: Text
    accelerator: Text
    gpus: Annotated[Count, _INSTANCE_GPUS] = Field(gt=0)
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
    usd_per_vcpu_hour: Annotated[Number, _USD_PER_VCPU_HOUR] = Field(gt=0)
    source: Text
    as_of: AsOf


class Server(_Model):
    name: Text
    accelerator: Text
    gpus: Annotated[Count, _SERVER_GPUS] = Field(gt=0)
    price_usd: Annotated[Number, _SERVER_USD] = Field(gt=0)
    power_kw: Annotated[Number, _SERVER_KW] = Field(gt=0)
    source: Text
    as_of: AsOf


class Figure(_Model):
    value: Number = Field(ge=0)
    source: Text
    as_of: AsOf


MAX_DEPRECIATION_YEARS = 100  # as the TCO horizon (tco.MAX_HORIZON_MONTHS = 1200 months)

# The most each on-premises figure can be, with what it is: far past every real site, so that a
# slip (a percent typed as a fraction, cents typed as dollars) is an error, not a TCO that favours
# the cloud by 20x. (pue's least, depreciation_years and idle_power_fraction: in _check_onprem.)
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
# the shipped figures (onprem.yaml), for the example in a hint
_ONPREM_EXAMPLE = {
    "pue": "1.4",
    "electricity_usd_per_kwh": "0.083",
    "colocation_usd_per_kw_month": "185",
    "network_usd_per_node": "40000",
    "storage_usd_per_node": "15000",
    "staff_usd_per_node_year": "6000",
    "depreciation_years": "4",
    "cost_of_capital": "0.08",
    "idle_power_fraction": "0.3",
}


def _onprem_refused(name: str, message: str, what: str, **ctx: str) -> PydanticCustomError:
    example = f"{name}: {{value: {_ONPREM_EXAMPLE[name]}, source: ..., as_of: YYYY-MM-DD}}"
    return PydanticCustomError(
        "onprem_out_of_range",
        message,
        {
            **ctx,
            "hint": f"{name} is {what}; e.g. {example} (the shipped figure: "
            "aistack/planning/catalog/onprem.yaml)",
        },
    )


def _check_onprem(name: str, v: Figure | None) -> Figure | None:
    """The bounds of one on-premises figure (in a user file as in the merged inputs)."""
    if v is None:
        return v
    got = limits.number(v.value)
    if name == "pue" and v.value < 1:
        raise _onprem_refused(
            name, "value must be at least 1, got {got}", _ONPREM_MAX["pue"][1], got=got
        )
    if name == "depreciation_years":
        life = "the years a server is written off over: 3 to 5"
        # break-even is looked for month by month over the server life: 1e9 years never
        # finished (and .inf was an OverflowError in round)
        if not v.value <= MAX_DEPRECIATION_YEARS:
            raise _onprem_refused(
                name,
                "value must be at most {high} years, got {got}",
                life,
                high=str(MAX_DEPRECIATION_YEARS),
                got=got,
            )
        # costs are by month: a life under half a month rounded to 0 months (ZeroDivisionError)
        if round(v.value * 12) < 1:
            raise _onprem_refused(
                name,
                "value must be at least one month (0.083 years), got {got} years",
                life,
                got=got,
            )
    if name == "idle_power_fraction" and v.value > 1:
        raise _onprem_refused(
            name,
            "value must be at most 1, got {got}",
            "idle draw / maximum draw, a fraction in [0, 1]: 30 % is 0.3",
            got=got,
        )
    high = _ONPREM_MAX.get(name)
    if high is not None and v.value > high[0]:
        raise _onprem_refused(
            name,
            "value must be at most {high}, got {got}",
            high[1],
            high=limits.number(high[0]),
            got=got,
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
