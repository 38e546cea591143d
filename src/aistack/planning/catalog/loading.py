"""Reading the catalog files: the shipped ones, then the user's over them, each checked with
errors that name the file and the field."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog.catalog import Catalog
from aistack.planning.catalog.models import (
    Accelerator,
    CatalogFile,
    CpuPrice,
    Efficiency,
    Instance,
    OnPremInputs,
    OnPremPatch,
    QuotedText,
    Server,
)
from aistack.planning.catalog.names import _norm

# the package's name, as before the split: a log filter or format that names it still matches
log = logging.getLogger("aistack.planning.catalog")


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but a date that does not exist (``as_of: 2025-13-01``) stays text,
    for the schema to refuse naming its field: PyYAML raised a bare ValueError ("month must be
    in 1..12") that named neither the file nor the field, and was no ValidationError."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> Any:
        # a quoted (or block) scalar is text: `usd_per_hour: '8'` is refused naming the field,
        # where a plain `8` is a number (models.QuotedText)
        value = super().construct_yaml_str(node)
        return QuotedText(value) if node.style is not None else value


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)


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
        # a check with its own hint (a price below any real one, a spec in another unit, a
        # number in quotes) knows better than the section's layout
        own = first.get("ctx", {}).get("hint")
        raise ValidationError(
            f"catalog file {origin}: {loc}{_entry(data, first['loc'])}: {first['msg']}",
            hint=own if isinstance(own, str) else _hint(first["loc"], first["type"]),
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
        own = first.get("ctx", {}).get("hint")
        raise ValidationError(
            f"catalog onprem.{loc}: {first['msg']}",
            hint=own if isinstance(own, str) else _hint(("onprem", *first["loc"]), first["type"]),
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
