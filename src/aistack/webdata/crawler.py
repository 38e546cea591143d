"""A polite crawler that writes WARC files (request + response records).

Polite by default: robots.txt is fetched first for every host and obeyed (RFC 9309: a 4xx
robots.txt means "allow all", a 5xx or unreachable one means "disallow all"; its
Crawl-delay raises the per-host delay; up to five redirects in a row are followed to it, to any
host, each hop waiting for its host's turn as any request does, and the file reached gives
the rules; past
five it counts as unavailable, as a 4xx, and ``robots_redirected`` says so). The summary tells
the two "disallow all" apart: after a 5xx robots.txt the host's URLs count as disallowed
(``robots_blocked``, the reason in ``robots_unavailable``); a host that does not answer at all (connection refused, DNS, timeout)
makes them fetch errors (``errors``, each listed in ``failed``). One request at a time per
host with ``delay_s`` between the end of one request and the start of the next (a robots.txt
redirect from another host included); a descriptive User-Agent; limits on
pages, depth, domains and response size. Responses are stored byte for byte as received
(status line, headers, body; chunked encoding included) so the WARC is a faithful capture.

A hostile or broken server costs bounded time and memory, and what happened is recorded (a
fetch error in the summary, nothing in the WARC, but for a response cut short, see below):
``timeout_s`` bounds a whole request (the name lookup, connecting, and every byte of the
answer: a server that stalls or trickles is cut off at it; when its status line had come,
what came is kept, request and response records, the response's marked ``WARC-Truncated:
time``, counted in ``timed_out``); ``max_response_bytes`` bounds the response as received
and its body once decompressed (a gzip/deflate/br bomb is ``ResponseTooLarge``, nothing kept). A response over it as received
is a ``ResponseTooLarge`` fetch error too, counted in ``oversized``, and its first
``max_response_bytes`` are kept: request and response records, the response's marked WARC 1.1
``WARC-Truncated: length`` (as Heritrix and Common Crawl write them; the readers read and
extract such a record). The links of an HTML response cut short (at either bound) are
followed up to the cut, as Heritrix follows those of its truncated captures: the part that
came is the page up to there, and the HTML parser drops a tag the cut ends in, so no half
URL is requested. robots.txt is read up to
``MAX_ROBOTS_BYTES`` (RFC 9309 §2.5: the rules past it are ignored). Only http(s) URLs are
followed (a redirect or link to file:, ftp:, javascript:… counts as ``out_of_scope``), of
at most ``MAX_URL_BYTES``; a URL that cannot be requested (a port out of range, a host
IDNA 2008 refuses, in Unicode or in punycode) is an ``InvalidURL`` fetch error. An internationalized host name is asked
for as browsers ask for it (UTS 46, IDNA 2008: ``straße.de`` is ``xn--strae-oqa.de``, not
IDNA 2003's ``strasse.de``). Where the crawl may go is decided by host
*name* only (``allowed_domains``, else the seeds' hosts; an internationalized name matches in
Unicode and in punycode alike): a name in scope that resolves to a private or loopback
address is fetched. Not one that resolves only to link-local addresses (169.254.0.0/16,
fe80::/10) or a cloud metadata address (fd00:ec2::254, 100.100.100.200), where a cloud VM's
metadata service answers with its credentials: a site whose DNS names such an address would
put them in the WARC. That is a ``BlockedAddress`` fetch error; a URL that names such an
address itself (``http://169.254.169.254/``) is fetched.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import heapq
import ipaddress
import logging
import math
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from aistack.errors import ValidationError

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

log = logging.getLogger(__name__)

MAX_LISTED = 100  # fetch errors listed one by one in the summary ("failed"); all are counted
# robots.txt is read up to this size (RFC 9309 §2.5: at least 500 KiB); the rest is ignored
MAX_ROBOTS_BYTES = 512 * 1024
# the longest URL fetched: a WARC record names it in its header block, which readers (ours:
# readers.MAX_HEADER_BYTES, 64 KiB) refuse past a limit; half of it leaves room for the rest
MAX_URL_BYTES = 32 * 1024
# robots.txt redirects followed (RFC 9309 §2.3.1.2: at least five); past them the file is
# taken as unavailable (§2.3.1.3, as a 4xx: every URL allowed)
MAX_ROBOTS_REDIRECTS = 5
# name lookups (getaddrinfo, which has no timeout of its own) running at once: each runs in
# a thread of its own, and one the resolver never answers is left behind when the fetch gives
# up on it; past this many still running, a fetch waits for a slot (within its timeout).
# Requests to one name share its lookup while it runs: a stuck name holds one of them
MAX_PENDING_LOOKUPS = 16
# of those, the most the names of one domain (its registrable domain, :func:`lookup_domain`:
# a1.broken.example and a2.broken.example are broken.example's; a.bbc.co.uk is bbc.co.uk's,
# not co.uk's) may hold at once: hundreds of subdomains of one zone whose name servers never
# answer hold these, and other domains' lookups still run. A lookup past it waits for one of
# its domain's own (within its timeout), holding no slot
MAX_LOOKUPS_PER_DOMAIN = 4

DEFAULT_USER_AGENT = (
    "aistack-crawler/0.1 (+https://github.com/aistack/aistack; polite; obeys robots.txt)"
)


@dataclass(kw_only=True)
class CrawlConfig:
    seeds: list[str]
    out_dir: Path
    max_pages: int = 100
    max_depth: int = 2
    delay_s: float = 1.0
    allowed_domains: list[str] = field(default_factory=list)  # default: the seeds' hosts
    concurrency: int = 4  # hosts in flight at once (always one request per host)
    user_agent: str = DEFAULT_USER_AGENT
    obey_robots: bool = True
    timeout_s: float = 15.0
    max_response_bytes: int = 10 * 1024 * 1024
    warc_prefix: str = "crawl"

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValidationError("crawl: give at least one seed URL")
        for s in self.seeds:
            try:  # .port parses the whole netloc: an unclosed IPv6 bracket, a port "abc"
                parts = urlsplit(s)
                parts.port  # noqa: B018
            except ValueError as exc:  # (was a ValueError traceback in crawl() or fetch())
                raise ValidationError(
                    f"crawl: seed {s!r} is not a valid URL ({exc})",
                    hint="e.g. https://example.org/ or http://[::1]:8080/",
                    field="seeds",
                ) from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValidationError(
                    f"crawl: seed {s!r} is not an http(s) URL", hint="e.g. https://example.org/"
                )
            if _UNSAFE_URL.search(s):
                raise ValidationError(
                    f"crawl: seed {s!r} holds a space, line break or other control character",
                    hint="percent-encode it (%20 for a space, %0A for a newline)",
                    field="seeds",
                )
        # one field at a time, NaN and infinity included: max_pages=nan passed "< 1" and
        # never stopped the crawl; delay_s=inf overflowed time.sleep after the first request
        _check_count(self.max_pages, "max_pages", 1, "--max-pages 100")
        _check_count(self.max_depth, "max_depth", 0, "--max-depth 2: links followed from a seed")
        _check_count(self.concurrency, "concurrency", 1, "--concurrency 4: hosts fetched at once")
        _check_count(self.max_response_bytes, "max_response_bytes", 1, "10485760: 10 MiB")
        _check_seconds(self.delay_s, "delay_s", "--delay 1: seconds between requests to one host")
        _check_seconds(self.timeout_s, "timeout_s", "timeout_s=15: seconds per request", zero=False)
        self.max_pages, self.max_depth = int(self.max_pages), int(self.max_depth)
        self.concurrency, self.max_response_bytes = (
            int(self.concurrency),
            int(self.max_response_bytes),
        )
        allowed = allowed_hosts(self)
        if not any(in_scope(s, allowed) for s in self.seeds):
            seeds = ", ".join(sorted({urlsplit(s).hostname or s for s in self.seeds}))
            raise ValidationError(
                f"crawl: no seed is inside the allowed domains ({', '.join(sorted(allowed))}): "
                f"nothing would be crawled (seed hosts: {seeds})",
                hint="add the seeds' domains with --allowed-domain, or leave --allowed-domain "
                "out to stay in the seeds' hosts",
                field="allowed_domains",
            )
        if (
            not isinstance(self.user_agent, str)
            or not self.user_agent.strip()
            or not _PRINTABLE.fullmatch(self.user_agent)
        ):
            # (it goes into every request's header and the WARC's warcinfo record as it is:
            # a line break would end the header and start another one)
            raise ValidationError(
                f"crawl: user agent {self.user_agent!r} is empty or holds a line break, a "
                "control character or a non-ASCII one",
                hint="give --user-agent as printable ASCII on one line, e.g. "
                f"'{DEFAULT_USER_AGENT}'",
                field="user_agent",
            )
        self.out_dir = Path(self.out_dir)
        check_out_dir(self.out_dir)


def _check_count(v: Any, name: str, least: int, example: str) -> None:
    """A whole number >= ``least`` (a float such as 2.0 is one)."""
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or v != int(v)
        or v < least
    ):
        raise ValidationError(
            f"crawl: {name} must be a whole number >= {least}, got {v!r}",
            hint=f"e.g. {example}",
            field=name,
        )


def _check_seconds(v: Any, name: str, example: str, *, zero: bool = True) -> None:
    """A duration in seconds: a finite number, >= 0 (> 0 without ``zero``). NaN passed the
    ``< 0`` test, and infinity overflowed time.sleep / socket timeouts mid-crawl."""
    ok = (
        not isinstance(v, bool)
        and isinstance(v, int | float)
        and math.isfinite(v)
        and (v >= 0 if zero else v > 0)
    )
    if not ok:
        raise ValidationError(
            f"crawl: {name} must be a finite number of seconds "
            f"{'>= 0' if zero else '> 0'}, got {v!r}",
            hint=f"e.g. {example}",
            field=name,
        )


def idna_host(host: str) -> str:
    """An internationalized host name in the ASCII form a browser asks DNS for: UTS 46
    processing (the mapping browsers use, nontransitional, without the STD3 rules) and IDNA
    2008 punycode, with the ``idna`` package. Under IDNA 2003 (Python's ``encodings.idna``)
    ``straße`` was ``strasse`` and a final sigma became a sigma, other hosts than the
    browser's; a symbol such as ``☃`` it allowed is refused.
    Labels already ASCII are kept, lower-cased (``my_host.bücher.example``: browsers keep
    the "_" IDNA 2008 refuses), but a label in punycode (``xn--…``) is decoded and held to
    IDNA 2008 as a label in Unicode is (it was sent unchecked: ``xn--n3h``, IDNA 2003's
    ``☃``, was asked of the resolver). UnicodeError (``idna.IDNAError`` is one) for a name
    that is no valid IDNA 2008 name; an ASCII name without punycode is returned lower-cased,
    unchecked."""
    if host.isascii():
        host = host.lower()
        if "xn--" in host:
            for label in host.split("."):
                if label.startswith("xn--"):
                    _check_alabel(label)
        return host
    import idna

    mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    labels = mapped.split(".")
    out = []
    for i, label in enumerate(labels):
        if label.isascii():  # (an empty one only as the last: the root's dot)
            if not label and i != len(labels) - 1:
                raise idna.IDNAError("empty label")
            label = label.lower()
            if label.startswith("xn--"):
                _check_alabel(label)
            out.append(label)
        else:
            out.append(idna.alabel(label).decode("ascii"))
    return ".".join(out)


def _check_alabel(label: str) -> None:
    """IDNAError unless ``label`` (lower case, ``xn--…``) is an IDNA 2008 A-label: punycode
    that decodes to a valid U-label, and the spelling that U-label encodes to."""
    import idna

    try:
        ulabel = idna.ulabel(label)
    except idna.IDNAError as exc:
        raise idna.IDNAError(f"label {label!r}: {exc}") from None
    except UnicodeError as exc:  # (punycode that does not decode, in some idna versions)
        raise idna.IDNAError(f"label {label!r}: not punycode ({exc})") from None
    if idna.alabel(ulabel).decode("ascii") != label:
        raise idna.IDNAError(f"label {label!r}: not the A-label of {ulabel!r}")


def host_name(host: str) -> str:
    """``host`` as the scope checks compare it: lower case, an internationalized name in its
    IDNA (punycode) form, the form the crawler sends it in (:func:`idna_host`:
    ``bücher.example`` and ``xn--bcher-kva.example`` are one host; so are
    ``ＥＸＡＭＰＬＥ.org`` and ``example.org``; ``straße.example`` is
    ``xn--strae-oqa.example``, not ``strasse.example``). A name that is no valid IDNA name is
    kept as it is, lower-cased."""
    host = host.lower()
    with contextlib.suppress(UnicodeError):
        host = idna_host(host)
    return host


def allowed_hosts(cfg: CrawlConfig) -> set[str]:
    """The domains the crawl stays in: ``allowed_domains``, else the seeds' hosts (IDNA
    names in their punycode form, see :func:`host_name`)."""
    return {host_name(d.strip().strip(".")) for d in cfg.allowed_domains} or {
        host_name(urlsplit(s).hostname or "") for s in cfg.seeds
    }


def in_scope(url: str, allowed: set[str]) -> bool:
    """Whether ``url``'s host is one of ``allowed`` or a subdomain of one (names compared in
    their IDNA form: an allowed domain written in Unicode matches the host written in
    punycode, and the other way round; ``allowed`` as :func:`allowed_hosts` gives it, a name
    in Unicode in it is normalised here too)."""
    host = host_name(urlsplit(url).hostname or "")
    allowed = {host_name(a) for a in allowed}
    parts = host.split(".")
    return any(".".join(parts[i:]) in allowed for i in range(len(parts)))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before anything is fetched, a WARC folder that cannot be one: an existing file,
    or a path under one (mkdir said FileExistsError / NotADirectoryError at the end of
    setup, as a traceback)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValidationError(
            f"--out: {out_dir} is a file, not a folder",
            hint="pass a folder for the WARC files, e.g. --out crawl; it is created if missing",
            field="out_dir",
        )
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValidationError(
                    f"--out: {parent} is a file, so folder {out_dir} cannot be created in it",
                    hint="pass a folder for the WARC files outside it, e.g. --out crawl",
                    field="out_dir",
                )
            break


# --------------------------------------------------------------------------- WARC writing

_PRINTABLE = re.compile(r"[ -~]+")  # printable ASCII and space: an HTTP header value
# what no WARC header value may hold: C0 controls (CR and LF end a header line), DEL, and the
# other characters str.splitlines() breaks lines at (NEL, LINE/PARAGRAPH SEPARATOR)
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_UNSAFE_URL = re.compile("[\x00-\x20\x7f\x85\u2028\u2029]")  # and a space, in a URL
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def safe_url(url: str) -> str:
    """``url`` with spaces, line breaks and other control characters percent-encoded (as a
    browser sends an ``href`` written with them), so it fits a WARC header and a request
    line; other characters are kept."""
    return _UNSAFE_URL.sub(lambda m: quote(m.group(), safe=""), url)


def _check_header(name: str, value: str, field: str) -> None:
    """ValidationError naming ``field`` when a WARC header (name or value) could end its
    line, or start another header, in the record."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ValidationError(
            f"WARC header name {name!r} is not an HTTP token",
            hint="use letters, digits and -, e.g. WARC-IP-Address",
            field=field,
        )
    if not isinstance(value, str) or _CONTROL.search(value):
        raise ValidationError(
            f"WARC header {name}: {value!r} holds a line break or another control character, "
            "which would end the header and start another",
            hint="percent-encode it (a URL: %0D%0A for a line break, see safe_url) or leave it out",
            field=field,
        )


