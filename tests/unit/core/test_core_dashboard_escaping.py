"""The dashboard's JavaScript shows API data as text: a static check (no browser, no node).

app.js renders the REST API's JSON with template literals assigned to ``innerHTML``. Job
logs, failure and cancel reasons, event messages, users, dataset/model/service names and
tags are user-controlled, so every value that reaches HTML must go through ``esc()`` (or a
function of SAFE_FUNCS below, which returns HTML made safe). This test tokenizes app.js and
charts.js and fails on:

* an HTML template literal (``<tag`` or ``attr="`` in its text) with an interpolation that is
  not a safe expression (see :func:`_safe`);
* an interpolation in an event-handler (``on*``) or ``style`` attribute, in an unquoted
  attribute, at the start of a URL attribute (``href``/``src``/…: ``javascript:``), or in a
  ``<script>``/``<style>`` element: HTML escaping does not make data safe there;
* a cell of a ``table(cols, rows)`` row that is not a safe expression (``table`` puts its
  cells into ``<td>`` as HTML, so the caller escapes);
* a right-hand side of ``.innerHTML =``/``+=``, ``.outerHTML =``, ``insertAdjacentHTML`` or
  ``document.write`` that is not a safe expression;
* a ``svgEl(tag, {attrs}, text)`` call (charts.js builds SVG from data with it) whose tag is
  not a string literal of SVG_TAGS_OK, or whose attributes are not an object literal of
  SVG_ATTRS_OK names (no computed key, no spread), and a ``setAttribute``/``setAttributeNS``/
  ``createElementNS`` outside ``svgEl`` (svgEl checks each value against its kind; the node
  test tests/unit/web/test_web_svg_el.py runs it);
* a URL that is not built of literals and ``encodeURIComponent(...)`` parts: an interpolation
  in an ``href``/``src``/… value that is not ``esc(encodeURIComponent(...))``, and a path given
  to ``api()`` or assigned to ``location.hash``/``href`` whose parts are not literals or
  encoded (a name with ' ', '#', '?' or '/' would name another page or API path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[3] / "src" / "aistack" / "web" / "static"
FILES = ("app.js", "charts.js")

# functions whose result may go into HTML as is, and why
SAFE_FUNCS = {
    "esc": "the HTML escaper: & < > \" ' become entities (text and quoted attribute values)",
    "stateCell": "a <span> whose class and text are esc()-ed",
    "table": "builds <table> HTML; its header cells are esc()-ed, its cells are checked here",
    "unavailable": "a fixed sentence or the esc()-ed error message",
    "ago": "'N s/min/h/d ago' from numbers (Number.toFixed), or '-'",
    "fmtTime": "Date.toLocaleString() of a parsed Date ('Invalid Date' at worst), or '-'",
    "bytes": "a number's toFixed and a unit; a string throws (no toFixed), null is '-'",
    "usd": "'$' and Number(v) formatted, '-' for what is not finite",
    "fmtNum": "a number's toFixed/toPrecision with k/M; a string throws",
    "Number": "a number",
}
# methods whose result is digits (their receiver is a number: a string has no such method and
# throws) and Date methods that return locale text of a date
NUMBER_METHODS = {"toFixed", "toPrecision"}
DATE_METHODS = {"toLocaleString", "toLocaleTimeString", "toLocaleDateString"}
# interpolations trusted in one function: (function, expression source)
TRUSTED = {
    ("table", "c"): "a cell: checked at each table() call (the caller escapes)",
    ("table", 'rowAttrs ? rowAttrs(i) : ""'): "attributes from the caller's rowAttrs template, "
    "itself an HTML template checked here",
}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "poster", "background"}
# what svgEl may create and set (charts.js SVG_TAGS / SVG_ATTRS are held to these): no <a>,
# <use>, <image>, <foreignObject>, <script> or animation; no href, on*, style (but cssHeight,
# which svgEl writes as style="height:Npx" from a finite number) or anything that loads a URL
SVG_TAGS_OK = {"svg", "g", "line", "path", "rect", "text", "title"}
SVG_ATTRS_OK = {
    "x": "num", "y": "num", "x1": "num", "y1": "num", "x2": "num", "y2": "num", "width": "num",
    "height": "num", "rx": "num", "stroke-width": "num", "viewBox": "box", "d": "path",
    "fill": "paint", "stroke": "paint", "stroke-dasharray": "dash", "text-anchor": "anchor",
    "class": "classes", "cssHeight": "height",
}  # fmt: skip
# a URL an api() path or location may be built from without encoding, in one function
TRUSTED_URLS = {("pagePlanner", "path"): "bind()'s path: one of the literal /plan/… paths"}
HTML_RE = re.compile(r"<[A-Za-z/!]|[\w:-]+\s*=\s*[\"']")

# ------------------------------------------------------------------ tokenizer


@dataclass
class Tok:
    kind: str  # id, num, str, tpl, regex, punct
    text: str
    start: int
    end: int
    quasis: list[str] = field(default_factory=list)  # tpl: the text parts
    exprs: list[list[Tok]] = field(default_factory=list)  # tpl: the ${...} token lists


PUNCTS = sorted(
    "=> === !== == != <= >= && || ?? ?. ... += -= *= /= ++ -- ** ( ) [ ] { } ; , . ? : "
    "< > + - * / % ! ~ & | ^ =".split(),
    key=len,
    reverse=True,
)
REGEX_BEFORE_KW = {"return", "typeof", "case", "do", "else", "in", "of", "new", "delete",
                   "void", "throw"}  # fmt: skip


class _Lexer:
    def __init__(self, src: str) -> None:
        self.s = src
        self.i = 0

    def tokens(self, until_brace: bool = False) -> list[Tok]:
        out: list[Tok] = []
        depth = 0
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c.isspace():
                self.i += 1
            elif s.startswith("//", self.i):
                j = s.find("\n", self.i)
                self.i = len(s) if j < 0 else j
            elif s.startswith("/*", self.i):
                self.i = s.index("*/", self.i) + 2
            elif c in "\"'":
                j = self.i + 1
                while s[j] != c:
                    j += 2 if s[j] == "\\" else 1
                out.append(Tok("str", s[self.i : j + 1], self.i, j + 1))
                self.i = j + 1
            elif c == "`":
                out.append(self._template())
            elif c == "/" and self._regex_allowed(out):
                j, cls = self.i + 1, False
                while cls or s[j] != "/":
                    if s[j] == "\\":
                        j += 1
                    elif s[j] == "[":
                        cls = True
                    elif s[j] == "]":
                        cls = False
                    j += 1
                j += 1
                while j < len(s) and (s[j].isalnum()):
                    j += 1
                out.append(Tok("regex", s[self.i : j], self.i, j))
                self.i = j
            elif c.isalpha() or c in "_$":
                m = re.compile(r"[\w$]+").match(s, self.i)
                assert m
                out.append(Tok("id", m.group(), self.i, m.end()))
                self.i = m.end()
            elif c.isdigit() or (c == "." and s[self.i + 1 : self.i + 2].isdigit()):
                m = re.compile(r"(0[xX][0-9a-fA-F_]+|[\d_]*\.?[\d_]+([eE][+-]?\d+)?)").match(
                    s, self.i
                )
                assert m
                out.append(Tok("num", m.group(), self.i, m.end()))
                self.i = m.end()
            else:
                p = next(p for p in PUNCTS if s.startswith(p, self.i))
                if until_brace:
                    if p == "{":
                        depth += 1
                    elif p == "}":
                        if depth == 0:
                            self.i += 1
                            return out
                        depth -= 1
                out.append(Tok("punct", p, self.i, self.i + len(p)))
                self.i += len(p)
        assert not until_brace, "unterminated ${ in a template literal"
        return out

    def _regex_allowed(self, out: list[Tok]) -> bool:
        if not out:
            return True
        t = out[-1]
        if t.kind == "id":
            return t.text in REGEX_BEFORE_KW
        return t.kind == "punct" and t.text not in (")", "]")

    def _template(self) -> Tok:
        s, start = self.s, self.i
        self.i += 1
        quasis, exprs, buf = [], [], []
        while True:
            c = s[self.i]
            if c == "\\":
                buf.append(s[self.i : self.i + 2])
                self.i += 2
            elif c == "`":
                self.i += 1
                quasis.append("".join(buf))
                return Tok("tpl", s[start : self.i], start, self.i, quasis, exprs)
            elif s.startswith("${", self.i):
                quasis.append("".join(buf))
                buf = []
                self.i += 2
                exprs.append(self.tokens(until_brace=True))
            else:
                buf.append(c)
                self.i += 1


def tokenize(src: str) -> list[Tok]:
    return _Lexer(src).tokens()


# ------------------------------------------------------------------ token-list helpers

OPEN, CLOSE = {"(": ")", "[": "]", "{": "}"}, {")", "]", "}"}


def _is(t: Tok, text: str) -> bool:
    return t.kind == "punct" and t.text == text


def _match(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "punct" and toks[j].text in OPEN:
            depth += 1
        elif toks[j].kind == "punct" and toks[j].text in CLOSE:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError("unbalanced brackets")


def _split(toks: list[Tok], op: str) -> list[list[Tok]]:
    """Split at top-level occurrences of punctuator ``op``."""
    parts, cur, i = [], [], 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "punct" and t.text in OPEN:
            j = _match(toks, i)
            cur.extend(toks[i : j + 1])
            i = j + 1
            continue
        if _is(t, op):
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
        i += 1
    parts.append(cur)
    return parts


def _strip_parens(toks: list[Tok]) -> list[Tok]:
    while toks and _is(toks[0], "(") and _match(toks, 0) == len(toks) - 1:
        toks = toks[1:-1]
    return toks


def _ternary(toks: list[Tok]) -> tuple[list[Tok], list[Tok]] | None:
    """The two branches of a top-level ``c ? a : b``."""
    q = _split(toks, "?")
    if len(q) < 2:
        return None
    rest = toks[len(q[0]) + 1 :]
    depth, i = 0, 0
    while i < len(rest):
        t = rest[i]
        if t.kind == "punct" and t.text in OPEN:
            i = _match(rest, i) + 1
            continue
        if _is(t, "?"):
            depth += 1
        elif _is(t, ":"):
            if depth == 0:
                return rest[:i], rest[i + 1 :]
            depth -= 1
        i += 1
    return None


def _src(src: str, toks: list[Tok]) -> str:
    return src[toks[0].start : toks[-1].end] if toks else ""


@dataclass
class Checker:
    src: str
    name: str
    problems: list[str] = field(default_factory=list)
    bound: set[str] = field(default_factory=set)  # const NAME = encodeURIComponent(...)

    def line(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def flag(self, toks_or_tok: list[Tok] | Tok, why: str) -> None:
        toks = toks_or_tok if isinstance(toks_or_tok, list) else [toks_or_tok]
        pos = toks[0].start if toks else 0
        self.problems.append(f"{self.name}:{self.line(pos)}: {why}: {_src(self.src, toks)!r}")

    # -------------------------------------------------------------- safe expressions

    def safe(self, toks: list[Tok], func: str) -> bool:
        """Whether ``toks`` evaluates to a string that may go into HTML as is."""
        toks = _strip_parens(toks)
        if not toks:
            return False
        tern = _ternary(toks)
        if tern:  # the condition is not shown
            return self.safe(tern[0], func) and self.safe(tern[1], func)
        for op in ("||", "??", "&&", "+"):
            parts = _split(toks, op)
            if len(parts) > 1:
                if op == "+" and not parts[0]:  # unary plus: a number
                    return len(parts) == 2 or all(self.safe(p, func) for p in parts[1:])
                return all(self.safe(p, func) for p in parts)
        if len(toks) == 1:
            t = toks[0]
            if t.kind in ("str", "num"):
                return True
            if t.kind == "tpl":
                return all(self.interp_ok(e, func) for e in t.exprs)
            return False
        # NAME(...) of a safe function
        if toks[0].kind == "id" and toks[0].text in SAFE_FUNCS and _is(toks[1], "("):
            return _match(toks, 1) == len(toks) - 1
        # ....method(...) at the end
        if _is(toks[-1], ")"):
            opened = next(i for i in range(len(toks)) if _match_safe(toks, i) == len(toks) - 1)
            if opened >= 2 and _is(toks[opened - 2], ".") and toks[opened - 1].kind == "id":
                method, recv = toks[opened - 1].text, toks[: opened - 2]
                if method in NUMBER_METHODS:
                    return True
                if method in DATE_METHODS:
                    return len(recv) > 1 and recv[0].text == "new" and recv[1].text == "Date"
                if method == "join":
                    return self._map_join_safe(recv, toks[opened + 1 : -1], func)
            return False
        # x.length: a count
        if len(toks) >= 3 and _is(toks[-2], ".") and toks[-1].text == "length":
            return True
        return False

    def _map_join_safe(self, recv: list[Tok], sep: list[Tok], func: str) -> bool:
        """``X.map(p => BODY).join(SEP)``: safe when BODY and SEP are."""
        if sep and not self.safe(sep, func):
            return False
        if not (recv and _is(recv[-1], ")")):
            return False
        opened = next(i for i in range(len(recv)) if _match_safe(recv, i) == len(recv) - 1)
        if not (opened >= 2 and recv[opened - 1].text == "map" and _is(recv[opened - 2], ".")):
            return False
        args = recv[opened + 1 : -1]
        arrow = next((i for i, t in enumerate(args) if _is(t, "=>")), None)
        if arrow is None:
            return False
        body = args[arrow + 1 :]
        return bool(body) and not _is(body[0], "{") and self.safe(body, func)

    def interp_ok(self, expr: list[Tok], func: str) -> bool:
        return (func, _src(self.src, expr)) in TRUSTED or self.safe(expr, func)

    # -------------------------------------------------------------- the checks

    def check_templates(self, toks: list[Tok], func: str) -> None:
        """Every HTML template literal, nested ones too."""
        for t in toks:
            if t.kind != "tpl":
                continue
            if HTML_RE.search("".join(t.quasis)):
                self._check_html_template(t, func)
            for e in t.exprs:
                self.check_templates(e, func)

    def _check_html_template(self, t: Tok, func: str) -> None:
        # a template of attributes alone (table()'s rowAttrs) is read as inside a tag
        text = "" if "<" in "".join(t.quasis) else "<tag "
        for q, expr in zip(t.quasis, t.exprs, strict=False):
            text += q
            ctx = _context(text)
            if ctx and (func, _src(self.src, expr)) not in TRUSTED:
                self.flag(expr, ctx)
            elif not self.interp_ok(expr, func):
                self.flag(expr, "interpolation into HTML that is not esc()-ed")
            elif _in_url_attr(text) and not self._html_url_part_ok(expr):
                self.flag(expr, "URL part that is not esc(encodeURIComponent(...))")
            text += "X"

    # -------------------------------------------------------------- URLs

    def encoded(self, toks: list[Tok], func: str) -> bool:
        """``encodeURIComponent(...)``, a ``new URLSearchParams(...)``, or a name bound
        once by ``const NAME = encodeURIComponent(...)``."""
        toks = _strip_parens(toks)
        if _call_args(toks, "encodeURIComponent") is not None:
            return True
        if len(toks) > 2 and toks[0].text == "new" and toks[1].text == "URLSearchParams":
            return _is(toks[2], "(") and _match(toks, 2) == len(toks) - 1
        if len(toks) == 1 and toks[0].kind == "id":
            return toks[0].text in self.bound or (func, toks[0].text) in TRUSTED_URLS
        return False

    def url_ok(self, toks: list[Tok], func: str) -> bool:
        """A URL of string literals and encoded parts (``+`` or a template literal)."""
        toks = _strip_parens(toks)
        parts = _split(toks, "+")
        if len(parts) > 1:
            return all(p and self.url_ok(p, func) for p in parts)
        if len(toks) == 1 and toks[0].kind == "str":
            return True
        if len(toks) == 1 and toks[0].kind == "tpl":
            return all(self.encoded(e, func) for e in toks[0].exprs)
        return self.encoded(toks, func)

    def _html_url_part_ok(self, expr: list[Tok]) -> bool:
        args = _call_args(_strip_parens(expr), "esc")
        return args is not None and self.encoded(args, "?")

    def check_urls(self, toks: list[Tok], func: str) -> None:
        for i, t in enumerate(toks):
            if t.kind == "tpl":
                for e in t.exprs:
                    self.check_urls(e, func)
            if t.kind != "id" or i + 1 >= len(toks):
                continue
            prev = toks[i - 1].text if i else ""
            if t.text == "api" and _is(toks[i + 1], "(") and prev not in ("function", "."):
                path = _split(toks[i + 2 : _match(toks, i + 1)], ",")[0]
                if not self.url_ok(path, func):
                    self.flag(
                        path or [t], "api() path with a part that is not encodeURIComponent()-ed"
                    )
            if t.text == "location" and i + 3 < len(toks) and _is(toks[i + 1], "."):
                if toks[i + 2].text in ("hash", "href") and _is(toks[i + 3], "="):
                    rhs = _expr_at(toks, i + 4)
                    if not self.url_ok(rhs, func):
                        self.flag(rhs or [t], "location URL with a part that is not encoded")

    # -------------------------------------------------------------- SVG

    def check_svg(self, toks: list[Tok], func: str) -> None:
        for i, t in enumerate(toks):
            if t.kind == "tpl":
                for e in t.exprs:
                    self.check_svg(e, func)
            if t.kind != "id" or i + 1 >= len(toks):
                continue
            prev = toks[i - 1].text if i else ""
            dom = t.text in ("setAttribute", "setAttributeNS", "createElementNS")
            if dom and prev == "." and func != "svgEl":
                self.flag(t, f"{t.text} outside svgEl(): build SVG with svgEl")
            if t.text != "svgEl" or not _is(toks[i + 1], "(") or prev in ("function", "."):
                continue
            args = _split(toks[i + 2 : _match(toks, i + 1)], ",")
            tag = args[0]
            if not (len(tag) == 1 and tag[0].kind == "str" and tag[0].text[1:-1] in SVG_TAGS_OK):
                self.flag(tag or [t], "svgEl() tag that is not a literal of SVG_TAGS_OK")
            if len(args) > 3:
                self.flag(args[3], "svgEl() takes (tag, attrs, text)")
            if len(args) < 2:
                continue
            attrs = args[1]
            if not (attrs and _is(attrs[0], "{") and _match(attrs, 0) == len(attrs) - 1):
                self.flag(attrs or [t], "svgEl() attributes that are not an object literal")
                continue
            for entry in _split(attrs[1:-1], ","):
                if not entry:
                    continue
                key = entry[0]
                if key.kind not in ("id", "str") or (len(entry) > 1 and not _is(entry[1], ":")):
                    self.flag(entry, "svgEl() attribute with a computed key, spread or method")
                    continue
                name = key.text[1:-1] if key.kind == "str" else key.text
                if name not in SVG_ATTRS_OK:
                    self.flag(entry, f"svgEl() attribute {name!r} is not one of SVG_ATTRS_OK")

    def check_tables(self, toks: list[Tok]) -> None:
        for i, t in enumerate(toks):
            if not (t.kind == "id" and t.text == "table" and i + 1 < len(toks)):
                continue
            if not _is(toks[i + 1], "(") or (i and toks[i - 1].text in ("function", ".")):
                continue
            args = _split(toks[i + 2 : _match(toks, i + 1)], ",")
            if len(args) < 2:
                self.flag(toks[i : i + 2], "table() without rows")
                continue
            rows = self._rows(args[1], toks)
            if not rows:
                self.flag(args[1], "cannot find the row arrays of this table() to check")
            for row in rows:
                for cell in _split(row, ","):
                    if cell and not self.safe(cell, "?"):
                        self.flag(cell, "table() cell that is not esc()-ed")

    def _rows(self, arg: list[Tok], everything: list[Tok]) -> list[list[Tok]]:
        """The row arrays of table()'s second argument: ``[[...], ...]``, arrays after ``=>``
        or ``return`` inside it, or, for a variable, its initializer and ``X.push([...])``."""
        rows: list[list[Tok]] = []
        if len(arg) == 1 and arg[0].kind == "id":
            name = arg[0].text
            for j in range(len(everything) - 3):
                a, b, c = everything[j : j + 3]
                if a.text == name and _is(b, ".") and c.text == "push":
                    for x in _split(everything[j + 4 : _match(everything, j + 3)], ","):
                        if x and _is(x[0], "[") and _match(x, 0) == len(x) - 1:
                            rows.append(x[1:-1])
                if a.text in ("const", "let", "var") and b.text == name and _is(c, "="):
                    end = next(
                        (k for k in range(j + 3, len(everything)) if _is(everything[k], ";")),
                        len(everything),
                    )
                    init = everything[j + 3 : end]
                    if not (len(init) == 2 and _is(init[0], "[")):  # `= []` holds none
                        rows.extend(self._rows(init, everything))
            return rows
        if arg and _is(arg[0], "[") and _match(arg, 0) == len(arg) - 1:
            for el in _split(arg[1:-1], ","):
                if el and _is(el[0], "[") and _match(el, 0) == len(el) - 1:
                    rows.append(el[1:-1])
        for j, t in enumerate(arg[:-1]):
            if (_is(t, "=>") or t.text == "return") and _is(arg[j + 1], "["):
                rows.append(arg[j + 2 : _match(arg, j + 1)])
        return rows

    def check_sinks(self, toks: list[Tok]) -> None:
        for i, t in enumerate(toks):
            if t.kind == "tpl":
                for e in t.exprs:
                    self.check_sinks(e)
            if t.kind != "id" or i == 0:
                continue
            rhs = None
            prop = _is(toks[i - 1], ".")
            if prop and t.text in ("innerHTML", "outerHTML") and i + 1 < len(toks):
                if toks[i + 1].text in ("=", "+="):
                    rhs = _expr_at(toks, i + 2)
            elif prop and t.text in ("insertAdjacentHTML", "write", "writeln"):
                if t.text != "insertAdjacentHTML" and toks[i - 2].text != "document":
                    continue
                args = _split(toks[i + 2 : _match(toks, i + 1)], ",")
                rhs = args[-1]
            if rhs is not None and not self.safe(rhs, "?"):
                self.flag(rhs or [t], f"{t.text} gets HTML that is not esc()-ed")

    def run(self) -> list[str]:
        toks = tokenize(self.src)
        self.bound = _encoded_names(toks)
        for func, body in _functions(toks):
            self.check_templates(body, func)
            self.check_urls(body, func)
            self.check_svg(body, func)
        self.check_tables(toks)
        self.check_sinks(toks)
        return list(dict.fromkeys(self.problems))


def _match_safe(toks: list[Tok], i: int) -> int:
    if toks[i].kind == "punct" and toks[i].text in OPEN:
        return _match(toks, i)
    return -1


def _expr_at(toks: list[Tok], i: int) -> list[Tok]:
    """The expression from ``i`` to a top-level ``;`` or an unmatched closer."""
    j = i
    while j < len(toks):
        t = toks[j]
        if t.kind == "punct" and t.text in OPEN:
            j = _match(toks, j) + 1
            continue
        if t.kind == "punct" and (t.text == ";" or t.text in CLOSE):
            break
        j += 1
    return toks[i:j]


def _functions(toks: list[Tok]) -> list[tuple[str, list[Tok]]]:
    """(name, tokens) of each top-level ``function NAME(...) {...}``, and ("<top>", the rest)."""
    out, rest, i = [], [], 0
    while i < len(toks):
        t = toks[i]
        if t.text == "function" and i + 1 < len(toks) and toks[i + 1].kind == "id":
            body_open = _match(toks, i + 2) + 1
            end = _match(toks, body_open)
            out.append((toks[i + 1].text, toks[i : end + 1]))
            i = end + 1
        else:
            rest.append(t)
            i += 1
    return [*out, ("<top>", rest)]


def _open_attribute(tag: str) -> tuple[str, str, str]:
    """Where the end of ``tag`` (``<name attr="v" ...``, not closed) is: ("quoted", name,
    value so far) inside a quoted value, ("unquoted", name, value so far), or ("list", "", "")
    between attributes."""
    i, n = re.match(r"<[^\s>]*", tag).end(), len(tag)  # type: ignore[union-attr]
    while True:
        while i < n and tag[i].isspace():
            i += 1
        if i >= n:
            return "list", "", ""
        m = re.compile(r"[^\s=>]+").match(tag, i)
        name, i = (m.group(), m.end()) if m else ("", i + 1)
        j = i
        while j < n and tag[j].isspace():
            j += 1
        if j >= n or tag[j] != "=":
            if j >= n:
                return "list", "", ""
            continue
        i = j + 1
        while i < n and tag[i].isspace():
            i += 1
        if i >= n:
            return "unquoted", name.lower(), ""
        if tag[i] in "\"'":
            end = tag.find(tag[i], i + 1)
            if end < 0:
                return "quoted", name.lower(), tag[i + 1 :]
            i = end + 1
        else:
            m = re.compile(r"[^\s>]*").match(tag, i)
            assert m
            if m.end() >= n:
                return "unquoted", name.lower(), m.group()
            i = m.end()


def _call_args(toks: list[Tok], name: str) -> list[Tok] | None:
    """The argument tokens of ``toks`` when it is exactly ``name(...)``, else None."""
    if len(toks) >= 3 and toks[0].kind == "id" and toks[0].text == name and _is(toks[1], "("):
        if _match(toks, 1) == len(toks) - 1:
            return toks[2:-1]
    return None


def _encoded_names(toks: list[Tok]) -> set[str]:
    """Names bound by ``const NAME = encodeURIComponent(...)``, and never bound otherwise."""
    names: dict[str, bool] = {}
    for j in range(len(toks) - 3):
        a, b, c = toks[j : j + 3]
        if a.text in ("const", "let", "var") and b.kind == "id" and _is(c, "="):
            rhs = _expr_at(toks, j + 3)
            end = j + 3 + len(rhs)
            whole = end >= len(toks) or toks[end].text in (";", ",", ")", "}")
            ok = a.text == "const" and whole and _call_args(rhs, "encodeURIComponent") is not None
            names[b.text] = names.get(b.text, True) and ok
    return {n for n, ok in names.items() if ok}


def _in_url_attr(text: str) -> bool:
    """Whether an interpolation after ``text`` is inside a quoted URL attribute's value."""
    tag = re.search(r"<[A-Za-z][^<>]*$", text)
    if not tag:
        return False
    state, name, _value = _open_attribute(tag.group())
    return state == "quoted" and name in URL_ATTRS


