"""The planning catalog: accelerators, cloud instances with prices, on-premises inputs.

The figures live in YAML files beside this module (``accelerators.yaml``, ``instances.yaml``,
``onprem.yaml``); each carries a ``source`` and an ``as_of`` date. A user overrides or extends
them with files of the same layout in ``AISTACK_HOME/catalog/*.yaml`` or with explicit paths
(``load_catalog(paths)``; the CLI's ``--catalog``): entries with the same name replace the
shipped ones, new names are added.

A file that cannot be read (not UTF-8 text, no permission) or does not hold a valid catalog is
an error that names the file and says how to fix it, in ``AISTACK_HOME/catalog/`` as among
the ``paths`` given: skipping it would price with the shipped figures instead of the user's without
anyone noticing. A folder whose name ends in ``.yaml`` there holds no figures: it is skipped
with a warning.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from aistack.errors import NotFoundError, ValidationError
from aistack.planning import limits

log = logging.getLogger(__name__)

PriceTier = Literal["on_demand", "committed_1y", "committed_3y", "spot"]
PRICE_TIERS: tuple[PriceTier, ...] = ("on_demand", "committed_1y", "committed_3y", "spot")
STALE_AFTER_DAYS = 365


class _Model(BaseModel):
    # allow_inf_nan=False: `.inf` (or `.nan`) in a file priced owning at $inf and the hybrid at
    # NaN; it is "Input should be a finite number" naming the file and the field
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _not_bool(v: Any) -> Any:
    # YAML reads `true`/`false` (and yes/no/on/off in YAML 1.1) as booleans, which pydantic
    # took as 1 and 0: `price_usd: true` priced a server at $1
    if isinstance(v, bool):
        raise ValueError(f"a boolean ({str(v).lower()}) is not a number: give a number")
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
Number = Annotated[float, BeforeValidator(_not_bool)]
Count = Annotated[int, BeforeValidator(_not_bool)]
# far past any real figure, so that a slip (a price in cents typed as dollars x 1e9, 1e308) is an
# error and no product of catalog figures overflows to inf
_GPUS_MAX = _at_most(limits.MAX_GPUS, "the largest clusters hold about 200,000 GPUs")
_USD_PER_HOUR_MAX = _at_most(limits.MAX_USD_PER_HOUR, "8-GPU instances cost up to about $100/h")
_SERVER_USD_MAX = _at_most(limits.MAX_SERVER_USD, "a GB200 NVL72 rack costs about $4e6")
_SERVER_KW_MAX = _at_most(10_000.0, "a whole GB200 NVL72 rack draws about 130 kW")


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
    bf16_tflops: Number = Field(gt=0)
    fp8_tflops: Number | None = Field(default=None, gt=0)
    memory_gb: Number = Field(gt=0)
    memory_bw_tbs: Number = Field(gt=0)
    tdp_w: Number = Field(gt=0)
    interconnect: str
    nvlink_gbs: Number = Field(gt=0, description="intra-node GB/s per GPU per direction")
    network_gbs: Number = Field(gt=0, description="inter-node GB/s per GPU per direction")
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
    usd_per_hour: Annotated[Number, _USD_PER_HOUR_MAX] = Field(gt=0)
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
    usd_per_vcpu_hour: Annotated[Number, _USD_PER_HOUR_MAX] = Field(gt=0)
    source: Text
    as_of: AsOf


class Server(_Model):
    name: Text
    accelerator: Text
    gpus: Annotated[Count, _GPUS_MAX] = Field(gt=0)
    price_usd: Annotated[Number, _SERVER_USD_MAX] = Field(gt=0)
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


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The closest names (difflib), compared case- and punctuation-insensitively."""
    choices = list(choices)
    by_norm = {_norm(c): c for c in choices}
    hits = difflib.get_close_matches(_norm(name), list(by_norm), n=n, cutoff=0.4)
    out = [by_norm[h] for h in hits]
    if not out:
        out = [c for c in choices if _norm(name) and _norm(name) in _norm(c)][:n]
    return out