def warc_filename(name: str) -> str:
    """A file name as a WARC header value: percent-encoded as the lineage's file nodes name it
    (:func:`aistack.webdata.lineage.readable_id`, without its shortening), so it is printable
    ASCII with no space or line break (``données 1.warc.gz`` → ``donn%C3%A9es%201.warc.gz``;
    a name whose bytes are not UTF-8, which ``os.fsdecode`` gave surrogates for, keeps those
    bytes as ``%XX``). A raw name could not be encoded, or a newline in it would end the
    header and start another."""
    from aistack.webdata.lineage import readable_id

    return readable_id(name, limit=sys.maxsize)


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 - WARC convention


class WarcWriter:
    """Append gzip-per-record WARC/1.1 records to one file."""

    def __init__(self, path: Path, *, software: str = DEFAULT_USER_AGENT) -> None:
        if not isinstance(software, str) or _CONTROL.search(software):
            # (a line of the warcinfo record's fields: a line break would add a field)
            raise ValidationError(
                f"WARC software {software!r} holds a line break or another control character",
                hint="give it on one line (e.g. the crawler's user agent)",
                field="software",
            )
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "ab")  # noqa: SIM115 - closed in close()
        self.records = 0
        info = f"software: {software}\r\nformat: WARC File Format 1.1\r\nconformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n".encode()
        self.write(
            "warcinfo",
            None,
            info,
            content_type="application/warc-fields",
            extra={"WARC-Filename": warc_filename(path.name)},
        )

    def write(
        self,
        rtype: str,
        url: str | None,
        block: bytes,
        *,
        content_type: str,
        extra: dict[str, str] | None = None,
        date: str | None = None,
    ) -> str:
        """Append one record; returns its WARC-Record-ID. A header value with a line break or
        another control character (``url``, ``extra``'s values, ``content_type``…) is refused
        (ValidationError naming it) before anything is written: it would end its header and
        start another one (a URL found while crawling goes through :func:`safe_url`)."""
        rid = f"<urn:uuid:{uuid.uuid4()}>"
        headers = {
            "WARC-Type": rtype,
            "WARC-Record-ID": rid,
            "WARC-Date": date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if url:
            headers["WARC-Target-URI"] = url
        headers.update(extra or {})
        for what, name, value in (
            ("rtype", "WARC-Type", rtype),
            ("url", "WARC-Target-URI", url or ""),
            ("date", "WARC-Date", headers["WARC-Date"]),
            ("content_type", "Content-Type", content_type),
            *((f"extra[{k!r}]", k, v) for k, v in (extra or {}).items()),
        ):
            _check_header(name, value, what)
        headers["WARC-Block-Digest"] = _digest(block)
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(block))
        head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self._f.write(gzip.compress(head.encode("utf-8") + block + b"\r\n\r\n", mtime=0))
        self.records += 1
        return rid

    def close(self) -> None:
        self._f.close()