def _context(text: str) -> str | None:
    """Why an interpolation after ``text`` (an HTML template's text so far) is unsafe even
    when esc()-ed, or None."""
    if re.search(r"<(script|style)\b[^>]*>(?:(?!</\1).)*$", text, re.I | re.S):
        return "interpolation into a <script>/<style> element"
    tag = re.search(r"<[A-Za-z][^<>]*$", text)
    if not tag:
        return None
    state, name, value = _open_attribute(tag.group())
    if state == "unquoted":
        return "interpolation into an unquoted attribute"
    if state == "list":
        return "interpolation into a tag's attribute list"
    if name.startswith("on"):
        return f"interpolation into an event handler ({name}): esc() is undone before JS runs"
    if name == "style":
        return "interpolation into a style attribute"
    if name == "srcdoc":
        return "interpolation into srcdoc"
    if name in URL_ATTRS and not re.match(r"(#|\?|\./|/(?!/)|https?://[^/]+/)", value):
        return f"{name} that starts with data (a javascript: URL); begin it with '#' or '/'"
    return None


# ------------------------------------------------------------------ the tests


def problems_in(src: str, name: str = "snippet.js") -> list[str]:
    return Checker(src, name).run()


@pytest.mark.parametrize("name", FILES)
def test_dashboard_js_escapes_what_it_puts_into_html(name: str) -> None:
    problems = problems_in((STATIC / name).read_text(), name)
    assert not problems, "\n".join(problems)