def _not_found(
    kind: str, name: str, choices: Iterable[str], field: str, known: Iterable[str] | None = None
) -> NotFoundError:
    choices = list(choices)
    known = list(known) if known is not None else choices
    close = suggest(name, choices)
    msg = f"{field}: unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return NotFoundError(
        msg,
        hint=f"known: {', '.join(sorted(known))} (aistack plan catalog; add your own in AISTACK_HOME/catalog/*.yaml)",
        # the field, as the other planning errors give it: the CLI says it as its option (--gpu)
        field=field,
    )


class Catalog:
    """All catalog entries, merged from the shipped files and the user's overrides."""

    def __init__(
        self,
        *,
        efficiency: dict[str, Efficiency],
        accelerators: dict[str, Accelerator],
        instances: dict[str, Instance],
        cpu_prices: dict[str, CpuPrice],
        servers: dict[str, Server],
        onprem: OnPremInputs,
        origins: dict[tuple[str, ...], str],
    ) -> None:
        self.efficiency = efficiency
        self.accelerators = accelerators
        self.instances = instances
        self.cpu_prices = cpu_prices
        self.servers = servers
        self.onprem = onprem
        self.origins = origins
        self._alias: dict[str, str] = {}
        alias_of: dict[str, tuple[str, str]] = {}  # normalized alias -> (accelerator, as given)
        for acc in accelerators.values():
            for a in acc.aliases:
                other, given = alias_of.setdefault(_norm(a), (acc.name, a))
                if other != acc.name:  # the later entry won every look-up, without a word
                    raise ValidationError(
                        f"catalog: accelerators {other!r} ({self._origin(other)}) and "
                        f"{acc.name!r} ({self._origin(acc.name)}) share an alias: {given!r} "
                        f"and {a!r} (names are compared without case and punctuation)",
                        hint="an alias names one accelerator: remove it from one of them",
                    )
            for a in [acc.name, *acc.aliases]:
                self._alias[_norm(a)] = acc.name
        for acc in accelerators.values():  # canonical names win over another entry's alias
            self._alias[_norm(acc.name)] = acc.name
        for acc in accelerators.values():
            if acc.generation not in efficiency:
                raise ValidationError(
                    f"catalog: accelerator {acc.name} has generation {acc.generation!r} "
                    "with no efficiency entry",
                    hint="add an efficiency: entry for that generation",
                )
        for inst in instances.values():
            if _norm(inst.accelerator) not in self._alias:
                raise _not_found(
                    "accelerator",
                    inst.accelerator,
                    accelerators,
                    f"instance {inst.name}.accelerator",
                )
        for srv in servers.values():
            if _norm(srv.accelerator) not in self._alias:
                raise _not_found(
                    "accelerator", srv.accelerator, accelerators, f"server {srv.name}.accelerator"
                )

    def _origin(self, accelerator: str) -> str:
        """The file an accelerator's entry came from (``builtin`` for the shipped one)."""
        return self.origins.get(("accelerator", accelerator), "builtin")

    # ---- look-ups -------------------------------------------------------------------------
    def accelerator(self, name: str, *, field: str = "gpu") -> Accelerator:
        key = self._alias.get(_norm(name))
        if key is None:
            key = self._match_device_name(name)
        if key is None:
            names = list(self.accelerators) + [
                a for acc in self.accelerators.values() for a in acc.aliases
            ]
            raise _not_found("GPU", name, names, field, known=self.accelerators)
        return self.accelerators[key]

    def _match_device_name(self, name: str) -> str | None:
        """Map an NVML/ROCm device name ('NVIDIA H100 80GB HBM3') to a catalog accelerator."""
        low = name.lower()
        words = set(re.findall(r"[a-z0-9]+", low))

        def has(tok: str) -> bool:
            return tok in words

        rules: list[tuple[bool, str]] = [
            (has("h100") and ("pcie" in words or "nvl" in words), "H100-PCIe"),
            (has("h100"), "H100-SXM"),
            (has("h800"), "H800"),
            (has("h200"), "H200"),
            (has("b200"), "B200"),
            (has("mi300x"), "MI300X"),
            (has("l40s"), "L40S"),
            (has("v100"), "V100-32GB"),
            (has("a100") and ("40gb" in words or "40" in words), "A100-40GB"),
            (has("a100"), "A100-80GB"),
        ]
        for ok, target in rules:
            if ok and target in self.accelerators:
                return target
        return None

    def efficiency_for(self, acc: Accelerator) -> Efficiency:
        return self.efficiency[acc.generation]

    def instance(self, name: str, *, field: str = "instance") -> Instance:
        for inst in self.instances.values():
            if _norm(inst.name) == _norm(name):
                return inst
        raise _not_found("instance", name, self.instances, field)

    def server(self, name: str, *, field: str = "server") -> Server:
        for srv in self.servers.values():
            if _norm(srv.name) == _norm(name):
                return srv
        raise _not_found("server", name, self.servers, field)

    def cpu_price(self, provider: str) -> CpuPrice:
        if provider in self.cpu_prices:
            return self.cpu_prices[provider]
        if "aws" in self.cpu_prices:
            return self.cpu_prices["aws"]
        raise NotFoundError(
            f"no CPU price for provider {provider!r} in the catalog",
            hint="add a cpu_prices: entry in AISTACK_HOME/catalog/<file>.yaml",
        )

    def instances_for(self, accelerator: str, provider: str | None = None) -> list[Instance]:
        acc = self.accelerator(accelerator)
        return [
            i
            for i in self.instances.values()
            if self.accelerator(i.accelerator).name == acc.name
            and (provider is None or i.provider == provider)
        ]

    def default_instance(self, accelerator: str, tier: PriceTier = "on_demand") -> Instance:
        """The hyperscaler instance (AWS, then GCP, Azure, others) with that GPU and tier."""
        acc = self.accelerator(accelerator)
        cands = [i for i in self.instances_for(acc.name) if tier in i.prices]
        order = {"aws": 0, "gcp": 1, "azure": 2}
        cands.sort(key=lambda i: (order.get(i.provider, 9), i.name))
        if not cands:
            raise NotFoundError(
                f"no {tier.replace('_', '-')} price for any cloud instance with {acc.name} in the catalog",
                hint="name an instance (`instance`), or add an instance with that price in "
                "AISTACK_HOME/catalog/<file>.yaml",
                field="instance",
            )
        return cands[0]

    def default_server(self, accelerator: str) -> Server:
        acc = self.accelerator(accelerator)
        cands = sorted(
            (s for s in self.servers.values() if self.accelerator(s.accelerator).name == acc.name),
            key=lambda s: s.name,
        )
        if not cands:
            raise NotFoundError(
                f"no on-premises server with {acc.name} in the catalog",
                hint="name a server (`server`), or add a servers: entry in "
                "AISTACK_HOME/catalog/<file>.yaml",
                field="server",
            )
        return cands[0]

    # ---- listing --------------------------------------------------------------------------
    def figures(self) -> list[FigureRow]:
        rows: list[FigureRow] = []

        def add(
            kind: str, name: str, field: str, value: float, unit: str, source: str, as_of: dt.date
        ) -> None:
            rows.append(
                FigureRow(
                    kind=kind,
                    name=name,
                    field=field,
                    value=value,
                    unit=unit,
                    source=source,
                    as_of=as_of,
                    # per field where a file gave only some (an instance's tiers, on-prem figures)
                    origin=self.origins.get(
                        (kind, name, field), self.origins.get((kind, name), "builtin")
                    ),
                )
            )

        for e in self.efficiency.values():
            add("efficiency", e.generation, "mfu", e.mfu, "fraction", e.source, e.as_of)
            add("efficiency", e.generation, "goodput", e.goodput, "fraction", e.source, e.as_of)
        for a in self.accelerators.values():
            add("accelerator", a.name, "bf16_tflops", a.bf16_tflops, "TFLOP/s", a.source, a.as_of)
            if a.fp8_tflops is not None:
                add("accelerator", a.name, "fp8_tflops", a.fp8_tflops, "TFLOP/s", a.source, a.as_of)
            add("accelerator", a.name, "memory_gb", a.memory_gb, "GB", a.source, a.as_of)
            add("accelerator", a.name, "memory_bw_tbs", a.memory_bw_tbs, "TB/s", a.source, a.as_of)
            add("accelerator", a.name, "tdp_w", a.tdp_w, "W", a.source, a.as_of)
            add("accelerator", a.name, "nvlink_gbs", a.nvlink_gbs, "GB/s", a.source, a.as_of)
            add("accelerator", a.name, "network_gbs", a.network_gbs, "GB/s", a.source, a.as_of)
        for i in self.instances.values():
            for tier, p in i.prices.items():
                add("instance", i.name, tier, p.usd_per_hour, "USD/h", p.source, p.as_of)
        for c in self.cpu_prices.values():
            add(
                "cpu",
                c.provider,
                "usd_per_vcpu_hour",
                c.usd_per_vcpu_hour,
                "USD/vCPU-h",
                c.source,
                c.as_of,
            )
        for s in self.servers.values():
            add("server", s.name, "price_usd", s.price_usd, "USD", s.source, s.as_of)
            add("server", s.name, "power_kw", s.power_kw, "kW", s.source, s.as_of)
        units = {
            "pue": "ratio",
            "electricity_usd_per_kwh": "USD/kWh",
            "colocation_usd_per_kw_month": "USD/kW-month",
            "network_usd_per_node": "USD/node",
            "storage_usd_per_node": "USD/node",
            "staff_usd_per_node_year": "USD/node-year",
            "depreciation_years": "years",
            "cost_of_capital": "fraction/year",
            "idle_power_fraction": "fraction",
        }
        for fname, unit in units.items():
            f: Figure = getattr(self.onprem, fname)
            add("onprem", "onprem", fname, f.value, unit, f.source, f.as_of)
        return rows

    def figures_report(self, today: dt.date, kind: str | None = None) -> dict[str, Any]:
        """Every figure (optionally of one kind) with its source and date, flagged when stale:
        what ``aistack plan catalog --json`` prints and ``GET /plan/catalog`` returns."""
        stale = {(f.kind, f.name, f.field) for f in self.stale(today)}
        figs = [f for f in self.figures() if kind is None or f.kind == kind]
        return {
            "today": today.isoformat(),
            "figures": [
                {
                    "kind": f.kind,
                    "name": f.name,
                    "field": f.field,
                    "value": f.value,
                    "unit": f.unit,
                    "source": f.source,
                    "as_of": f.as_of.isoformat(),
                    "origin": f.origin,
                    "stale": (f.kind, f.name, f.field) in stale,
                }
                for f in figs
            ],
            "stale_count": sum(1 for f in figs if (f.kind, f.name, f.field) in stale),
        }

    def stale(self, today: dt.date, *, max_age_days: int = STALE_AFTER_DAYS) -> list[FigureRow]:
        """Prices (instance, server, CPU) older than ``max_age_days`` on ``today``."""
        return [r for r in self.figures() if r.is_price() and r.age_days(today) > max_age_days]