# --------------------------------------------------------------------------- fetching


@dataclass(kw_only=True)
class Fetch:
    url: str
    depth: int
    request: bytes = b""
    response: bytes = b""
    ip: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    date: str = ""
    # cut at max_bytes: ``truncate=True`` (robots.txt), or ``keep_oversized=True`` (then
    # ``error`` says ResponseTooLarge too, and ``response`` holds the first max_bytes); or,
    # with ``keep_oversized``, cut off at the timeout (``error`` says TimeoutError)
    truncated: bool = False
    # why a response kept with ``keep_oversized`` was cut, as WARC 1.1's WARC-Truncated
    # names it: "length" (over max_bytes), "time" (the timeout); None when it was not
    cut: str | None = None


class ResponseTooLarge(ValueError):
    """A response (as received, or its body once decompressed) over the size limit."""


# every printable ASCII character but the space: what a request target keeps as it is
# (a "%" included, so a URL already percent-encoded is not encoded twice)
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _request_target(url: str) -> tuple[str, int, str, str]:
    """(host to connect to, port, Host header, request target) of an http(s) URL, as a browser
    sends them: an internationalized host name in its IDNA 2008 (punycode) form as UTS 46
    maps it (:func:`idna_host`), non-ASCII
    characters, spaces and control characters of the path and query percent-encoded as
    UTF-8 (they were sent as latin-1, a character outside it as "?"), the fragment and the
    userinfo left out. ValueError for a URL that cannot be requested (a port out of range,
    a host that is no valid IDNA 2008 name, a scheme other than http(s))."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL (scheme {parts.scheme!r})")
    host = parts.hostname or ""
    if not host:
        raise ValueError("no host in the URL")
    port = parts.port  # ValueError: out of range, not a number
    if port == 0:  # (port 0 was falsy: the request went to port 80)
        raise ValueError("port 0 is not a port one can connect to")
    if not host.isascii() or "xn--" in host:  # (a punycode label is checked too)
        try:
            host = idna_host(host)
        except UnicodeError as exc:
            raise ValueError(f"host {parts.hostname!r} is not a valid IDNA name ({exc})") from None
    host_hdr = f"[{host}]" if ":" in host else host
    if port is not None:
        host_hdr += f":{port}"
    target = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_URL_SAFE)
    return (
        host,
        port if port is not None else (443 if parts.scheme == "https" else 80),
        host_hdr,
        target,
    )


class NameLookupTimeout(TimeoutError):
    """A name lookup (DNS) that did not answer within the time a request had left; ``busy``:
    it never started, every slot being held by earlier lookups still unanswered; ``domain``:
    it never started, its domain's share of the slots being held by earlier lookups of its
    names still unanswered (:data:`MAX_LOOKUPS_PER_DOMAIN`)."""

    def __init__(self, host: str, *, busy: bool = False, domain: str | None = None) -> None:
        super().__init__(f"name lookup of {host!r}: no answer")
        self.host, self.busy, self.domain = host, busy, domain


_lookup_slots = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)
# the lookups running, by (name, port): a request to a name already being looked up waits on
# that lookup instead of starting another (one host's stuck lookups took every slot, one per
# request, and other hosts' lookups waited for a slot until their timeout)
_lookups: dict[tuple[str, int], Future[list[Any]]] = {}
_lookups_lock = threading.Lock()
# the slots each domain's names hold (a domain leaves when it holds none), and the condition
# a lookup waits on for one of its domain's (many subdomains of one stuck zone took every slot)
_domain_slots: dict[str, int] = {}
_domain_free = threading.Condition()


def lookup_domain(host: str) -> str:
    """The domain whose share of the lookup slots a lookup of ``host`` takes: its registrable
    domain (eTLD+1) by the Public Suffix List, lower-cased, without the root's dot:
    ``a1.broken.example`` → ``broken.example``, ``a.b.bbc.co.uk`` → ``bbc.co.uk`` and
    ``x.github.io`` → ``x.github.io`` (the last two labels made every name under ``co.uk``
    or ``github.io`` one domain, sharing one bound). The list is the one the
    ``publicsuffixlist`` package ships (:func:`_public_suffixes`), never downloaded; a top-level
    domain it does not know (``.example``, ``.test``, ``.internal``) is taken as a public
    suffix of one label, as browsers take it. A name in Unicode is taken in its IDNA form
    (:func:`host_name`; the crawler asks for punycode names, which the list matches in that
    form too). A name that has no registrable domain is its own domain: one that is itself
    a public suffix (``co.uk``, ``github.io``), a single label (``localhost``), an IP
    address (never looked up: :func:`_getaddrinfo`), or one the list cannot read (an empty
    label)."""
    name = host_name(host.strip()).rstrip(".")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(name.strip("[]")).compressed
    # (None for a public suffix, a single label, or an empty label: "a..b.co.uk")
    return _public_suffixes().privatesuffix(name) or name


_psl: PublicSuffixList | None = None  # the Public Suffix List, read once (_public_suffixes)
_psl_lock = threading.Lock()


def _public_suffixes() -> PublicSuffixList:
    """The ``publicsuffixlist`` package's list (the copy it ships: nothing is downloaded, and
    its updater is never run), parsed on first use (~50 ms, not at import: the CLI imports
    this module for every crawl option check) and kept for the process; one copy however
    many lookups ask for it at once."""
    global _psl
    psl = _psl
    if psl is None:
        with _psl_lock:
            if _psl is None:
                from publicsuffixlist import PublicSuffixList

                _psl = PublicSuffixList(accept_unknown=True)
            psl = _psl
    return psl


def _enter_domain(domain: str, timeout: float) -> bool:
    """Take one of ``domain``'s lookup slots, waiting up to ``timeout`` seconds for one; False
    when none came free."""

    def free() -> bool:
        return _domain_slots.get(domain, 0) < MAX_LOOKUPS_PER_DOMAIN

    with _domain_free:
        if not _domain_free.wait_for(free, timeout=max(0.0, timeout)):
            return False
        _domain_slots[domain] = _domain_slots.get(domain, 0) + 1
        return True


def _leave_domain(domain: str) -> None:
    with _domain_free:
        n = _domain_slots[domain] - 1
        if n:
            _domain_slots[domain] = n
        else:
            del _domain_slots[domain]
        _domain_free.notify_all()  # (the waiters are for any domain: each checks its own)


def _getaddrinfo(host: str, port: int, timeout: float) -> list[Any]:
    """``socket.getaddrinfo`` for a TCP connection, within ``timeout`` seconds
    (NameLookupTimeout past it). The lookup runs in a daemon thread: getaddrinfo cannot be
    interrupted, so a resolver that never answers leaves that thread behind, and the request
    moves on; at most ``MAX_PENDING_LOOKUPS`` of them run at once (a lookup waits for a slot,
    within its timeout), and at most ``MAX_LOOKUPS_PER_DOMAIN`` of one domain's names
    (:func:`lookup_domain`; a lookup past it waits for one of its domain's, within its
    timeout, before it waits for a slot). A request for a name whose lookup is still running waits on that one,
    within its own timeout (a name the resolver never answers holds one thread and one slot,
    however many requests ask for it); once it has answered, the next request asks again.
    An IP address is no lookup: it is used as it is."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if addr.version == 6 and "%" in host:  # a zone (fe80::1%eth0): getaddrinfo reads it
            return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        if addr.version == 4:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0))]
    deadline = time.monotonic() + timeout
    key = (host.lower(), port)
    with _lookups_lock:
        running = _lookups.get(key)
        if running is None:
            done: Future[list[Any]] = Future()
            _lookups[key] = done
        else:
            done = running
    if running is None:
        _start_lookup(key, host, port, done, deadline)
    try:
        return done.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        if done.done():  # (the lookup's own error, e.g. a socket.timeout from the resolver)
            raise
        raise NameLookupTimeout(host) from None