def test_the_allow_listed_functions_exist_and_esc_escapes_the_five_characters() -> None:
    src = "\n".join((STATIC / f).read_text() for f in FILES)
    for fn in set(SAFE_FUNCS) - {"esc", "Number"}:
        assert re.search(rf"\bfunction {fn}\(", src), f"{fn} in SAFE_FUNCS is gone"
    m = re.search(r"const esc = (.*)", src)
    assert m, "esc() is gone"
    for ent in ("&amp;", "&lt;", "&gt;", "&quot;", "&#39;"):
        assert ent in m.group(1), f"esc() no longer writes {ent}"
    assert "[&<>\"']" in m.group(1)


def _js_object(src: str, name: str) -> list[list[Tok]]:
    """The entries of ``const NAME = {...}`` or ``new Set([...])`` in ``src``."""
    toks = tokenize(src)
    for j in range(len(toks) - 3):
        if toks[j].text == "const" and toks[j + 1].text == name and _is(toks[j + 2], "="):
            k = j + 3
            while not _is(toks[k], "{") and not _is(toks[k], "["):
                k += 1
            return [e for e in _split(toks[k + 1 : _match(toks, k)], ",") if e]
    raise AssertionError(f"const {name} is gone from charts.js")


def _key(t: Tok) -> str:
    return t.text[1:-1] if t.kind == "str" else t.text


