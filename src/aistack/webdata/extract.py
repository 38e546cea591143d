"""Main-text extraction from HTML, in two modes, and language identification.

* ``quality``: trafilatura (``deduplicate=False``: its de-duplication keeps state across
  calls in an LRU cache, which makes output depend on document order and worker count).
* ``fast``: resiliparse's ``extract_plain_text(main_content=True)`` (a C++ DOM walk).

A page of more than :data:`MAX_QUALITY_ELEMENTS` elements is extracted in fast mode when
quality mode is asked for (trafilatura takes time superlinear in the element count: seconds
for such a page, 20 s for a hostile one); :func:`extract_page` says so, and the pipeline
counts such pages as ``extract/fast_mode_too_many_elements``.

Either way, elements nested more than 256 deep (``MAX_NESTING_DEPTH``) are pruned first, with
what they hold, and the rest of the page is extracted (:func:`extract_page` says whether a page
was pruned; the pipeline counts such pages as ``extract/pruned_deep_nesting``).

``<template>`` elements are pruned too, in both modes, with what they hold: their content is
inert, never rendered by a browser (row and dialog markup for scripts to clone), so its text
is no page text; trafilatura extracted it. A declarative shadow root (``<template
shadowrootmode=...>``, or the older ``shadowroot``) is rendered, and is kept: trafilatura
reads it as the host's children; fast mode puts its content in its place first (lexbor keeps
a template's content in a fragment of its own, which resiliparse's text walk skips).

Language ID uses py3langid's bundled model (shipped inside the PyPI package, nothing is
downloaded) with normalised probabilities, so ``lang_score`` is in [0, 1].
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aistack.errors import AistackError, ValidationError, require

log = logging.getLogger(__name__)

Mode = Literal["quality", "fast"]
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
MODES: tuple[str, ...] = ("quality", "fast")

# WHATWG Encoding Standard (what browsers do): these labels all mean windows-1252, whose
# bytes 0x80-0x9F are punctuation (’ “ ” — €), not the C1 controls of Python's latin-1;
# and a few legacy labels name a superset that pages labelled so are written in
_WINDOWS_1252_LABELS = frozenset(
    "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 "
    "iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 latin-1 us-ascii windows-1252 x-cp1252".split()
)
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
}
# windows-1252 as the WHATWG decodes it: latin-1, then 0x80-0x9F through cp1252 where it
# defines a character (the five bytes it leaves undefined stay C1 controls); never fails
_CP1252_C1 = {}
for _b in range(0x80, 0xA0):
    try:
        _CP1252_C1[_b] = bytes([_b]).decode("cp1252")
    except UnicodeDecodeError:
        pass


def decode_html(body: bytes, http_content_type: str | None = None) -> str:
    """Bytes → str: charset from the HTTP header, else from a <meta> tag, else UTF-8 if the
    bytes are valid UTF-8, else resiliparse's detector (BOM, byte statistics). Labels are
    read as browsers do (WHATWG): iso-8859-1, ascii and their aliases mean windows-1252
    (valid UTF-8 so labelled is taken as UTF-8), gb2312/euc-kr/shift_jis their supersets."""
    enc = None
    if http_content_type and "charset=" in http_content_type.lower():
        enc = http_content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'")
    if not enc:
        m = _META_CHARSET.search(body[:4096])
        if m:
            enc = m.group(1).decode("ascii", "replace")
    if enc:
        enc = enc.lower()
        if enc in _WINDOWS_1252_LABELS:
            # valid UTF-8 with non-ASCII bytes is UTF-8 mislabelled (cp1252 text is almost
            # never valid UTF-8); anything else decodes as windows-1252
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                return body.decode("latin-1").translate(_CP1252_C1)
        try:
            return body.decode(_SUPERSETS.get(enc, enc))
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    encoding = require("resiliparse.parse.encoding", extra="webdata")
    return encoding.bytes_to_str(body, encoding.detect_encoding(body))


# the deepest element nesting extracted (<html> is depth 1): what libxml2, the parser under
# trafilatura, keeps (it silently drops deeper elements, their text with them), and far more
# than real pages use (a few dozen levels; none of the 51 HTML pages of the sample WARCs in
# ../shared/data/warc/samples nests deeper than 32). Deeper elements are pruned, in both modes,
# before extraction: the same rule for both, the shallow text of such a page kept, and no
# extraction walks a deep tree (resiliparse's walk takes time quadratic in the depth: minutes
# for a page nested 200,000 deep)
MAX_NESTING_DEPTH = 256
# the most elements a page extracted in quality mode may hold (after the pruning); a larger
# one is extracted in fast mode. Measured (trafilatura, one core): 10,000 elements 0.3 s,
# 50,000 2 s, 100,000 5 s, a hostile page of 1,000 chains 300 deep (256,000 once pruned)
# 20 s; fast mode takes 0.01-0.3 s on them. Real pages hold a few hundred to a few thousand
# (the 42 HTML pages of the sample WARCs: at most 1,108; the extraction benchmark's: 70)
MAX_QUALITY_ELEMENTS = 50_000


@dataclass(frozen=True)
class PageText:
    """:func:`extract_page`'s result: the main text, and how many element subtrees nested
    deeper than :data:`MAX_NESTING_DEPTH` were pruned before extraction (0 for real pages)."""

    text: str
    pruned: int = 0
    # quality mode was asked for, but the page held more than MAX_QUALITY_ELEMENTS elements:
    # it was extracted in fast mode
    fast_fallback: bool = False


@lru_cache(maxsize=1)
def _too_deep_selector() -> str:
    # an element with MAX_NESTING_DEPTH element ancestors; lexbor matches it in C, right to
    # left, so a check costs about the page's size times its depth, at most
    return " > ".join(["*"] * (MAX_NESTING_DEPTH + 1))


def _prune_too_deep(tree: Any) -> int:
    """Remove, from resiliparse's (lexbor's) DOM ``tree``, every element nested deeper than
    :data:`MAX_NESTING_DEPTH` (the outermost ones, their subtrees with them); the number of
    subtrees removed. A page without one costs one selector check in C (its first match:
    about the page's size); one with them, a walk of the elements at depth <= the bound (each
    once, never below it) and lexbor freeing the pruned subtrees (linear in their size)."""
    doc = tree.document
    if doc is None or doc.query_selector(_too_deep_selector()) is None:
        return 0
    pruned = 0
    # depth-first over elements: (first of a run of siblings, their depth)
    stack: list[tuple[Any, int]] = [(doc.first_element_child, 1)]
    while stack:
        el, depth = stack.pop()
        while el is not None:
            nxt = el.next_element_sibling  # before el may be freed
            if depth > MAX_NESTING_DEPTH:
                el.decompose()  # it and its subtree, freed in C; el is not touched again
                pruned += 1
            else:
                child = el.first_element_child
                if child is not None:
                    stack.append((child, depth + 1))
            el = nxt
    return pruned


# <template> elements whose content is inert (never rendered): all but declarative shadow
# roots, which a browser attaches to their parent and renders
_INERT_TEMPLATE = "template:not([shadowrootmode]):not([shadowroot])"


def _prune_templates(tree: Any) -> int:
    """Remove every inert ``<template>`` (:data:`_INERT_TEMPLATE`), with what it holds, from
    resiliparse's (lexbor's) DOM ``tree``; the number removed. A page without one costs one
    selector check in C; one with them, a walk of its elements (not ``query_selector_all``,
    whose result takes time quadratic in its length to go through: 8,000 templates took
    144 s). (lexbor keeps a template's content in a fragment of its own, which resiliparse's
    text walk skips, but the tree's HTML, which trafilatura reads, holds it.)"""
    doc = tree.document
    if doc is None or doc.query_selector(_INERT_TEMPLATE) is None:
        return 0
    removed = 0
    stack: list[Any] = [doc.first_element_child]  # the first of a run of siblings
    while stack:
        el = stack.pop()
        while el is not None:
            nxt = el.next_element_sibling  # before el may be freed
            if (
                el.tag == "template"
                and not el.has_attribute("shadowrootmode")
                and not el.has_attribute("shadowroot")
            ):
                # with what it holds: a template inside it is in its content fragment, which
                # the walk does not reach, and is freed with it
                el.decompose()
                removed += 1
            else:
                child = el.first_element_child
                if child is not None:
                    stack.append(child)
            el = nxt
    return removed


# declarative shadow roots: a browser attaches their content to the parent and renders it
_SHADOW_ROOT = "template[shadowrootmode], template[shadowroot]"


def _inline_shadow_roots(tree: Any, size: int) -> int:
    """Put the content of every declarative shadow root (:data:`_SHADOW_ROOT`) of
    resiliparse's (lexbor's) DOM ``tree`` in the tree, in the template's place (in a
    ``<div>``), so that the text walk reaches it; the number inlined. A shadow root inside
    another is inlined in turn, while the content re-parsed stays within a few times the
    page's ``size`` (characters): a shadow root nested in another has its content parsed
    once per level, and a hostile page nesting them deep would cost its size times the
    depth; one past the budget is left as it was (its content not extracted). A page without
    one costs one selector check in C; one with them, a walk of its elements (not
    ``query_selector_all``, whose result takes time quadratic in its length to go through)."""
    doc = tree.document
    if doc is None or doc.query_selector(_SHADOW_ROOT) is None:
        return 0
    budget = 4 * size + (1 << 20)
    done = 0
    stack: list[Any] = [doc.first_element_child]  # the first of a run of siblings
    while stack:
        el = stack.pop()
        while el is not None:
            nxt = el.next_element_sibling  # before el is replaced
            child = el.first_element_child
            if el.tag == "template" and (
                el.has_attribute("shadowrootmode") or el.has_attribute("shadowroot")
            ):
                for name in list(el.attribute_names):  # its HTML: "<template>…</template>"
                    el.remove_attribute(name)
                outer = el.html
                budget -= len(outer)
                if budget < 0:
                    return done
                start, end = "<template>", "</template>"
                if outer.startswith(start) and outer.endswith(end):
                    div = tree.create_element("div")
                    div.inner_html = outer[len(start) : -len(end)]
                    el.replace_with(div)
                    el.decompose()
                    done += 1
                    child = div.first_element_child  # (shadow roots in it: inlined in turn)
            if child is not None:
                stack.append(child)
            el = nxt
    return done


def _trafilatura_extract(html: str, url: str | None) -> str:
    trafilatura = require("trafilatura", extra="webdata")
    text = trafilatura.extract(
        html,
        url=url,
        deduplicate=False,
        include_comments=False,
        include_tables=True,
        favor_precision=False,
        with_metadata=False,
        output_format="txt",
    )
    return text or ""


def _resiliparse_extract(html: str, tree: Any = None) -> str:
    html2text = require("resiliparse.extract.html2text", extra="webdata")
    if tree is None:
        parse = require("resiliparse.parse.html", extra="webdata")
        tree = parse.HTMLTree.parse(html)
    return html2text.extract_plain_text(
        tree,
        main_content=True,
        alt_texts=False,
        links=False,
        list_bullets=True,
        noscript=False,
        form_fields=False,
        preserve_formatting=True,
    )


def extract_page(html: str, *, mode: Mode = "quality", url: str | None = None) -> PageText:
    """The main text of one HTML page ('' when none is found), and how many element subtrees
    nested deeper than :data:`MAX_NESTING_DEPTH` were pruned first. Inert ``<template>``
    elements are pruned too (not counted in ``pruned``). A pruned page is extracted from what
    is left: fast mode from the pruned tree, quality mode (trafilatura) from the pruned tree's
    HTML; a page with nothing to prune goes to trafilatura as it is. A page of more than
    :data:`MAX_QUALITY_ELEMENTS` elements (once pruned) is extracted in fast mode, quality
    mode asked for or not (``fast_fallback`` says so)."""
    if mode not in MODES:
        raise ValidationError(
            f"extract.mode must be one of {', '.join(MODES)}, got {mode!r}",
            hint="use --mode quality (trafilatura) or --mode fast (resiliparse)",
        )
    # parsing is linear in the input (a page nested 200,000 deep: tens of ms)
    parse = require("resiliparse.parse.html", extra="webdata")
    tree = parse.HTMLTree.parse(html)
    if mode == "fast":  # (before the depth bound: it applies to their content too)
        _inline_shadow_roots(tree, len(html))
    pruned = _prune_too_deep(tree)
    if pruned:
        log.debug("pruned %d element subtrees nested deeper than %d", pruned, MAX_NESTING_DEPTH)
    templates = _prune_templates(tree)
    fallback = False
    if mode == "quality" and tree.document is not None:
        # (counting in C: a few ms for 300,000 elements)
        fallback = len(tree.document.query_selector_all("*")) > MAX_QUALITY_ELEMENTS
        if fallback:
            log.debug("more than %d elements: fast mode", MAX_QUALITY_ELEMENTS)
            mode = "fast"
            if _inline_shadow_roots(tree, len(html)):  # (as fast mode does, before pruning)
                pruned += _prune_too_deep(tree)
                _prune_templates(tree)
    if mode == "quality":
        text = _trafilatura_extract(str(tree) if pruned or templates else html, url)
    else:
        text = _resiliparse_extract(html, tree)
    # normalise line ends and trailing spaces so both modes give the same shape
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    return PageText("\n".join(lines).strip(), pruned, fallback)


def extract_text(html: str, *, mode: Mode = "quality", url: str | None = None) -> str:
    """The main text of one HTML page ('' when none is found); elements nested deeper than
    :data:`MAX_NESTING_DEPTH` are pruned first (:func:`extract_page`)."""
    return extract_page(html, mode=mode, url=url).text


@lru_cache(maxsize=1)
def _identifier() -> object:
    langid = require("py3langid.langid", extra="webdata")
    return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)