def _start_lookup(
    key: tuple[str, int], host: str, port: int, done: Future[list[Any]], deadline: float
) -> None:
    """Run the lookup ``done`` stands for (registered in ``_lookups`` under ``key``) in a
    thread of its own, once one of its domain's slots and then a slot are free (by
    ``deadline``, a ``time.monotonic()`` time: else NameLookupTimeout, for the requests
    waiting on it too). It leaves ``_lookups`` when it ends, before it answers."""
    slots = _lookup_slots

    def finish() -> None:
        with _lookups_lock:
            if _lookups.get(key) is done:
                del _lookups[key]

    try:  # (the Public Suffix List's package missing or unreadable: that request's error,
        # not a lookup left registered that never answers the later requests for the name)
        domain = lookup_domain(host)
    except BaseException as exc:
        finish()
        done.set_exception(exc)
        raise

    def give_up(exc: NameLookupTimeout) -> NoReturn:
        finish()
        done.set_exception(exc)
        raise exc

    if not _enter_domain(domain, deadline - time.monotonic()):
        give_up(NameLookupTimeout(host, domain=domain))
    if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
        _leave_domain(domain)
        give_up(NameLookupTimeout(host, busy=True))

    def release() -> None:
        slots.release()
        _leave_domain(domain)

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting fetches
            finish()
            done.set_exception(exc)
        else:
            finish()
            done.set_result(infos)
        finally:
            release()

    try:
        threading.Thread(target=lookup, name=f"crawler-lookup-{host}", daemon=True).start()
    except BaseException as exc:  # (no thread could be started: nobody would answer)
        finish()
        release()
        done.set_exception(exc)
        raise


# where cloud metadata services answer (with the VM's credentials) beside the link-local
# ranges: AWS's IPv6 endpoint, Alibaba Cloud's
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


class BlockedAddress(OSError):
    """A host name that resolves only to addresses the crawler does not connect to by name
    (link-local, cloud metadata: see the module docstring)."""


def _metadata_like(address: str) -> bool:
    """Whether ``address`` (as getaddrinfo gives it) is link-local or a cloud metadata
    address (an IPv4-mapped IPv6 one too)."""
    try:
        addr = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_link_local or addr in _METADATA_ADDRESSES


