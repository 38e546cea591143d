"""Dataset names, references (``name``, ``name@v3``, ``name@3``, ``name@latest``, ``name@tag``)
and lineage node ids ``KIND:ID``.

Node kinds (:data:`LINEAGE_NODE_KINDS`):

* :data:`NODE_KINDS`, things with a record of their own: ``dataset:NAME@vN`` (a dataset
  version, always pinned), ``job:ID``, ``run:ID`` (a tracking run), ``model:NAME@vN``;
* :data:`LINEAGE_ONLY_KINDS`, nodes only the lineage graph knows (no reference or version
  behind them): ``file:NAME@sha256:HEX`` (an input file, named by its content digest; NAME,
  percent-encoded printable ASCII, only makes it readable) and ``webdata:NAME@ID`` (a web-data
  pipeline run, aistack.webdata, between its inputs and the dataset version it registered)
  and ``service:NAME`` (a model service of aistack.serving; ``model:NAME@vN → service:NAME``
  means the service was deployed with, or rolled to, that model version: history, not
  necessarily what it serves now).

:func:`node` builds an id of the first group, :func:`lineage_node` of either.

Reference kinds (:data:`REFERENCE_KINDS`, who keeps a version from ``aistack data rm``):
``job``, ``model``, ``run`` and ``webdata`` (a web-data pipeline run that reads the version,
``webdata:NAME@ID``; see :func:`parse_referrer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aistack.errors import ValidationError

# \Z, not $: "$" also matches before a final newline ("corpus\n" was a valid name)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
TAG_RE = NAME_RE
# V3 too: a tag named like that would shadow v3; ASCII digits only ("\d" takes "v١" as v1)
VERSION_RE = re.compile(r"^[vV]?([0-9]+)\Z")
MAX_VERSION = 2**63 - 1  # the catalog's integer column
# who can reference a version (``aistack data rm`` refuses to delete it while one does):
# ``job:ID``, ``model:NAME@vN``, ``run:ID`` (a tracking run) and ``webdata:NAME@ID`` (a
# web-data pipeline run reading it as input, aistack.webdata; printable ASCII, no spaces)
REFERENCE_KINDS = ("job", "model", "run", "webdata")
NODE_KINDS = ("dataset", "job", "run", "model")
LINEAGE_ONLY_KINDS = ("file", "webdata", "service")
LINEAGE_NODE_KINDS = (*NODE_KINDS, *LINEAGE_ONLY_KINDS)
_PRINTABLE_ID = re.compile(r"[!-~]{1,380}")  # printable ASCII, no space (fits the catalog)
_FILE_ID = re.compile(r"[!-~]+@[a-z0-9]{3,16}:[0-9a-f]{32,128}")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            f"invalid dataset name {name!r}",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="name",
        )
    return name


def check_tag(tag: str) -> str:
    if (
        not isinstance(tag, str)
        or not TAG_RE.match(tag)
        or VERSION_RE.match(tag)
        or tag == "latest"
    ):
        raise ValidationError(
            f"invalid tag {tag!r}",
            hint="a tag uses letters, digits, '.', '_' or '-'; it cannot be 'latest' or look "
            "like a version number such as 'v3'",
            field="tag",
        )
    return tag


@dataclass(frozen=True, kw_only=True)
class Ref:
    name: str
    version: int | None = None  # explicit number
    tag: str | None = None  # a tag name; None and version None means latest
    # "@latest" was written (not a bare NAME): the same version, but named on purpose
    latest: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.tag or 'latest'}"


def parse_ref(ref: str) -> Ref:
    if not isinstance(ref, str):
        raise ValidationError(
            f"dataset reference {ref!r} is not a string ({type(ref).__name__})",
            hint="write NAME, NAME@v3 or NAME@TAG as a str",
            field="ref",
        )
    if not ref.strip():
        raise ValidationError(
            "dataset reference is empty", hint="write NAME, NAME@v3 or NAME@TAG", field="ref"
        )
    ref = ref.strip()
    name, at, sel = ref.partition("@")
    check_name(name)
    if at and not sel:
        raise ValidationError(
            f"dataset reference {ref!r} names no version after '@'",
            hint=f"write {name}, {name}@latest, {name}@v3 or {name}@TAG",
            field="ref",
        )
    if sel == "latest" or not at:
        return Ref(name=name, latest=bool(at))
    m = VERSION_RE.match(sel)
    if m:
        v = int(m.group(1))
        if v < 1 or v > MAX_VERSION:
            raise ValidationError(
                f"version {sel!r} in {ref!r} is invalid",
                hint="versions start at v1 (see `aistack data log NAME`)",
                field="ref",
            )
        return Ref(name=name, version=v)
    if not TAG_RE.match(sel):
        raise ValidationError(
            f"invalid dataset reference {ref!r}",
            hint="write NAME, NAME@v3, NAME@latest or NAME@TAG",
            field="ref",
        )
    return Ref(name=name, tag=sel)


def check_kind(kind: str) -> str:
    if kind not in REFERENCE_KINDS:
        raise ValidationError(
            f"invalid reference kind {kind!r}",
            hint=f"use one of {', '.join(REFERENCE_KINDS)}",
            field="kind",
        )
    return kind


def parse_referrer(spec: str) -> tuple[str, str]:
    """``"job:42"`` → ``("job", "42")``: who references a version, as ``aistack data unref
    NAME@vN --by KIND:ID`` takes it (``model:gpt@v3`` and ``webdata:corpus@3f2a…`` keep their
    ``@``)."""
    kind, sep, ident = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not ident or kind not in REFERENCE_KINDS:
        what = f"unknown kind {kind!r}" if sep and kind not in REFERENCE_KINDS else "no KIND:ID"
        raise ValidationError(
            f"invalid reference {spec!r}: {what}",
            hint=f"write KIND:ID with KIND one of {', '.join(REFERENCE_KINDS)}, e.g. job:42, "
            "model:gpt@v3 or webdata:corpus@3f2a9c0d1e4b5a6c",
            field="by",
        )
    return kind, ident


def node(kind: str, ident: str) -> str:
    if kind not in NODE_KINDS:
        raise ValidationError(
            f"invalid lineage node kind {kind!r}",
            hint=f"use one of {', '.join(NODE_KINDS)}",
            field="kind",
        )
    if not ident or not isinstance(ident, str) or len(ident) > 380 or not ident.isprintable():
        raise ValidationError(
            f"invalid {kind} id {ident!r}",
            hint="give a non-empty id up to 380 characters, without control characters",
            field="id",
        )
    return f"{kind}:{ident}"


def lineage_node(kind: str, ident: str) -> str:
    """The node id ``kind:ident`` for a lineage edge: :func:`node`'s kinds plus
    :data:`LINEAGE_ONLY_KINDS`. A ``file`` id ends with its content digest
    (``NAME@sha256:HEX``); ``file``, ``webdata`` and ``service`` ids are printable ASCII
    without spaces."""
    if kind not in LINEAGE_ONLY_KINDS:
        if kind not in NODE_KINDS:
            raise ValidationError(
                f"invalid lineage node kind {kind!r}",
                hint=f"use one of {', '.join(LINEAGE_NODE_KINDS)}",
                field="kind",
            )
        return node(kind, ident)
    if not isinstance(ident, str) or not _PRINTABLE_ID.fullmatch(ident):
        raise ValidationError(
            f"invalid {kind} id {ident!r}",
            hint="give 1-380 printable ASCII characters without spaces (percent-encode others)",
            field="id",
        )
    if kind == "file" and not _FILE_ID.fullmatch(ident):
        raise ValidationError(
            f"invalid file id {ident!r}: it names no content digest",
            hint="write NAME@ALGO:HEX, e.g. crawl-00001.warc.gz@sha256:<64 hex digits>",
            field="id",
        )
    return f"{kind}:{ident}"


def split_node(n: str) -> tuple[str, str]:
    kind, _, ident = n.partition(":")
    return kind, ident