def language_codes() -> frozenset[str]:
    """The codes :func:`detect_language` can return ('und' for empty text)."""
    return frozenset([*map(str, _identifier().nb_classes), "und"])  # type: ignore[attr-defined]


def detect_language(text: str, *, max_chars: int = 10_000) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]); ('und', 0.0) for empty text."""
    sample = text[:max_chars].replace("\n", " ").strip()
    if not sample:
        return "und", 0.0
    lang, score = _identifier().classify(sample)  # type: ignore[attr-defined]
    return str(lang), round(float(score), 4)


# --------------------------------------------------------------------------- files


HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz", ".xhtml.gz")
# web archives: input of ``aistack webdata run`` (a pipeline), not of ``webdata extract``
ARCHIVE_SUFFIXES = (
    ".warc", ".warc.gz", ".arc", ".arc.gz", ".wet", ".wet.gz", ".wat", ".wat.gz",
    ".warc.wet.gz", ".warc.wat.gz",
)  # fmt: skip
ARCHIVE_HINT = "WARC/ARC/WET input goes through `aistack webdata run`"


def is_archive_name(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def iter_html_files(
    paths: list[str | Path], *, ignored: list[Path] | None = None
) -> Iterator[Path]:
    """Every HTML file named or inside a named directory (``.html``, ``.htm``, ``.xhtml`` and
    their ``.gz``), sorted, for ``aistack webdata extract``. The other files found in a
    directory are skipped; with ``ignored``, they are appended to it. A file named directly is
    always yielded (:func:`read_html_file` refuses one that is a web archive)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if not f.is_file():
                    continue
                if f.name.lower().endswith(HTML_SUFFIXES):
                    yield f
                elif ignored is not None:
                    ignored.append(f)
        elif path.is_file():
            yield path
        else:
            raise ValidationError(
                f"path {str(path)!r} does not exist", hint="pass HTML files or directories"
            )