def _connect(host: str, port: int, left: Any) -> socket.socket:
    """A TCP connection to ``host``:``port`` as ``socket.create_connection`` makes one (each
    address in turn, the first error raised when none answers), with the name lookup bounded
    too: ``left()`` is the time the request has left (it raises TimeoutError at none). A
    name's link-local and cloud metadata addresses are skipped (BlockedAddress when it has
    no other); an address given as such is used."""
    infos = _getaddrinfo(host, port, left())
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name: what its DNS says is the site's to choose
        blocked = sorted({str(i[4][0]) for i in infos if _metadata_like(str(i[4][0]))})
        infos = [i for i in infos if not _metadata_like(str(i[4][0]))]
        if blocked and not infos:
            raise BlockedAddress(
                f"{host!r} resolves to {', '.join(blocked)}: a link-local or cloud metadata "
                "address, not fetched by name (it would put the machine's metadata, "
                "credentials included, in the WARC); to crawl it, name the address in the URL"
            ) from None
    errors: list[OSError] = []
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(left())
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):  # the request's time is up
                raise
            errors.append(exc)
            continue
        return sock
    if errors:
        raise errors[0]
    raise OSError(f"name lookup of {host!r} gave no address")


def _split_head(block: bytes) -> tuple[bytes, bytes]:
    """(status line and headers, body) of a response, split where the reader splits it."""
    sep, sep_len = block.find(b"\r\n\r\n"), 4
    alt = block.find(b"\n\n")
    if sep < 0 or (0 <= alt < sep):
        sep, sep_len = alt, 2
    if sep < 0:
        return block, b""
    return block[:sep], block[sep + sep_len :]


def _decode_body(
    body: bytes, headers: dict[str, str], limit: int, *, truncate: bool
) -> tuple[bytes, bool]:
    """The body as :func:`aistack.webdata.readers.parse_http_response` decodes it, with the
    decompressed size bounded by ``limit`` (:func:`aistack.webdata.readers.decode_body`):
    more is ResponseTooLarge (or, with ``truncate``, the first ``limit`` bytes). Returns
    (body, cut)."""
    from aistack.webdata.readers import decode_body

    out, over = decode_body(body, headers, limit)
    if not over:
        return out, False
    if not truncate:
        enc = headers.get("content-encoding", "").lower()
        raise ResponseTooLarge(
            f"body larger than {limit} bytes once decompressed (Content-Encoding: {enc})"
        )
    return out[:limit], True