def test_svgel_sets_only_the_tags_and_attributes_the_check_allows() -> None:
    """charts.js's SVG_TAGS / SVG_ATTRS (what svgEl creates and sets) are the lists this check
    holds calls to, and none of them is a way to run or load something."""
    src = (STATIC / "charts.js").read_text()
    tags = {_key(e[0]) for e in _js_object(src, "SVG_TAGS")}
    attrs = {_key(e[0]): _key(e[2]) for e in _js_object(src, "SVG_ATTRS")}
    renamed = {_key(e[0]): _key(e[2]) for e in _js_object(src, "SVG_ATTR_NAME")}
    assert tags == SVG_TAGS_OK
    assert attrs == SVG_ATTRS_OK
    assert renamed == {"cssHeight": "style"} and SVG_ATTRS_OK["cssHeight"] == "height"
    for name in [*attrs, *renamed.values()]:
        low = name.lower()
        assert not low.startswith("on") and "href" not in low and low not in URL_ATTRS, name
    assert not tags & {"a", "use", "image", "script", "foreignObject", "animate", "set", "iframe"}
    body = src[src.index("function svgEl(") :]
    body = body[: body.index("\n}\n")]
    assert "innerHTML" not in body and "textContent = String(text)" in body
    assert "hasOwnProperty.call(SVG_ATTRS, k)" in body and "SVG_TAGS.has(tag)" in body