def _archive_kind(head: bytes) -> str | None:
    """ "WARC" or "ARC" when ``head`` (a file's first bytes, decompressed) starts a web
    archive record; None otherwise."""
    if head.startswith(b"WARC/"):
        return "WARC"
    if head.startswith(b"filedesc://"):
        return "ARC"
    return None


def _not_html(path: Path, what: str) -> ValidationError:
    return ValidationError(
        f"{path}: {what} file, not HTML ({ARCHIVE_HINT})",
        hint=f"run it through a pipeline: aistack webdata run PIPELINE.yaml (input: {path})",
    )


def read_html_file(path: Path) -> str:
    """The decoded HTML of a file (gzip-compressed or not). A web archive (WARC, ARC or WET,
    plain or gzip-compressed, found by its first bytes) is refused with a ValidationError
    rather than read as one empty page."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"{path}: cannot read it: {exc.strerror or exc}", hint="check the file"
        ) from exc
    if data[:2] == b"\x1f\x8b":
        try:  # the first bytes of the first member: a gzip-compressed web archive?
            head = zlib.decompressobj(wbits=31).decompress(data[:65536], 64)
        except zlib.error:
            head = b""
        kind = _archive_kind(head)
        if kind is not None:
            raise _not_html(path, f"a gzip-compressed {kind}")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # bad header / clipped / corrupt data
            raise ValidationError(
                f"{path}: not a readable gzip file ({exc})", hint="re-compress or unzip it"
            ) from exc
    kind = _archive_kind(data[:64])
    if kind is not None:
        raise _not_html(path, "an ARC" if kind == "ARC" else "a WARC")
    return decode_html(data)


def extract_files(
    paths: list[str | Path],
    *,
    mode: Mode = "quality",
    on_error: Callable[[Path, str], None] | None = None,
    ignored: list[Path] | None = None,
) -> Iterator[dict[str, object]]:
    """One ``{"path", "text", "lang", "lang_score"}`` per HTML file.

    A file that cannot be read or extracted (a web archive among them) raises
    :class:`ValidationError`; with ``on_error``, ``on_error(path, reason)`` is called instead
    and the other files go on. The non-HTML files skipped in directories are appended to
    ``ignored`` when it is given."""
    for f in iter_html_files(paths, ignored=ignored):
        try:
            text = extract_text(read_html_file(f), mode=mode)
        except ValidationError as exc:  # this file: unreadable
            if on_error is None:
                raise
            on_error(f, exc.message.removeprefix(f"{f}: "))
            continue
        except AistackError:
            raise  # a missing extra or the like: not this file's fault, and says the fix
        except Exception as exc:  # noqa: BLE001 - a parser failing on one page
            if on_error is None:
                raise
            on_error(f, f"extraction failed: {type(exc).__name__}: {exc}")
            continue
        lang, score = detect_language(text)
        yield {"path": str(f), "text": text, "lang": lang, "lang_score": score}