def fetch(
    url: str,
    *,
    user_agent: str,
    timeout: float,
    max_bytes: int,
    truncate: bool = False,
    keep_oversized: bool = False,
    deadline: float | None = None,
) -> Fetch:
    """GET one URL over a raw socket (HTTP/1.1, Connection: close) and keep the exact bytes.

    Never raises: what went wrong is ``error`` ("<kind>: <why>"). ``timeout`` bounds the
    whole request (connecting, sending, every byte of the answer: a server that stalls, or
    trickles bytes forever, is cut off at it); ``max_bytes`` bounds the response as received
    (status line and headers included) and its body once decompressed. Over it, the fetch
    fails (ResponseTooLarge), or with ``truncate`` keeps the first ``max_bytes`` and is
    ``truncated``. With ``keep_oversized``, a response over ``max_bytes`` as received fails
    (``error`` ResponseTooLarge) but keeps its first ``max_bytes`` (``response``, ``status``,
    ``headers``) and is ``truncated``, for a WARC record cut at the bound (``cut``
    "length"); a response cut off by the timeout after some of it came fails too (``error``
    TimeoutError) and keeps what came, the same way (``cut`` "time"); a body over it once
    decompressed (a compression bomb) fails as before, nothing kept. ``deadline`` (a
    ``time.monotonic()`` time), when given, is when the ``timeout`` runs out instead (a chain
    of requests that share one: robots.txt redirects).
    """
    from aistack.webdata.readers import parse_http_response

    f = Fetch(
        url=url,
        depth=0,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    if deadline is None:
        deadline = time.monotonic() + timeout
    end = deadline

    def left() -> float:
        rest = end - time.monotonic()
        if rest <= 0:
            raise TimeoutError(f"no complete response within {timeout} s")
        return rest

    try:
        # (inside the try: a port out of range raised ValueError out of fetch, and ended
        # the crawl, when a redirect's Location named one)
        host, port, host_hdr, target = _request_target(url)
        f.request = req = (
            f"GET {target} HTTP/1.1\r\nHost: {host_hdr}\r\nUser-Agent: {user_agent}\r\n"
            "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.5\r\n"
            "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
        ).encode("latin-1", "replace")
        sock = _connect(host, port, left)
        try:
            f.ip = sock.getpeername()[0]
            if urlsplit(url).scheme == "https":
                sock.settimeout(left())
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(left())
            sock.sendall(req)
            chunks: list[bytes] = []
            total = 0
            while True:
                try:
                    # the time left, not a fresh ``timeout`` per recv: a server that sent its
                    # headers then stalled near the end was waited on for up to twice as long
                    sock.settimeout(left())
                    data = sock.recv(65536)
                except TimeoutError:
                    if not (keep_oversized and chunks):
                        raise
                    f.truncated, f.cut = True, "time"  # what came is kept, as below
                    break
                if not data:
                    break
                chunks.append(data)
                total += len(data)
                if total > max_bytes:
                    if not (truncate or keep_oversized):
                        raise ResponseTooLarge(f"response larger than {max_bytes} bytes")
                    f.truncated, f.cut = True, "length"
                    break
        finally:
            sock.close()
        f.response = b"".join(chunks)[:max_bytes]
        head, body = _split_head(f.response)
        try:
            # the status line and headers only: the reader would decompress the body unbounded
            f.status, f.headers, _ = parse_http_response(head + b"\r\n\r\n")
        except Exception:
            if f.cut == "time":  # (no status line came before the timeout: nothing to keep)
                f.truncated, f.cut = False, None
                raise TimeoutError from None
            raise
        if f.truncated and not truncate:  # (keep_oversized: what came, up to the bound)
            f.error = (
                f"ResponseTooLarge: response larger than {max_bytes} bytes"
                if f.cut == "length"
                else f"TimeoutError: no complete response within {timeout} s"
            )
            from aistack.webdata.readers import decode_body

            f.body = decode_body(body, f.headers, max_bytes, partial=True)[0][:max_bytes]
            return f
        f.body, cut = _decode_body(body, f.headers, max_bytes, truncate=truncate)
        f.truncated = f.truncated or cut
    except NameLookupTimeout as exc:
        f.error = f"TimeoutError: name lookup of {exc.host!r}: no answer within {timeout} s"
        if exc.busy:
            f.error += " (as many earlier lookups as may run at once still unanswered)"
        elif exc.domain is not None:
            f.error += (
                f" (as many lookups of names under {exc.domain!r} as may run at once"
                " still unanswered)"
            )
    except TimeoutError:
        f.error = f"TimeoutError: no complete response within {timeout} s"
    except Exception as exc:  # noqa: BLE001 - a failed fetch is recorded, never fatal
        f.error = f"{type(exc).__name__}: {exc}"
    return f


@dataclass(kw_only=True)
class RobotsFetch:
    """A robots.txt and the redirects followed to it (:func:`fetch_robots`)."""

    fetch: Fetch  # the last answer: the file, or what went wrong
    requested: list[str]  # every URL requested, in order (the host's /robots.txt first)
    # why the file is taken as unavailable (RFC 9309 §2.3.1.3: every URL allowed): too
    # many redirects, a redirect to no http(s) URL; None when it was reached (or not fetched)
    unavailable: str | None = None

    @property
    def redirects(self) -> int:
        return len(self.requested) - 1


class HostGate:
    """When a request may go to a host (keyed as :func:`_host_key` keys it): one at a time,
    each at least ``delay_for(key)`` seconds (``delay_s`` when not given) after the last one
    to it ended. Shared by the threads of a crawl, so that a robots.txt redirect to a host
    the crawl fetches from waits for that host as its own requests do (and they for it);
    :func:`fetch_robots` makes one of its own for one chain when given none."""

    def __init__(
        self, delay_s: float = 0.0, delay_for: Callable[[str], float] | None = None
    ) -> None:
        self._delay_for = delay_for or (lambda _key: delay_s)
        self._cond = threading.Condition()
        self._sending: set[str] = set()  # hosts with a request in flight
        self._ready: dict[str, float] = {}  # host → when its next request may start
        self._closed = False

    def wait_time(self, key: str, now: float) -> float | None:
        """None when a request to ``key`` may start at ``now``; else when to look again."""
        with self._cond:
            if key in self._sending:
                return now + 0.05
            ready = self._ready.get(key, 0.0)
            return ready if now < ready else None

    def try_enter(self, key: str) -> float | None:
        """Mark a request to ``key`` in flight and return None, when one may start now; else
        (nothing marked) when to look again."""
        with self._cond:
            later = self.wait_time(key, time.monotonic())
            if later is None:
                self._sending.add(key)
            return later

    def enter(self, key: str) -> float:
        """Wait until a request to ``key`` may start, mark it in flight; returns the seconds
        waited (a politeness wait, no part of a request's time)."""
        t0 = time.monotonic()
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                later = self.wait_time(key, now)
                if later is None:
                    self._sending.add(key)
                    break
                self._cond.wait(max(0.0, later - now))
        return time.monotonic() - t0

    def leave(self, key: str, *, sent: bool = True) -> None:
        """The request to ``key`` has ended: the next may start ``delay_for(key)`` from now
        (with ``sent=False``, it was not sent after all: at once)."""
        delay = self._delay_for(key) if sent else 0.0
        with self._cond:
            self._sending.discard(key)
            if sent:
                self._ready[key] = time.monotonic() + delay
            self._cond.notify_all()

    def not_before(self, key: str, when: float) -> None:
        """No request to ``key`` starts before ``when`` (a ``time.monotonic()`` time): its
        delay has grown (a Crawl-delay read after its last request)."""
        with self._cond:
            self._ready[key] = max(self._ready.get(key, 0.0), when)

    def close(self) -> None:
        """Let every waiting :meth:`enter` go (the crawl is over)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _host_key(url: str) -> str:
    """The host a request to ``url`` goes to, as the crawl keys its hosts (the Host header,
    lower case); the URL's network location when it cannot be requested."""
    try:
        return _request_target(url)[2].lower()
    except ValueError:
        return urlsplit(url).netloc.lower()


def fetch_robots(
    url: str,
    *,
    user_agent: str,
    timeout: float,
    delay_s: float = 0.0,
    gate: HostGate | None = None,
) -> RobotsFetch:
    """GET a robots.txt (read up to ``MAX_ROBOTS_BYTES``), following redirects as RFC 9309
    §2.3.1.2 asks: up to ``MAX_ROBOTS_REDIRECTS`` in a row, to any host (the file reached
    gives the rules of the host asked). More redirects, a redirect with no Location or to no
    http(s) URL, mean the file is unavailable (``unavailable`` says why; as a 4xx, every URL
    is allowed). Each request waits for its host's turn at ``gate``: the crawl's (a hop to a
    host the crawl fetches from waits for that host's delay after its last request, from
    whichever chain or page it was, and for a request to it in flight; it went at once), or
    without one, this chain's own (a hop to a host this chain has already requested waits
    until ``delay_s`` has passed since that request ended, as the crawl waits between any
    two requests to one host). ``timeout`` bounds the whole chain's requests, as it bounds
    one request; the politeness waits are not counted in it. Never raises: a request that
    failed is the last ``fetch``'s ``error``."""
    deadline = time.monotonic() + timeout
    requested: list[str] = []
    gate = gate or HostGate(delay_s)
    while True:
        key = _host_key(url)
        deadline += gate.enter(key)  # (a politeness wait is no part of the request's time)
        if requested and time.monotonic() >= deadline:  # (the next request is not sent)
            gate.leave(key, sent=False)
            res = Fetch(
                url=url, depth=0, error=f"TimeoutError: no complete response within {timeout} s"
            )
            return RobotsFetch(fetch=res, requested=requested)
        requested.append(url)
        try:
            res = fetch(
                url,
                user_agent=user_agent,
                timeout=timeout,
                deadline=deadline,  # one for the whole chain
                max_bytes=MAX_ROBOTS_BYTES,
                truncate=True,
            )
        finally:
            gate.leave(key)
        if res.error or res.status is None or not 300 <= res.status < 400:
            return RobotsFetch(fetch=res, requested=requested)
        location = res.headers.get("location", "").strip()
        if not location:
            why = f"HTTP {res.status} without a Location"
            return RobotsFetch(fetch=res, requested=requested, unavailable=why)
        if len(requested) > MAX_ROBOTS_REDIRECTS:
            why = f"more than {MAX_ROBOTS_REDIRECTS} redirects in a row"
            return RobotsFetch(fetch=res, requested=requested, unavailable=why)
        try:
            target = safe_url(urldefrag(urljoin(url, location))[0])
            _request_target(target)  # http(s), a port in range, a valid IDNA host
            if len(target.encode("utf-8", "surrogatepass")) > MAX_URL_BYTES:
                raise ValueError(f"longer than {MAX_URL_BYTES} bytes")
        except ValueError as exc:
            why = f"HTTP {res.status} to an invalid URL {safe_url(location)[:200]!r} ({exc})"
            return RobotsFetch(fetch=res, requested=requested, unavailable=why)
        url = target


def extract_links(base_url: str, html: bytes) -> tuple[list[str], bool]:
    """(absolute http(s) links without fragments, nofollow flag from <meta name=robots>)."""
    from aistack.webdata.extract import decode_html

    try:
        from selectolax.lexbor import LexborHTMLParser

        tree = LexborHTMLParser(decode_html(html))
        nofollow = any(
            "nofollow" in (m.attributes.get("content") or "").lower()
            for m in tree.css('meta[name="robots" i]')
        )
        base = base_url
        for b in tree.css("base[href]"):
            with contextlib.suppress(ValueError):  # a malformed <base href>: the page's URL
                base = urljoin(base_url, b.attributes.get("href") or "")
            break
        hrefs = [a.attributes.get("href") or "" for a in tree.css("a[href]")]
    except Exception:  # noqa: BLE001
        return [], False
    links = []
    for h in hrefs:
        h = h.strip()
        if not h or h.startswith(("javascript:", "mailto:", "tel:", "#")):
            continue
        try:  # (an unclosed IPv6 bracket, a port "abc" or 99999: a ValueError that ended
            # the whole crawl, here or when the link was fetched)
            u = urldefrag(urljoin(base, h))[0]
            parts = urlsplit(u)
            parts.port  # noqa: B018
        except ValueError as exc:
            log.info("link %r on %s skipped: not a valid URL (%s)", h, base_url, exc)
            continue
        if parts.scheme in ("http", "https"):
            links.append(u)
    return links, nofollow


def crawl_delay(robots_txt: str, user_agent: str) -> float:
    """Crawl-delay (seconds, fractions allowed) of the group matching our agent token, else
    of ``*``; 0 when absent. (urllib's parser accepts integers only.)"""
    token = user_agent.split("/")[0].lower()
    groups: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for raw in robots_txt.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, val = (x.strip() for x in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(val.lower())
        else:
            in_rules = True
            if key == "crawl-delay":
                try:
                    d = float(val)
                except ValueError:
                    continue
                if not math.isfinite(d):  # "inf" overflowed time.sleep: not a delay
                    continue
                for a in agents:
                    groups[a] = d
    for a, d in groups.items():
        if a != "*" and a in token:
            return max(0.0, d)
    return max(0.0, groups.get("*", 0.0))


# --------------------------------------------------------------------------- crawl loop


class _Host:
    def __init__(self) -> None:
        self.robots: RobotFileParser | None = None
        self.robots_state = "unknown"  # unknown | fetching | ready
        self.delay = 0.0
        self.next_time = 0.0
        self.busy = False
        self.queue: deque[tuple[str, int]] = deque()
        # why robots.txt could not be fetched at all (the host did not answer), else None
        self.unreachable: str | None = None


def crawl(cfg: CrawlConfig) -> dict[str, Any]:
    """Crawl and write ``<out_dir>/<prefix>-<UTC time>.warc.gz``; returns a summary."""
    allowed = allowed_hosts(cfg)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    check_out_dir(cfg.out_dir)
    try:
        writer = WarcWriter(
            cfg.out_dir / f"{cfg.warc_prefix}-{stamp}.warc.gz", software=cfg.user_agent
        )
    except OSError as exc:
        raise ValidationError(
            f"--out: cannot write a WARC file in {cfg.out_dir}: {exc.strerror or exc}",
            hint="pass a folder you can write to",
            field="out_dir",
        ) from None
    hosts: dict[str, _Host] = {}
    seen: set[str] = set()
    stats = {
        "pages": 0,
        "bytes": 0,
        "robots_blocked": 0,
        "errors": 0,
        "out_of_scope": 0,
        "requests": 0,
        "robots_redirects": 0,  # robots.txt redirects followed (RFC 9309 §2.3.1.2), all hosts
        # responses over max_response_bytes: each a fetch error, kept cut at the bound
        "oversized": 0,
        # responses cut off at timeout_s after some of it came: each a fetch error, kept
        # as it came (WARC-Truncated: time)
        "timed_out": 0,
    }
    failed: list[dict[str, str]] = []  # the first MAX_LISTED fetch errors: url, error
    robots_unavailable: dict[str, str] = {}  # host → why its robots.txt is taken as disallow-all
    # host → where its robots.txt was redirected to, or why the redirects made it unavailable
    robots_redirected: dict[str, str] = {}
    seeds_out_of_scope = [s for s in cfg.seeds if not in_scope(s, allowed)]
    t0 = time.monotonic()

    def fetch_error(url: str, error: str) -> None:
        stats["errors"] += 1
        if len(failed) < MAX_LISTED:
            failed.append({"url": url, "error": error})
        log.info("fetch failed %s: %s", url, error)

    def write_pair(res: Fetch, response_extra: dict[str, str] | None = None) -> None:
        """The request and response records of a fetch (``response_extra``: more headers
        of the response record)."""
        extra = {"WARC-IP-Address": res.ip} if res.ip else {}
        req_id = writer.write(
            "request",
            res.url,
            res.request,
            content_type="application/http; msgtype=request",
            date=res.date,
            extra=extra,
        )
        writer.write(
            "response",
            res.url,
            res.response,
            content_type="application/http; msgtype=response",
            date=res.date,
            extra={
                **extra,
                "WARC-Concurrent-To": req_id,
                "WARC-Payload-Digest": _digest(res.body),
                **(response_extra or {}),
            },
        )

    def add(url: str, depth: int) -> None:
        url = safe_url(urldefrag(url)[0])  # (a link with a space or control character in it)
        if url in seen or depth > cfg.max_depth:
            return
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not in_scope(url, allowed):
            # (a redirect to file://, ftp://, javascript:… was fetched as http on port 80
            # when its host was in scope: file://127.0.0.1/etc/passwd)
            stats["out_of_scope"] += 1
            return
        seen.add(url)
        try:
            _, _, host_hdr, _ = _request_target(url)
        except ValueError as exc:  # a port out of range, a bad IDNA host (from a redirect)
            fetch_error(url, f"InvalidURL: {exc}")
            return
        if len(url.encode("utf-8", "surrogatepass")) > MAX_URL_BYTES:
            # (its WARC records' header block would pass the reader's 64 KiB limit: the
            # WARC written could not be read back)
            fetch_error(url, f"InvalidURL: longer than {MAX_URL_BYTES} bytes")
            return
        # the host and port as the Host header names them, not the userinfo: http://a@host/
        # and http://b@host/ are one host, fetched one request at a time, with one
        # robots.txt; so are http://bücher.example/ and http://xn--bcher-kva.example/
        key = host_hdr.lower()
        hosts.setdefault(key, _Host()).queue.append((url, depth))

    def follow_links(res: Fetch) -> None:
        """Queue the links of an HTML page (200) above ``max_depth``, unless it says
        nofollow. A response cut short (``max_response_bytes``, ``timeout_s``) gives those
        of the part that came: that prefix is the page up to the cut, and the HTML parser
        drops a tag the cut ends in (``<a href="/page-1`` is no link, never half a URL)."""
        ct = res.headers.get("content-type", "").lower()
        if res.status == 200 and ("html" in ct or not ct) and res.depth < cfg.max_depth:
            links, nofollow = extract_links(res.url, res.body)
            if not nofollow:
                for link in links:
                    add(link, res.depth + 1)

    def follow_redirect(res: Fetch) -> None:
        """Queue a redirect's (3xx) Location one level deeper; an invalid one is a fetch
        error of its own."""
        if res.status is None or not 300 <= res.status < 400 or "location" not in res.headers:
            return
        try:  # (an unclosed IPv6 bracket: ValueError, which ended the crawl)
            target = urljoin(res.url, res.headers["location"])
        except ValueError as exc:
            target = safe_url(res.headers["location"])
            if res.depth + 1 <= cfg.max_depth and target not in seen:
                seen.add(target)
                fetch_error(target, f"InvalidURL: redirect target ({exc})")
        else:
            add(target, res.depth + 1)

    for s in cfg.seeds:
        add(s, 0)

    def delay_for(key: str) -> float:  # (called from the robots.txt chains' threads too)
        h = hosts.get(key)
        return max(cfg.delay_s, h.delay) if h is not None else cfg.delay_s

    # one request at a time per host, delay_for(host) apart: the pages this loop starts and
    # the robots.txt chains' requests, a redirect to another host included
    gate = HostGate(cfg.delay_s, delay_for)
    in_flight: dict[Future[Any], tuple[str, str]] = {}  # future -> (host key, kind)
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency)
    pages_started = 0
    try:
        while True:
            now = time.monotonic()
            wake: list[float] = []
            for key, h in hosts.items():
                if h.busy or len(in_flight) >= cfg.concurrency:
                    continue
                if h.robots_state == "unknown" and cfg.obey_robots and h.queue:
                    later = h.next_time if now < h.next_time else gate.wait_time(key, now)
                    if later is not None:  # (the chain would wait for its turn at the gate)
                        heapq.heappush(wake, later)
                        continue
                    url0 = h.queue[0][0]
                    scheme = urlsplit(url0).scheme
                    h.busy, h.robots_state = True, "fetching"
                    rfut = pool.submit(  # (its redirects followed, RFC 9309 §2.3.1.2)
                        fetch_robots,
                        f"{scheme}://{key}/robots.txt",
                        user_agent=cfg.user_agent,
                        timeout=cfg.timeout_s,
                        gate=gate,  # its hops wait for their host's turn, as pages do
                    )
                    in_flight[rfut] = (key, "robots")
                    continue
                if not cfg.obey_robots:
                    h.robots_state = "ready"
                if h.robots_state != "ready" or not h.queue or pages_started >= cfg.max_pages:
                    continue
                if now < h.next_time:
                    heapq.heappush(wake, h.next_time)
                    continue
                later = gate.try_enter(key)  # (a robots.txt chain's hop to it may be in flight)
                if later is not None:
                    heapq.heappush(wake, later)
                    continue
                url, depth = h.queue.popleft()
                if h.unreachable is not None:
                    # robots.txt could not be fetched at all (connection refused, DNS, a
                    # timeout): RFC 9309 says disallow all, and the page would fail the same
                    # way; it is a fetch error, not a page robots.txt disallows
                    gate.leave(key, sent=False)
                    fetch_error(url, h.unreachable)
                    continue
                if h.robots is not None and not h.robots.can_fetch(cfg.user_agent, url):
                    gate.leave(key, sent=False)
                    stats["robots_blocked"] += 1
                    continue
                h.busy = True
                pages_started += 1
                fut: Future[Any] = pool.submit(
                    fetch,
                    url,
                    user_agent=cfg.user_agent,
                    timeout=cfg.timeout_s,
                    max_bytes=cfg.max_response_bytes,
                    keep_oversized=True,
                )
                fut.depth = depth  # type: ignore[attr-defined]
                in_flight[fut] = (key, "page")
            if not in_flight:
                pending = any(h.queue for h in hosts.values()) and pages_started < cfg.max_pages
                if not pending:
                    break
                if wake:
                    time.sleep(max(0.0, min(wake) - time.monotonic()))
                continue
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            done, _ = wait(list(in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
            for fut in done:
                key, kind = in_flight.pop(fut)
                h = hosts[key]
                h.busy = False
                if kind == "page":
                    gate.leave(key)
                if kind == "robots":
                    rf: RobotsFetch = fut.result()
                    res = rf.fetch
                    stats["requests"] += len(rf.requested)
                    h.robots_state = "ready"
                    rp = RobotFileParser()
                    # where the file came from, when it is not the host's own /robots.txt
                    via = f" (redirected to {rf.requested[-1]})" if rf.redirects else ""
                    if rf.redirects:
                        stats["robots_redirects"] += rf.redirects
                        robots_redirected[key] = (
                            f"robots.txt: {_plural(rf.redirects, 'redirect')} to {rf.requested[-1]}"
                        )
                    if rf.unavailable is not None:
                        # RFC 9309 §2.3.1.2-3: more than five redirects (or one to nowhere):
                        # the file is unavailable, as a 4xx → allow all
                        rp.allow_all = True  # type: ignore[attr-defined]
                        robots_redirected[key] = (
                            f"robots.txt unavailable (every URL allowed): {rf.unavailable}"
                            + (f", the last to {rf.requested[-1]}" if rf.redirects else "")
                        )
                    elif (res.error or res.status is None) and not rf.redirects:
                        rp.disallow_all = True  # type: ignore[attr-defined]  # RFC 9309 §2.3.1.4: unreachable → disallow all
                        h.unreachable = f"robots.txt not fetched: {res.error or 'no response'}"
                    elif res.error or res.status is None:
                        # the host answered (with a redirect), the file it named did not: its
                        # pages may well be there, but RFC 9309 §2.3.1.4 says disallow all
                        rp.disallow_all = True  # type: ignore[attr-defined]
                        robots_unavailable[key] = (
                            f"robots.txt{via} not fetched: {res.error or 'no response'}"
                        )
                    elif res.status >= 500:
                        rp.disallow_all = True  # type: ignore[attr-defined]  # RFC 9309 §2.3.1.4: unreachable → disallow all
                        robots_unavailable[key] = f"robots.txt{via} answered HTTP {res.status}"
                    elif res.status >= 400:
                        rp.allow_all = True  # type: ignore[attr-defined]
                    else:
                        text = res.body.decode("utf-8", "replace")
                        if res.truncated:  # the rules up to the limit, not a line cut short
                            text = text.rsplit("\n", 1)[0] if "\n" in text else ""
                            log.info("robots.txt of %s cut at %d bytes", key, MAX_ROBOTS_BYTES)
                        rp.parse(text.splitlines())
                        h.delay = crawl_delay(text, cfg.user_agent)
                    h.robots = rp
                    h.next_time = time.monotonic() + max(cfg.delay_s, h.delay)
                    gate.not_before(key, h.next_time)  # (a Crawl-delay: for other chains too)
                    continue
                res = fut.result()
                stats["requests"] += 1
                h.next_time = time.monotonic() + max(cfg.delay_s, h.delay)
                res.depth = fut.depth  # type: ignore[attr-defined]
                if res.truncated and res.cut and res.status is not None:
                    # over max_response_bytes, or cut off at timeout_s: a fetch error as
                    # before, and what came kept as a record cut there (WARC 1.1
                    # WARC-Truncated: length, time), as Heritrix and Common Crawl keep them
                    stats["oversized" if res.cut == "length" else "timed_out"] += 1
                    write_pair(res, {"WARC-Truncated": res.cut})
                    kept = (
                        f"its first {cfg.max_response_bytes} bytes"
                        if res.cut == "length"
                        else f"the {len(res.response)} bytes that came"
                    )
                    fetch_error(
                        res.url,
                        f"{res.error} ({kept} kept in the WARC, WARC-Truncated: {res.cut})",
                    )
                    # (its head came whole: a redirect's Location is as good as uncut; the
                    # links up to the cut, as Heritrix follows them)
                    follow_redirect(res)
                    follow_links(res)
                    continue
                if res.error or res.status is None:
                    fetch_error(res.url, res.error or "no response")
                    continue
                write_pair(res)
                stats["pages"] += 1
                stats["bytes"] += len(res.response)
                follow_redirect(res)
                follow_links(res)
    finally:
        gate.close()
        pool.shutdown(wait=True)
        writer.close()
    return {
        **stats,
        "warc": str(writer.path),
        "records": writer.records,
        "max_response_bytes": cfg.max_response_bytes,
        "timeout_s": cfg.timeout_s,
        "seconds": time.monotonic() - t0,
        "user_agent": cfg.user_agent,
        "failed": failed,
        "robots_unavailable": robots_unavailable,
        "robots_redirected": robots_redirected,
        "seeds_out_of_scope": seeds_out_of_scope,
    }
