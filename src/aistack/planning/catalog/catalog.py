"""The merged catalog: look-ups by name or alias, and the dated figures for listing."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog.models import (
    Accelerator,
    CpuPrice,
    Efficiency,
    Figure,
    FigureRow,
    Instance,
    OnPremInputs,
    PriceTier,
    Server,
)
from aistack.planning.catalog.names import _norm, _not_found

STALE_AFTER_DAYS = 365


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

    def default_instance(
        self, accelerator: str, tier: PriceTier = "on_demand", provider: str | None = None
    ) -> Instance:
        """The hyperscaler instance (AWS, then GCP, Azure, others; by name within a provider)
        with that GPU and tier, or ``provider``'s first by name. The one choice of the TCO, the
        what-if sweep and the usage report's price sheets."""
        acc = self.accelerator(accelerator)
        cands = [i for i in self.instances_for(acc.name, provider) if tier in i.prices]
        order = {"aws": 0, "gcp": 1, "azure": 2}
        cands.sort(key=lambda i: (order.get(i.provider, 9), i.name))
        if not cands:
            raise NotFoundError(
                f"no {tier.replace('_', '-')} price for any "
                + (f"{provider} " if provider else "cloud ")
                + f"instance with {acc.name} in the catalog",
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
            if a.fp32_tflops is not None:
                add(
                    "accelerator",
                    a.name,
                    "fp32_tflops",
                    a.fp32_tflops,
                    "TFLOP/s",
                    a.source,
                    a.as_of,
                )
            if a.int8_tops is not None:
                add("accelerator", a.name, "int8_tops", a.int8_tops, "TOPS", a.source, a.as_of)
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