BAD = {
    "raw text": "el.innerHTML = `<b>${j.name}</b>`;",
    "raw member in a map": 'el.innerHTML = xs.map(x => `<li>${x.name}</li>`).join("");',
    "nullish default": 'el.innerHTML = `<b>${j.exit_code ?? "-"}</b>`;',
    "onclick": "el.innerHTML = `<tr onclick=\"go('${esc(id)}')\">`;",
    "onclick in attributes": 'rowAttrs = i => `class="r" onclick="go(\'${esc(ids[i])}\')"`;',
    "style": 'el.innerHTML = `<i style="background:${esc(c)}"></i>`;',
    "href from data": 'el.innerHTML = `<a href="${esc(u)}">x</a>`;',
    "src from data": "el.innerHTML = `<img src='${esc(u)}'>`;",
    "unquoted": "el.innerHTML = `<td class=${esc(c)}>`;",
    "attribute list": "el.innerHTML = `<td ${attrs}>`;",
    "script": "el.innerHTML = `<script>var x = ${esc(d)}</script>`;",
    "variable": "el.innerHTML = html;",
    "concat": 'el.innerHTML = "<p>" + msg + "</p>";',
    "insertAdjacentHTML": 'el.insertAdjacentHTML("beforeend", msg);',
    "outerHTML": "el.outerHTML = s.name;",
    "table cell": 'x = table(["a"], xs.map(x => [esc(x.a), x.b]));',
    "table cell in a template": 'x = table(["a"], xs.map(x => [`${x.n} CPUs`]));',
    "table block body": 'x = table(["a"], xs.map(x => { return [x.b]; }));',
    "table pushed row": 'const rows = [];\nrows.push([x.name]);\nt = table(["a"], rows);',
    "table literal rows": 'x = table(["a", "b"], [["name", j.name]]);',
    "table rows unknown": 'x = table(["a"], makeRows());',
    "toLocaleString of a string": "el.innerHTML = `<b>${s.name.toLocaleString()}</b>`;",
    # URLs: a name with ' ', '#', '?' or '/' names another page or API path unless encoded
    "href part not encoded": 'el.innerHTML = `<a href="#/jobs/${esc(id)}">x</a>`;',
    "mlflow href not encoded": 'el.innerHTML = `<a href="/mlflow/#/runs/${esc(r.id)}">r</a>`;',
    "api path not encoded": "api(`/services/${name}/restart`);",
    "api query not encoded": "api(`/usage/samples?job_id=${j.id}`);",
    "api path concatenated": 'api("/models/" + name);',
    "api path variable": "api(path);",
    "let is not encoded for good": "let jid = encodeURIComponent(id); jid = id; api(`/jobs/${jid}`);",
    "location hash": 'location.hash = "#/jobs/" + tr.dataset.job;',
    # svgEl: only known tags and attribute names, from an object literal
    "svg href": 'svgEl("a", { href: u });',
    "svg xlink href": 'svgEl("use", { "xlink:href": u });',
    "svg onclick": 'svgEl("rect", { onclick: f, x: 1 });',
    "svg onload quoted": 'svgEl("svg", { "onload": code });',
    "svg style": 'svgEl("text", { style: "fill:red" }, t);',
    "svg computed key": 'svgEl("rect", { [k]: v });',
    "svg spread": 'svgEl("rect", { ...attrs });',
    "svg attrs variable": 'svgEl("rect", attrs);',
    "svg tag from data": "svgEl(n.kind, {});",
    "svg script": 'svgEl("script", {}, code);',
    "svg foreignObject": 'svgEl("foreignObject", {});',
    "setAttribute outside svgEl": "e.setAttribute(k, v);",
    "setAttributeNS outside svgEl": 'e.setAttributeNS(null, "href", v);',
    "createElementNS outside svgEl": "document.createElementNS(NS, tag);",
}
GOOD = {
    "esc": 'el.innerHTML = `<b class="k ${esc(s)}">${esc(j.name)}</b>`;',
    "ternary": 'el.innerHTML = `<p>${e.status === 404 ? "none" : esc(e.message)}</p>`;',
    "numbers": 'el.innerHTML = `<b>${(m.qps ?? 0).toFixed(2) + " req/s"}</b>`;',
    "dates": "el.innerHTML = `<b>${new Date(e.t * 1000).toLocaleTimeString()}</b>`;",
    "local href": 'el.innerHTML = `<a href="#/jobs/${esc(encodeURIComponent(id))}">x</a>'
    '<a href="/r/${esc(encodeURIComponent(r))}">`;',
    "api paths": "const jid = encodeURIComponent(id); api(`/jobs/${jid}/logs?offset=${"
    'encodeURIComponent(o)}`); api("/jobs?limit=200"); api("/d/" + encodeURIComponent(n));',
    "api query params": "api(`/usage/samples?${new URLSearchParams({ job_id: id })}`);",
    "location hash": 'location.hash = "#/jobs/" + encodeURIComponent(tr.dataset.job);',
    "svgEl": 'svgEl("rect", { x, y: y + 1, "stroke-width": 2, fill: c }); svgEl("title", {}, t);',
    "svgEl without attrs": 'svgEl("g");',
    "setAttribute inside svgEl": "function svgEl(tag, a) { e.setAttribute(k, a[k]); }",
    "map join": 'el.innerHTML = xs.map(x => `<li>${esc(x)}</li>`).join("");',
    "helpers": 'el.innerHTML = table(["a"], xs.map(x => [esc(x.a), bytes(x.b), ago(x.t)]));',
    "attributes": 'rowAttrs = i => `class="r" data-job="${esc(ids[i])}"`;',
    "literal": "el.innerHTML = '<p class=\"muted\">none</p>';",
    "regex with quotes": "const r = /[\"']/g; el.innerHTML = `<b>${esc(r)}</b>`;",
}


@pytest.mark.parametrize("snippet", list(BAD.values()), ids=list(BAD))
def test_the_check_flags_unescaped_html(snippet: str) -> None:
    assert problems_in(snippet), snippet


@pytest.mark.parametrize("snippet", list(GOOD.values()), ids=list(GOOD))
def test_the_check_passes_escaped_html(snippet: str) -> None:
    assert problems_in(snippet) == []


def test_the_pages_carry_a_content_security_policy(api) -> None:  # type: ignore[no-untyped-def]
    """Only this server's scripts run on the dashboard's pages: an injected <script> or on*=
    handler is blocked by the browser even where escaping was missed (the browser test checks
    that nothing the pages need is blocked)."""
    for path in ("/", "/login", "/login?error=1"):
        r = api.http.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