# ---- loading ------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but a date that does not exist (``as_of: 2025-13-01``) stays text,
    for the schema to refuse naming its field: PyYAML raised a bare ValueError ("month must be
    in 1..12") that named neither the file nor the field, and was no ValidationError."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _read_file(text: str, origin: str) -> CatalogFile:
    try:
        data = yaml.load(text, Loader=_Loader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"catalog file {origin}: not valid YAML: {exc}", hint="fix the YAML syntax"
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError(
            f"catalog file {origin}: expected a mapping with sections such as 'instances:'",
            hint="see the shipped files in aistack/planning/catalog/ for the layout",
        )
    try:
        return CatalogFile.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValidationError(
            f"catalog file {origin}: {loc}{_entry(data, first['loc'])}: {first['msg']}",
            hint=_hint(first["loc"], first["type"]),
        ) from exc


# per list section of a catalog file: its entries' model, what one is called, the key that
# names one, and the shipped file that shows the layout
_SECTIONS: dict[str, tuple[type[BaseModel], str, str, str]] = {
    "efficiency": (Efficiency, "efficiency entry", "generation", "accelerators.yaml"),
    "accelerators": (Accelerator, "accelerator", "name", "accelerators.yaml"),
    "instances": (Instance, "instance", "name", "instances.yaml"),
    "cpu_prices": (CpuPrice, "CPU price", "provider", "instances.yaml"),
    "servers": (Server, "server", "name", "onprem.yaml"),
}
_SEE = "see aistack/planning/catalog/"


def _entry(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """`` (instance 'p5.48xlarge')`` for an error in a list entry that has its name."""
    if len(loc) < 2 or loc[0] not in _SECTIONS or not isinstance(loc[1], int):
        return ""
    _, what, key, _ = _SECTIONS[str(loc[0])]
    entries = data.get(str(loc[0]))
    entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
    name = entry.get(key) if isinstance(entry, dict) else None
    return f" ({what} {str(name)!r})" if isinstance(name, str | int | float) else ""


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _hint(loc: tuple[int | str, ...], err_type: str) -> str:
    """How to fix the field at ``loc`` of a catalog file (every error said "every price needs
    usd_per_hour, ...", an on-premises figure's too)."""
    if loc and loc[-1] == "as_of":
        return (
            "as_of is the date the figure was looked up (YYYY-MM-DD), today or earlier: a later "
            f"date is never flagged as stale; {_SEE}*.yaml"
        )
    section = str(loc[0]) if loc else ""
    if section == "onprem":
        if len(loc) == 2 and err_type == "extra_forbidden":
            return f"the on-premises figures are {_and(list(OnPremPatch.model_fields))}"
        return (
            "every on-premises figure needs value, source and as_of (YYYY-MM-DD), e.g. pue: "
            f"{{value: 1.3, source: ..., as_of: 2025-01-01}}; {_SEE}onprem.yaml"
        )
    if section == "instances" and "prices" in loc:
        return (
            f"every price needs usd_per_hour, source and as_of (YYYY-MM-DD); {_SEE}instances.yaml"
        )
    if section in _SECTIONS:
        model, what, _, shipped = _SECTIONS[section]
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        return f"every {what} needs {_and(required)}; {_SEE}{shipped}"
    return f"the sections are {_and([*_SECTIONS, 'onprem'])}; {_SEE}*.yaml"


def _builtin_texts() -> list[tuple[str, str]]:
    pkg = resources.files("aistack.planning.catalog")
    out = []
    for name in ("accelerators.yaml", "instances.yaml", "onprem.yaml"):
        out.append((pkg.joinpath(name).read_text(encoding="utf-8"), f"builtin:{name}"))
    return out


def user_catalog_dir(home: Path | None = None) -> Path:
    if home is None:
        from aistack.settings import get_settings

        home = get_settings().home
    return Path(home) / "catalog"


def _read_text(path: Path, what: str, fix: str, *, field: str | None = None) -> str:
    """The file as UTF-8 text; an unreadable file is a ValidationError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{what} {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start})",
            hint=f"re-save it as UTF-8 with iconv -f latin1 -t utf-8, {fix}",
            **({"field": field} if field else {}),
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})",
            hint=f"check its permissions, {fix}",
            **({"field": field} if field else {}),
        ) from None


def _no_duplicates(f: CatalogFile, origin: str) -> None:
    """One name once per section of a file (as the look-ups compare them: case and punctuation
    aside): the later entry silently replaced the earlier."""
    sections: dict[str, list[str]] = {
        "efficiency": [e.generation for e in f.efficiency],
        "accelerators": [a.name for a in f.accelerators],
        "instances": [i.name for i in f.instances],
        "cpu_prices": [c.provider for c in f.cpu_prices],
        "servers": [s.name for s in f.servers],
    }
    for section, names in sections.items():
        seen: dict[str, int] = {}
        for k, name in enumerate(names):
            first = seen.setdefault(_norm(name), k)
            if first != k:
                raise ValidationError(
                    f"catalog file {origin}: {section}.{k}: {name!r} is given twice (also as "
                    f"{names[first]!r} at {section}.{first}); names are compared without case "
                    "and punctuation",
                    hint="keep one entry per name: remove or rename the other",
                )


def _rename(
    entries: dict[str, Any], origins: dict[tuple[str, ...], str], kind: str, name: str
) -> None:
    """A later file's entry replaces an earlier one whose name differs only in case or
    punctuation (the look-ups compare names so): ``DGX-H100`` in a user file was added beside
    the shipped ``dgx-h100``, and every look-up found the shipped one. The earlier entry (and
    the origins of its figures) move to ``name``; the caller then replaces or merges it."""
    old = next((k for k in entries if k != name and _norm(k) == _norm(name)), None)
    if old is None:
        return
    entries[name] = entries.pop(old)
    for key in [k for k in origins if k[0] == kind and k[1] == old]:
        origins[(kind, name, *key[2:])] = origins.pop(key)


def load_catalog(
    paths: Sequence[str | Path] = (), *, home: Path | None = None, include_user: bool = True
) -> Catalog:
    """Shipped catalog, then ``AISTACK_HOME/catalog/*.yaml`` (sorted), then ``paths`` in order."""
    texts = _builtin_texts()
    if include_user:
        d = user_catalog_dir(home)
        if d.is_dir():
            for up in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
                if up.is_dir():
                    log.warning("catalog: skipping %s: it is a folder, not a YAML file", up)
                    continue
                fix = f"or move it out of {d} (every *.yaml there is read)"
                texts.append((_read_text(up, "catalog file", fix), str(up)))
    for p in paths:
        path = Path(p)
        if path.is_dir():
            raise ValidationError(
                f"catalog file {str(path)!r} is a folder, not a file",
                hint="give the path of a YAML catalog file (one per catalog); the files in "
                "AISTACK_HOME/catalog/ are read without being given",
                field="paths",
            )
        if not path.is_file():
            raise NotFoundError(
                f"catalog file {str(path)!r}: no such file",
                hint="give the path of a YAML catalog file",
                field="paths",
            )
        fix = "or give another file"
        texts.append((_read_text(path, "catalog file", fix, field="paths"), str(path)))

    eff: dict[str, Efficiency] = {}
    accs: dict[str, Accelerator] = {}
    insts: dict[str, Instance] = {}
    cpus: dict[str, CpuPrice] = {}
    srvs: dict[str, Server] = {}
    onprem: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for text, origin in texts:
        f = _read_file(text, origin)
        _no_duplicates(f, origin)
        src = "builtin" if origin.startswith("builtin:") else origin
        for e in f.efficiency:
            eff[e.generation] = e
            origins[("efficiency", e.generation)] = src
        for a in f.accelerators:
            _rename(accs, origins, "accelerator", a.name)
            accs[a.name] = a
            origins[("accelerator", a.name)] = src
        for i in f.instances:
            _rename(insts, origins, "instance", i.name)
            for tier in i.prices:  # the tiers this file gives (before merging)
                origins[("instance", i.name, tier)] = src
            if i.name in insts and src != "builtin":
                # a user file may give only some tiers: merge them over the shipped ones
                merged = {**insts[i.name].prices, **i.prices}
                i = i.model_copy(update={"prices": merged})
            insts[i.name] = i
            origins[("instance", i.name)] = src
        for c in f.cpu_prices:
            cpus[c.provider] = c
            origins[("cpu", c.provider)] = src
        for s in f.servers:
            _rename(srvs, origins, "server", s.name)
            srvs[s.name] = s
            origins[("server", s.name)] = src
        if f.onprem is not None:
            for k, v in f.onprem.model_dump(exclude_none=True).items():
                onprem[k] = v
                origins[("onprem", "onprem", k)] = src
    try:
        onprem_inputs = OnPremInputs.model_validate(onprem)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValidationError(
            f"catalog onprem.{loc}: {first['msg']}", hint="fix the on-premises figure"
        ) from exc
    return Catalog(
        efficiency=eff,
        accelerators=accs,
        instances=insts,
        cpu_prices=cpus,
        servers=srvs,
        onprem=onprem_inputs,
        origins=origins,
    )


_DEFAULT: Catalog | None = None


def default_catalog() -> Catalog:
    """The shipped catalog only (cached); used when a caller passes no catalog."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_catalog(include_user=False)
    return _DEFAULT


__all__ = [
    "PRICE_TIERS",
    "Accelerator",
    "Catalog",
    "CatalogFile",
    "CpuPrice",
    "Efficiency",
    "Figure",
    "FigureRow",
    "Instance",
    "OnPremInputs",
    "Price",
    "PriceTier",
    "Server",
    "default_catalog",
    "load_catalog",
    "suggest",
    "user_catalog_dir",
]
